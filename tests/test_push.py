"""Push mode against a real aiohttp WebSocket backend in the test process and a real
daemon: snapshots at the interval with gapless ``seq``; the backend killed and restarted
(the agent reconnects, says hello with the first seq to come and replays in order with no
gap); alerts fired during an outage arrive after it; a wrong token is reported (401) and
retried with backoff, not hammered; a backend that never reads keeps the agent's buffer
at its bound; with ``spill``, a daemon restart during an outage loses nothing. Unit tests
of the outbox's drop order (alerts last) and the backoff."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest
from aiohttp import WSMsgType, web

from tests.conftest import DaemonHandle
from tests.launcher import free_port
from xsys.push.buffer import Outbox, Outgoing
from xsys.push.service import backoff_delays

TOKEN = "s3cret-token"



class Backend:
    """A WebSocket backend on a fixed port that can be stopped and started again.

    ``messages``: every decoded message received, in order; ``attempts``: monotonic times
    of upgrade requests (refused ones too); ``read``: False = accept and never read."""

    def __init__(self, port: int, token: str = TOKEN, read: bool = True,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.port = port
        self.token = token
        self.read = read
        self.ssl_context = ssl_context
        self.peer_certs: list[Any] = []
        self.messages: list[dict[str, Any]] = []
        self.attempts: list[float] = []
        self.connections = 0
        self._runner: web.AppRunner | None = None
        self._event = asyncio.Event()

    @property
    def url(self) -> str:
        scheme = "wss" if self.ssl_context is not None else "ws"
        return f"{scheme}://127.0.0.1:{self.port}/ingest"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.attempts.append(time.monotonic())
        if self.ssl_context is not None and request.transport is not None:
            self.peer_certs.append(request.transport.get_extra_info("peercert"))
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            raise web.HTTPUnauthorized(text="bad token")
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        self.connections += 1
        if not self.read:
            await asyncio.sleep(3600)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                self.messages.append(json.loads(msg.data))
            elif msg.type == WSMsgType.BINARY:
                self.messages.append(msgpack.unpackb(msg.data, raw=False))
            self._event.set()
        return ws

    async def start(self) -> Backend:
        app = web.Application()
        app.router.add_get("/ingest", self.handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True,
                           ssl_context=self.ssl_context)
        await site.start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_for(self, pred: Callable[[list[dict[str, Any]]], bool],
                       timeout_s: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while not pred(self.messages):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out; got {len(self.messages)} messages: "
                                     f"{[m.get('type') for m in self.messages][-20:]}")
            self._event.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._event.wait(), min(left, 0.5))
        return self.messages


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    b = await Backend(free_port()).start()
    yield b
    await b.stop()


def quiet_monitor(tmp_path: Path, cpu_fires: bool = False) -> dict[str, Any]:
    off = {"enabled": False}
    return {"refresh": 0.2, "repeat_interval": -1,
            "cpu": ({"warning": 0, "critical": 1000, "duration": 0} if cpu_fires else off),
            "memory": off, "swap": off, "load": off, "filesystem": off, "inodes": off,
            "network": off, "io": off,
            "reboot": {"state_file": str(tmp_path / "boot_time"), "required_files": []},
            "alerts": {"console": {"enabled": True}}}


def target(url: str, **kw: Any) -> dict[str, Any]:
    base = {"name": "backend", "url": url, "headers": {"Authorization": f"Bearer {TOKEN}"},
            "interval_s": 0.5, "include": ["cpu", "memory", "alerts"],
            "reconnect_max_s": 2}
    base.update(kw)
    return base


def snapshots(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in msgs if m["type"] == "snapshot"]


def status_of(d: DaemonHandle) -> dict[str, Any]:
    with d.client() as c:
        (row,) = c.call("push.status")["targets"]
    return dict(row)


async def wait_status_of(d: DaemonHandle, name: str,
                         pred: Callable[[dict[str, Any]], bool],
                         timeout_s: float = 20.0) -> dict[str, Any]:
    """``push.status``'s row of target ``name`` once ``pred`` holds for it."""
    deadline = time.monotonic() + timeout_s
    while True:
        with d.client() as c:
            rows = {r["target"]: dict(r) for r in c.call("push.status")["targets"]}
        if pred(rows[name]):
            return rows[name]
        assert time.monotonic() < deadline, rows[name]
        await asyncio.sleep(0.1)


