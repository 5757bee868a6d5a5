"""Connection internals with a fake transport: slow-reader overflow and backpressure."""

from __future__ import annotations

import asyncio
from typing import Any

import msgpack

from xsys.config import Config, ServerConfig
from xsys.protocol import FrameDecoder
from xsys.server.app import App
from xsys.server.connection import Connection
from xsys.server.context import Subscription
from xsys.server.listener import Server
from xsys.server.router import Router


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.reading = True
        self.closing = False

    def write(self, data: Any) -> None:
        self.out += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def messages(self) -> list[Any]:
        frames = FrameDecoder().feed(bytes(self.out))
        return [msgpack.unpackb(f, raw=False) for f in frames]


async def make_conn(outbound: int = 3) -> tuple[Connection, FakeTransport]:
    cfg = Config(server=ServerConfig(outbound_queue=outbound))
    app = App(cfg)
    server = Server(app, Router())
    conn = Connection(server)
    tr = FakeTransport()
    conn.connection_made(tr)
    return conn, tr


async def test_slow_reader_drops_oldest_and_reports_overflow() -> None:
    conn, tr = await make_conn(outbound=3)
    sub = Subscription(conn, "watch")
    conn.add_subscription(sub)
    sub.push("event", {"n": 0})
    conn.pause_writing()  # the client stopped reading
    assert tr.reading is False
    for n in range(1, 11):
        sub.push("event", {"n": n})
    assert len(sub.queue) == 3 and sub.dropped == 7
    conn.resume_writing()
    msgs = tr.messages()
    assert msgs[0]["params"]["n"] == 0
    assert msgs[1] == {"method": "watch.overflow",
                       "params": {"subscription": sub.id, "dropped": 7}}
    assert [m["params"]["n"] for m in msgs[2:]] == [8, 9, 10]
    assert tr.reading is True


async def test_closing_a_subscription_runs_callbacks_once() -> None:
    conn, _ = await make_conn()
    sub = Subscription(conn, "monitor")
    conn.add_subscription(sub)
    calls: list[str] = []
    sub.on_close(lambda s: calls.append(s.id))
    conn.connection_lost(None)
    sub.close()
    assert calls == [sub.id]
    assert conn.find_subscription(sub.id) is None
