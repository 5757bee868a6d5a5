"""The gateway's WebSocket ``/ws``, browser authentication (cookie) and ``/system/infos``,
against a real daemon with a real aiohttp client."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import DaemonHandle
from tests.launcher import free_port

TOKEN = "ws-test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
Factory = Callable[..., DaemonHandle]



def http_config(port: int, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    """A daemon with the gateway on ``port`` and a monitor whose cpu check fires at once
    and repeats every tick (warning at 0 %)."""
    cfg: dict[str, Any] = {
        "http": {"enabled": True, "port": port, "token": TOKEN},
        "monitor": {
            "refresh": 0.2, "repeat_interval": 0,
            "cpu": {"warning": 0, "critical": 1000, "duration": 0},
            "memory": {"enabled": False}, "swap": {"enabled": False},
            "load": {"enabled": False}, "filesystem": {"enabled": False},
            "inodes": {"enabled": False}, "network": {"enabled": False},
            "io": {"enabled": False},
            "reboot": {"state_file": str(tmp_path / "boot_time"), "required_files": []},
            "alerts": {"console": {"enabled": True}},
        },
    }
    cfg.update(extra)
    return cfg


class Gw:
    """A running daemon's gateway: ``base`` URL, ``port``, ``handle``."""

    def __init__(self, handle: DaemonHandle, port: int) -> None:
        self.handle = handle
        self.port = port
        self.base = f"http://127.0.0.1:{port}"


@pytest.fixture
async def gw(daemon_factory: Factory, tmp_path: Path) -> Gw:
    port = free_port()
    handle = await asyncio.to_thread(daemon_factory, http_config(port, tmp_path))
    return Gw(handle, port)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
        yield s


async def receive(ws: aiohttp.ClientWebSocketResponse, pred: Callable[[Any], bool],
                  timeout: float = 30) -> Any:
    """The next message for which ``pred`` holds (others are skipped)."""

    async def first() -> Any:
        while True:
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            data = json.loads(msg.data)
            if pred(data):
                return data

    return await asyncio.wait_for(first(), timeout)


def of_type(kind: str, msg_id: Any = None) -> Callable[[Any], bool]:
    return lambda m: m.get("type") == kind and (msg_id is None or m.get("id") == msg_id)


async def test_sys_snapshots_arrive_at_the_interval_with_the_chosen_sections(
        gw: Gw, session: aiohttp.ClientSession) -> None:
    async with session.ws_connect(f"{gw.base}/ws", headers=AUTH) as ws:
        await ws.send_json({"subscribe": "sys", "interval_s": 0.5,
                            "sections": ["cpu", "memory"], "id": 1})
        ack = await receive(ws, of_type("subscribed", 1))
        sub = ack["data"]["subscription"]
        snaps = [(await receive(ws, of_type("sys.snapshot")))["data"] for _ in range(4)]
    for snap in snaps:
        assert snap["subscription"] == sub
        assert {"cpu", "memory"} <= set(snap) and "network" not in snap and "load" not in snap
        assert 0 <= snap["cpu"]["percent"] <= 100
    seqs = [s["seq"] for s in snaps]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4
    gaps = [b["ts"] - a["ts"] for a, b in itertools.pairwise(snaps)]
    # the snapshots' own timestamps (not the test's clock) are spaced by the interval
    assert all(0.25 <= g <= 1.5 for g in gaps), gaps


async def test_the_subscribed_answer_gives_the_granted_interval_and_sections(
        gw: Gw, session: aiohttp.ClientSession) -> None:
    """A too-short interval is clamped to sys.min_interval_s (default 0.25), and the
    answer says so (as sys.subscribe's result does), with the sections granted."""
    async with session.ws_connect(f"{gw.base}/ws", headers=AUTH) as ws:
        await ws.send_json({"subscribe": "sys", "interval_s": 0.01, "sections": ["load"],
                            "id": 1})
        ack = (await receive(ws, of_type("subscribed", 1)))["data"]
        await ws.send_json({"subscribe": "sys", "id": 2})
        default = (await receive(ws, of_type("subscribed", 2)))["data"]
    assert ack["interval_s"] == 0.25 and ack["sections"] == ["load"]
    assert default["interval_s"] == 1.0
    assert default["sections"] == ["cpu", "memory", "swap", "load", "disks", "network"]


