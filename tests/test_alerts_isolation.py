"""One bad provider cannot starve the others: per-provider lanes (own bounded queue and
concurrency), retries on timers instead of in workers, the circuit breaker (open, queue
while open, half-open probe, close), nothing lost silently (every drop counted in the lane,
the history and Prometheus), shutdown that cancels every attempt and timer, and the
breakers' state in ``monitor.status`` of a real daemon.

Real parts: aiohttp servers that hang or answer 500, a healthy webhook, a real SMTP-ish
TCP server that drips its greeting, a real daemon."""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from tests.alerts_support import Hang, Recorder, Timers, eventually, make_alert
from tests.conftest import DaemonHandle
from xsys.alerts.config import (
    AlertsConfig,
    GoogleChatConfig,
    GotifyConfig,
    NtfyConfig,
    ProviderConfig,
    SmtpConfig,
    WebhookConfig,
)
from xsys.alerts.dispatcher import Dispatcher, Lane, alert_size_bytes
from xsys.alerts.history import History, HistoryEntry
from xsys.alerts.metrics import AlertMetrics
from xsys.alerts.model import Alert
from xsys.alerts.providers import (
    GoogleChatProvider,
    GotifyProvider,
    HttpClient,
    NtfyProvider,
    SmtpProvider,
    WebhookProvider,
)
from xsys.alerts.providers.base import Provider

N_ALERTS = 48


def cfg(**kw: Any) -> AlertsConfig:
    base: dict[str, Any] = dict(workers=2, queue_size=8, retries=2, backoff_s=0.01,
                                backoff_max_s=0.05, circuit_failures=3, circuit_open_s=3600.0,
                                drain_timeout_s=5.0)
    base.update(kw)
    return AlertsConfig(**base)


def webhook(url: str, http: HttpClient, name: str = "webhook", **kw: Any) -> WebhookProvider:
    p = WebhookProvider(WebhookConfig(enabled=True, url=url, **kw), http)
    p.name = name
    return p


class Gate(Provider):
    """A provider whose sends wait on an event (a hang the test controls)."""

    def __init__(self, name: str = "gate") -> None:
        super().__init__(name, ProviderConfig(enabled=True, timeout=60.0))
        self.open = asyncio.Event()
        self.started = asyncio.Event()
        self.got: list[Alert] = []

    async def send(self, alert: Alert) -> None:
        self.started.set()
        await self.open.wait()
        self.got.append(alert)


def statuses(entries: list[HistoryEntry], provider: str) -> Counter[str]:
    return Counter(e.deliveries[provider].status for e in entries)


def attempts(entries: list[HistoryEntry], provider: str) -> int:
    return sum(e.deliveries[provider].attempts for e in entries)


def frozen(lane: Lane) -> bool:
    """An open breaker with nothing in flight and no retry timer pending: nothing about
    this lane changes until its cool-down ends."""
    return lane.state == "open" and lane.inflight == 0 and not lane.delayed


# ------------------------------------------------------------------------ isolation


