"""The fs namespace against a real daemon process: sandbox escapes over the socket, atomic
writes surviving ``kill -9``, concurrent appends, progress notifications."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fswatch_support import shared_daemon, workdir
from xsys.protocol import ConnectionClosed, PermissionDenied, XsysError

__all__ = ["shared_daemon", "workdir"]  # fixtures used by this module


def test_sandbox_escapes_over_the_socket(daemon_factory: Callable[..., Any],
                                         tmp_path: Path) -> None:
    real = tmp_path / "realroot"
    (real / "sub").mkdir(parents=True)
    (real / "sub" / "ok.txt").write_text("ok")
    os.symlink(real, tmp_path / "linkroot")
    os.symlink("/etc", real / "etc")
    os.symlink(real / "loop_b", real / "loop_a")
    os.symlink(real / "loop_a", real / "loop_b")
    d = daemon_factory({"fs": {"roots": [str(tmp_path / "linkroot")]}})
    with d.client() as c:
        # the root is itself a symlink: paths through it and through its target work
        via_link = c.call("fs.read", path=str(tmp_path / "linkroot" / "sub" / "ok.txt"))
        assert via_link["data"] == b"ok" and via_link["path"] == str(real / "sub" / "ok.txt")
        assert c.call("fs.stat", path=str(real / "sub"))["type"] == "dir"
        escapes = {
            "dotdot": str(tmp_path / "linkroot" / "sub" / ".." / ".." / "linkroot" / ".." /
                          "x"),
            "absolute": "/etc/passwd",
            "symlink_to_etc": str(real / "etc" / "passwd"),
            "symlink_dir": str(real / "etc"),
            "loop": str(real / "loop_a"),
            "relative": "../../../../../../../etc/passwd",
        }
        for label, path in escapes.items():
            for method, params in (("fs.read", {}), ("fs.stat", {}), ("fs.list", {}),
                                   ("fs.write", {"data": b"x"})):
                with pytest.raises(PermissionDenied) as exc:
                    c.call(method, path=path, **params)
                assert exc.value.code == -32002, (label, method)
                assert exc.value.data["resolved"], (label, method)
        with pytest.raises(PermissionDenied) as exc:
            c.call("fs.read", path=str(real / "etc" / "passwd"))
        assert exc.value.data["path"] == "/etc/passwd"
        assert not (Path("/etc") / "x").exists()


def test_atomic_write_survives_kill_9(daemon_factory: Callable[..., Any],
                                      tmp_path: Path) -> None:
    size = 12 * 1024 * 1024
    old, new = b"A" * size, b"B" * size
    target = tmp_path / "data.bin"
    target.write_bytes(old)
    d = daemon_factory({"fs": {"chunk_bytes": 64 * 1024}})
    rng = random.Random(1234)
    for attempt, delay in enumerate((0.05, 0.2)):

        def writer(payload: bytes) -> None:
            try:
                with d.client(timeout=60) as c:
                    c.call("fs.write", path=str(target), data=payload)
            except (ConnectionClosed, OSError, XsysError):
                pass  # killed mid-request: expected

        t = threading.Thread(target=writer, args=(new if attempt % 2 == 0 else old,))
        t.start()
        time.sleep(delay * rng.uniform(0.5, 1.5))
        d.proc.kill()
        d.proc.wait(10)
        t.join(30)
        content = target.read_bytes()
        assert content in (old, new), f"attempt {attempt}: a mix of old and new content"
        d.start()
    with d.client() as c:
        assert c.call("fs.hash", path=str(target))["size"] == size


def test_append_from_ten_clients_loses_no_line(shared_daemon: Any, workdir: Path) -> None:
    d = shared_daemon
    target = workdir / "shared.log"
    per_client = 40
    failures: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with d.client() as c:
                for i in range(per_client):
                    line = f"client={n:02} line={i:03} " + "x" * (n * 7) + "\n"
                    c.call("fs.write", path=str(target), data=line, mode="append")
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures
    lines = target.read_text().splitlines()
    assert len(lines) == 10 * per_client
    expected = {f"client={n:02} line={i:03} " + "x" * (n * 7)
                for n in range(10) for i in range(per_client)}
    assert set(lines) == expected
    for n in range(10):  # each client's lines stay in its own order
        mine = [ln for ln in lines if ln.startswith(f"client={n:02} ")]
        assert mine == sorted(mine)


def test_progress_over_the_socket(shared_daemon: Any, workdir: Path) -> None:
    d = shared_daemon
    tmp_path = workdir
    src = tmp_path / "tree"
    for i in range(20):
        (src / f"d{i % 4}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 4}" / f"f{i}").write_bytes(os.urandom(100_000))
    seen: list[dict[str, Any]] = []
    with d.client() as c:
        r = c.call("fs.copy", src=str(src), dst=str(tmp_path / "copy"), on_progress=seen.append)
        assert r["files"] == 20 and r["copied_bytes"] == 2_000_000
        assert seen and seen[-1]["done"] == seen[-1]["total"] == 2_000_000
        assert all(p["unit"] == "bytes" for p in seen)
        du: list[dict[str, Any]] = []
        usage = c.call("fs.du", path=str(tmp_path / "copy"), on_progress=du.append)
        assert usage["files"] == 20 and usage["dirs"] == 4 and usage["size"] == 2_000_000
        assert du and du[-1]["unit"] == "files"
        found = c.call("fs.find", path=str(tmp_path / "copy"), name="f1*", type="file")
        assert sorted(e["name"] for e in found["entries"]) == sorted(
            f"d{i % 4}/f{i}" for i in range(20) if str(i).startswith("1"))
