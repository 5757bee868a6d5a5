"""Connection internals with a fake transport: slow-reader overflow (counted in events,
bounded in bytes), backpressure, the start gate, and the connection reserve."""

from __future__ import annotations

import asyncio
from typing import Any

import msgpack

from tests.fswatch_support import RecordingTransport as FakeTransport
from xsys.config import Config, ServerConfig
from xsys.server.app import App
from xsys.server.connection import Connection
from xsys.server.context import Peer, Subscription
from xsys.server.listener import Server
from xsys.server.router import Router


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


async def test_overflow_counts_the_events_a_dropped_notification_carried() -> None:
    conn, tr = await make_conn(outbound=2)
    sub = Subscription(conn, "watch")
    conn.add_subscription(sub)
    conn.pause_writing()
    for n in range(5):
        sub.push("event", {"n": n}, weight=10)  # a batch of 10 events each
    assert [w for _, w in sub.queue] == [10, 10] and sub.dropped == 30
    conn.resume_writing()
    msgs = tr.messages()
    assert msgs[0] == {"method": "watch.overflow",
                       "params": {"subscription": sub.id, "dropped": 30}}
    assert [m["params"]["n"] for m in msgs[1:]] == [3, 4]
    assert sub.queued_bytes == 0


async def test_subscription_queue_is_bounded_in_bytes() -> None:
    cfg = Config(server=ServerConfig(outbound_queue=1000, outbound_queue_bytes=4096))
    server = Server(App(cfg), Router())
    conn = Connection(server)
    tr = FakeTransport()
    conn.connection_made(tr)
    sub = Subscription(conn, "monitor")
    conn.add_subscription(sub)
    conn.pause_writing()
    for n in range(20):
        sub.push("alert", {"n": n, "pad": "x" * 1000})
    assert sub.queued_bytes <= 4096 and len(sub.queue) == 3 and sub.dropped == 17
    conn.resume_writing()
    msgs = tr.messages()
    assert msgs[0]["params"]["dropped"] == 17
    assert [m["params"]["n"] for m in msgs[1:]] == [17, 18, 19]


async def _gate_conn(workers: int, max_output: int) -> tuple[Connection, FakeTransport,
                                                             list[int], asyncio.Event]:
    """A connection whose router has ``test.hold`` (async: records its id, then waits)."""
    router = Router()
    started: list[int] = []
    release = asyncio.Event()

    async def hold(ctx: Any, n: int) -> dict[str, int]:
        """Wait for the test."""
        started.append(n)
        await release.wait()
        return {"n": n}

    router.add("test.hold", hold)
    cfg = Config(server=ServerConfig(workers=workers, max_output_bytes=max_output))
    conn = Connection(Server(App(cfg), router))
    tr = FakeTransport()
    conn.connection_made(tr)
    return conn, tr, started, release


def _requests(ids: range) -> bytes:
    out = b""
    for i in ids:
        payload = msgpack.packb({"id": i, "method": "test.hold", "params": {"n": i}})
        out += len(payload).to_bytes(4, "big") + payload
    return out


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_at_most_workers_requests_of_a_connection_run_at_once() -> None:
    conn, tr, started, release = await _gate_conn(workers=2, max_output=1 << 20)
    conn.data_received(_requests(range(5)))
    await _settle()
    assert started == [0, 1]
    release.set()
    await _settle()
    assert sorted(started) == [0, 1, 2, 3, 4]
    await _settle()
    assert sorted(m["id"] for m in tr.messages()) == [0, 1, 2, 3, 4]


async def test_no_request_starts_while_the_client_has_too_much_unsent_output() -> None:
    conn, tr, started, release = await _gate_conn(workers=8, max_output=1000)
    tr.unsent = 5000
    conn.pause_writing()  # the client stopped reading with 5000 bytes unsent
    conn.data_received(_requests(range(3)))
    await _settle()
    assert started == [] and len(conn.inflight) == 3
    tr.unsent = 0
    conn.resume_writing()
    await _settle()
    assert started == [0, 1, 2]
    release.set()
    await _settle()
    assert conn.inflight == {}


async def test_over_the_global_budget_only_clients_with_unsent_output_wait() -> None:
    conn, tr, started, _release = await _gate_conn(workers=8, max_output=1 << 30)
    conn.server.output_bytes = conn.app.config.server.max_inflight_result_bytes + 1
    tr.unsent = 100_000
    conn.pause_writing()
    conn.data_received(_requests(range(2)))
    await _settle()
    assert started == []  # this client has output unsent and the daemon is over budget
    other = Connection(conn.server)
    other_tr = FakeTransport()
    other.connection_made(other_tr)
    other.data_received(_requests(range(10, 12)))
    await _settle()
    assert started == [10, 11]  # a client that reads is not held by the others' backlog
    conn.connection_lost(None)
    other.connection_lost(None)
    await _settle()


async def test_reserved_connections_are_kept_for_root_and_the_daemons_uid() -> None:
    cfg = Config(server=ServerConfig(max_connections=4, reserved_connections=2,
                                     max_connections_per_uid=4, allowed_uids=(0, 4242, 4343)))
    server = Server(App(cfg), Router())
    conns = []

    def attempt(uid: int) -> Any:
        conn = Connection(server)
        conn.peer = Peer(pid=1, uid=uid, gid=uid)
        refusal = server.admit(conn)
        if refusal is None:
            conns.append(conn)
        return refusal

    assert attempt(4242) is None and attempt(4343) is None
    refused = attempt(4242)  # 2 of 4 open: the other 2 are the reserve
    assert refused is not None and refused.code == -32005
    assert attempt(0) is None and attempt(0) is None
    assert attempt(0).code == -32005  # max_connections
    server.forget(conns.pop())
    assert attempt(4343).code == -32005  # still only the reserve is free
    assert attempt(0) is None
