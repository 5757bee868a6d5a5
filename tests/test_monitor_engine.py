"""The engine and the monitor service with an injected clock and fed values: alerts flow to
the history, the IPC bus and the providers; silences; collector failures; reloads; the
loop's rhythm while a provider hangs; the real psutil collectors; metrics; units."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.alerts_support import HOST, Recorder, eventually
from xsys.alerts.model import Alert
from xsys.config import Config, from_dict
from xsys.monitor.collectors import CHECKS, Collection, Collectors, Sample, enabled_collectors
from xsys.monitor.config import MonitorConfig
from xsys.monitor.engine import rule_specs
from xsys.monitor.service import MonitorService
from xsys.monitor.silences import Silences
from xsys.server.app import App
from xsys.units import format_bytes, format_value, parse_bytes, parse_rate


class Clock:
    """A settable epoch clock."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Feed:
    """A fake collector: the values to report, by (check, component)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.values: dict[tuple[str, str], float] = {}
        self.errors: dict[str, str] = {}
        self.calls = 0

    def set(self, check: str, value: float, component: str | None = None) -> None:
        self.values[(check, component or check)] = value

    async def __call__(self) -> Collection:
        self.calls += 1
        samples = tuple(Sample(c, comp, v, "percent") for (c, comp), v in self.values.items()
                        if c not in self.errors)
        return Collection(samples, HOST, dict(self.errors), self.clock())


def make_app(monitor: dict[str, Any], **sections: Any) -> App:
    cfg = from_dict(Config, {"monitor": monitor, **sections})
    return App(cfg)


@pytest.fixture
async def server() -> AsyncIterator[Recorder]:
    rec = await Recorder().start()
    yield rec
    await rec.stop()


BASE = {"enabled": False, "refresh": 1, "repeat_interval": 3600,
        "cpu": {"warning": 70, "critical": 90, "duration": 0, "hysteresis": 0},
        "memory": {"warning": 80, "critical": 95, "duration": 30, "hysteresis": 0},
        "alerts": {"console": {"enabled": False}, "backoff_s": 0.01}}


def with_webhook(url: str, **extra: Any) -> dict[str, Any]:
    cfg = {**BASE, **extra}
    cfg["alerts"] = {**BASE["alerts"], "webhook": {"enabled": True, "url": url}}
    return cfg


@pytest.fixture
async def svc(server: Recorder) -> AsyncIterator[tuple[MonitorService, Clock, Feed]]:
    clock = Clock()
    feed = Feed(clock)
    app = make_app(with_webhook(f"{server.url}/hook"))
    service = MonitorService(app, clock=clock, collect=feed)
    await service.start()
    yield service, clock, feed
    await service.stop(2.0)
    await app.stop(2.0)


# --------------------------------------------------------------------------- flow


async def test_crossing_reaches_history_bus_and_webhook(
        svc: tuple[MonitorService, Clock, Feed], server: Recorder) -> None:
    service, clock, feed = svc
    seen: list[Alert] = []
    service.subscribe(seen.append)
    feed.set("cpu", 50.0)
    assert await service.tick() == []
    clock.now += 1
    feed.set("cpu", 95.0)
    (outcome,) = await service.tick()
    assert outcome.alert.severity == "critical" and not outcome.silenced
    (req,) = await server.wait("/hook")
    assert req.json()["alert"]["level"] == "CRITICAL"
    assert [a.id for a in seen] == [outcome.alert.id]
    (entry,) = service.history.recent()
    await eventually(lambda: entry.deliveries["webhook"].status == "sent")
    status = service.status()
    (row,) = [c for c in status["checks"] if c["check"] == "cpu"]
    assert (row["state"], row["value"], row["threshold"], row["changed_at"]) == (
        "critical", 95.0, 90.0, clock.now)
    assert status["firing"] == 1 and status["providers"] == ["webhook"]
    clock.now += 1
    feed.set("cpu", 10.0)
    (resolved,) = await service.tick()
    assert resolved.alert.status == "resolved"
    await server.wait("/hook", 2)
    assert server.on("/hook")[1].json()["alert"]["level"] == "RESOLVED"


async def test_duration_uses_the_injected_clock(svc: tuple[MonitorService, Clock, Feed],
                                                server: Recorder) -> None:
    service, clock, feed = svc
    feed.set("memory", 85.0)
    for _ in range(3):
        assert await service.tick() == []
        clock.now += 10
    (out,) = await service.tick()  # 30 s after the crossing
    assert (out.alert.check, out.alert.severity) == ("memory", "warning")


async def test_silence_holds_back_then_releases(svc: tuple[MonitorService, Clock, Feed],
                                                server: Recorder) -> None:
    service, clock, feed = svc
    seen: list[Alert] = []
    service.subscribe(seen.append)
    s = service.silence("cp*", None, 60, "maintenance", "uid:0")
    feed.set("cpu", 95.0)
    (held,) = await service.tick()
    assert held.silenced
    (entry,) = service.history.recent()
    assert entry.silenced_by == s.id and entry.deliveries == {}
    assert seen == []
    row = service.status()["checks"][0]
    assert row["silenced"] is True and row["state"] == "critical"
    clock.now += 61  # the silence expired: the held-back alert goes out now
    (sent,) = await service.tick()
    assert not sent.silenced
    await server.wait("/hook")
    assert len(seen) == 1


async def test_component_silence_and_unsilence(svc: tuple[MonitorService, Clock, Feed]) -> None:
    service, clock, feed = svc
    s = service.silence(None, "filesystem:/var*", 3600)
    feed.set("filesystem", 99.0, "filesystem:/var/lib")
    feed.set("filesystem", 99.0, "filesystem:/")
    outs = await service.tick()
    assert sorted((o.alert.component, o.silenced) for o in outs) == [
        ("filesystem:/", False), ("filesystem:/var/lib", True)]
    assert service.silences.remove(s.id) is not None
    clock.now += 1
    (out,) = await service.tick()
    assert (out.alert.component, out.silenced) == ("filesystem:/var/lib", False)


async def test_collector_failure_keeps_the_state(svc: tuple[MonitorService, Clock, Feed]) -> None:
    service, clock, feed = svc
    feed.set("filesystem", 99.0, "filesystem:/")
    assert len(await service.tick()) == 1
    feed.errors["filesystem"] = "OSError: stalled"
    clock.now += 1
    assert await service.tick() == []  # no resolved for a failed pass
    assert service.status()["errors"] == {"filesystem": "OSError: stalled"}
    feed.errors.clear()
    del feed.values[("filesystem", "filesystem:/")]
    clock.now += 1
    (gone,) = await service.tick()  # unmounted: resolved
    assert gone.alert.status == "resolved"


async def test_reload_keeps_states_and_rebuilds_providers(
        svc: tuple[MonitorService, Clock, Feed], server: Recorder) -> None:
    service, clock, feed = svc
    feed.set("cpu", 75.0)
    assert len(await service.tick()) == 1
    new = from_dict(MonitorConfig, {**with_webhook(f"{server.url}/new"),
                                    "cpu": {"warning": 60, "critical": 90, "duration": 60}})
    service.reload(new)
    clock.now += 1
    # still the same incident: no new notification, and the longer duration does not
    # resolve what already fires
    assert await service.tick() == []
    feed.set("cpu", 95.0)
    clock.now += 1
    assert await service.tick() == []  # critical must now hold 60 s
    clock.now += 60
    assert len(await service.tick()) == 1
    await server.wait("/new")  # the rebuilt webhook provider
    assert service.checks()[0]["warning"] == 60


# --------------------------------------------------------------------------- rhythm


async def test_loop_keeps_its_rhythm_while_a_provider_hangs(server: Recorder) -> None:
    server.set("/hang", (200, {}, 30.0))
    feed = Feed(Clock())
    mon = with_webhook(f"{server.url}/hang", enabled=True, refresh=0.05, repeat_interval=0)
    mon["alerts"] = {**mon["alerts"], "workers": 2, "queue_size": 4,
                     "webhook": {"enabled": True, "url": f"{server.url}/hang", "timeout": 20}}
    app = make_app(mon)
    service = MonitorService(app, collect=feed)
    feed.set("cpu", 95.0)

    async def advance() -> None:
        while True:
            feed.clock.now += 0.05
            await asyncio.sleep(0.01)

    mover = asyncio.ensure_future(advance())
    await service.start()
    try:
        await eventually(lambda: service.engine.ticks >= 10, timeout=20)
        # every tick fired a repeat; the two workers hang, the queue stays bounded
        assert service.dispatcher is not None
        assert service.dispatcher.depth <= 4 and service.dispatcher.dropped > 0
    finally:
        mover.cancel()
        started = time.monotonic()
        await service.stop(0.2)
        assert time.monotonic() - started < 10
        await app.stop(2.0)


async def test_start_stop_with_the_app_hooks() -> None:
    from xsys.daemon import build_services

    app = make_app({**BASE, "enabled": True, "refresh": 0.05})
    app.services = build_services(app)
    service = app.services.monitor
    assert isinstance(service, MonitorService)
    await app.start()
    try:
        await eventually(lambda: service.engine.ticks >= 2, timeout=20)
        assert service.status()["running"] is True
        assert any(c["check"] == "cpu" for c in service.status()["checks"])
    finally:
        await app.stop(5.0)
    assert service.status()["running"] is False
    registry = app.services.metrics_registry
    assert isinstance(registry, CollectorRegistry)
    assert (registry.get_sample_value("xsys_monitor_ticks_total") or 0) >= 2


async def test_log_file(tmp_path: Path) -> None:
    log_file = tmp_path / "monitor.log"
    clock = Clock()
    feed = Feed(clock)
    mon = {**BASE, "log_file": str(log_file),
           "alerts": {"backoff_s": 0.01, "console": {"enabled": True}}}
    app = make_app(mon)
    service = MonitorService(app, clock=clock, collect=feed)
    await service.start()
    feed.set("cpu", 95.0)
    await service.tick()
    await eventually(lambda: log_file.exists() and "ALERT CRITICAL : cpu" in log_file.read_text())
    await service.stop(1.0)
    await app.stop(1.0)
    assert logging.getLogger("xsys.alerts").handlers == []


# --------------------------------------------------------------------------- collectors


def test_real_collectors(tmp_path: Path) -> None:
    flag = tmp_path / "reboot-required"
    cfg = from_dict(MonitorConfig, {
        "inodes": {"enabled": True}, "network": {"enabled": True, "exclude": []},
        "reboot": {"required_files": [str(flag)], "state_file": str(tmp_path / "boot")}})
    col = Collectors(cfg).collect()
    assert col.errors == {}
    by_check: dict[str, list[Sample]] = {}
    for s in col.samples:
        by_check.setdefault(s.check, []).append(s)
    for check in ("cpu", "memory", "swap", "load", "io", "reboot", "boot"):
        assert check in by_check, check
    assert 0.0 <= by_check["cpu"][0].value <= 100.0 and by_check["cpu"][0].unit == "percent"
    assert by_check["load"][0].unit == "load_per_cpu"
    assert by_check["io"][0].unit == "bytes_per_second" and by_check["io"][0].value >= 0
    assert all(s.component.startswith("network:") for s in by_check.get("network", []))
    for s in by_check.get("filesystem", []) + by_check.get("inodes", []):
        assert 0 <= s.value <= 100 and s.component.split(":", 1)[1].startswith("/")
    assert by_check["reboot"][0].value == 0.0 and by_check["boot"][0].value == 0.0
    flag.write_text("*** System restart required ***\n")
    col2 = Collectors(cfg).collect()
    assert [s.value for s in col2.samples if s.check == "reboot"] == [1.0]
    assert col.host.hostname and col.host.uptime_s > 0


def test_the_checks_table_describes_the_samples(tmp_path: Path) -> None:
    """Every sample a real pass produces belongs to a registered check, with that check's
    unit and component naming; the rules and ``monitor.checks`` list the same checks."""
    cfg = from_dict(MonitorConfig, {
        "inodes": {"enabled": True}, "network": {"enabled": True, "exclude": []},
        "load": {"per_cpu": False},
        "reboot": {"required_files": [], "state_file": str(tmp_path / "boot")}})
    checks = {c.name: c for c in CHECKS}
    samples = Collectors(cfg).collect().samples
    assert {s.check for s in samples} >= {"cpu", "memory", "swap", "load", "io", "reboot",
                                          "boot"}
    for s in samples:
        check = checks[s.check]
        assert s.unit == check.unit_of(cfg), s
        prefix, _, pattern = check.component.partition("<")
        assert s.component == check.component if not pattern else (
            s.component.startswith(prefix) and len(s.component) > len(prefix)), s
    assert checks["load"].unit_of(cfg) == "load"
    assert set(rule_specs(cfg)) == set(checks)
    assert [n for n, _ in enabled_collectors(cfg)] == [
        "cpu", "memory", "swap", "filesystem", "load", "io", "network", "reboot"]
    off = from_dict(MonitorConfig, {"filesystem": {"enabled": False},
                                    "reboot": {"detect_boot": False}})
    assert "filesystem" not in rule_specs(off) and "boot" not in rule_specs(off)
    assert "filesystem" in dict(enabled_collectors(off))  # inodes still needs the pass


def test_boot_detection(tmp_path: Path) -> None:
    state = tmp_path / "state" / "boot_time"
    cfg = from_dict(MonitorConfig, {"reboot": {"state_file": str(state),
                                               "required_files": []}})

    def happened(c: Collectors) -> list[float]:
        return [s.value for s in c.collect().samples if s.check == "boot"]

    assert happened(Collectors(cfg)) == [0.0]  # first run: recorded, not a reboot
    assert state.read_text().strip().isdigit()
    assert happened(Collectors(cfg)) == [0.0]  # same boot
    state.write_text("1000\n")  # the previous run saw another boot
    c = Collectors(cfg)
    assert happened(c) == [1.0] and happened(c) == [0.0]  # once, then resolved


def test_filesystem_include_and_exclude() -> None:
    cfg = from_dict(MonitorConfig, {"filesystem": {"include": ["/"]}})
    comps = {s.component for s in Collectors(cfg).collect().samples
             if s.check == "filesystem"}
    assert comps <= {"filesystem:/"}
    cfg = from_dict(MonitorConfig, {"filesystem": {"exclude": ["/"]}})
    assert not [s for s in Collectors(cfg).collect().samples if s.check == "filesystem"]


def test_collectors_use_the_daemon_sampler() -> None:
    from xsys.host import Sampler

    sampler = Sampler(1.0)
    sampler.prime()
    time.sleep(0.05)
    snap = sampler.sample_now()
    col = Collectors(MonitorConfig(), sampler=sampler).collect()
    (cpu,) = [s for s in col.samples if s.check == "cpu"]
    assert cpu.value == snap.cpu_percent
    assert sampler.latest is snap  # read, not re-sampled


# --------------------------------------------------------------------------- silences


def test_silences_match_and_expire() -> None:
    clock = Clock(100.0)
    s = Silences(clock)
    a = s.add("filesystem", "filesystem:/var*", 10, "disk swap")
    b = s.add(None, "cpu", 20)
    assert s.match("filesystem", "filesystem:/var/log") is a
    assert s.match("filesystem", "filesystem:/") is None
    assert s.match("inodes", "filesystem:/var") is None
    assert s.match("cpu", "cpu") is b
    clock.now = 110.0
    assert s.match("filesystem", "filesystem:/var/log") is None
    assert [x.id for x in s.list()] == [b.id]
    assert s.remove_matching(None, "cpu") == [b]
    with pytest.raises(ValueError):
        s.add(None, None, 10)
    with pytest.raises(ValueError):
        s.add("cpu", None, 0)


# --------------------------------------------------------------------------- units


@pytest.mark.parametrize("text,expected", [
    (1024, 1024.0), ("10MB", 10 * 1024**2), ("500K", 500 * 1024), ("500KB", 500 * 1024),
    ("1.5G", 1.5 * 1024**3), ("2GiB", 2 * 1024**3), ("100", 100.0), ("3M/s", 3 * 1024**2),
    ("1t", 1024**4),
])
def test_parse_bytes(text: float | str, expected: float) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("bad", ["", "ten", "5X", "-1", "1.2.3"])
def test_parse_bytes_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_bytes(bad)


def test_parse_rate_and_format() -> None:
    assert parse_rate("70%", "100MB") == 70 * 1024**2
    assert parse_rate(None) is None
    with pytest.raises(ValueError):
        parse_rate("70%")
    assert format_bytes(1536) == "1.5KB" and format_bytes(12) == "12B"
    assert format_value(1536.0, "bytes_per_second") == "1.5 KiB/s"  # IEC, as the CLI
    assert format_value(91.25, "percent") == "91.2%"
    assert format_value(1.0, "bool") == "yes"


def test_config_validation_names_keys() -> None:
    from xsys.config import ConfigError

    with pytest.raises(ConfigError, match=r"monitor\.cpu: duration: must be >= 0"):
        from_dict(Config, {"monitor": {"cpu": {"duration": -1}}})
    with pytest.raises(ConfigError, match=r"monitor\.load: hysteresis"):
        from_dict(Config, {"monitor": {"load": {"hysteresis": 1.5}}})
    # a critical line under the warning one is allowed (critical is checked first)
    assert from_dict(Config, {"monitor": {"cpu": {"critical": 1}}}).monitor.cpu.critical == 1
    with pytest.raises(ConfigError, match=r"monitor\.alerts\.webhook: url: required"):
        from_dict(Config, {"monitor": {"alerts": {"webhook": {"enabled": True}}}})
    with pytest.raises(ConfigError, match=r"monitor\.alerts\.ntfy: levels: unknown level"):
        from_dict(Config, {"monitor": {"alerts": {"ntfy": {"levels": ["PANIC"]}}}})
    with pytest.raises(ConfigError, match=r"monitor\.alerts\.smtp"):
        from_dict(Config, {"monitor": {"alerts": {"smtp": {"use_tls": True, "use_ssl": True}}}})
    with pytest.raises(ConfigError, match=r"monitor: refresh"):
        from_dict(Config, {"monitor": {"refresh": 0}})
    with pytest.raises(ConfigError, match=r"monitor\.alerts: workers"):
        from_dict(Config, {"monitor": {"alerts": {"workers": 0}}})
    assert os.sep == "/"