async def wait_status(d: DaemonHandle, pred: Callable[[dict[str, Any]], bool],
                      timeout_s: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        row = await asyncio.to_thread(status_of, d)
        if pred(row):
            return row
        assert time.monotonic() < deadline, row
        await asyncio.sleep(0.1)


async def test_snapshots_arrive_with_hello_and_gapless_seq(
        daemon_factory: Callable[..., DaemonHandle], backend: Backend,
        tmp_path: Path) -> None:
    d = daemon_factory({"monitor": quiet_monitor(tmp_path),
                        "push": {"targets": [target(backend.url)]}})
    msgs = await backend.wait_for(lambda m: len(snapshots(m)) >= 4)
    hello = msgs[0]
    assert hello["type"] == "hello"
    assert set(hello["host"]) == {"hostname", "ip", "boot_at"}
    assert hello["seq"] == 1 and hello["data"]["dropped"] == 0
    snaps = snapshots(msgs)
    assert [s["seq"] for s in snaps] == list(range(1, len(snaps) + 1))
    first = snaps[0]
    assert set(first) == {"type", "host", "seq", "ts", "data"}
    assert set(first["data"]) == {"cpu", "memory"}
    assert 0 <= first["data"]["cpu"]["percent"] <= 100
    assert first["data"]["memory"]["total_bytes"] > 0
    row = status_of(d)
    assert row["connected"] and row["sent"] >= 4 and row["dropped"] == 0
    cli = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "xsys", "--socket",
                                                   d.socket, "push", "status"],
                                  capture_output=True, text=True, timeout=60, env=d.env)
    assert cli.returncode == 0, cli.stderr
    assert "backend" in cli.stdout and "connected" in cli.stdout


async def test_restart_of_the_backend_replays_in_order_without_gap(
        daemon_factory: Callable[..., DaemonHandle], backend: Backend,
        tmp_path: Path) -> None:
    d = daemon_factory({"monitor": quiet_monitor(tmp_path),
                        "push": {"targets": [target(backend.url)]}})
    await backend.wait_for(lambda m: len(snapshots(m)) >= 2)
    await backend.stop()
    before = list(backend.messages)
    await wait_status(d, lambda r: not r["connected"] and r["buffered"] >= 3)
    await backend.start()
    after_index = len(before)
    msgs = await backend.wait_for(
        lambda m: len(m) > after_index + 1 and len(snapshots(m[after_index:])) >= 5)
    hello = msgs[after_index]
    assert hello["type"] == "hello"
    seqs = [m["seq"] for m in snapshots(msgs)]
    assert seqs == list(range(1, len(seqs) + 1)), seqs  # replayed in order, no gap
    assert hello["seq"] == snapshots(msgs[after_index + 1:])[0]["seq"]
    assert hello["data"]["dropped"] == 0
    row = status_of(d)
    assert row["reconnects"] >= 1 and row["dropped"] == 0


async def test_drops_are_counted_announced_in_the_next_hello_and_exported(
        daemon_factory: Callable[..., DaemonHandle], tmp_path: Path) -> None:
    """An outage longer than the buffer: the oldest snapshots go, and the loss is not
    silent: ``push.status``'s ``dropped``, the next hello's ``data.dropped`` and
    ``xsys_push_dropped_total{target}`` all say how many; what was kept arrives in order
    and its seq gap is exactly the dropped count."""
    import urllib.request

    port, http_port = free_port(), free_port()
    url = f"ws://127.0.0.1:{port}/ingest"
    d = daemon_factory({"monitor": quiet_monitor(tmp_path),
                        "http": {"enabled": True, "port": http_port},
                        "push": {"targets": [target(url, include=["load"],
                                                    buffer_max_messages=3)]}})
    await wait_status(d, lambda r: r["dropped"] >= 2)
    b = await Backend(port).start()
    try:
        msgs = await b.wait_for(lambda m: len(snapshots(m)) >= 4)
        hello = msgs[0]
        assert hello["type"] == "hello"
        dropped = hello["data"]["dropped"]
        assert dropped >= 2 and hello["data"]["dropped_total"] == dropped
        # the kept messages start right after the dropped ones: the gap is the count
        assert hello["seq"] == dropped + 1 == snapshots(msgs)[0]["seq"]
        seqs = [m["seq"] for m in snapshots(msgs)]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        row = status_of(d)
        assert row["dropped"] == dropped and row["connected"]
        body = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics",
                                           timeout=30).read().decode())
        assert f'xsys_push_dropped_total{{target="backend"}} {float(dropped)}' in body
        assert 'xsys_push_connected{target="backend"} 1.0' in body
        assert "# TYPE xsys_push_dropped_total counter" in body
    finally:
        await b.stop()


