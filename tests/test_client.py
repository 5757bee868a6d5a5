"""The Python clients: errors, timeouts, subscriptions plumbing, progress."""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path

import pytest

from tests.conftest import DaemonHandle
from xsys.client import AsyncClient, Client
from xsys.protocol import ConnectionClosed, DaemonNotRunning, InvalidParams, NotFound


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
