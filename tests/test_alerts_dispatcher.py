"""The dispatcher: routing, retries with backoff and Retry-After, per-provider timeouts,
faults (refused connection, 500, a hang past the timeout) while the other providers still
deliver, the bounded queue's drop policy, draining on shutdown, and the metrics. (Lane
isolation and the circuit breaker: ``test_alerts_isolation.py``.)"""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import CollectorRegistry

from tests.alerts_support import Recorder, Timers, eventually, make_alert, refused_url
from xsys.alerts.config import (
    AlertsConfig,
    GotifyConfig,
    NtfyConfig,
    ProviderConfig,
    WebhookConfig,
)
from xsys.alerts.dispatcher import Dispatcher
from xsys.alerts.history import History, HistoryEntry
from xsys.alerts.metrics import AlertMetrics
from xsys.alerts.model import Alert
from xsys.alerts.providers import GotifyProvider, HttpClient, NtfyProvider, WebhookProvider
from xsys.alerts.providers.base import Provider


class Gate(Provider):
    """A provider whose sends wait on an event; records what it got."""

    def __init__(self, name: str = "gate", **cfg: object) -> None:
        super().__init__(name, ProviderConfig(enabled=True, **cfg))  # type: ignore[arg-type]
        self.open = asyncio.Event()
        self.got: list[Alert] = []
        self.started = asyncio.Event()

    async def send(self, alert: Alert) -> None:
        self.started.set()
        await self.open.wait()
        self.got.append(alert)


@pytest.fixture
def metrics() -> AlertMetrics:
    return AlertMetrics(CollectorRegistry())


def cfg(**kw: object) -> AlertsConfig:
    base: dict[str, object] = dict(workers=4, queue_size=100, retries=2, backoff_s=0.01,
                                   backoff_max_s=0.05, drain_timeout_s=5.0)
    base.update(kw)
    return AlertsConfig(**base)  # type: ignore[arg-type]


def entry(alert: Alert) -> HistoryEntry:
    return History(10).add(alert)


def webhook(url: str, http: HttpClient, **kw: object) -> WebhookProvider:
    return WebhookProvider(WebhookConfig(enabled=True, url=url, **kw), http)  # type: ignore[arg-type]


# ------------------------------------------------------------------------ routing


async def test_routing_by_levels(server: Recorder, http: HttpClient,
                                 metrics: AlertMetrics) -> None:
    crit_only = NtfyProvider(NtfyConfig(enabled=True, topic_url=f"{server.url}/ntfy",
                                        levels=("CRITICAL",)), http)
    everything = webhook(f"{server.url}/hook", http)
    d = Dispatcher({"ntfy": crit_only, "webhook": everything}, cfg(), metrics)
    d.start()
    warn = make_alert(severity="warning")
    e = entry(warn)
    assert d.submit(warn, e) == ["webhook"]
    crit = make_alert(severity="critical")
    assert d.submit(crit, entry(crit)) == ["ntfy", "webhook"]
    await d.stop()
    assert len(server.on("/ntfy")) == 1 and len(server.on("/hook")) == 2
    assert e.deliveries["webhook"].status == "sent"
    assert metrics.value("xsys_alerts_sent_total", provider="webhook") == 2


async def test_resolved_not_sent_when_send_resolved_is_off(server: Recorder, http: HttpClient,
                                                           metrics: AlertMetrics) -> None:
    p = webhook(f"{server.url}/hook", http, send_resolved=False)
    d = Dispatcher({"webhook": p}, cfg(), metrics)
    assert d.route(make_alert(status="resolved")) == []
    assert d.route(make_alert()) == [p]


# ------------------------------------------------------------------------ retries


async def test_retry_500_then_success(server: Recorder, http: HttpClient,
                                      metrics: AlertMetrics) -> None:
    server.set("/hook", (500, {}, 0.0), (502, {}, 0.0), (200, {}, 0.0))
    timers = Timers(auto=True)
    d = Dispatcher({"webhook": webhook(f"{server.url}/hook", http)}, cfg(), metrics,
                   call_later=timers, rng=lambda: 1.0)
    d.start()
    a = make_alert()
    e = entry(a)
    d.submit(a, e)
    await d.stop()
    rec = e.deliveries["webhook"]
    assert (rec.status, rec.attempts, rec.error) == ("sent", 3, None)
    assert timers.delays == [0.01, 0.02]  # backoff_s * 2**n (rng 1.0 = no jitter cut)
    assert metrics.value("xsys_alert_delivery_retries_total", provider="webhook") == 2