async def test_a_reload_that_changes_a_target_keeps_its_buffer_and_seq(
        daemon_factory: Callable[..., DaemonHandle], tmp_path: Path) -> None:
    """Rotating a target's token (SIGHUP) during an outage: the target restarts with the
    new headers, and what it had buffered is still sent, in seq order, with no gap and no
    restart of seq (it used to be thrown away without being counted)."""
    import signal as _signal

    port = free_port()
    url = f"ws://127.0.0.1:{port}/ingest"
    old = target(url, include=["load"], headers={"Authorization": "Bearer old"})
    d = daemon_factory({"monitor": quiet_monitor(tmp_path), "push": {"targets": [old]}})
    before = await wait_status(d, lambda r: r["buffered"] >= 3)
    reload_at = time.time()
    d.config["push"]["targets"][0]["headers"] = {"Authorization": f"Bearer {TOKEN}"}
    d.config_path.write_text(json.dumps(d.config))
    d.signal(_signal.SIGHUP)
    deadline = time.monotonic() + 20
    while "config reloaded" not in d.log():
        assert time.monotonic() < deadline, d.log()[-2000:]
        await asyncio.sleep(0.1)
    b = await Backend(port).start()
    try:
        msgs = await b.wait_for(lambda m: len(snapshots(m)) >= 5)
        assert msgs[0]["type"] == "hello" and msgs[0]["seq"] == 1, msgs[0]
        seqs = [m["seq"] for m in snapshots(msgs)]
        assert seqs == list(range(1, len(seqs) + 1)), seqs
        assert msgs[0]["data"]["dropped"] == 0
        # the first ones are those buffered before the reload, not new ones numbered anew
        kept = [m for m in snapshots(msgs) if m["seq"] < before["next_seq"]]
        assert len(kept) == before["next_seq"] - 1
        assert all(m["ts"] < reload_at for m in kept), [m["ts"] - reload_at for m in kept]
    finally:
        await b.stop()


async def test_alerts_fired_during_an_outage_arrive_after_it(
        daemon_factory: Callable[..., DaemonHandle], tmp_path: Path) -> None:
    port = free_port()
    url = f"ws://127.0.0.1:{port}/ingest"
    d = daemon_factory({"monitor": quiet_monitor(tmp_path, cpu_fires=True),
                        "push": {"targets": [target(url, include=["load", "alerts"])]}})
    await wait_status(d, lambda r: r["buffered"] >= 2 and r["last_error"] is not None)
    b = await Backend(port).start()
    try:
        msgs = await b.wait_for(lambda m: any(x["type"] == "alert" for x in m))
        assert msgs[0]["type"] == "hello"
        alert = next(x for x in msgs if x["type"] == "alert")
        assert alert["data"]["alert"]["check"] == "cpu"
        assert alert["data"]["alert"]["status"] == "firing"
        seqs = [m["seq"] for m in msgs[1:]]
        assert seqs == sorted(seqs) and seqs[0] == 1
    finally:
        await b.stop()


async def test_wrong_token_is_reported_and_retried_with_backoff(
        daemon_factory: Callable[..., DaemonHandle], tmp_path: Path) -> None:
    b = await Backend(free_port(), token="another-token").start()
    try:
        d = daemon_factory({"monitor": quiet_monitor(tmp_path),
                            "push": {"targets": [target(b.url, reconnect_max_s=60)]}})
        row = await wait_status(d, lambda r: r["last_error"] is not None
                                and len(b.attempts) >= 2)
        assert "401" in row["last_error"] and "token" in row["last_error"]
        assert not row["connected"]
        # backoff: about 1 s then about 2 s between attempts, never a tight loop
        gaps = [y - x for x, y in zip(b.attempts, b.attempts[1:], strict=False)]
        assert all(g >= 0.7 for g in gaps), gaps
        assert "refused the connection with 401" in d.log()
    finally:
        await b.stop()