async def test_aloy_format_is_sent_bare(gw: Gw, session: aiohttp.ClientSession) -> None:
    async with session.ws_connect(f"{gw.base}/ws?token={TOKEN}") as ws:
        await ws.send_json({"subscribe": "sys", "interval_s": 0.5, "format": "aloy"})
        msg = await receive(ws, lambda m: "cpu_usage" in m)
    assert set(msg) == {"cpu_usage", "memory_usage", "disk_usage", "net_sent", "net_recv",
                        "ip"}
    assert 0 <= msg["cpu_usage"] <= 100 and 0 < msg["memory_usage"] <= 100
    assert 0 < msg["disk_usage"] <= 100
    assert msg["net_recv"] >= 0 and isinstance(msg["ip"], str) and msg["ip"]


async def test_alerts_arrive_as_they_fire(gw: Gw, session: aiohttp.ClientSession) -> None:
    async with session.ws_connect(f"{gw.base}/ws", headers=AUTH) as ws:
        await ws.send_json({"subscribe": "monitor", "check": "cpu", "id": "m"})
        ack = await receive(ws, of_type("subscribed", "m"))
        msg = await receive(ws, of_type("monitor.alert"))
    assert msg["data"]["subscription"] == ack["data"]["subscription"]
    alert = msg["data"]["alert"]
    assert alert["check"] == "cpu" and alert["status"] == "firing"
    assert alert["severity"] == "warning"


async def test_monitor_test_alerts_reach_the_socket(gw: Gw,
                                                    session: aiohttp.ClientSession) -> None:
    async with session.ws_connect(f"{gw.base}/ws", headers=AUTH) as ws:
        await ws.send_json({"subscribe": "monitor", "id": "m"})
        await receive(ws, of_type("subscribed", "m"))

        def send_test() -> Any:
            with gw.handle.client() as c:
                return c.call("monitor.test", provider="console")

        sent = await asyncio.to_thread(send_test)
        msg = await receive(ws, lambda m: m.get("type") == "monitor.alert"
                            and m["data"]["alert"]["check"] == "test")
    assert msg["data"]["alert"]["test"] is True
    assert msg["data"]["alert"]["id"] == sent["alert"]["id"]


async def test_watch_events_inside_the_roots(gw: Gw, session: aiohttp.ClientSession,
                                             tmp_path: Path) -> None:
    watched = tmp_path / "watched"
    watched.mkdir()
    async with session.ws_connect(f"{gw.base}/ws", headers=AUTH) as ws:
        await ws.send_json({"subscribe": "watch", "paths": [str(watched)], "id": 7})
        ack = await receive(ws, of_type("subscribed", 7))
        assert ack["data"]["paths"] == [str(watched)]
        (watched / "new.txt").write_text("hello")
        msg = await receive(ws, of_type("watch.event"))
        assert msg["data"]["subscription"] == ack["data"]["subscription"]
        assert any(e["path"] == str(watched / "new.txt") for e in msg["data"]["events"])
        # outside fs.roots: refused, the socket stays usable
        await ws.send_json({"subscribe": "watch", "paths": ["/etc"], "id": 8})
        err = await receive(ws, of_type("error", 8))
        assert err["code"] == -32002
        # nor through a symlink inside the roots, or a `..` climbing out of them
        outside = Path("/etc")
        (watched / "escape").symlink_to(outside)
        for msg_id, path in (("link", watched / "escape"), ("link-child",
                                                            watched / "escape" / "passwd"),
                             ("dotdot", Path(f"{tmp_path}/../../../etc"))):
            await ws.send_json({"subscribe": "watch", "paths": [str(path)], "id": msg_id})
            err = await receive(ws, lambda m, i=msg_id: m.get("id") == i)
            assert err["type"] == "error" and err["code"] == -32002, err
            assert err["data"]["reason"] in ("outside_roots", "symlink_outside_roots"), err
        await ws.send_json({"unsubscribe": ack["data"]["subscription"], "id": 9})
        await receive(ws, of_type("unsubscribed", 9))


