"""``xsys top`` against a real daemon: under a real tmux terminal (80x24) it draws,
updates, sorts on ``m``/``c`` and quits on ``q``; with stdout not a terminal it prints one
line per interval (``--json``: one snapshot per line) and reads no keys."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import DaemonHandle
from tests.launcher import REPO

TMUX = shutil.which("tmux")


def _xsys(socket: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "xsys", "--socket", socket, *args]


class Pane:
    """One tmux server (its own socket) running one command in an 80x24 window."""

    def __init__(self, sock: Path, command: str) -> None:
        assert TMUX is not None
        self.base = [TMUX, "-S", str(sock)]
        env = {**os.environ, "PYTHONPATH": str(REPO), "TERM": "xterm-256color"}
        subprocess.run([*self.base, "new-session", "-d", "-s", "top", "-x", "80", "-y",
                        "24", command], check=True, env=env, cwd=REPO)

    def text(self) -> str:
        return subprocess.run([*self.base, "capture-pane", "-p", "-t", "top"], check=True,
                              capture_output=True, text=True).stdout

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.base, "send-keys", "-t", "top", *keys], check=True)

    def wait_for(self, pred: Callable[[str], bool], what: str, timeout_s: float = 20.0
                 ) -> str:
        """Poll the screen until ``pred`` holds (a marker, never an absence)."""
        deadline = time.monotonic() + timeout_s
        while True:
            screen = self.text()
            if pred(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not on screen within {timeout_s}s:\n{screen}")
            time.sleep(0.05)

    def kill(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True)


@pytest.fixture
def pane_factory(short_tmp: Path) -> Iterator[Callable[[str], Pane]]:
    if TMUX is None:
        pytest.skip("tmux is not installed (Debian package tmux)")
    panes: list[Pane] = []

    def start(command: str) -> Pane:
        pane = Pane(short_tmp / f"tmux{len(panes)}", command)
        panes.append(pane)
        return pane

    yield start
    for pane in panes:
        pane.kill()


def _seq(screen: str) -> int:
    m = re.search(r"#(\d+)\s*$", screen.splitlines()[0] if screen else "")
    return int(m.group(1)) if m else 0


def _rows(screen: str) -> list[tuple[int, float, float]]:
    """(pid, cpu%, mem%) of the process rows on the screen."""
    rows = []
    for line in screen.splitlines():
        m = re.match(r"\s*(\d+)\s+\S+\s+(\d+\.\d)\s+(\d+\.\d)\s", line)
        if m:
            rows.append((int(m.group(1)), float(m.group(2)), float(m.group(3))))
    return rows


def test_top_draws_updates_sorts_and_quits(daemon_factory: Callable[..., DaemonHandle],
                                           pane_factory: Callable[[str], Pane]) -> None:
    h = daemon_factory()
    command = " ".join(shlex.quote(a) for a in _xsys(h.socket, "top", "--interval", "0.25"))
    pane = pane_factory(f"{command}; echo EXITED $?; sleep 600")
    first = pane.wait_for(lambda s: "PID" in s and "COMMAND" in s and _seq(s) >= 1,
                          "the process table")
    assert first.splitlines()[0].startswith("xsys top")
    assert "cpu0" in first and "mem" in first and "swap" in first and "load" in first
    assert "net" in first and "disk" in first
    assert all(len(line) <= 80 for line in first.splitlines())
    procs = re.search(r"(\d+) procs", first)
    assert procs is not None
    total = int(procs.group(1))
    rows = _rows(first)
    assert len(rows) >= min(8, total), "the rows left on 24 lines are filled"
    pane.wait_for(lambda s: _seq(s) >= _seq(first) + 2, "an update")

    pane.keys("m")
    by_mem = pane.wait_for(lambda s: "sort:memory" in s and "MEM%▼" in s, "sort by memory")
    mems = [mem for _pid, _cpu, mem in _rows(by_mem)]
    assert mems == sorted(mems, reverse=True) and len(mems) >= min(8, total)
    pane.keys("c")
    by_cpu = pane.wait_for(lambda s: "sort:cpu" in s and "CPU%▼" in s, "sort by cpu")
    cpus = [cpu for _pid, cpu, _mem in _rows(by_cpu)]
    assert cpus == sorted(cpus, reverse=True)

    pane.keys("q")
    done = pane.wait_for(lambda s: "EXITED" in s, "the exit")
    assert "EXITED 0" in done
    with h.client() as c:  # its subscription ended with it
        deadline = time.monotonic() + 10
        while c.sys.live_stats()["subscriptions"] and time.monotonic() < deadline:
            c.rpc.ping()
        assert c.sys.live_stats()["subscriptions"] == 0


@pytest.mark.parametrize("json_mode", [False, True])
def test_top_without_a_terminal_prints_lines(daemon_factory: Callable[..., DaemonHandle],
                                             json_mode: bool) -> None:
    h = daemon_factory()
    args = ["top", "--interval", "0.25", *(["--json"] if json_mode else [])]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # stdin is a pipe nobody writes to: a top that read keys would never print
    proc = subprocess.Popen(_xsys(h.socket, *args), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=REPO)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
    finally:
        proc.terminate()
        proc.wait(10)
    for line in lines:
        assert line.endswith("\n") and "\x1b" not in line, line
        if json_mode:
            snap = json.loads(line)
            assert snap["method"] == "sys.snapshot" and {"cpu", "memory", "processes"} <= \
                set(snap)
        else:
            assert re.match(r"\d\d:\d\d:\d\d  cpu +\d+\.\d%  mem .* load .* net rx ", line)
    if json_mode:
        seqs = [json.loads(line)["seq"] for line in lines]
        assert seqs == [1, 2, 3]


@pytest.mark.parametrize("cpus", [1, 2, 8, 64])
def test_top_screen_fits_80x24(cpus: int) -> None:
    """The view of a big machine (64 CPUs, many filesystems, alerts, long command lines)
    still fits an 80x24 terminal, with the header and the process table on it."""
    from rich.console import Console

    from xsys.cli.topview import render

    snap = {
        "seq": 9, "ts": time.time(),
        "cpu": {"percent": 50.0, "per_cpu_percent": [float(i % 100) for i in range(cpus)]},
        "memory": {"percent": 40.0, "used_bytes": 4 << 30, "total_bytes": 16 << 30},
        "swap": {"percent": 0.0, "used_bytes": 0, "total_bytes": 0},
        "load": {"load1": 1.0, "load5": 0.5, "load15": 0.25},
        "network": {"total": {"bytes_recv_per_s": 1e6, "bytes_sent_per_s": 2e3}},
        "disks": {"disks": [{"mountpoint": f"/mnt/{i}", "percent": 10.0 * i,
                             "free_bytes": 1 << 30} for i in range(10)]},
        "monitor": {"checks": [{"check": "cpu", "component": f"cpu:{i}", "state": "critical",
                                "value": 99.0, "unit": "percent"} for i in range(6)]},
        "processes": {"total": 500, "processes": [
            {"pid": i, "username": "a-very-long-user-name", "cpu_percent": 100.0 - i,
             "memory_percent": i / 10, "memory_rss_bytes": i << 20, "name": "p",
             "cmdline": ["/usr/bin/python3", "-c", "x" * 200, "\x1b[31mred\nline"]}
            for i in range(30)]},
    }
    console = Console(width=80, height=24, record=True, force_terminal=False)
    console.print(render(snap, {"hostname": "host", "booted_at": time.time() - 3600},
                         "cpu", 80, 24))
    text = console.export_text()
    lines = text.rstrip("\n").split("\n")
    assert len(lines) <= 24, "\n".join(lines)
    assert all(len(line) <= 80 for line in lines)
    assert lines[0].startswith("xsys top") and "#9" in lines[0]
    assert any("COMMAND" in line for line in lines)
    assert sum(1 for line in lines if re.match(r"\s*\d+\s+a-very", line)) >= 3
    assert "\x1b" not in text and not any(ln.strip() == "line" for ln in lines)
    last = cpus - 1  # the last CPU is on screen: a bar, a column's row or a strip's range
    assert re.search(rf"(cpu{last} |(^|\s){last} |-{last}\s)", text, re.M), text