async def test_hanging_and_failing_providers_do_not_starve_the_healthy_one(
        http: HttpClient) -> None:
    """One provider hangs (never answers), two answer 500, one webhook is healthy: the
    healthy one receives all 48 alerts; the bad ones' breakers open; every alert of every
    provider ends sent, failed or dropped, and the drop counts (lane, history, Prometheus)
    equal what was lost."""
    hang = await Hang().start()
    bad1, bad2, healthy = (await Recorder().start(), await Recorder().start(),
                           await Recorder().start())
    bad1.set("/message", (500, {}, 0.0))
    bad2.set("/chat", (500, {}, 0.0))
    metrics = AlertMetrics(CollectorRegistry())
    providers: dict[str, Provider] = {
        "ntfy": NtfyProvider(NtfyConfig(enabled=True, topic_url=f"{hang.url}/topic",
                                        timeout=0.5), http),
        "gotify": GotifyProvider(GotifyConfig(enabled=True, url=bad1.url, token="t"), http),
        "google_chat": GoogleChatProvider(GoogleChatConfig(
            enabled=True, webhook_url=f"{bad2.url}/chat"), http),
        "webhook": webhook(f"{healthy.url}/hook", http),
    }
    d = Dispatcher(providers, cfg(), metrics)
    d.start()
    try:
        entries = []
        for i in range(N_ALERTS):  # one alert per "tick", as the monitor makes them
            a = make_alert()
            entries.append(History(1).add(a))
            d.submit(a, entries[-1])
            await healthy.wait("/hook", i + 1)  # delivered while the others hang and fail
        got = healthy.on("/hook")
        assert sorted(r.json()["alert"]["id"] for r in got) == sorted(
            e.alert.id for e in entries)
        bad = ("ntfy", "gotify", "google_chat")
        await eventually(lambda: all(frozen(d.lanes[n]) for n in bad), timeout=30)

        status = {row["name"]: row for row in d.provider_status()}
        ok = status["webhook"]
        assert (ok["state"], ok["delivered_total"], ok["failed_total"], ok["dropped_total"],
                ok["queued"], ok["in_flight"]) == ("closed", N_ALERTS, 0, 0, 0, 0)
        assert statuses(entries, "webhook") == {"sent": N_ALERTS}
        for name in bad:
            row, lane = status[name], d.lanes[name]
            assert row["state"] == "open" and row["delivered_total"] == 0
            assert row["consecutive_failures"] >= 3 and row["next_attempt_at"] is not None
            counts = statuses(entries, name)
            # nothing unaccounted for: every alert is failed, dropped or still queued
            assert counts == {k: v for k, v in {"failed": row["failed_total"],
                                                "dropped": row["dropped_total"],
                                                "pending": row["queued"]}.items() if v}
            assert row["failed_total"] + row["dropped_total"] + row["queued"] == N_ALERTS
            assert row["queued"] <= 8 and lane.queued_bytes <= cfg().queue_max_bytes
            assert row["dropped_total"] >= N_ALERTS - 8 - 2 * 3  # lost, and counted
            assert metrics.value("xsys_alerts_dropped_total",
                                 provider=name) == row["dropped_total"]
            assert metrics.value("xsys_alert_circuit_state", provider=name) == 2
            assert metrics.value("xsys_alert_circuit_opens_total", provider=name) == 1
            assert metrics.value("xsys_alert_provider_queue_depth",
                                 provider=name) == row["queued"]
        assert "timed out" in status["ntfy"]["last_error"]
        assert "HTTP 500" in status["gotify"]["last_error"]
        # every attempt the servers saw is recorded in the history
        assert hang.count == attempts(entries, "ntfy")
        assert len(bad1.on("/message")) == attempts(entries, "gotify")
        assert len(bad2.on("/chat")) == attempts(entries, "google_chat")
        assert metrics.value("xsys_alerts_sent_total", provider="webhook") == N_ALERTS
    finally:
        await d.stop(1.0)
        for server in (bad1, bad2, healthy):
            await server.stop()
        await hang.stop()
    # after shutdown the queued ones are dropped, and counted too
    for name in ("ntfy", "gotify", "google_chat"):
        row = {r["name"]: r for r in d.provider_status()}[name]
        assert row["queued"] == 0
        assert statuses(entries, name) == {k: v for k, v in {
            "failed": row["failed_total"], "dropped": row["dropped_total"]}.items() if v}
        assert metrics.value("xsys_alerts_dropped_total", provider=name) == row["dropped_total"]


async def test_retries_do_not_occupy_workers(server: Recorder, http: HttpClient) -> None:
    """workers=1: while a provider's failed delivery waits for its retry, the same provider
    and another one still deliver at once."""
    server.set("/flaky", (500, {}, 0.0), (200, {}, 0.0))
    timers = Timers()  # retries fire only when the test says
    d = Dispatcher({"flaky": webhook(f"{server.url}/flaky", http, name="flaky"),
                    "other": webhook(f"{server.url}/other", http, name="other")},
                   cfg(workers=1, retries=3, circuit_failures=10), AlertMetrics(
                       CollectorRegistry()), call_later=timers)
    d.start()
    first, second = make_alert(), make_alert()
    e1, e2 = History(1).add(first), History(1).add(second)
    d.submit(first, e1)
    await eventually(lambda: bool(d.lanes["flaky"].delayed))
    flaky = d.lanes["flaky"]
    assert flaky.inflight == 0 and e1.deliveries["flaky"].status == "pending"
    assert timers.delays and flaky.to_wire()["next_attempt_at"] is not None
    d.submit(second, e2)  # the one worker slot is free: delivered now, not after the retry
    await eventually(lambda: e2.deliveries["flaky"].status == "sent"
                     and e2.deliveries["other"].status == "sent")
    assert e1.deliveries["flaky"].status == "pending" and flaky.queued == 1
    assert e1.deliveries["other"].status == "sent"
    assert timers.fire() == 1
    await eventually(lambda: e1.deliveries["flaky"].status == "sent")
    assert e1.deliveries["flaky"].attempts == 2
    ids = [r.json()["alert"]["id"] for r in server.on("/flaky")]
    assert ids == [first.id, second.id, first.id]
    await d.stop(1.0)


