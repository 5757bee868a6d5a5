"""The Python clients: errors, timeouts, subscriptions plumbing, progress."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from pathlib import Path, PurePosixPath
from typing import Any

import msgpack
import pytest

from tests.conftest import DaemonHandle
from xsys.client import AsyncClient, Client
from xsys.protocol import (
    ConnectionClosed,
    DaemonNotRunning,
    FrameDecoder,
    InvalidParams,
    NotFound,
    encode_result,
)


def test_daemon_not_running_names_the_socket(short_tmp: Path) -> None:
    path = str(short_tmp / "absent.sock")
    with pytest.raises(DaemonNotRunning) as info:
        Client(path)
    assert path in str(info.value) and info.value.data == {"socket": path}


async def test_async_daemon_not_running(short_tmp: Path) -> None:
    with pytest.raises(DaemonNotRunning):
        await AsyncClient(str(short_tmp / "absent.sock")).connect()


def test_namespace_methods_and_generic_call(daemon: DaemonHandle) -> None:
    with daemon.client() as c:
        assert c.rpc.ping()["pong"]
        assert c.sys.processes(limit=2, sort="pid")["processes"][0]["pid"] >= 0
        assert c.call("sys.processes", {"limit": 2}, sort="pid")["processes"]
        with pytest.raises(InvalidParams):
            c.sys.processes(limit="two")
        with pytest.raises(NotFound):
            c.sys.process(pid=2**31 - 2)


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


async def test_async_timeout_and_loss(short_tmp: Path) -> None:
    path = str(short_tmp / "silent2.sock")
    srv = _silent_server(path)
    c = AsyncClient(path, timeout=0.2)
    await c.connect()
    with pytest.raises(TimeoutError):
        await c.call("rpc.ping")
    conn, _ = srv.accept()
    pending = asyncio.ensure_future(c.call("rpc.ping", timeout=10))
    await asyncio.sleep(0.1)
    conn.close()
    with pytest.raises(ConnectionClosed):
        await pending
    srv.close()


async def test_async_client_progress_callback_is_optional(daemon: DaemonHandle) -> None:
    seen: list[dict[str, object]] = []
    async with daemon.async_client() as c:
        r = await c.call("sys.disks", on_progress=seen.append)
        assert r["disks"] is not None


# ------------------------------------------------------- non-UTF-8 paths (msgpack bin)

LATIN1 = b"caf\xe9.txt"  # not valid UTF-8


class EchoServer:
    """A one-connection server that answers every request with
    ``{"params": <its params>, "name": LATIN1}`` and keeps the params it received."""

    def __init__(self, path: str) -> None:
        self.srv = _silent_server(path)
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
                    conn.sendall(encode_result(msg["id"], {"params": msg.get("params"),
                                                           "name": LATIN1}))

    def close(self) -> None:
        self.srv.close()


def _check_echo(server: EchoServer, result: dict[str, Any], sent_path: bytes) -> None:
    params = server.received[-1]
    assert params["path"] == sent_path and isinstance(params["path"], bytes)
    assert params["paths"] == [b"/a\xff", "/b", "/c"]
    assert params["pattern"] == "*.txt"  # ordinary strings stay str
    assert result["name"] == LATIN1 and isinstance(result["name"], bytes)
    assert result["params"]["path"] == sent_path


def test_bytes_pathlike_and_surrogate_paths_travel_as_bin(short_tmp: Path) -> None:
    server = EchoServer(str(short_tmp / "echo.sock"))
    full = b"/tmp/" + LATIN1
    try:
        with Client(str(short_tmp / "echo.sock"), timeout=10) as c:
            # a PathLike whose str form holds surrogate escapes (os.fsdecode of the bytes)
            result = c.call("fs.stat", path=Path(os.fsdecode(full)),
                            paths=[b"/a\xff", "/b", PurePosixPath("/c")], pattern="*.txt")
            _check_echo(server, result, full)
            result = c.fs.stat(path=full, paths=(b"/a\xff", "/b", "/c"), pattern="*.txt")
            _check_echo(server, result, full)
    finally:
        server.close()


async def test_async_client_sends_bytes_paths_as_bin(short_tmp: Path) -> None:
    server = EchoServer(str(short_tmp / "echo2.sock"))
    full = b"/tmp/" + LATIN1
    try:
        async with AsyncClient(str(short_tmp / "echo2.sock"), timeout=10) as c:
            result = await c.call("fs.stat", path=os.fsdecode(full),
                                  paths=[b"/a\xff", "/b", Path("/c")], pattern="*.txt")
            _check_echo(server, result, full)
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