async def test_retry_after_is_honoured(server: Recorder, http: HttpClient,
                                       metrics: AlertMetrics) -> None:
    server.set("/hook", (429, {"Retry-After": "3"}, 0.0), (200, {}, 0.0))
    timers = Timers(auto=True)
    d = Dispatcher({"webhook": webhook(f"{server.url}/hook", http)}, cfg(), metrics,
                   call_later=timers)
    d.start()
    a = make_alert()
    e = entry(a)
    d.submit(a, e)
    await d.stop()
    assert timers.delays == [3.0]
    assert e.deliveries["webhook"].status == "sent"


async def test_client_error_is_not_retried(server: Recorder, http: HttpClient,
                                           metrics: AlertMetrics) -> None:
    server.set("/hook", (400, {}, 0.0))
    d = Dispatcher({"webhook": webhook(f"{server.url}/hook", http)}, cfg(), metrics)
    d.start()
    a = make_alert()
    e = entry(a)
    d.submit(a, e)
    await d.stop()
    rec = e.deliveries["webhook"]
    assert (rec.status, rec.attempts, rec.status_code) == ("failed", 1, 400)
    assert "HTTP 400" in (rec.error or "")
    assert metrics.value("xsys_alerts_failed_total", provider="webhook") == 1


def test_backoff_is_exponential_capped_and_jittered(metrics: AlertMetrics) -> None:
    d = Dispatcher({}, cfg(backoff_s=1.0, backoff_max_s=5.0, retry_after_max_s=60.0), metrics,
                   rng=lambda: 0.0)
    assert [d.backoff(n, None) for n in range(5)] == [0.5, 1.0, 2.0, 2.5, 2.5]
    d2 = Dispatcher({}, cfg(backoff_s=1.0, backoff_max_s=5.0), metrics, rng=lambda: 1.0)
    assert [d2.backoff(n, None) for n in range(4)] == [1.0, 2.0, 4.0, 5.0]
    assert d2.backoff(0, 7.0) == 7.0 and d2.backoff(0, 1e6) == 120.0


# ------------------------------------------------------------------------ faults


async def test_faults_do_not_stop_the_other_providers(server: Recorder, http: HttpClient,
                                                      metrics: AlertMetrics) -> None:
    """One provider refuses connections, one answers 500, one hangs past its timeout: the
    healthy one delivers at once, and each failure is recorded and counted."""
    server.set("/hang", (200, {}, 30.0))
    server.set("/broken/message", (500, {}, 0.0))
    providers = {
        "webhook": webhook(refused_url(), http),
        "gotify": GotifyProvider(GotifyConfig(enabled=True, url=f"{server.url}/broken",
                                              token="t"), http),
        "ntfy": NtfyProvider(NtfyConfig(enabled=True, topic_url=f"{server.url}/hang",
                                        timeout=0.3), http),
        "healthy": NtfyProvider(NtfyConfig(enabled=True, topic_url=f"{server.url}/ok"), http),
    }
    providers["healthy"].name = "healthy"
    d = Dispatcher(providers, cfg(retries=1), metrics)
    d.start()
    a = make_alert()
    e = entry(a)
    started = time.monotonic()
    d.submit(a, e)
    await server.wait("/ok")
    healthy_after = time.monotonic() - started
    await d.stop()
    assert healthy_after < 5.0  # not held up by the hanging one (its timeout is 0.3 s)
    status = {name: (rec.status, rec.attempts) for name, rec in e.deliveries.items()}
    assert status == {"webhook": ("failed", 2), "gotify": ("failed", 2),
                      "ntfy": ("failed", 2), "healthy": ("sent", 1)}
    assert "ClientConnectorError" in (e.deliveries["webhook"].error or "")
    assert e.deliveries["gotify"].status_code == 500
    assert "timed out" in (e.deliveries["ntfy"].error or "")
    for name in ("webhook", "gotify", "ntfy"):
        assert metrics.value("xsys_alerts_failed_total", provider=name) == 1
    assert metrics.value("xsys_alerts_sent_total", provider="healthy") == 1


