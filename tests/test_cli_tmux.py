"""Evidence: the main CLI commands run in a real tmux session (a real terminal, 80x24 and
120x24) against a real daemon; each screen is captured to a text file under the test's
tmp dir (``screens-<cols>.txt``) and checked: no line wider than the terminal, tables'
columns aligned, one format per kind of value (percentages with ``%``, bytes in IEC
units, times as local ISO-8601, no epoch floats), help summaries whole."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import DaemonHandle
from tests.launcher import REPO

#: Seconds one command may take to print its end marker.
COMMAND_TIMEOUT_S = 60.0

COMMANDS = [
    "--help",
    "sys --help",
    "fs --help",
    "monitor --help",
    "ping",
    "methods",
    "methods sys.processes",
    "sys info",
    "sys cpu",
    "sys memory",
    "sys disks",
    "sys disk-io",
    "sys network",
    "sys load",
    "sys processes --limit 8",
    "sys process {pid}",
    "sys users",
    "sys ports",
    "monitor status",
    "monitor checks",
    "monitor history",
    "monitor silence --list",
    "fs ls {dir} --limit 3",
    "fs stat {dir}/f1",
    "fs find {dir} --name 'f2*' --limit 3",
]

ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
ANY_DATE = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?")
EPOCH = re.compile(r"(?<![\d.])1[6-9]\d{8}\.\d+")
SI_BYTES = re.compile(r"(?<![\w.])\d+(\.\d+)?\s?[KMGTP]B\b")  # 1.5KB, 12 MB: not IEC


class Tmux:
    """One tmux server (its own socket, no user config) with one shell window of a given
    size; ``run`` types a command and returns its output lines, waiting for a marker."""

    def __init__(self, cols: int, rows: int, env: dict[str, str]) -> None:
        self.name = f"xsys-test-{uuid.uuid4().hex[:8]}"
        self.cols = cols
        self.count = 0
        self._tmux(["new-session", "-d", "-x", str(cols), "-y", str(rows), "-s", "t",
                    "env", *[f"{k}={v}" for k, v in env.items()], "sh"])
        self._tmux(["set-option", "-g", "history-limit", "5000"])

    def _tmux(self, args: list[str]) -> str:
        r = subprocess.run(["tmux", "-L", self.name, "-f", "/dev/null", *args],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, (args, r.stderr)
        return r.stdout

    def run(self, command: str) -> list[str]:
        """Type ``command`` in the shell; its output lines (joined as the terminal
        wrapped them, trailing blanks removed) once its end marker shows."""
        self.count += 1
        n = self.count
        # the typed line holds $((n+0)), the output the number: markers only in output
        typed = f"clear; echo START_$(({n}+0)); {command}; echo END_$(({n}+0))"
        self._tmux(["send-keys", "-t", "t", "-l", typed])
        self._tmux(["send-keys", "-t", "t", "Enter"])
        deadline = time.monotonic() + COMMAND_TIMEOUT_S
        while True:
            screen = self._tmux(["capture-pane", "-t", "t", "-p", "-J", "-S", "-"])
            lines = [line.rstrip() for line in screen.splitlines()]
            if f"END_{n}" in lines and f"START_{n}" in lines:
                break
            assert time.monotonic() < deadline, f"{command!r} did not finish:\n{screen}"
            time.sleep(0.05)  # polling for the marker, not waiting for an absence
        start = len(lines) - 1 - lines[::-1].index(f"START_{n}")
        out = lines[start + 1:lines.index(f"END_{n}", start)]
        self._tmux(["clear-history", "-t", "t"])
        return out

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.name, "kill-server"], capture_output=True,
                       timeout=30)


@pytest.fixture
def tmux_session(daemon_factory: Callable[..., DaemonHandle], short_tmp: Path) -> Iterator[
        tuple[DaemonHandle, Path]]:
    """A daemon whose fs root is a short directory holding f1..f39 (so that paths fit
    the 80 columns: file names are never cut)."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (apt-get install tmux; make test-deps)")
    data = short_tmp / "d"
    data.mkdir()
    daemon = daemon_factory({"fs": {"roots": [str(data)]}})
    for i in range(1, 40):
        (data / f"f{i}").write_bytes(b"x" * (i * 1000))
    yield daemon, data