async def test_a_backend_that_closes_right_after_the_upgrade_is_not_hammered(
        daemon_factory: Callable[..., DaemonHandle], tmp_path: Path) -> None:
    """A backend that accepts the upgrade and closes at once (a token checked after the
    upgrade, close code 1008) gets the same growing backoff as a refused upgrade, not a
    redial every second forever."""
    attempts: list[float] = []

    async def slam(request: web.Request) -> web.StreamResponse:
        attempts.append(time.monotonic())
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.close(code=1008, message=b"bad token")
        return ws

    app = web.Application()
    app.router.add_get("/ingest", slam)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        d = daemon_factory({"monitor": quiet_monitor(tmp_path), "push": {"targets": [
            target(f"ws://127.0.0.1:{port}/ingest", include=["load"],
                   reconnect_max_s=60)]}})
        row = await wait_status(d, lambda r: len(attempts) >= 3)
        assert row["last_error"] is not None and not row["connected"], row
        # about 1 s, then about 2 s (+-20 % jitter): the second wait is not reset to 1 s
        gaps = [b - a for a, b in itertools.pairwise(attempts)]
        assert gaps[1] >= 1.5, gaps
    finally:
        await runner.cleanup()


async def test_a_backend_that_never_reads_keeps_the_buffer_bounded(
        daemon_factory: Callable[..., DaemonHandle], tmp_path: Path) -> None:
    b = await Backend(free_port(), read=False).start()
    try:
        d = daemon_factory({"monitor": quiet_monitor(tmp_path), "push": {"targets": [
            target(b.url, include=["cpu", "memory", "disks", "network", "processes"],
                   buffer_max_messages=20, buffer_max_bytes=200_000, send_timeout_s=1)]}})
        # the socket buffers fill up, a send times out, messages pile up to the bound
        for _ in range(3):
            row = await wait_status(d, lambda r: r["sent"] > 0 or r["buffered"] > 0)
            assert row["buffered"] <= 20 and row["buffered_bytes"] <= 200_000
            await asyncio.sleep(0.5)
        with d.client() as c:  # the daemon keeps serving
            assert c.call("rpc.ping") is not None
    finally:
        await b.stop()


async def test_a_backend_that_never_answers_the_upgrade_times_out_and_is_retried(
        daemon_factory: Callable[..., DaemonHandle], tmp_path: Path) -> None:
    """``connect_timeout_s`` covers the WebSocket handshake: a peer that accepts the TCP
    connection and never answers the upgrade request (a black-holing proxy) is given up
    after it, reported, and dialled again; it used to hold the target forever."""
    accepted: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # never answers

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        d = daemon_factory({"monitor": quiet_monitor(tmp_path), "push": {"targets": [
            target(f"ws://127.0.0.1:{port}/ingest", include=["load"],
                   connect_timeout_s=1, reconnect_max_s=1)]}})
        row = await wait_status(d, lambda r: r["last_error"] is not None
                                and len(accepted) >= 2)
        assert "handshake" in row["last_error"] and not row["connected"], row
    finally:
        server.close()
        for writer in accepted:
            writer.close()


async def test_a_half_open_connection_is_noticed_by_the_heartbeat(
        daemon_factory: Callable[..., DaemonHandle], tmp_path: Path) -> None:
    """A backend that completes the upgrade and then goes silent (never reads, so never
    answers a ping): writes still succeed into the socket buffers, only the missing pong
    shows the connection is dead. The agent drops it and dials again."""
    b = await Backend(free_port(), read=False).start()
    try:
        d = daemon_factory({"monitor": quiet_monitor(tmp_path), "push": {"targets": [
            target(b.url, include=["load"], heartbeat_s=1, send_timeout_s=60)]}})
        row = await wait_status(d, lambda r: r["reconnects"] >= 1)
        assert b.connections >= 2
        assert row["last_error"] is not None and "1006" in row["last_error"], row
    finally:
        await b.stop()