async def test_a_recursive_watch_does_not_follow_a_symlink_out_of_the_roots(
        gw: Gw, session: aiohttp.ClientSession, tmp_path: Path) -> None:
    import tempfile

    watched = tmp_path / "tree"
    watched.mkdir()
    outside = Path(tempfile.mkdtemp(prefix="xsys-ws-outside-"))  # not under fs.roots
    try:
        (watched / "out").symlink_to(outside, target_is_directory=True)
        async with session.ws_connect(f"{gw.base}/ws", headers=AUTH) as ws:
            await ws.send_json({"subscribe": "watch", "paths": [str(watched)],
                                "recursive": True, "id": 1})
            await receive(ws, of_type("subscribed", 1))
            (outside / "secret.txt").write_text("not for you")
            (watched / "marker.txt").write_text("after the secret")
            seen: list[str] = []

            def upto_marker(m: Any) -> bool:
                if m.get("type") != "watch.event":
                    return False
                seen.extend(e["path"] for e in m["data"]["events"])
                return str(watched / "marker.txt") in seen

            await receive(ws, upto_marker)
        assert not [p for p in seen if "secret" in p], seen
    finally:
        for child in outside.iterdir():
            child.unlink()
        outside.rmdir()


#: (message, error code, text the error message contains)
BAD_MESSAGES = [
    ("{nope", -32700, "JSON"),
    ("[1, 2]", -32600, "object"),
    (json.dumps({"subscribe": "disk"}), -32600, "unknown subscription"),
    (json.dumps({"subscribe": "sys", "interval_s": "fast"}), -32602, "interval_s"),
    (json.dumps({"subscribe": "sys", "interval_s": -1}), -32602, "interval_s"),
    (json.dumps({"subscribe": "sys", "sections": ["cpu", "nope"]}), -32602, "nope"),
    (json.dumps({"subscribe": "sys", "format": "xml"}), -32602, "format"),
    (json.dumps({"subscribe": "sys", "colour": 1}), -32602, "colour"),
    (json.dumps({"subscribe": "monitor", "severity": "loud"}), -32602, "severity"),
    (json.dumps({"subscribe": "watch"}), -32602, "paths"),
    (json.dumps({"subscribe": "watch", "paths": ["/nonexistent-xsys"]}), -32002, ""),
    (json.dumps({"unsubscribe": "sys-999999"}), -32001, "sys-999999"),
    (json.dumps({"subscribe": "sys", "id": True}), -32600, "id must be"),
    (json.dumps({"subscribe": "sys", "id": [1]}), -32600, "id must be"),
]


async def test_bad_messages_get_an_error_and_the_socket_stays_usable(
        gw: Gw, session: aiohttp.ClientSession) -> None:
    async with session.ws_connect(f"{gw.base}/ws", headers=AUTH) as ws:
        for message, code, needle in BAD_MESSAGES:
            await ws.send_str(message)
            err = await receive(ws, of_type("error"))
            assert err["code"] == code, (message, err)
            assert needle in err["message"], (message, err)
        await ws.send_bytes(b"\x00binary")
        err = await receive(ws, of_type("error"))
        assert err["code"] == -32600
        # with an id, the error echoes it
        await ws.send_json({"subscribe": "nope", "id": "x1"})
        assert (await receive(ws, of_type("error")))["id"] == "x1"
        # still usable: a valid subscription streams
        await ws.send_json({"subscribe": "sys", "interval_s": 0.5, "sections": ["load"]})
        snap = await receive(ws, of_type("sys.snapshot"))
        assert "load" in snap["data"] and "cpu" not in snap["data"]