# ------------------------------------------------------------------------ circuit breaker


async def test_breaker_opens_queues_and_a_half_open_probe_closes_it(
        server: Recorder, http: HttpClient) -> None:
    server.set("/svc", (500, {}, 0.0), (500, {}, 0.0), (200, {}, 0.0))
    timers = Timers()
    metrics = AlertMetrics(CollectorRegistry())
    d = Dispatcher({"svc": webhook(f"{server.url}/svc", http, name="svc")},
                   cfg(workers=1, retries=0, circuit_failures=2, circuit_open_s=30.0,
                       queue_size=3),
                   metrics, call_later=timers, clock=lambda: 1000.0)
    d.start()
    lane = d.lanes["svc"]
    alerts = [make_alert() for _ in range(7)]
    entries = [History(1).add(a) for a in alerts]
    for i in range(2):
        d.submit(alerts[i], entries[i])
        await eventually(lambda i=i: entries[i].deliveries["svc"].status == "failed")
    assert lane.state == "open" and lane.consecutive_failures == 2
    wire = lane.to_wire()
    assert wire["next_attempt_at"] == 1030.0 and "HTTP 500" in wire["last_error"]
    assert [t.delay for t in timers.pending()] == [30.0]
    assert metrics.value("xsys_alert_circuit_state", provider="svc") == 2
    # while open: queued (bounded), no attempt started
    for i in range(2, 7):
        d.submit(alerts[i], entries[i])
    assert lane.inflight == 0 and lane.queued == 3
    dropped = [e for e in entries[2:] if e.deliveries["svc"].status == "dropped"]
    assert dropped == entries[2:4]  # the oldest went
    assert lane.dropped_total == 2 and d.dropped == 2
    assert metrics.value("xsys_alerts_dropped_total", provider="svc") == 2
    assert all("queue full" in (e.deliveries["svc"].error or "") for e in dropped)
    # cool-down over: half-open lets exactly one probe through
    assert timers.fire() == 1
    assert lane.state == "half_open" and lane.inflight == 1 and lane.queued == 2
    assert wire["next_attempt_at"] is not None and lane.to_wire()["next_attempt_at"] is None
    await eventually(lambda: all(e.deliveries["svc"].status == "sent" for e in entries[4:]))
    assert lane.state == "closed" and lane.consecutive_failures == 0
    assert metrics.value("xsys_alert_circuit_state", provider="svc") == 0
    assert [r.json()["alert"]["id"] for r in server.on("/svc")] == [
        a.id for a in alerts[:2] + alerts[4:]]
    await d.stop(1.0)


async def test_a_failed_probe_opens_the_breaker_again(server: Recorder,
                                                      http: HttpClient) -> None:
    server.set("/down", (503, {}, 0.0))
    timers = Timers()
    now = [1000.0]
    metrics = AlertMetrics(CollectorRegistry())
    d = Dispatcher({"down": webhook(f"{server.url}/down", http, name="down")},
                   cfg(workers=1, retries=5, circuit_failures=1, circuit_open_s=10.0),
                   metrics, call_later=timers, clock=lambda: now[0])
    d.start()
    lane = d.lanes["down"]
    a, b = make_alert(), make_alert()
    ea, eb = History(1).add(a), History(1).add(b)
    d.submit(a, ea)
    await eventually(lambda: lane.state == "open" and bool(lane.delayed))
    d.submit(b, eb)
    assert lane.inflight == 0 and lane.queued == 2  # a waits for its retry, b behind it
    now[0] = 1010.0
    assert timers.fire() == 2  # the breaker's cool-down (b is the probe), then a's retry
    assert lane.state == "half_open" and lane.inflight == 1 and lane.queued == 1
    await eventually(lambda: lane.state == "open" and lane.inflight == 0)
    assert lane.to_wire()["next_attempt_at"] == 1020.0
    assert metrics.value("xsys_alert_circuit_opens_total", provider="down") == 2
    assert len(server.on("/down")) == 2  # the first attempt and one probe, nothing else
    assert [r.json()["alert"]["id"] for r in server.on("/down")] == [a.id, b.id]
    assert (ea.deliveries["down"].attempts, eb.deliveries["down"].attempts) == (1, 1)
    assert ea.deliveries["down"].status == eb.deliveries["down"].status == "pending"
    await d.stop(1.0)  # the breaker stays open past the deadline: ended at once
    assert ea.deliveries["down"].status == "dropped"  # queued behind the breaker
    assert "circuit open" in (ea.deliveries["down"].error or "")
    assert eb.deliveries["down"].status == "failed"  # waiting for its retry
    assert "shutting down" in (eb.deliveries["down"].error or "")
    assert timers.pending() == []