async def test_wss_with_a_private_ca_a_client_certificate_and_a_server_name(
        daemon_factory: Callable[..., DaemonHandle], tmp_path: Path) -> None:
    """The TLS options: ``ca_file`` (a private CA), ``cert_file``/``key_file`` (mutual
    TLS: the backend requires a client certificate) and ``server_hostname`` (the
    certificate names ``collector.test``, not the 127.0.0.1 of the URL). Without the CA
    the agent refuses the backend and says why."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_cert = ca.issue_cert("collector.test")
    client_cert = ca.issue_cert("edge-7.clients.test")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(server_ctx)
    ca.configure_trust(server_ctx)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    client_cert.cert_chain_pems[0].write_to_path(str(tmp_path / "client.pem"))
    client_cert.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    b = await Backend(free_port(), ssl_context=server_ctx).start()
    try:
        tls = {"ca_file": str(tmp_path / "ca.pem"), "cert_file": str(tmp_path / "client.pem"),
               "key_file": str(tmp_path / "client.key"), "server_hostname": "collector.test"}
        d = daemon_factory({"monitor": quiet_monitor(tmp_path), "push": {"targets": [
            target(b.url, name="mtls", include=["load"], tls=tls),
            target(b.url, name="no-ca", include=["load"],
                   tls={"server_hostname": "collector.test"})]}})
        msgs = await b.wait_for(lambda m: len(snapshots(m)) >= 1)
        assert msgs[0]["type"] == "hello"
        # the backend requires a client certificate: this is the one configured
        names = [cert.get("subjectAltName") for cert in b.peer_certs if cert]
        assert (("DNS", "edge-7.clients.test"),) in names, b.peer_certs
        with d.client() as c:
            rows = {r["target"]: r for r in c.call("push.status")["targets"]}
        assert rows["mtls"]["connected"]
        row = await wait_status_of(d, "no-ca", lambda r: r["last_error"] is not None)
        assert not row["connected"] and "certificate" in row["last_error"].lower(), row
    finally:
        await b.stop()


async def test_without_spill_a_shutdown_says_what_it_loses(
        daemon_factory: Callable[..., DaemonHandle], tmp_path: Path) -> None:
    """Without ``spill`` the buffer dies with the daemon: not silently."""
    url = f"ws://127.0.0.1:{free_port()}/ingest"
    d = daemon_factory({"monitor": quiet_monitor(tmp_path),
                        "push": {"targets": [target(url, include=["load"])]}})
    await wait_status(d, lambda r: r["buffered"] >= 2)
    await asyncio.to_thread(d.stop)
    assert "unsent messages lost: the target stopped and spill is off" in d.log()


async def test_spill_keeps_the_buffer_across_a_daemon_restart(
        daemon_factory: Callable[..., DaemonHandle], tmp_path: Path) -> None:
    port = free_port()
    url = f"ws://127.0.0.1:{port}/ingest"
    d = daemon_factory({"monitor": quiet_monitor(tmp_path),
                        "push": {"targets": [target(url, spill=True)],
                                 "spill_dir": str(tmp_path / "spill")}})
    row = await wait_status(d, lambda r: r["buffered"] >= 3)
    await asyncio.to_thread(d.stop)
    spill = tmp_path / "spill" / "backend.msgpack"
    assert spill.exists(), d.log()
    assert stat.S_IMODE(spill.stat().st_mode) == 0o600
    held = msgpack.unpackb(spill.read_bytes(), raw=False)
    assert len(held["items"]) >= row["buffered"]
    b = await Backend(port).start()
    try:
        await asyncio.to_thread(d.start)
        n = len(held["items"])
        msgs = await b.wait_for(lambda m: len(snapshots(m)) >= n + 2)
        assert msgs[0]["type"] == "hello" and msgs[0]["seq"] == 1
        seqs = [m["seq"] for m in snapshots(msgs)]
        assert seqs == list(range(1, len(seqs) + 1)), seqs  # nothing lost, none twice
        assert not spill.exists()
    finally:
        await b.stop()


async def test_msgpack_and_aloy_formats(daemon_factory: Callable[..., DaemonHandle],
                                        tmp_path: Path) -> None:
    packed = await Backend(free_port()).start()
    aloy = await Backend(free_port()).start()
    try:
        daemon_factory({"monitor": quiet_monitor(tmp_path), "push": {"targets": [
            target(packed.url, name="packed", format="msgpack"),
            target(aloy.url, name="aloy", format="aloy")]}})
        msgs = await packed.wait_for(lambda m: len(snapshots(m)) >= 1)
        assert msgs[0]["type"] == "hello" and snapshots(msgs)[0]["data"]["cpu"]
        flat = (await aloy.wait_for(lambda m: len(m) >= 2))[0]
        assert set(flat) == {"cpu_usage", "memory_usage", "disk_usage", "net_sent",
                             "net_recv", "ip"}
        assert 0 <= flat["memory_usage"] <= 100 and 0 < flat["disk_usage"] <= 100
        assert flat["net_recv"] >= 0 and flat["ip"]
    finally:
        await packed.stop()
        await aloy.stop()


def test_bad_target_config_is_refused(daemon_factory: Callable[..., DaemonHandle]) -> None:
    d = daemon_factory({"push": {"targets": [{"url": "http://x/ingest"}]}}, start=False)
    d.launch()
    assert d.proc is not None and d.proc.wait(20) == 2
    assert "ws:// or wss://" in d.log()


def test_unknown_include_is_a_config_error(daemon_factory: Callable[..., DaemonHandle]
                                           ) -> None:
    """A typo in ``include`` is refused at load, naming the key and the valid names,
    like every other config error (it used to crash the daemon's start with a traceback
    from the snapshot hub)."""
    d = daemon_factory({"push": {"targets": [{"url": "ws://127.0.0.1:9/ingest",
                                              "include": ["cpu", "bogus"]}]}},
                       start=False)
    d.launch()
    assert d.proc is not None and d.proc.wait(20) == 2
    log = d.log()
    assert "push.targets[0]" in log and "'bogus'" in log and "disk_io" in log
    assert "Traceback" not in log


def test_include_names_match_the_snapshot_sections() -> None:
    """The config's list of snapshot sections is the hub's (config sits below xsys.live)."""
    from xsys.live import SECTIONS
    from xsys.push.config import EXTRA_INCLUDES, SNAPSHOT_SECTIONS

    assert SNAPSHOT_SECTIONS == SECTIONS
    assert "checks" in SNAPSHOT_SECTIONS and {"alerts", "checks"} <= EXTRA_INCLUDES


async def test_hello_carries_the_current_address_after_a_network_change(
        backend: Backend) -> None:
    """A laptop that moved network reconnects: its hello (and what follows) carries the
    address it has now, not the one it had when the daemon started."""
    from aiohttp import ClientSession

    from xsys.host import route_address
    from xsys.push.config import PushTargetConfig
    from xsys.push.service import Target

    stale = {"hostname": "edge-7", "ip": "203.0.113.77", "boot_at": 1.0}
    cfg = PushTargetConfig(url=backend.url, name="t",
                           headers={"Authorization": f"Bearer {TOKEN}"})
    tgt = Target(cfg, stale, None)
    tgt.enqueue("snapshot", {"load": {}})
    async with ClientSession() as session:
        task = asyncio.ensure_future(tgt.run(session))
        try:
            msgs = await backend.wait_for(lambda m: len(m) >= 2)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    now = await asyncio.to_thread(route_address)
    assert now != stale["ip"]
    assert msgs[0]["type"] == "hello" and msgs[0]["host"]["ip"] == now
    assert msgs[0]["host"]["hostname"] == "edge-7"
    tgt.enqueue("snapshot", {"load": {}})
    head = tgt.outbox.peek()
    assert head is not None and json.loads(head.frame)["host"]["ip"] == now


# ---------------------------------------------------------------------------- units


def test_outbox_drops_oldest_snapshots_first_and_alerts_last() -> None:
    box = Outbox(max_messages=3, max_bytes=10_000)
    box.put(Outgoing(1, "alert", "a1"))
    box.put(Outgoing(2, "snapshot", "s2"))
    box.put(Outgoing(3, "snapshot", "s3"))
    assert box.put(Outgoing(4, "alert", "a4")) == 1
    assert [o.seq for o in box] == [1, 3, 4]
    box.put(Outgoing(5, "alert", "a5"))
    assert [o.seq for o in box] == [1, 4, 5]  # the snapshot went, alerts stayed
    box.put(Outgoing(6, "alert", "a6"))
    assert [o.seq for o in box] == [4, 5, 6]  # only alerts left: the oldest goes
    assert box.dropped == 3


def test_outbox_bytes_bound() -> None:
    box = Outbox(max_messages=100, max_bytes=10)
    for seq in range(1, 8):
        box.put(Outgoing(seq, "snapshot", "xxxx"))
    assert box.bytes <= 10 and [o.seq for o in box] == [6, 7]
    assert box.put(Outgoing(8, "snapshot", "x" * 11)) == 1  # too big on its own
    assert [o.seq for o in box] == [6, 7]


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    delays = backoff_delays(10, random.Random(1))
    got = [next(delays) for _ in range(8)]
    assert 0.8 <= got[0] <= 1.2 and 1.6 <= got[1] <= 2.4
    assert max(got) <= 10 and got[-1] >= 8
