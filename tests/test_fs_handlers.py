"""The fs handlers through ``dispatch.invoke``: parameter names and validation, wire shapes,
error codes and progress notifications."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest

from tests.fswatch_support import FakeSession, call, call_error, make_app

METHODS = {"fs.stat", "fs.exists", "fs.list", "fs.read", "fs.write", "fs.mkdir", "fs.remove",
           "fs.copy", "fs.move", "fs.hash", "fs.du", "fs.find", "fs.tail", "fs.chmod"}

PARAMS = {
    "fs.list": {"path", "recursive", "glob", "include_hidden", "limit"},
    "fs.read": {"path", "offset", "length", "encoding", "stream", "window_bytes"},
    "fs.write": {"path", "data", "mode", "make_parents", "expected_sha256", "encoding",
                 "stream"},
    "fs.mkdir": {"path", "parents"},
    "fs.remove": {"path", "recursive"},
    "fs.copy": {"src", "dst", "overwrite", "preserve"},
    "fs.move": {"src", "dst", "overwrite", "preserve"},
    "fs.hash": {"path", "algorithm"},
    "fs.find": {"path", "name", "regex", "type", "min_size", "max_size", "modified_since",
                "limit"},
    "fs.tail": {"path", "lines"},
    "fs.chmod": {"path", "mode"},
}


async def test_method_and_param_names(tmp_path: Path) -> None:
    app, router = make_app((str(tmp_path),), modules=("rpc", "fs"))
    described = {m["name"]: m for m in (await call(app, router, "rpc.methods"))["methods"]}
    assert set(described) >= METHODS
    for name, params in PARAMS.items():
        assert {p["name"] for p in described[name]["params"]} == params, name
    for name in ("fs.copy", "fs.du", "fs.hash", "fs.find"):
        assert described[name].get("progress") is True
    assert all(described[m]["summary"] for m in METHODS)
    await app.stop()


async def test_round_trip_and_shapes(tmp_path: Path) -> None:
    app, router = make_app((str(tmp_path),))
    p = str(tmp_path / "f.txt")
    w = await call(app, router, "fs.write", path=p, data="héllo\n")
    assert w["created"] and w["size"] == len("héllo\n".encode())
    r = await call(app, router, "fs.read", path=p)
    assert r["data"] == "héllo\n".encode() and isinstance(r["data"], bytes)
    assert (await call(app, router, "fs.read", path=p, encoding="utf-8"))["data"] == "héllo\n"
    await call(app, router, "fs.write", path=p, data=b"\x00\x01", mode="append")
    s = await call(app, router, "fs.stat", path=p)
    assert s["type"] == "file" and s["size"] == 9
    for key in ("mode", "uid", "gid", "mtime_at", "atime_at", "ctime_at", "symlink_target"):
        assert key in s
    h = await call(app, router, "fs.hash", path=p, algorithm="md5")
    assert h["digest"] == hashlib.md5(Path(p).read_bytes()).hexdigest()
    lst = await call(app, router, "fs.list", path=str(tmp_path))
    assert [e["name"] for e in lst["entries"]] == ["f.txt"] and lst["truncated"] is False
    assert (await call(app, router, "fs.exists", path=p))["exists"] is True
    await app.stop()


async def test_error_codes(tmp_path: Path) -> None:
    app, router = make_app((str(tmp_path),))
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("x")
    os.symlink("/etc", tmp_path / "etc")
    cases = [
        (-32002, "fs.read", {"path": str(tmp_path / ".." / "x")}),
        (-32002, "fs.read", {"path": "/etc/passwd"}),
        (-32002, "fs.list", {"path": str(tmp_path / "etc")}),
        (-32002, "fs.write", {"path": str(tmp_path / "etc" / "evil"), "data": b"x"}),
        (-32001, "fs.stat", {"path": str(tmp_path / "missing")}),
        (-32003, "fs.mkdir", {"path": str(tmp_path / "d")}),
        (-32007, "fs.remove", {"path": str(tmp_path / "d")}),
        (-32007, "fs.write", {"path": str(tmp_path / "d" / "x"), "data": b"y",
                              "expected_sha256": "ab"}),
        (-32602, "fs.write", {"path": str(tmp_path / "f"), "data": b"x", "mode": "truncate"}),
        (-32602, "fs.hash", {"path": str(tmp_path / "d" / "x"), "algorithm": "crc"}),
        (-32602, "fs.list", {"path": str(tmp_path), "limit": 0}),
        (-32602, "fs.list", {"path": str(tmp_path), "bogus": 1}),
        (-32602, "fs.read", {}),
        (-32602, "fs.tail", {"path": str(tmp_path / "d" / "x"), "lines": -1}),
    ]
    for code, method, params in cases:
        exc = await call_error(app, router, method, **params)
        assert exc.code == code, (method, params, exc)
    exc = await call_error(app, router, "fs.read", path=str(tmp_path / "etc" / "passwd"))
    assert exc.data["resolved"] == "/etc/passwd"
    exc = await call_error(app, router, "fs.stat", path=str(tmp_path / "missing"))
    assert exc.data["errno"] == "ENOENT"
    await app.stop()


async def test_too_large(tmp_path: Path) -> None:
    app, router = make_app((str(tmp_path),), fs={"max_read_bytes": 10, "max_write_bytes": 10})
    (tmp_path / "big").write_bytes(b"x" * 11)
    assert (await call_error(app, router, "fs.read", path=str(tmp_path / "big"))).code == -32004
    r = await call(app, router, "fs.read", path=str(tmp_path / "big"), offset=1, length=10)
    assert r["length"] == 10 and r["eof"]
    exc = await call_error(app, router, "fs.write", path=str(tmp_path / "w"), data=b"y" * 11)
    assert exc.code == -32004
    await app.stop()


async def test_progress_notifications(tmp_path: Path) -> None:
    app, router = make_app((str(tmp_path),), fs={"chunk_bytes": 1024})
    session = FakeSession(asyncio.get_running_loop())
    data = os.urandom(300_000)
    (tmp_path / "f").write_bytes(data)
    r = await call(app, router, "fs.hash", session=session, request_id=7,
                   path=str(tmp_path / "f"), progress=True)
    # progress is scheduled on the loop (call_soon_threadsafe) before the worker's result,
    # so every notification has been written by the time the call returns
    assert r["digest"] == hashlib.sha256(data).hexdigest()
    progress = [p for m, p in session.notifications if m == "fs.progress"]
    assert progress and all(p["request"] == 7 and p["unit"] == "bytes" for p in progress)
    assert progress[-1]["done"] == progress[-1]["total"] == 300_000
    session.notifications.clear()
    await call(app, router, "fs.hash", session=session, request_id=8, path=str(tmp_path / "f"))
    assert session.notifications == []  # not asked, none sent
    await app.stop()


async def test_relative_paths_use_first_root(tmp_path: Path) -> None:
    app, router = make_app((str(tmp_path),))
    await call(app, router, "fs.write", path="rel.txt", data=b"r")
    assert (tmp_path / "rel.txt").read_bytes() == b"r"
    with pytest.raises(Exception) as exc:
        await call(app, router, "fs.read", path="../../../../etc/passwd")
    assert getattr(exc.value, "code", None) == -32002
    await app.stop()