# ------------------------------------------------------------------------ bounded queue


async def test_full_queue_drops_oldest_low_severity(metrics: AlertMetrics) -> None:
    gate = Gate()
    d = Dispatcher({"gate": gate}, cfg(workers=1, queue_size=2), metrics)
    d.start()
    busy = make_alert(severity="critical")
    d.submit(busy, entry(busy))
    await gate.started.wait()  # the worker holds it; the queue is empty
    b, c = make_alert(severity="warning"), make_alert(severity="critical")
    eb, ec = entry(b), entry(c)
    d.submit(b, eb)
    d.submit(c, ec)
    assert d.depth == 2
    dd = make_alert(severity="warning")
    ed = entry(dd)
    d.submit(dd, ed)  # full: the oldest warning (b) goes
    assert eb.deliveries["gate"].status == "dropped"
    f = make_alert(severity="critical")
    ef = entry(f)
    d.submit(f, ef)  # full: the only warning (dd) goes
    assert ed.deliveries["gate"].status == "dropped"
    g = make_alert(severity="warning")
    eg = entry(g)
    d.submit(g, eg)  # full of criticals: the new warning itself is dropped
    assert eg.deliveries["gate"].status == "dropped"
    assert d.depth == 2 and d.dropped == 3
    assert metrics.value("xsys_alerts_dropped_total", provider="gate") == 3
    assert metrics.value("xsys_alert_queue_depth") == 2
    gate.open.set()
    await d.stop()
    assert [a.id for a in gate.got] == [busy.id, c.id, f.id]
    assert ec.deliveries["gate"].status == "sent" and ef.deliveries["gate"].status == "sent"


# ------------------------------------------------------------------------ shutdown


async def test_stop_drains_the_queue(server: Recorder, http: HttpClient,
                                     metrics: AlertMetrics) -> None:
    server.set("/slow", (200, {}, 0.05))
    d = Dispatcher({"webhook": webhook(f"{server.url}/slow", http)}, cfg(workers=1), metrics)
    d.start()
    entries = []
    for _ in range(5):
        a = make_alert()
        entries.append(entry(a))
        d.submit(a, entries[-1])
    await d.stop(10.0)
    assert [e.deliveries["webhook"].status for e in entries] == ["sent"] * 5
    assert len(server.on("/slow")) == 5


async def test_stop_deadline_drops_what_is_left(metrics: AlertMetrics) -> None:
    gate = Gate(timeout=60.0)
    d = Dispatcher({"gate": gate}, cfg(workers=1), metrics)
    d.start()
    first, second = make_alert(), make_alert()
    e1, e2 = entry(first), entry(second)
    d.submit(first, e1)
    d.submit(second, e2)
    await gate.started.wait()
    started = time.monotonic()
    await d.stop(0.2)
    assert time.monotonic() - started < 5.0
    assert e1.deliveries["gate"].status == "dropped"
    assert e2.deliveries["gate"].status == "dropped"
    assert metrics.value("xsys_alerts_dropped_total", provider="gate") == 2
    # after stop nothing is accepted, and that is counted too
    late = make_alert()
    e3 = entry(late)
    d.submit(late, e3)
    assert e3.deliveries["gate"].status == "dropped"


async def test_stop_gives_up_backoffs_past_the_deadline(server: Recorder, http: HttpClient,
                                                        metrics: AlertMetrics) -> None:
    server.set("/down", (503, {"Retry-After": "100"}, 0.0))
    d = Dispatcher({"webhook": webhook(f"{server.url}/down", http)},
                   cfg(retries=5, retry_after_max_s=100.0), metrics)
    d.start()
    a = make_alert()
    e = entry(a)
    d.submit(a, e)
    await server.wait("/down")
    await eventually(lambda: bool(d.lanes["webhook"].delayed))  # in its 100 s backoff now
    assert d.lanes["webhook"].inflight == 0  # waiting on a timer, not in a worker
    started = time.monotonic()
    await d.stop(1.0)
    assert time.monotonic() - started < 5.0
    rec = e.deliveries["webhook"]
    assert rec.status == "failed" and "shutting down" in (rec.error or "")
    assert len(server.on("/down")) == 1
