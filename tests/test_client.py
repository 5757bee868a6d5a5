"""The Python clients: errors, timeouts, subscriptions plumbing, progress, the typed
namespaces (``c.sys.memory()``, ``await ac.fs.read(...)``), against real daemons and
small real socket servers."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import msgpack
import psutil
import pytest

from tests.conftest import DaemonHandle
from xsys.client import METHOD_NAMES, AsyncClient, Client, Subscription
from xsys.client._methods import AsyncSysMethods, FsMethods, SysMethods
from xsys.protocol import (
    ConnectionClosed,
    DaemonNotRunning,
    FrameDecoder,
    InvalidParams,
    MethodNotFound,
    NotFound,
    encode_frame,
)


def test_daemon_not_running_names_the_socket(short_tmp: Path) -> None:
    path = str(short_tmp / "absent.sock")
    with pytest.raises(DaemonNotRunning) as info:
        Client(path)
    assert path in str(info.value) and info.value.data == {"socket": path}


async def test_async_daemon_not_running(short_tmp: Path) -> None:
    path = str(short_tmp / "absent.sock")
    with pytest.raises(DaemonNotRunning) as info:
        await AsyncClient(path).connect()
    assert info.value.data == {"socket": path}


def test_namespace_methods_and_generic_call(daemon: DaemonHandle) -> None:
    with daemon.client() as c:
        assert c.rpc.ping()["pong"] is True
        typed = [p["pid"] for p in c.sys.processes(limit=2, sort="pid")["processes"]]
        by_name = [p["pid"] for p in
                   c.call("sys.processes", {"limit": 2}, sort="pid")["processes"]]
        assert len(typed) == 2 and typed == sorted(typed)
        assert typed[0] == by_name[0] == min(psutil.pids())  # pid 1 of this namespace
        with pytest.raises(InvalidParams) as bad:
            c.sys.processes(limit="two")  # type: ignore[arg-type]
        assert bad.value.data["param"] == "limit"
        with pytest.raises(NotFound) as missing:
            c.sys.process(pid=2**31 - 2)
        assert missing.value.data["pid"] == 2**31 - 2


def _silent_server(path: str) -> socket.socket:
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen()
    return srv


def test_timeout_and_connection_closed(short_tmp: Path) -> None:
    path = str(short_tmp / "silent.sock")
    srv = _silent_server(path)
    c = Client(path, timeout=0.3)
    with pytest.raises(TimeoutError):
        c.call("rpc.ping")
    assert not c.connected  # a late answer could be taken for another call's

    def accept_and_close() -> None:
        conn, _ = srv.accept()
        conn.recv(100)
        conn.close()

    c2 = Client(path, timeout=5)
    srv.accept()[0].close()  # the first client's connection
    t = threading.Thread(target=accept_and_close)
    t.start()
    with pytest.raises(ConnectionClosed):
        c2.call("rpc.ping")
    t.join()
    srv.close()


def test_typed_wrapper_takes_a_per_call_timeout(short_tmp: Path) -> None:
    path = str(short_tmp / "silent3.sock")
    srv = _silent_server(path)
    try:
        with Client(path, timeout=None) as c, pytest.raises(TimeoutError) as info:
            c.rpc.ping(timeout=0.2)
        assert "0.2" in str(info.value)
    finally:
        srv.close()


async def test_async_timeout_and_loss(short_tmp: Path) -> None:
    path = str(short_tmp / "silent2.sock")
    srv = _silent_server(path)
    c = AsyncClient(path, timeout=0.2)
    await c.connect()
    with pytest.raises(TimeoutError):
        await c.call("rpc.ping")
    conn, _ = srv.accept()
    conn.setblocking(False)
    pending = asyncio.ensure_future(c.call("rpc.ping", timeout=10))
    loop = asyncio.get_running_loop()
    received = b""
    while b"rpc.ping" not in received or received.count(b"rpc.ping") < 2:
        received += await loop.sock_recv(conn, 4096)  # both requests arrived: a barrier
    conn.close()
    with pytest.raises(ConnectionClosed):
        await pending
    srv.close()


# ------------------------------------------------------------------ progress


def _hash_target(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(3 * 1024 * 1024 + 17)
    target = tmp_path / "big.bin"
    target.write_bytes(data)
    return target, data


def test_progress_callback_receives_the_calls_progress(daemon: DaemonHandle,
                                                       tmp_path: Path) -> None:
    target, data = _hash_target(tmp_path)
    seen: list[dict[str, Any]] = []
    with daemon.client() as c:
        result = c.fs.hash(path=target, on_progress=seen.append)
        assert result["digest"] == hashlib.sha256(data).hexdigest()
        assert result["size"] == len(data)
        assert seen, "fs.hash reports progress at its start and end"
        assert {p["total"] for p in seen} == {len(data)}
        assert seen[-1]["done"] == len(data) and seen[-1]["unit"] == "bytes"
        assert [p["done"] for p in seen] == sorted(p["done"] for p in seen)
        # a method without progress ignores the callback and still answers
        memory = c.sys.memory()
        assert memory["virtual"]["total_bytes"] == psutil.virtual_memory().total


async def test_async_client_progress_callback_is_optional(daemon: DaemonHandle,
                                                          tmp_path: Path) -> None:
    target, data = _hash_target(tmp_path)
    seen: list[dict[str, Any]] = []
    async with daemon.async_client() as c:
        disks = await c.call("sys.disks", on_progress=seen.append)
        assert seen == []  # sys.disks reports no progress
        assert disks["disks"] and all(d["total_bytes"] > 0 for d in disks["disks"])
        digest = await c.fs.hash(path=target, on_progress=seen.append)
        assert digest["digest"] == hashlib.sha256(data).hexdigest()
        plain = await c.fs.hash(path=target, algorithm="md5")  # no callback: none asked
        assert plain["digest"] == hashlib.md5(data).hexdigest()
    assert seen and seen[-1]["done"] == len(data) == seen[-1]["total"]
    assert len({p["request"] for p in seen}) == 1


# ------------------------------------------------------------------ typed namespaces


def test_typed_namespaces_against_a_daemon(daemon: DaemonHandle, tmp_path: Path) -> None:
    target = tmp_path / "sub" / "notes.txt"
    with daemon.client() as c:
        assert isinstance(c.sys, SysMethods) and isinstance(c.fs, FsMethods)
        assert set(c.rpc.hello()["methods"]) == set(METHOD_NAMES)
        assert c.sys.memory()["virtual"]["total_bytes"] == psutil.virtual_memory().total
        written = c.fs.write(path=target, data=b"hello\n", make_parents=True)
        assert written["written_bytes"] == 6 and written["created"] is True
        assert c.fs.read(path=target)["data"] == b"hello\n"
        assert c.fs.read(path=str(target), offset=1, length=3)["data"] == b"ell"
        assert c.fs.read(path=target, encoding="utf-8")["data"] == "hello\n"
        assert c.fs.stat(path=target)["size"] == 6
        assert c.fs.exists(path=tmp_path / "nope")["exists"] is False
        names = [e["name"] for e in c.fs.list(path=tmp_path / "sub")["entries"]]
        assert names == ["notes.txt"]
        assert c.fs.tail(path=target, lines=1)["lines"] == ["hello"]
        assert c.fs.stat(target)["size"] == 6  # by position too
        with pytest.raises(TypeError):
            c.fs.stat(target, 5)  # type: ignore[call-arg]  # the options are keyword-only
        with pytest.raises(MethodNotFound):  # not generated: falls back to a plain call
            c.sys.no_such_method()  # type: ignore[attr-defined]
        with pytest.raises(MethodNotFound):
            c.nosuchns.anything(x=1)  # type: ignore[attr-defined]


async def test_async_typed_namespaces_against_a_daemon(daemon: DaemonHandle,
                                                       tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    async with daemon.async_client() as c:
        assert isinstance(c.sys, AsyncSysMethods)
        memory, ping, hello = await asyncio.gather(c.sys.memory(), c.rpc.ping(),
                                                   c.rpc.hello())
        assert memory["virtual"]["total_bytes"] == psutil.virtual_memory().total
        assert ping["pong"] is True and hello["pid"] == daemon.proc.pid  # type: ignore[union-attr]
        await c.fs.write(path=target, data="héllo", mode="create")
        assert (await c.fs.read(path=target))["data"] == "héllo".encode()
        moved = await c.fs.move(src=target, dst=tmp_path / "b.txt")
        assert moved["renamed"] is True and (tmp_path / "b.txt").read_text() == "héllo"
        with pytest.raises(NotFound):
            await c.sys.process(pid=2**31 - 1)


def test_streaming_wrapper_returns_a_subscription(daemon: DaemonHandle,
                                                  tmp_path: Path) -> None:
    with daemon.client() as c:
        with c.watch.add(paths=[tmp_path], events=["created"]) as sub:
            assert isinstance(sub, Subscription) and sub.method == "watch.add"
            assert sub.result["subscription"] == sub.id
            assert [sub.id] == [s["subscription"] for s in c.watch.list()["subscriptions"]
                                if s["own"]]
            (tmp_path / "new.txt").write_text("x")
            note = _next_matching(sub.next, lambda n: any(
                e["path"] == str(tmp_path / "new.txt") for e in n.get("events", [])))
            assert note["method"] == "watch.event" and note["subscription"] == sub.id
        assert sub.closed
        assert [s for s in c.watch.list()["subscriptions"] if s["own"]] == []


async def test_async_streaming_wrapper(daemon: DaemonHandle, tmp_path: Path) -> None:
    async with daemon.async_client() as c:
        sub = await c.watch.add(paths=[tmp_path], events=["created"])
        async with sub:
            (tmp_path / "n.txt").write_text("x")
            async for note in sub:
                paths = [e["path"] for e in note.get("events", [])]
                if str(tmp_path / "n.txt") in paths:
                    break
            assert note["subscription"] == sub.id
        assert sub.closed
        assert [s for s in (await c.watch.list())["subscriptions"] if s["own"]] == []


def _next_matching(read: Callable[[float], dict[str, Any] | None],
                   ok: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    for _ in range(100):
        note = read(5.0)
        assert note is not None, "no notification within 5 s"
        if ok(note):
            return note
    raise AssertionError("no matching notification in 100")


# ------------------------------------------------------------------ scripted servers


class ScriptedServer:
    """A one-connection server: every request is answered by ``answer(msg)``, a list of
    messages sent together in one write; the params of each request are kept."""

    def __init__(self, path: str,
                 answer: Callable[[dict[str, Any]], list[dict[str, Any]]]) -> None:
        self.srv = _silent_server(path)
        self.answer = answer
        self.received: list[Any] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.srv.accept()
        decoder = FrameDecoder()
        with conn:
            while data := conn.recv(65536):
                for payload in decoder.feed(data):
                    msg = msgpack.unpackb(payload, raw=False)
                    self.received.append(msg.get("params"))
                    conn.sendall(b"".join(encode_frame(m) for m in self.answer(msg)))

    def close(self) -> None:
        self.srv.close()
        self.thread.join(5)


def _subscribe_then_flood(msg: dict[str, Any]) -> list[dict[str, Any]]:
    """``test.subscribe``: the answer and events 0, 1 in the same write (as a busy daemon
    may send them); ``test.flood``: events 10..14, one of a subscription nobody holds,
    then the answer."""

    def event(n: int) -> dict[str, Any]:
        return {"method": "test.event", "params": {"subscription": "s1", "n": n}}

    answer = {"id": msg["id"], "result": {"subscription": "s1"}}
    if msg["method"] == "test.subscribe":
        return [answer, event(0), event(1)]
    stray = {"method": "test.event", "params": {"subscription": "gone", "n": 99}}
    return [*(event(n) for n in range(10, 15)), stray, {"id": msg["id"], "result": {}}]


def test_events_are_kept_from_the_subscribe_answer_on(short_tmp: Path) -> None:
    server = ScriptedServer(str(short_tmp / "s.sock"), _subscribe_then_flood)
    try:
        with Client(str(short_tmp / "s.sock"), timeout=5, max_queued_events=3) as c:
            seen: list[int] = []
            c.notification_handlers.append(lambda method, params: seen.append(params["n"]))
            sub = c.subscribe("test.subscribe")
            assert [sub.next(5)["n"] for _ in range(2)] == [0, 1]  # type: ignore[index]
            assert c.call("test.flood") == {}  # 5 events queue while waiting: 3 kept
            assert [sub.next(5)["n"] for _ in range(3)] == [12, 13, 14]  # type: ignore[index]
            assert sub.dropped == 2 and sub.next(0) is None
            assert seen == [0, 1, 10, 11, 12, 13, 14, 99]
            assert list(c.notifications(timeout=0)) == [
                {"method": "test.event", "subscription": "gone", "n": 99}]
    finally:
        server.close()


async def test_async_events_are_kept_from_the_subscribe_answer_on(short_tmp: Path) -> None:
    server = ScriptedServer(str(short_tmp / "s2.sock"), _subscribe_then_flood)
    try:
        async with AsyncClient(str(short_tmp / "s2.sock"), timeout=5,
                               max_queued_events=3) as c:
            sub = await c.subscribe("test.subscribe")
            first = [await sub.next(5) for _ in range(2)]
            assert [e["n"] for e in first if e is not None] == [0, 1]
            assert await c.call("test.flood") == {}
            rest = [await sub.next(5) for _ in range(3)]
            assert [e["n"] for e in rest if e is not None] == [12, 13, 14]
            assert sub.dropped == 2 and await sub.next(0) is None
    finally:
        server.close()


def _echo(msg: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"id": msg["id"], "result": {"params": msg.get("params"), "name": LATIN1}}]


def test_typed_wrappers_send_only_what_differs_from_the_defaults(short_tmp: Path) -> None:
    server = ScriptedServer(str(short_tmp / "e.sock"), _echo)
    try:
        with Client(str(short_tmp / "e.sock"), timeout=5) as c:
            c.sys.memory()
            c.sys.processes()
            c.sys.processes(limit=5, sort="cpu")  # cpu is the default sort
            c.fs.list(path="/x", recursive=False, include_hidden=True)
            c.fs.move(src="/a", dst="/b", preserve=False)  # default True: sent
            c.fs.find(path="/x", type="dir", min_size=0)
        assert server.received == [
            None,
            None,
            {"limit": 5},
            {"path": "/x", "include_hidden": True},
            {"src": "/a", "dst": "/b", "preserve": False},
            {"path": "/x", "type": "dir", "min_size": 0},
        ]
    finally:
        server.close()


# ------------------------------------------------------- non-UTF-8 paths (msgpack bin)

LATIN1 = b"caf\xe9.txt"  # not valid UTF-8


def _check_echo(server: ScriptedServer, result: dict[str, Any], sent_path: bytes) -> None:
    params = server.received[-1]
    assert params["path"] == sent_path and isinstance(params["path"], bytes)
    assert params["paths"] == [b"/a\xff", "/b", "/c"]
    assert params["pattern"] == "*.txt"  # ordinary strings stay str
    assert result["name"] == LATIN1 and isinstance(result["name"], bytes)
    assert result["params"]["path"] == sent_path


def test_bytes_pathlike_and_surrogate_paths_travel_as_bin(short_tmp: Path) -> None:
    server = ScriptedServer(str(short_tmp / "echo.sock"), _echo)
    full = b"/tmp/" + LATIN1
    try:
        with Client(str(short_tmp / "echo.sock"), timeout=10) as c:
            # a PathLike whose str form holds surrogate escapes (os.fsdecode of the bytes)
            result = c.call("fs.stat", path=Path(os.fsdecode(full)),
                            paths=[b"/a\xff", "/b", PurePosixPath("/c")], pattern="*.txt")
            _check_echo(server, result, full)
            result = c.call("fs.stat", {"path": full, "paths": (b"/a\xff", "/b", "/c")},
                            pattern="*.txt")
            _check_echo(server, result, full)
            # the typed wrappers take the same: bytes, PathLike, surrogate-escaped str
            for path in (full, Path(os.fsdecode(full)), os.fsdecode(full)):
                assert c.fs.stat(path=path)["params"] == {"path": full}
            c.watch.remove(subscription="x")
            assert server.received[-1] == {"subscription": "x"}
    finally:
        server.close()


async def test_async_client_sends_bytes_paths_as_bin(short_tmp: Path) -> None:
    server = ScriptedServer(str(short_tmp / "echo2.sock"), _echo)
    full = b"/tmp/" + LATIN1
    try:
        async with AsyncClient(str(short_tmp / "echo2.sock"), timeout=10) as c:
            result = await c.call("fs.stat", path=os.fsdecode(full),
                                  paths=[b"/a\xff", "/b", Path("/c")], pattern="*.txt")
            _check_echo(server, result, full)
            typed = await c.fs.stat(path=Path(os.fsdecode(full)))
            assert typed["params"] == {"path": full}
    finally:
        server.close()


def test_non_utf8_name_round_trips_through_the_daemon(daemon: DaemonHandle,
                                                      tmp_path: Path) -> None:
    full = os.fsencode(tmp_path) + b"/" + LATIN1
    with open(full, "wb") as fh:
        fh.write(b"xyz")
    with daemon.client() as c:
        entries = c.fs.list(path=tmp_path)["entries"]
        entry = next(e for e in entries if isinstance(e["name"], bytes))
        assert entry["name"] == LATIN1 and entry["path"] == full
        assert c.fs.stat(path=entry["path"])["size"] == 3
        assert c.fs.stat(path=Path(os.fsdecode(full)))["size"] == 3
        assert c.fs.read(path=full)["data"] == b"xyz"
