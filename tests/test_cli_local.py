"""``xsys --local``: the same commands through a real daemon and in process give the same
``--json`` output; ``--root`` confines like the daemon's roots; without a daemon the CLI
exits 2 and mentions ``--local``; watch and monitor say they need the daemon."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from tests.fswatch_support import shared_daemon, workdir
from xsys.cli import main

__all__ = ["shared_daemon", "workdir"]  # fixtures used by this module


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def test_local_json_is_the_daemons(shared_daemon: Any, workdir: Path) -> None:
    root = str(shared_daemon.root)
    t = workdir / "t"
    (t / "sub").mkdir(parents=True)
    (t / "a.txt").write_text("alpha\nneedle\n")
    (t / "sub" / "b.log").write_bytes(b"\xff\xfe needle \n")
    (t / "bin").write_bytes(b"needle\0")
    os.symlink("a.txt", t / "link")
    (workdir / "secret").mkdir()
    commands = [
        ["fs", "ls", "-r", "-a", str(t)],
        ["fs", "stat", str(t / "link")],
        ["fs", "find", "--name", "*.txt", str(t)],
        ["fs", "grep", "-C", "1", "needle", str(t)],
        ["fs", "hash", str(t / "a.txt")],
        ["fs", "du", str(t)],
        ["fs", "tail", "-n", "1", str(t / "a.txt")],
        ["fs", "readlink", str(t / "link")],
        ["fs", "realpath", str(t / "link")],
        ["fs", "stat", "/etc/passwd"],  # outside the roots: the same error both ways
        ["fs", "stat", str(t / "missing")],
        ["sys", "disks"],
    ]
    daemon = ["--socket", shared_daemon.socket]
    local = ["--local", "--root", root]
    for cmd in commands:
        a = run(*daemon, *cmd[:2], "--json", *cmd[2:]) if cmd[1] != "tail" else \
            run(*daemon, *cmd[:2], *cmd[2:], "--json")
        b = run(*local, *cmd[:2], "--json", *cmd[2:]) if cmd[1] != "tail" else \
            run(*local, *cmd[:2], *cmd[2:], "--json")
        assert a[0] == b[0], (cmd, a, b)
        if a[0] == 0:
            ja, jb = json.loads(a[1]), json.loads(b[1])
            if cmd[0] == "sys":  # live numbers: the same shape
                ja = [sorted(d) for d in ja["disks"]]
                jb = [sorted(d) for d in jb["disks"]]
            assert ja == jb, cmd
        else:
            assert a[2] == b[2], cmd  # the same error line
    # bytes: fs cat prints the same file either way
    assert run(*daemon, "fs", "cat", str(t / "sub" / "b.log"))[1] == \
        run(*local, "fs", "cat", str(t / "sub" / "b.log"))[1]


def test_local_writes_and_root_confinement(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside.txt").write_text("no")
    local = ["--local", "--root", str(root)]
    code, out, _ = run(*local, "fs", "write", "--json", "--data", "hello",
                       str(root / "w.txt"))
    assert code == 0 and json.loads(out)["written_bytes"] == 5
    assert (root / "w.txt").read_text() == "hello"
    code, _, err = run(*local, "fs", "cat", str(tmp_path / "outside.txt"))
    assert code == 1 and "outside the fs roots" in err
    os.symlink(tmp_path / "outside.txt", root / "esc")
    code, _, err = run(*local, "fs", "cat", str(root / "esc"))
    assert code == 1 and "permission_denied" in err
    code, _, _ = run(*local, "fs", "ln", "-s", "../outside.txt", str(root / "esc2"))
    assert code == 1 and not os.path.lexists(root / "esc2")
    code, out, _ = run(*local, "fs", "archive", "--json", str(root / "a.zip"), str(root / "w.txt"))
    assert code == 0 and json.loads(out)["files"] == 1
    # a --root that does not exist is a usage error, not "everything is outside the roots"
    code, _, err = run("--local", "--root", str(tmp_path / "typo"), "fs", "ls", str(root))
    assert code == 2 and "does not exist" in err, err
    # without --root: the caller's own rights, anywhere
    code, out, _ = run("--local", "fs", "cat", str(tmp_path / "outside.txt"))
    assert code == 0 and out == "no"


def test_without_a_daemon_and_daemon_only_commands(tmp_path: Path) -> None:
    sock = str(tmp_path / "none.sock")
    code, _, err = run("--socket", sock, "sys", "info")
    assert code == 2 and "--local" in err
    for cmd in (["watch", str(tmp_path)], ["monitor", "status"],
                ["fs", "tail", "-f", str(tmp_path / "x")]):
        (tmp_path / "x").write_text("x\n")
        code, _, err = run("--local", *cmd)
        assert code == 2 and "needs the daemon" in err, (cmd, err)
    code, _, err = run("--root", str(tmp_path), "fs", "ls")
    assert code == 2 and "--local" in err  # a usage error
