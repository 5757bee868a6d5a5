"""``xsys fs ...`` and ``xsys watch`` against a real daemon."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.conftest import DaemonHandle
from tests.fswatch_support import shared_daemon, wait_sync, workdir

__all__ = ["shared_daemon", "workdir"]  # fixtures used by this module
from xsys.cli import main
from xsys.cli.common import Progress
from xsys.cli.fs import _size, mode_string
from xsys.cli.watch import format_event


def xsys(*args: str, socket: str, stdin: bytes | None = None, cwd: Path | None = None,
         ) -> subprocess.CompletedProcess[bytes]:
    """Run the CLI in-process (Click's runner) and return what a subprocess would."""
    runner = CliRunner()
    old = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        r = runner.invoke(main, ["--socket", socket, *args], input=stdin,
                          catch_exceptions=False)
    finally:
        os.chdir(old)
    return subprocess.CompletedProcess(list(args), r.exit_code, r.stdout_bytes,
                                       r.stderr_bytes)


@pytest.fixture
def tree(workdir: Path) -> Path:
    t = workdir / "t"
    (t / "sub").mkdir(parents=True)
    (t / "a.txt").write_text("hello\n")
    (t / "sub" / "n.txt").write_text("".join(f"{i}\n" for i in range(1, 101)))
    os.symlink("a.txt", t / "link")
    return t


def test_fs_commands(shared_daemon: DaemonHandle, tree: Path) -> None:
    s = shared_daemon.socket

    def ok(*args: str, **kw: Any) -> str:
        r = xsys(*args, socket=s, **kw)
        assert r.returncode == 0, (args, r.stderr.decode())
        return r.stdout.decode()

    listing = ok("fs", "ls", str(tree))
    assert "a.txt" in listing and "link -> a.txt" in listing and "sub/" in listing
    assert "MODE" in listing.splitlines()[0]
    assert "sub/n.txt" in ok("fs", "ls", "-r", "--glob", "*.txt", str(tree))
    assert json.loads(ok("fs", "stat", "--json", str(tree / "link")))["type"] == "symlink"
    assert ok("fs", "cat", str(tree / "a.txt")) == "hello\n"
    assert "created" in ok("fs", "write", "--create", str(tree / "w.txt"), stdin=b"one\n")
    ok("fs", "write", "--append", "--data", "two\n", str(tree / "w.txt"))
    assert (tree / "w.txt").read_text() == "one\ntwo\n"
    ok("fs", "cp", str(tree), str(tree.parent / "copy"))
    assert (tree.parent / "copy" / "sub" / "n.txt").exists()
    ok("fs", "cp", str(tree / "sub" / "n.txt"), str(tree.parent / "copy"))  # into the dir
    ok("fs", "mv", str(tree.parent / "copy"), str(tree.parent / "moved"))
    assert (tree.parent / "moved" / "n.txt").exists()
    digest = hashlib.sha256(b"hello\n").hexdigest()
    assert ok("fs", "hash", str(tree / "a.txt")).split() == [digest, str(tree / "a.txt")]
    assert "files:" in ok("fs", "du", str(tree))
    found = ok("fs", "find", "--name", "*.txt", "--type", "file", str(tree))
    assert str(tree / "sub" / "n.txt") in found
    assert ok("fs", "tail", "-n", "2", str(tree / "sub" / "n.txt")) == "99\n100\n"
    ok("fs", "mkdir", "-p", str(tree / "x" / "y"))
    ok("fs", "chmod", "700", str(tree / "x"))
    assert (tree / "x").stat().st_mode & 0o777 == 0o700
    ok("fs", "rm", "-r", str(tree.parent / "moved"))
    assert not (tree.parent / "moved").exists()
    # relative paths are relative to the CLI's working directory
    assert ok("fs", "cat", "a.txt", cwd=tree) == "hello\n"


def test_fs_errors(shared_daemon: DaemonHandle, tree: Path) -> None:
    r = xsys("fs", "cat", "/etc/passwd", socket=shared_daemon.socket)
    assert r.returncode == 1 and b"permission_denied (-32002)" in r.stderr
    r = xsys("fs", "rm", str(tree), socket=shared_daemon.socket)
    assert r.returncode == 1 and b"-32007" in r.stderr
    r = xsys("fs", "ls", str(tree), socket=shared_daemon.socket + ".missing")
    assert r.returncode == 2


def test_cat_streams_files_above_the_read_limit(shared_daemon: DaemonHandle,
                                                workdir: Path) -> None:
    data = os.urandom(20_000)  # the shared daemon's fs.max_read_bytes is 4096
    (workdir / "big").write_bytes(data)
    r = xsys("fs", "cat", str(workdir / "big"), socket=shared_daemon.socket)
    # the CLI asks for 4 MiB pieces, learns the daemon's limit and reads in those
    assert r.returncode == 0, r.stderr
    assert r.stdout == data
    r = xsys("fs", "cat", "--offset", "100", "--length", "9000", str(workdir / "big"),
             socket=shared_daemon.socket)
    assert r.stdout == data[100:9100]


def test_watch_command_streams_until_interrupted(shared_daemon: DaemonHandle,
                                                 workdir: Path) -> None:
    daemon = shared_daemon
    root = workdir / "w"
    root.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("XSYS_")}
    proc = subprocess.Popen([sys.executable, "-m", "xsys", "--socket", daemon.socket, "watch",
                             str(root), "--recursive", "--ignore", "*.tmp", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        with daemon.client() as c:
            assert wait_sync(lambda: len(c.call("watch.list")["subscriptions"]) == 1)
        (root / "skip.tmp").write_text("x")
        (root / "keep.txt").write_text("x")
        time.sleep(0.5)
        (root / "last.txt").write_text("x")
        line_events: list[dict[str, Any]] = []
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        buf = b""

        def seen_last() -> bool:
            nonlocal buf
            chunk = proc.stdout.read() if proc.stdout else None  # type: ignore[union-attr]
            if chunk:
                buf += chunk
            return b"last.txt" in buf

        assert wait_sync(seen_last, timeout=30)
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
        line_events = [json.loads(x) for x in buf.decode().splitlines() if x.strip()]
        paths = {e["path"] for e in line_events}
        assert str(root / "keep.txt") in paths and str(root / "skip.tmp") not in paths
        assert proc.returncode in (0, 130, -signal.SIGINT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_watch_list_and_helpers(shared_daemon: DaemonHandle) -> None:
    r = xsys("watch", "--list", socket=shared_daemon.socket)
    assert r.returncode == 0 and b"SUBSCRIPTION" in r.stdout
    r = xsys("watch", socket=shared_daemon.socket)
    assert r.returncode != 0
    line = format_event({"type": "moved", "path": "/a", "dest_path": "/b", "is_dir": True,
                         "ts": 0.5})
    assert line.endswith("moved     /a/ -> /b/")
    assert re.match(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.500  ", line), line
    assert mode_string("dir", 0o755) == "drwxr-xr-x"
    assert _size("10M") == 10 << 20 and _size("512") == 512
    quiet = Progress("x")
    quiet({"done": 1, "total": 2, "unit": "bytes"})  # not a terminal: renders nothing
    quiet.close()


def test_ls_limit_returns_the_first_entries_by_name(shared_daemon: DaemonHandle,
                                                    workdir: Path) -> None:
    """f1..f3000 (created in a scrambled order): ``fs ls --limit 3`` and ``fs.list`` with
    ``limit: 3`` give f1, f10, f100 (by name), ``truncated`` stays true."""
    d = workdir / "many"
    d.mkdir()
    for i in sorted(range(1, 3001), key=lambda i: (i * 7919) % 3001):
        (d / f"f{i}").write_bytes(b"")
    r = xsys("fs", "ls", str(d), "--limit", "3", socket=shared_daemon.socket)
    assert r.returncode == 0, r.stderr
    assert [line.split()[-1] for line in r.stdout.decode().splitlines()[1:]] == [
        "f1", "f10", "f100"]
    assert "truncated at 3 entries" in r.stderr.decode()
    with shared_daemon.client() as c:
        listing = c.call("fs.list", {"path": str(d), "limit": 3})
    assert [e["name"] for e in listing["entries"]] == ["f1", "f10", "f100"]
    assert listing["truncated"] is True and listing["scanned"] == 3000