async def test_access_rules(gw: Gw, session: aiohttp.ClientSession) -> None:
    url = f"{gw.base}/ws"
    for headers, status in [
        ({}, 401),
        ({"Authorization": "Bearer wrong-token-0123456789"}, 401),
        ({**AUTH, "Origin": "http://evil.example"}, 403),
        ({**AUTH, "Origin": f"https://127.0.0.1:{gw.port}"}, 403),
        ({**AUTH, "Origin": "null"}, 403),
        ({**AUTH, "Host": f"rebind.example:{gw.port}"}, 403),
    ]:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            async with session.ws_connect(url, headers=headers):
                pass
        assert info.value.status == status, headers
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        async with session.ws_connect(f"{url}?token=wrong-token-0123456789"):
            pass
    assert info.value.status == 401
    # a wrong credential is refused even beside a valid one (as GET /?token= is)
    for target, headers in ((f"{url}?token=wrong-token-0123456789", AUTH),
                            (f"{url}?token=", AUTH),
                            (f"{url}?token={TOKEN}",
                             {"Authorization": "Bearer wrong-token-0123456789"})):
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            async with session.ws_connect(target, headers=headers):
                pass
        assert info.value.status == 401, (target, headers)
    async with session.get(f"{gw.base}/system/infos?token=nope", headers=AUTH) as r:
        assert r.status == 401
    # the listener's own origins, and no Origin at all (a program), are accepted
    for origin in (f"http://127.0.0.1:{gw.port}", f"http://localhost:{gw.port}", None):
        headers = {**AUTH, **({"Origin": origin} if origin else {})}
        async with session.ws_connect(url, headers=headers) as ws:
            await ws.send_json({"unsubscribe": "x"})
            assert (await receive(ws, of_type("error")))["code"] == -32001
            async with session.get(f"{gw.base}/metrics") as r:
                metrics = await r.text()
            assert "xsys_websocket_connections 1.0" in metrics
            assert "xsys_websocket_messages_dropped_total" in metrics


async def test_cookie_flow(gw: Gw) -> None:
    jar = aiohttp.CookieJar(unsafe=True)  # keep cookies of an IP-address host
    async with aiohttp.ClientSession(cookie_jar=jar) as s:
        async with s.get(f"{gw.base}/") as r:
            assert r.status == 401 and "xsys dashboard" in await r.text()
        async with s.get(f"{gw.base}/?token=wrong-token-0123456789",
                         allow_redirects=False) as r:
            assert r.status == 401 and "Set-Cookie" not in r.headers
        async with s.get(f"{gw.base}/?token={TOKEN}", allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/"
            cookie = r.headers["Set-Cookie"]
        attrs = [a.strip().lower() for a in cookie.split(";")]
        assert "httponly" in attrs and "samesite=strict" in attrs and "path=/" in attrs
        assert TOKEN not in cookie
        async with s.get(f"{gw.base}/") as r:
            page = await r.text()
            assert r.status == 200 and r.content_type == "text/html"
            assert "/static/dashboard.js" in page
            assert "default-src 'none'" in r.headers["Content-Security-Policy"]
        async with s.get(f"{gw.base}/static/dashboard.js") as r:
            assert r.status == 200 and "xsysStatus" in await r.text()
        async with s.get(f"{gw.base}/static/nope.js") as r:
            assert r.status == 404
        origin = {"Origin": f"http://127.0.0.1:{gw.port}"}
        async with s.ws_connect(f"{gw.base}/ws", headers=origin) as ws:
            await ws.send_json({"subscribe": "sys", "interval_s": 0.5, "sections": ["cpu"]})
            assert "cpu" in (await receive(ws, of_type("sys.snapshot")))["data"]
        # the cookie does not get past the Origin check
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            async with s.ws_connect(f"{gw.base}/ws", headers={"Origin": "http://evil.example"}):
                pass
        assert info.value.status == 403
    # a cookie for another token is refused
    async with (aiohttp.ClientSession(cookies={f"xsys_dashboard_{gw.port}": "0" * 64}) as s,
                s.get(f"{gw.base}/system/infos") as r):
        assert r.status == 401


async def test_system_infos(gw: Gw, session: aiohttp.ClientSession) -> None:
    async with session.get(f"{gw.base}/system/infos") as r:
        assert r.status == 401
    async with session.get(f"{gw.base}/system/infos", headers=AUTH) as r:
        assert r.status == 200
        body = await r.json()
    assert set(body) == {"hostname", "ip", "os", "kernel", "arch", "uptime_s", "boot_at"}
    assert body["hostname"] == socket.gethostname() and body["kernel"] and body["arch"]
    assert body["uptime_s"] > 0 and 0 < body["boot_at"] < 4e9
    async with session.get(f"{gw.base}/system/infos?token={TOKEN}") as r:
        assert r.status == 200


async def test_shutdown_closes_open_sockets(gw: Gw, session: aiohttp.ClientSession) -> None:
    # a socket the client closes just after an answer: its tasks end with it (a
    # cancellation lost in the sender once kept the handler, and so the shutdown, waiting)
    async with session.ws_connect(f"{gw.base}/ws", headers=AUTH) as ws:
        await ws.send_json({"unsubscribe": "x"})
        await receive(ws, of_type("error"))
    async with session.ws_connect(f"{gw.base}/ws", headers=AUTH) as ws:
        await ws.send_json({"subscribe": "monitor", "id": 1})
        await receive(ws, of_type("subscribed", 1))
        await asyncio.to_thread(gw.handle.stop)
        async def closed() -> None:
            while True:
                msg = await ws.receive()
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                aiohttp.WSMsgType.CLOSING):
                    return

        await asyncio.wait_for(closed(), 30)
    log = gw.handle.log()
    assert "Traceback" not in log and "did not finish before the deadline" not in log


