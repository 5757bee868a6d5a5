"""The CLI's help and start-up: every ``--help`` and group listing shows whole summaries
(never cut, no RST markup, within 80 columns), the lazy listing tells the truth, importing
the CLI stays light, completion scripts exist, and usage mistakes exit 2."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tests.conftest import DaemonHandle
from tests.test_cli import xsys
from xsys.cli import COMMANDS, main
from xsys.cli.lazy import LazyGroup, summary

WIDTH = 80


def walk(cmd: click.Command, path: tuple[str, ...] = ()) -> Iterator[
        tuple[tuple[str, ...], click.Command]]:
    """Every command under ``cmd`` with its path (loading lazy ones)."""
    yield path, cmd
    if isinstance(cmd, click.Group):
        ctx = click.Context(cmd)
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            assert sub is not None, (path, name)
            yield from walk(sub, (*path, name))


ALL = list(walk(main))


def help_text(path: tuple[str, ...]) -> str:
    r = CliRunner().invoke(main, [*path, "--help"], env={"COLUMNS": str(WIDTH)},
                           terminal_width=WIDTH)
    assert r.exit_code == 0, (path, r.output)
    return r.output


def listing(text: str) -> dict[str, str]:
    """The ``Commands:`` section of a help page: name -> summary (wrapped lines joined)."""
    rows: dict[str, str] = {}
    last = None
    section = text.split("\nCommands:\n", 1)[1]
    for line in section.splitlines():
        m = re.match(r"^  (\S+)\s{2,}(.*)$", line) or re.match(r"^  (\S+)$", line)
        if m:
            last = m.group(1)
            rows[last] = m.group(2) if m.lastindex == 2 else ""
        elif line.startswith("    ") and last is not None:
            rows[last] += " " + line.strip()
    return rows


@pytest.mark.parametrize("path", [p for p, _ in ALL], ids=lambda p: " ".join(p) or "xsys")
def test_help_pages_are_whole_and_fit(path: tuple[str, ...]) -> None:
    text = help_text(path)
    for line in text.splitlines():
        assert len(line) <= WIDTH, (path, line)
        assert "``" not in line, (path, line)  # no RST markup on a terminal
    body = text.split("\n", 1)[1]  # the usage line may end in "..." (repeatable args)
    assert not re.search(r"\w\.\.\.(\s|$)", body.replace("PATHS...", "")), (path, body)
    cmd = dict(ALL)[path]
    if isinstance(cmd, click.Group):
        rows = listing(text)
        ctx = click.Context(cmd)
        shown = {n for n in cmd.list_commands(ctx) if not cmd.get_command(ctx, n).hidden}
        assert set(rows) == shown, path
        for name, text_ in rows.items():
            whole = summary(cmd.get_command(ctx, name))  # type: ignore[arg-type]
            assert " ".join(text_.split()) == whole, (path, name)
            assert not whole.endswith("...") and whole.count("(") == whole.count(")"), whole
            assert whole[-1] in ".)", (path, name, whole)


def test_lazy_summaries_are_the_commands_own() -> None:
    groups = [cmd for _, cmd in ALL if isinstance(cmd, LazyGroup)]
    assert main in groups and len(groups) >= 2  # the root and config
    for group in groups:
        for name, lazy in group.lazy.items():
            assert summary(lazy.load()) == lazy.short_help, name
    assert set(COMMANDS) <= set(main.list_commands(click.Context(main)))


def _modules_after(code: str) -> set[str]:
    r = subprocess.run([sys.executable, "-c", code + "\nimport sys, json\n"
                        "print(json.dumps(sorted(sys.modules)))"],
                       capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)})
    assert r.returncode == 0, r.stderr
    return set(json.loads(r.stdout.splitlines()[-1]))


HEAVY = {"asyncio", "aiohttp", "psutil", "xsys.monitor", "xsys.config", "xsys.server",
         "prometheus_client", "xsys.client.aio"}


def test_importing_the_cli_is_light() -> None:
    loaded = _modules_after("import xsys.cli")
    assert not HEAVY & loaded, HEAVY & loaded
    assert not {m for m in loaded if m.startswith("xsys.cli.") and m != "xsys.cli.lazy"}
    assert "msgpack" not in loaded


def test_a_data_command_imports_no_more_than_it_needs() -> None:
    """What ``xsys sys memory --json`` imports: its group, the blocking client."""
    loaded = _modules_after(
        "import sys\nfrom xsys.cli import main\n"
        "try:\n    main(['--socket', '/nonexistent/x.sock', 'sys', 'memory', '--json'])\n"
        "except SystemExit as e:\n    assert e.code == 2, e.code\n")
    assert {"xsys.cli.sys", "xsys.client.sync"} <= loaded
    assert not HEAVY & loaded, HEAVY & loaded
    assert not {"xsys.cli.fs", "xsys.cli.monitor", "xsys.cli.checks"} & loaded


@pytest.mark.parametrize(("shell", "marker"), [("bash", "complete -o"),
                                               ("zsh", "compdef"),
                                               ("fish", "complete --no-files --command xsys")])
def test_completion_scripts(shell: str, marker: str) -> None:
    r = CliRunner().invoke(main, ["completion", shell])
    assert r.exit_code == 0, r.output
    assert marker in r.output and "_XSYS_COMPLETE" in r.output


def test_completion_completes_commands() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XSYS_")}
    env.update({"_XSYS_COMPLETE": "bash_complete", "COMP_WORDS": "xsys sys pro",
                "COMP_CWORD": "2", "PYTHONPATH": str(Path(__file__).parent.parent)})
    r = subprocess.run([sys.executable, "-c", "from xsys.cli import main; main(prog_name='xsys')"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert "plain,process\n" in r.stdout and "plain,processes" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("args", [
    ("--timeout", "-1", "ping"),
    ("--timeout", "0", "ping"),
    ("sys", "processes", "--limit", "0"),
    ("sys", "process", "-5"),
    ("fs", "ls", "/", "--limit", "-1"),
    ("fs", "tail", "/x", "--lines", "-2"),
    ("fs", "find", "/", "--min-size", "ten"),
    ("monitor", "silence"),
    ("monitor", "silence", "--check", "cpu", "--duration", "-1"),
    ("monitor", "silence", "--check", "cpu", "--duration", "0s"),
    ("monitor", "unsilence"),
    ("watch",),
    ("watch", "/tmp", "--events", "nope"),
    ("methods", "a", "b"),
    ("completion", "tcsh"),
    ("sys", "nosuch"),
])
def test_usage_mistakes_exit_2_without_a_daemon(args: tuple[str, ...], short_tmp: Path) -> None:
    """Caught before any connection: the socket does not even exist."""
    r = xsys(*args, socket=str(short_tmp / "none.sock"))
    assert r.returncode == 2, (args, r.stdout, r.stderr)
    assert "Error" in r.stderr and "not running" not in r.stderr, r.stderr


def test_daemon_side_mistakes_exit_2(daemon: DaemonHandle) -> None:
    r = xsys("monitor", "silence", "--check", "nosuch", socket=daemon.socket)
    assert r.returncode == 2, r.stderr
    assert "unknown check 'nosuch'" in r.stderr
    for name in ("cpu", "memory", "filesystem", "load", "service"):
        assert name in r.stderr.split("valid checks:", 1)[1]
    r = xsys("methods", "sys.nosuch", socket=daemon.socket)
    assert r.returncode == 2 and "sys.nosuch" in r.stderr
    r = xsys("sys", "process", "2147483646", socket=daemon.socket)  # a daemon error: 1
    assert r.returncode == 1 and "not_found" in r.stderr
    ok = xsys("monitor", "silence", "--check", "cp*", "-d", "1m", "--json", socket=daemon.socket)
    assert ok.returncode == 0 and json.loads(ok.stdout)["check"] == "cp*"


def test_methods_plain_wrapped_and_one_in_full(daemon: DaemonHandle) -> None:
    env = {"COLUMNS": "80"}
    listing_ = xsys("methods", socket=daemon.socket, env=env)
    assert listing_.returncode == 0, listing_.stderr
    lines = listing_.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert "``" not in listing_.stdout and "sys.processes" in listing_.stdout
    one = xsys("methods", "sys.processes", socket=daemon.socket, env=env)
    assert one.returncode == 0, one.stderr
    text = one.stdout
    assert text.startswith("sys.processes\n") and "``" not in text
    assert all(len(line) <= 80 for line in text.splitlines())
    for part in ("Parameters:", "limit (int; default 50; min 1; max 100000)",
                 "sort (str; default 'cpu'; one of cpu, memory, pid, name)", "Result: map",
                 "cmdline: list[str]", "Errors"):
        assert part in text, part
    assert "-32001 not_found" in xsys("methods", "sys.process", socket=daemon.socket).stdout


def test_processes_show_command_lines_cut_unless_full(daemon: DaemonHandle) -> None:
    """The daemon's own command line (long: it holds its config path) is cut to $COLUMNS,
    and whole with --full."""
    args = ("sys", "processes", "--name", "python*", "--limit", "100000", "--sort", "pid")
    cut = xsys(*args, socket=daemon.socket, env={"COLUMNS": "60"})
    assert cut.returncode == 0, cut.stderr
    assert cut.stdout.splitlines()[0].split()[-1] == "COMMAND"
    assert all(len(line) <= 60 for line in cut.stdout.splitlines())
    full = xsys(*args, "--full", socket=daemon.socket, env={"COLUMNS": "60"})
    assert str(daemon.config_path) in full.stdout  # `serve --config <path>`
    row = next(line for line in full.stdout.splitlines() if str(daemon.config_path) in line)
    assert re.search(r"\d+\.\d%\s+\d+\.\d%\s+[\d.]+ [KMG]?i?B ", row), row


def test_loop_devices_hidden_alike_in_disks_and_disk_io() -> None:
    from xsys.cli.sys import disk_io_notes, is_hidden_device, render_disk_io

    io = {"disks": {"loop0": {"read_bytes": 1}, "ram1": {}, "sda": {"read_bytes": 2048}},
          "total": {"read_bytes": 2048}}
    shown = [line.split()[0] for line in render_disk_io(io).splitlines()[1:]]
    assert shown == ["sda", "total"]
    assert disk_io_notes(io) == ["(2 loop/RAM devices hidden; --all shows them)"]
    every = [line.split()[0] for line in render_disk_io(io, show_all=True).splitlines()[1:]]
    assert every == ["loop0", "ram1", "sda", "total"]
    # sys disks leaves out the same devices (the daemon's sys.disks without all)
    assert is_hidden_device("/dev/loop7") and not is_hidden_device("/dev/sda1")
    disks_help = CliRunner().invoke(main, ["sys", "disks", "--help"]).output
    io_help = CliRunner().invoke(main, ["sys", "disk-io", "--help"]).output
    assert "--all" in disks_help and "--all" in io_help


def test_main_commands_use_one_format_per_kind_of_value(daemon: DaemonHandle) -> None:
    """The same screen checks as tests/test_cli_tmux.py (formats, aligned columns), on
    piped output (no terminal: lines are whole), so they run where tmux is missing."""
    from tests.test_cli_tmux import COMMANDS, check_screen

    for template in COMMANDS:
        if "{dir}" in template:
            continue  # needs the tmux test's fs root
        command = template.format(pid=os.getpid())
        r = xsys(*shlex.split(command), socket=daemon.socket, env={"COLUMNS": "80"})
        assert r.returncode == 0, (command, r.stderr)
        check_screen(command, [line.rstrip() for line in r.stdout.splitlines()], 10_000)