def _tables(lines: list[str]) -> Iterator[list[str]]:
    """Blocks that look like tables: an upper-case header line with at least three
    columns separated by two spaces, and the non-blank lines under it."""
    i = 0
    while i < len(lines):
        head = lines[i]
        cols = [c for c in re.split(r"\s{2,}", head.strip()) if c]
        if len(cols) >= 3 and all(re.fullmatch(r"[A-Z0-9%/°]+", c) for c in cols):
            block = [head]
            i += 1
            while i < len(lines) and lines[i].strip() and not lines[i].startswith("("):
                block.append(lines[i])
                i += 1
            yield block
        else:
            i += 1


def _gutters(block: list[str]) -> int:
    """Vertical runs (two or more columns wide) that are blank in every line."""
    width = max(len(line) for line in block)
    blank = [all(len(line) <= x or line[x] == " " for line in block) for x in range(width)]
    first = min(len(line) - len(line.lstrip()) for line in block)
    runs, run = 0, 0
    for x in range(first, width):
        if blank[x]:
            run += 1
        else:
            runs += run >= 2
            run = 0
    return runs


def check_screen(command: str, lines: list[str], cols: int) -> None:
    """The checks every captured screen passes."""
    assert lines, f"{command}: no output"
    for line in lines:
        assert len(line) <= cols, f"{command}: {len(line)} > {cols} columns: {line!r}"
        assert not EPOCH.search(line), f"{command}: an epoch time: {line!r}"
        assert not SI_BYTES.search(line), f"{command}: bytes not in IEC units: {line!r}"
        assert "``" not in line, f"{command}: RST markup: {line!r}"
        for date in ANY_DATE.finditer(line):
            assert ISO_TIME.match(line, date.start()), f"{command}: not ISO-8601: {line!r}"
    for block in _tables(lines):
        head = block[0]
        ncols = len([c for c in re.split(r"\s{2,}", head.strip()) if c])
        assert _gutters(block) >= ncols - 1, f"{command}: columns not aligned:\n" + \
            "\n".join(block)
        # a column whose header says % holds percentages with their sign
        for m in re.finditer(r"\S*%", head):
            end = m.end()
            for row in block[1:]:
                cell = row[:end].rsplit(" ", 1)[-1] if len(row) >= end else ""
                assert cell == "" or cell.endswith("%"), f"{command}: {m.group()} {row!r}"


@pytest.mark.parametrize("cols", [80, 120])
def test_main_commands_on_a_real_terminal(tmux_session: tuple[DaemonHandle, Path],
                                          tmp_path: Path, cols: int) -> None:
    daemon, data = tmux_session
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "PYTHONPATH": str(REPO), "XSYS_SOCKET": daemon.socket, "PS1": "$ ",
           "TERM": "xterm", "LANG": os.environ.get("LANG", "C.UTF-8")}
    term = Tmux(cols, 24, env)
    screens: list[str] = []
    try:
        for template in COMMANDS:
            command = template.format(pid=os.getpid(), dir=data)
            lines = term.run(f"{sys.executable} -m xsys {command}")
            screens.append(f"$ xsys {command}\n" + "\n".join(lines) + "\n")
            check_screen(command, lines, cols)
            if command.startswith("sys processes"):
                assert lines[0].split()[-1] == "COMMAND" and len(lines) == 9, lines
            if command.startswith("fs ls"):
                # the first three by name, and the note that there are more
                assert [line.split()[-1] for line in lines[1:4]] == ["f1", "f10", "f11"]
                assert "truncated at 3 entries" in lines[4]
    finally:
        term.close()
        (tmp_path / f"screens-{cols}.txt").write_text("\n".join(screens))
    text = (tmp_path / f"screens-{cols}.txt").read_text()
    assert "pong from" in text and "sys.processes" in text