class BurstHub:
    """A snapshot source that produces ``count`` large snapshots as fast as the loop
    runs, then waits (stands in for ``services.live`` to drive the socket's queue)."""

    def __init__(self, count: int, pad_bytes: int) -> None:
        self.count = count
        self.pad = "x" * pad_bytes
        self.produced = asyncio.Event()
        self.closed = False

    def subscribe(self, interval_s: float, sections: Any = None, per_cpu: bool = False,
                  top_processes: int = 0, process_sort: str = "cpu") -> Any:
        hub = self
        interval_s_ = interval_s

        class Stream:
            dropped = 0
            interval_s = interval_s_
            sections = ("cpu",)

            def close(self) -> None:
                hub.closed = True

            async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
                for seq in range(hub.count):
                    yield {"seq": seq, "ts": float(seq), "cpu": {"pad": hub.pad}}
                    await asyncio.sleep(0)
                hub.produced.set()
                await asyncio.Event().wait()

        return Stream()


async def test_a_slow_reader_gets_the_latest_snapshot_not_a_backlog() -> None:
    from aiohttp import web

    from xsys.config import Config
    from xsys.http.ws import WsSession
    from xsys.server.app import App
    from xsys.server.context import Peer
    from xsys.server.router import Router

    app = App(Config())
    hub = BurstHub(count=1500, pad_bytes=32 * 1024)
    sessions: list[WsSession] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        session = WsSession(app, Router(), ws, Peer(), lambda: hub)
        sessions.append(session)
        await session.run()
        return ws

    web_app = web.Application()
    web_app.router.add_get("/ws", handler)
    runner = web.AppRunner(web_app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as s, s.ws_connect(
                f"http://127.0.0.1:{port}/ws", max_msg_size=0) as ws:
            await ws.send_json({"subscribe": "sys", "interval_s": 0.05, "sections": ["cpu"],
                                "id": 1})
            await asyncio.wait_for(hub.produced.wait(), 60)  # not reading meanwhile
            (session,) = sessions
            # bounded: at most one snapshot per subscription waits in the queue
            assert len(session._queue) <= 2
            seqs: list[int] = []
            while not seqs or seqs[-1] != hub.count - 1:
                msg = await receive(ws, of_type("sys.snapshot"))
                seqs.append(msg["data"]["seq"])
            last = msg["data"]
        assert seqs == sorted(seqs)
        assert len(seqs) < hub.count  # conflated, not a backlog
        assert last["dropped"] >= hub.count - len(seqs) > 0
        assert session.dropped == last["dropped"]
    finally:
        await runner.cleanup()
    assert hub.closed  # the socket's end closed the hub stream