# ------------------------------------------------------------------------ bounds


async def test_the_queue_is_bounded_in_bytes_per_provider() -> None:
    gate, other = Gate("gate"), Gate("other")
    other.open.set()
    size = alert_size_bytes(make_alert())
    limit = max(1024, size * 2 + size // 2)  # room for two alerts, not three
    metrics = AlertMetrics(CollectorRegistry())
    d = Dispatcher({"gate": gate, "other": other},
                   cfg(workers=1, queue_size=100, queue_max_bytes=limit), metrics)
    d.start()
    busy = make_alert()
    d.submit(busy, History(1).add(busy))
    await gate.started.wait()  # gate's one slot is held
    await eventually(lambda: d.lanes["other"].idle)  # other's slot is free again
    entries = []
    for _ in range(3):
        a = make_alert()
        entries.append(History(1).add(a))
        d.submit(a, entries[-1])
    lane = d.lanes["gate"]
    assert lane.queued == 2 and lane.queued_bytes <= limit
    assert entries[0].deliveries["gate"].status == "dropped"
    assert "bytes" in (entries[0].deliveries["gate"].error or "")
    assert metrics.value("xsys_alerts_dropped_total", provider="gate") == 1
    # the other provider's lane is its own: nothing of it was dropped
    await eventually(lambda: len(other.got) == 4)
    assert d.lanes["other"].dropped_total == 0
    gate.open.set()
    await d.stop(5.0)
    assert [e.deliveries["gate"].status for e in entries] == ["dropped", "sent", "sent"]


async def test_stop_cancels_and_awaits_attempts_and_timers(server: Recorder,
                                                           http: HttpClient) -> None:
    """At shutdown: an attempt that hangs is cancelled and awaited, a retry timer and a
    breaker's cool-down timer are cancelled, and every job ends dropped or failed."""
    server.set("/down", (500, {}, 0.0))
    timers = Timers()
    gate = Gate("gate")
    d = Dispatcher({"gate": gate, "down": webhook(f"{server.url}/down", http, name="down")},
                   cfg(workers=1, retries=3, circuit_failures=1), AlertMetrics(
                       CollectorRegistry()), call_later=timers)
    d.start()
    a = make_alert()
    e = History(1).add(a)
    d.submit(a, e)
    await gate.started.wait()
    down = d.lanes["down"]
    await eventually(lambda: bool(down.delayed) and down.state == "open")
    tasks = list(d.lanes["gate"].tasks)
    assert len(tasks) == 1 and len(timers.pending()) == 2  # retry + cool-down
    await d.stop(0.1)
    assert all(t.done() for t in tasks) and timers.pending() == []
    assert all(not lane.tasks and lane.queued == 0 for lane in d.lanes.values())
    assert {name: rec.status for name, rec in e.deliveries.items()} == {
        "gate": "dropped", "down": "failed"}
    assert "shutting down" in (e.deliveries["down"].error or "")
    assert "undelivered at shutdown" in (e.deliveries["gate"].error or "")


# ------------------------------------------------------------------------ timeouts


async def test_smtp_attempt_past_its_timeout_closes_the_connection() -> None:
    """An SMTP server that drips its greeting (a byte within every socket timeout) would
    keep smtplib's thread reading for ever; the attempt times out and its connection is
    shut down, so the thread does not outlive it."""
    closed = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

        async def trickle() -> None:
            writer.write(b"220-")
            while True:
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(0.05)

        task = asyncio.ensure_future(trickle())
        try:
            await reader.read()  # returns at EOF: the client shut the connection down
            closed.set()
        finally:
            task.cancel()

    server = await asyncio.start_server(drip, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    provider = SmtpProvider(SmtpConfig(enabled=True, host="127.0.0.1", port=port,
                                       from_addr="x@example.org", to_addrs="y@example.org",
                                       use_tls=False, timeout=0.5))
    d = Dispatcher({"smtp": provider}, cfg(workers=5), AlertMetrics(CollectorRegistry()))
    assert d.lanes["smtp"].concurrency == 2  # a thread each: capped below workers
    try:
        result = await d.attempt(provider, make_alert())
        assert not result.ok and result.retryable and "timed out" in (result.error or "")
        await asyncio.wait_for(closed.wait(), 20)
    finally:
        for w in writers:
            w.close()
        server.close()
        await server.wait_closed()


# ------------------------------------------------------------------------ real daemon


def daemon_config(tmp_path: Path, hang: str, bad1: str, bad2: str, ok: str) -> dict[str, Any]:
    """A monitor whose cpu check fires every tick (warning 0 %, repeat every tick) and four
    providers: ntfy hangs, gotify and google_chat answer 500, the webhook is healthy."""
    off = {"enabled": False}
    return {"monitor": {
        "refresh": 0.05, "repeat_interval": 0, "history_size": 5000,
        "cpu": {"warning": 0, "critical": 1000, "duration": 0},
        "memory": off, "swap": off, "load": off, "filesystem": off, "inodes": off,
        "network": off, "io": off, "reboot": off,
        "alerts": {
            "workers": 2, "queue_size": 8, "retries": 1, "backoff_s": 0.01,
            "backoff_max_s": 0.02, "circuit_failures": 3, "circuit_open_s": 3600,
            "console": off,
            "ntfy": {"enabled": True, "topic_url": f"{hang}/topic", "timeout": 0.5},
            "gotify": {"enabled": True, "url": bad1, "token": "t"},
            "google_chat": {"enabled": True, "webhook_url": f"{bad2}/chat"},
            "webhook": {"enabled": True, "url": f"{ok}/hook"},
        },
    }}


async def test_daemon_shows_open_breakers_in_monitor_status(
        daemon_factory: Callable[..., DaemonHandle], tmp_path: Path) -> None:
    hang = await Hang().start()
    bad1, bad2, ok = (await Recorder().start(), await Recorder().start(),
                      await Recorder().start())
    bad1.set("/message", (500, {}, 0.0))
    bad2.set("/chat", (500, {}, 0.0))
    h: DaemonHandle | None = None
    try:
        h = await asyncio.to_thread(daemon_factory,
                                    daemon_config(tmp_path, hang.url, bad1.url, bad2.url,
                                                  ok.url))
        await ok.wait("/hook", N_ALERTS, timeout=60)
        # stop the stream of alerts: a reload with an unreachable threshold resolves it
        config = json.loads(h.config_path.read_text())
        config["monitor"]["cpu"]["warning"] = 1000
        h.config_path.write_text(json.dumps(config))
        h.signal(signal.SIGHUP)

        def call(method: str, **params: Any) -> dict[str, Any]:
            assert h is not None
            with h.client(timeout=10) as c:
                result: dict[str, Any] = c.call(method, **params)
                return result

        def settled(st: dict[str, Any]) -> bool:
            rows = {r["name"]: r for r in st["provider_status"]}
            return (rows["webhook"]["queued"] == 0 and rows["webhook"]["in_flight"] == 0
                    and all(rows[n]["state"] == "open" and rows[n]["in_flight"] == 0
                            for n in ("ntfy", "gotify", "google_chat")))

        for _ in range(600):
            resolved = [r for r in ok.on("/hook") if r.json()["alert"]["level"] == "RESOLVED"]
            st = await asyncio.to_thread(call, "monitor.status")
            if resolved and settled(st):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"breakers did not settle: {st['provider_status']}")
        history = (await asyncio.to_thread(call, "monitor.history", limit=5000))["alerts"]
        st = await asyncio.to_thread(call, "monitor.status")  # the same: nothing moves now
        rows = {r["name"]: r for r in st["provider_status"]}
        assert set(rows) == {"ntfy", "gotify", "google_chat", "webhook"}
        assert len(history) >= N_ALERTS + 1

        def deliveries(name: str) -> list[dict[str, Any]]:
            return [d for a in history for d in a["deliveries"] if d["provider"] == name]

        web = rows["webhook"]
        assert web["state"] == "closed" and web["dropped_total"] == web["failed_total"] == 0
        assert web["delivered_total"] == len(history) == len(ok.on("/hook"))
        assert all(d["status"] == "sent" for d in deliveries("webhook"))
        for name, server_attempts in (("ntfy", hang.count),
                                      ("gotify", len(bad1.on("/message"))),
                                      ("google_chat", len(bad2.on("/chat")))):
            row = rows[name]
            assert row["state"] == "open" and row["consecutive_failures"] >= 3
            assert row["next_attempt_at"] is not None and row["last_error"]
            counts = Counter(d["status"] for d in deliveries(name))
            assert row["delivered_total"] == counts["sent"] == 0
            assert row["dropped_total"] == counts["dropped"] > 0
            assert row["failed_total"] == counts["failed"]
            assert row["queued"] == counts["pending"] <= 8
            assert sum(counts.values()) == len(history)
            assert server_attempts == sum(d["attempts"] for d in deliveries(name))
        assert st["queue"]["dropped"] == sum(r["dropped_total"] for r in rows.values())
    finally:
        if h is not None:
            await asyncio.to_thread(h.stop)
        for server in (bad1, bad2, ok):
            await server.stop()
        await hang.stop()
