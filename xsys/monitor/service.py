"""The monitor as a daemon service: it owns the collectors, the engine and its background
loop, the silences, the history ring, the alert bus, the dispatcher with its providers and
the shared HTTP session, and wires them together:

    engine tick -> Outcome -> history entry -> (unless silenced) bus (IPC subscribers)
                                                              -> dispatcher -> providers

It takes a ``Runtime`` (the config, the thread pool, background tasks), which the daemon's
``App`` satisfies structurally; it never imports the server. Started and stopped by the
hooks ``xsys.handlers.monitor`` registers; ``reload`` applies a new config (rules keep their
states; providers are rebuilt when their config changed).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from prometheus_client import CollectorRegistry

from xsys.alerts.config import PROVIDER_NAMES
from xsys.alerts.dispatcher import AttemptResult, Dispatcher
from xsys.alerts.history import History, HistoryEntry
from xsys.alerts.metrics import AlertMetrics
from xsys.alerts.model import (
    SEVERITY_RANK,
    Alert,
    HostContext,
    Severity,
    fingerprint,
    new_alert_id,
)
from xsys.alerts.providers import HttpClient, Provider, build_providers
from xsys.alerts.tinymonitor import LOADED_NAMES
from xsys.config import Config
from xsys.host import Runner, booted_at
from xsys.monitor.bus import AlertBus
from xsys.monitor.collectors import CHECKS, Collection, Collectors, SnapshotSource
from xsys.monitor.config import MonitorConfig
from xsys.monitor.engine import Engine, rule_specs
from xsys.monitor.model import (
    CheckConfig,
    MonitorHistory,
    MonitorStatus,
    ProviderAttempt,
)
from xsys.monitor.rules import Outcome, Policy, Rule, Thresholds, tinymonitor_log
from xsys.monitor.silences import Silence, Silences
from xsys.protocol import InvalidParams, NotFound, Overloaded

log = logging.getLogger(__name__)

Collect = Callable[[], Awaitable[Collection]]

#: The format of ``log_file`` lines (TinyMonitor's ``logging.basicConfig`` format).
TINYMONITOR_LOG_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
#: The order in which TinyMonitor loads (and logs) its providers.
TINYMONITOR_ORDER = ("google_chat", "ntfy", "smtp", "webhook", "gotify")


class Runtime(Runner, Protocol):
    """What the monitor needs of the daemon (``xsys.server.app.App`` has it): a
    ``Runner`` (``run_blocking(fn, *args)``: the bounded thread pool, may raise
    ``Overloaded``; ``spawn(coro, name)``: a background task cancelled and awaited at
    shutdown) with the effective ``config``."""

    @property
    def config(self) -> Config:
        """The effective config (read once, at construction)."""
        ...


class MonitorService:
    """The monitor of one daemon (``runtime``: see ``Runtime``).

    ``clock``: epoch seconds (tests inject one); ``collect``: replaces the psutil collectors
    (tests feed values); ``sampler``: the snapshot source (the daemon's sampler; None = an
    own one); ``metrics``: the Prometheus metrics to update (None = on a registry of
    their own).
    """

    def __init__(self, runtime: Runtime, clock: Callable[[], float] = time.time,
                 collect: Collect | None = None,
                 sampler: SnapshotSource | None = None,
                 metrics: AlertMetrics | None = None) -> None:
        self.runtime = runtime
        self.config: MonitorConfig = runtime.config.monitor
        self.clock = clock
        self.metrics = metrics if metrics is not None else AlertMetrics(CollectorRegistry())
        self.history = History(self.config.history_size)
        self.silences = Silences(clock)
        self.bus = AlertBus()
        self.http = HttpClient()
        self._sampler = sampler
        self._collectors: Collectors | None = None
        self._collect = collect
        self.engine = Engine(self.config, self._collect_now, self._handle, self.silences,
                             clock, on_tick=self._ticked)
        self.providers: dict[str, Provider] = {}
        self.dispatcher: Dispatcher | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._retired: set[asyncio.Task[None]] = set()
        #: Rules fed from outside the collectors (``observe``), by (check, component).
        self.external: dict[tuple[str, str], Rule] = {}
        self._host: HostContext | None = None
        self._log_handler: logging.Handler | None = None
        self._log_targets: list[logging.Logger] = []
        self.started = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Build the providers and dispatcher, start the workers and (when enabled) the
        engine loop."""
        if self.started:
            return
        self.started = True
        self._set_log_file(self.config.log_file)
        self.providers = build_providers(self.config.alerts, self.http, self._run_blocking)
        if self.config.compat == "tinymonitor":
            for name in TINYMONITOR_ORDER:
                if name in self.providers:
                    tinymonitor_log.info("Alert Provider loaded: %s", LOADED_NAMES[name])
            tinymonitor_log.info("Starting TinyMonitor...")  # Monitor.run's first line
        self.dispatcher = Dispatcher(self.providers, self.config.alerts, self.metrics)
        self.dispatcher.start()
        providers = ", ".join(self.providers) or "none"
        if self.config.enabled:
            self._start_loop()
            log.info("monitor started: %d checks every %gs, providers: %s",
                     len(self.engine.rules), self.config.refresh, providers)
        else:
            log.info("monitor disabled (monitor.enabled is false): no checks run; "
                     "monitor.test and alerts sent by others still reach providers: %s",
                     providers)

    async def stop(self, deadline_s: float | None = None) -> None:
        """Stop the loop, drain the dispatcher within ``deadline_s`` (default the config's
        ``drain_timeout_s``), close the providers and the HTTP session."""
        if not self.started:
            return
        self.started = False
        await self._stop_loop()
        if self.dispatcher is not None:
            await self.dispatcher.stop(deadline_s)
        for task in list(self._retired):
            task.cancel()
        if self._retired:
            await asyncio.gather(*self._retired, return_exceptions=True)
        await self._close_providers(self.providers)
        await self.http.close()
        self._set_log_file("")

    def _start_loop(self) -> None:
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = self.runtime.spawn(self.engine.run(), "monitor-engine")

    async def _stop_loop(self) -> None:
        task, self._loop_task = self._loop_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.engine.close()

    async def _close_providers(self, providers: dict[str, Provider]) -> None:
        for provider in providers.values():
            try:
                await provider.close()
            except Exception:
                log.exception("closing provider %s failed", provider.name)

    def reload(self, new: MonitorConfig) -> None:
        """Apply a new monitor config (loop thread): rules, refresh, history size, log file
        at once; providers and dispatcher are rebuilt (the old ones drain in the
        background) when ``alerts`` changed; the loop starts or stops with ``enabled``."""
        old = self.config
        self.config = new
        self.engine.reconfigure(new)
        self.history.resize(new.history_size)
        if self._collectors is not None:
            self._collectors.config = new
        if new.log_file != old.log_file or new.compat != old.compat:
            self._set_log_file(new.log_file)
        if not self.started:
            return
        if new.alerts != old.alerts:
            old_dispatcher, old_providers = self.dispatcher, self.providers
            self.providers = build_providers(new.alerts, self.http, self._run_blocking)
            self.dispatcher = Dispatcher(self.providers, new.alerts, self.metrics)
            self.dispatcher.start()
            if old_dispatcher is not None:
                self._retire(old_dispatcher, old_providers)
        if new.enabled:
            self._start_loop()
        elif self._loop_task is not None:
            task = asyncio.get_running_loop().create_task(self._stop_loop())
            self._retired.add(task)
            task.add_done_callback(self._retired.discard)
        log.info("monitor reconfigured: %d checks every %gs, providers: %s",
                 len(self.engine.rules), new.refresh, ", ".join(self.providers) or "none")

    def _retire(self, dispatcher: Dispatcher, providers: dict[str, Provider]) -> None:
        async def retire() -> None:
            await dispatcher.stop()
            await self._close_providers(providers)

        task = asyncio.get_running_loop().create_task(retire())
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    def _set_log_file(self, path: str) -> None:
        """Append log records to ``path`` (relative: to the daemon's working directory,
        as TinyMonitor's ``log_file``) in TinyMonitor's format ``<asctime> - <name> -
        <levelname> - <message>``: those of ``xsys.monitor`` and ``xsys.alerts``, or
        with ``compat: tinymonitor`` those of the ``tinymonitor`` logger (TinyMonitor's
        own lines: ``ALERT: CPU is WARNING (91.2%)``, ``Triggering alert via ntfy for
        CPU (WARNING)``, ``[ntfy] Alert sent successfully``, ``RECOVERY: CPU is back to
        normal``...) at INFO and above."""
        if self._log_handler is not None:
            for lg in self._log_targets:
                lg.removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None
        if self.config.compat == "tinymonitor":
            self._log_targets = [tinymonitor_log]
            tinymonitor_log.setLevel(logging.INFO)
        else:
            self._log_targets = [logging.getLogger("xsys.monitor"),
                                 logging.getLogger("xsys.alerts")]
        if path:
            handler = logging.FileHandler(path, encoding="utf-8", delay=True)
            handler.setFormatter(logging.Formatter(TINYMONITOR_LOG_FORMAT))
            for lg in self._log_targets:
                lg.addHandler(handler)
            self._log_handler = handler

    async def _run_blocking(self, fn: Callable[[], None]) -> None:
        await self.runtime.run_blocking(fn)

    # ------------------------------------------------------------------ ticks

    async def _collect_now(self) -> Collection:
        if self._collect is not None:
            return await self._collect()
        first = getattr(self._sampler, "first_sampled", None)  # the daemon's: after READY
        if first is not None and not first.done():
            await asyncio.shield(first)
        if self._collectors is None:
            self._collectors = await self.runtime.run_blocking(
                Collectors, self.config, self._sampler, self.clock)
        return await self.runtime.run_blocking(self._collectors.collect)

    def _ticked(self, collection: Collection, tick_ms: float) -> None:
        self.metrics.ticks.inc()
        self.metrics.tick_seconds.set(tick_ms / 1000)
        self._host = collection.host
        for name, rule in self.engine.rules.items():
            for component, st in rule.states.items():
                self.metrics.check_level.labels(name, component).set(
                    SEVERITY_RANK[st.firing])

    def _handle(self, outcome: Outcome, silence: Silence | None) -> None:
        alert = outcome.alert
        entry = self.history.add(alert, silence.id if silence is not None else None)
        self.metrics.alerts.labels(alert.check, alert.severity, alert.status).inc()
        if silence is not None:
            log.info("alert %s %s %s %s silenced by %s", alert.id, alert.component,
                     alert.severity, alert.status, silence.id)
            return
        if alert.tinymonitor:
            tinymonitor_log.info("ALERT: %s is %s (%s)", alert.component,
                                 alert.severity.upper(), alert.value_text)
        self.bus.publish(alert)
        if self.dispatcher is not None:
            names = self.dispatcher.submit(alert, entry)
            if alert.tinymonitor:
                for name in names:
                    if name not in TINYMONITOR_ORDER:
                        continue  # xsys's own providers (console): not TinyMonitor's lines
                    tinymonitor_log.info("Triggering alert via %s for %s (%s)", name,
                                         alert.component, alert.severity.upper())

    async def tick(self) -> list[Outcome]:
        """One evaluation now (``monitor`` tests and benchmarks)."""
        return await self.engine.tick()

    def observe(self, check: str, component: str, value: float, unit: str,
                warning: float | None, critical: float | None) -> Outcome | None:
        """Feed one reading from outside the collectors (the service checks, wired by the
        composition root) through a rule of its own per (check, component) with these
        thresholds and the monitor's policy (no ``duration``: the caller says when a
        level holds); its alerts take the collectors' path: history, silences, the bus,
        the providers. Returns the due notification, if any (loop thread)."""
        now = self.clock()
        host = self._host or _bare_host(now)
        th = Thresholds(warning, critical)
        policy = Policy(self.config.repeat_interval, self.config.send_resolved)
        rule = self.external.get((check, component))
        if rule is None:
            rule = self.external[(check, component)] = Rule(check, unit, th, policy)
        else:
            rule.reconfigure(unit, th, policy)
        silence = self.silences.match(check, component, now)
        outcome = rule.evaluate(component, value, now, host, silenced=silence is not None)
        if outcome is not None:
            self._handle(outcome, silence)
        return outcome

    def forget(self, check: str, component: str) -> None:
        """Drop the ``observe`` rule of (check, component); a firing alert resolves."""
        rule = self.external.pop((check, component), None)
        if rule is None:
            return
        now = self.clock()
        for outcome in rule.sweep(set(), now, self._host or _bare_host(now)):
            self._handle(outcome, self.silences.match(check, component, now))

    # ------------------------------------------------------------------ views

    def status(self) -> MonitorStatus:
        """The ``monitor.status`` result (see the handler)."""
        eng = self.engine
        d = self.dispatcher
        return {
            "enabled": self.config.enabled,
            "running": self._loop_task is not None and not self._loop_task.done(),
            "refresh_s": self.config.refresh,
            "repeat_interval_s": self.config.repeat_interval,
            "ticks": eng.ticks,
            "skipped_ticks": eng.skipped_ticks,
            "last_tick_at": eng.last_tick_at,
            "last_tick_ms": eng.last_tick_ms,
            "last_collect_ms": eng.last_collect_ms,
            "errors": dict(eng.errors),
            "checks": eng.status_rows(),
            "firing": len(eng.firing()),
            "silences": [s.to_wire() for s in self.silences.list()],
            "providers": list(self.providers),
            "provider_status": d.provider_status() if d else [],
            "subscribers": len(self.bus),
            "queue": {
                "depth": d.depth if d else 0,
                "in_flight": d.in_flight if d else 0,
                "capacity": self.config.alerts.queue_size,
                "capacity_bytes": self.config.alerts.queue_max_bytes,
                "workers": self.config.alerts.workers,
                "dropped": d.dropped if d else 0,
            },
        }

    def checks(self) -> list[CheckConfig]:
        """Every check of ``CHECKS`` with its config: check, enabled, and when enabled
        unit, warning, critical, duration_s, hysteresis and the components seen."""
        specs = rule_specs(self.config)
        out: list[CheckConfig] = []
        for name in (check.name for check in CHECKS):
            if name not in specs:
                out.append({"check": name, "enabled": False})
                continue
            unit, th = specs[name]
            rule = self.engine.rules.get(name)
            out.append({"check": name, "enabled": True, "unit": unit, "warning": th.warning,
                        "critical": th.critical, "duration_s": th.duration,
                        "hysteresis": th.hysteresis,
                        "components": sorted(rule.states) if rule else []})
        return out

    def check_names(self) -> list[str]:
        """Every check name an alert can carry: the collectors' (``CHECKS``), ``service``
        (the service checks), ``proc`` (supervised groups) and any other fed through
        ``observe``."""
        names = {check.name for check in CHECKS} | {"service", "proc"}
        names.update(check for check, _ in self.external)
        return sorted(names)

    def _check_known(self, pattern: str) -> None:
        """``InvalidParams`` (data: ``valid``, the check names) when the check name or
        glob ``pattern`` matches no check: a typo would otherwise silence nothing."""
        names = self.check_names()
        if not any(fnmatch.fnmatchcase(name, pattern) for name in names):
            raise InvalidParams(
                f"unknown check {pattern!r}; valid checks: {', '.join(names)}",
                {"param": "check", "got": pattern, "valid": names})

    def provider_names(self) -> list[str]:
        """Enabled provider names."""
        return list(self.providers)

    # ------------------------------------------------------------------ actions

    def history_page(self, limit: int = 50, check: str | None = None,
                     component: str | None = None) -> MonitorHistory:
        """The ``monitor.history`` result: ``{"alerts": [HistoryEntry.to_wire()], "size",
        "capacity"}``, newest first, at most ``limit``, optionally one check/component."""
        entries = self.history.recent(limit, check, component)
        return {"alerts": [e.to_wire() for e in entries], "size": len(self.history),
                "capacity": self.config.history_size}

    def subscribe(self, listener: Callable[[Alert], None], check: str | None = None,
                  component: str | None = None,
                  severity: Severity | None = None) -> Callable[[], None]:
        """Receive every alert sent (not silenced ones) whose check and component match
        the globs ``check``/``component`` and whose severity is at least ``severity``;
        returns the unsubscribe function."""
        if check is None and component is None and severity is None:
            return self.bus.subscribe(listener)
        floor = SEVERITY_RANK[severity] if severity else 0

        def matching(alert: Alert) -> None:
            if check is not None and not fnmatch.fnmatchcase(alert.check, check):
                return
            if component is not None and not fnmatch.fnmatchcase(alert.component, component):
                return
            if SEVERITY_RANK[alert.severity] >= floor:
                listener(alert)

        return self.bus.subscribe(matching)

    def silence(self, check: str | None, component: str | None, duration_s: float,
                comment: str = "", created_by: str = "") -> Silence:
        """Add a silence (see ``Silences.add``). Raises ``InvalidParams`` without a check
        or component pattern or for a duration that is not positive, ``Overloaded`` when
        the silences are at their limit."""
        if not check and not component:
            raise InvalidParams("monitor.silence needs a check or a component pattern",
                                {"param": "check", "reason": "check or component required"})
        if check:
            self._check_known(check)
        try:
            s = self.silences.add(check, component, duration_s, comment, created_by)
        except OverflowError as exc:
            raise Overloaded(str(exc)) from exc
        except ValueError as exc:
            raise InvalidParams(str(exc), {"param": "duration_s"}) from exc
        log.info("silence %s added: check=%s component=%s for %gs (%s)", s.id, check,
                 component, duration_s, comment)
        return s

    def unsilence(self, silence: str | None = None, check: str | None = None,
                  component: str | None = None) -> list[Silence]:
        """Remove the silence with id ``silence``, or those with the given check/component
        patterns; returns the removed ones. Raises ``NotFound`` when nothing matched,
        ``InvalidParams`` when no selector is given."""
        if silence:
            gone = self.silences.remove(silence)
            if gone is None:
                raise NotFound(f"no silence {silence!r}", {"silence": silence})
            return [gone]
        if check is None and component is None:
            raise InvalidParams("monitor.unsilence needs a silence id, a check or a component",
                                {"param": "silence"})
        removed = self.silences.remove_matching(check, component)
        if not removed:
            raise NotFound("no silence matches", {"check": check, "component": component})
        return removed

    def test_alert(self) -> Alert:
        """The alert ``monitor.test`` sends: check/component ``test``, severity warning,
        flagged ``test`` (and ``tinymonitor`` under ``compat: tinymonitor``, so it has
        TinyMonitor's bodies) (blocking: reads the host context; use the thread pool)."""
        now = self.clock()
        host = (self._collectors.host_context(None, now) if self._collectors is not None
                else _bare_host(now))
        return Alert(id=new_alert_id(), check="test", component="test", severity="warning",
                     status="firing", value=0.0, unit="percent", threshold=None,
                     started_at=now, host=host, created_at=now,
                     fingerprint=fingerprint("test", "test", host.hostname), test=True,
                     tinymonitor=self.config.compat == "tinymonitor",
                     text="test" if self.config.compat == "tinymonitor" else "")

    async def test(self, provider: str | None = None) -> tuple[Alert, list[ProviderAttempt]]:
        """Send a test alert through ``provider`` (or every enabled provider) once each,
        concurrently, and to the alert bus's subscribers (``monitor.subscribe``, ``/ws``;
        the alert has ``test: true``); returns the alert and one result per provider
        ``{provider, ok, error, status_code, duration_ms}``. Raises ``NotFound`` for a
        provider that is not enabled."""
        if provider is not None and provider not in self.providers:
            known = ", ".join(PROVIDER_NAMES)
            raise NotFound(f"provider {provider!r} is not enabled (providers: {known}; "
                           f"enabled: {', '.join(self.providers) or 'none'})",
                           {"provider": provider, "enabled": list(self.providers)})
        targets = [self.providers[provider]] if provider else list(self.providers.values())
        alert = await self.runtime.run_blocking(self.test_alert)
        entry = self.history.add(alert)
        # subscribers (``monitor.subscribe``, ``xsys monitor watch``) see it too, marked
        # ``test: true``, so a subscriber can be tested end to end
        self.bus.publish(alert)
        if self.dispatcher is None:
            raise NotFound("the monitor is not running", {"provider": provider})
        dispatcher = self.dispatcher
        results = await asyncio.gather(*(dispatcher.attempt(p, alert) for p in targets))
        out: list[ProviderAttempt] = []
        for p, r in zip(targets, results, strict=True):
            _record(entry, p.name, r)
            if r.ok:
                self.metrics.sent.labels(p.name).inc()
            else:
                self.metrics.failed.labels(p.name).inc()
            out.append({"provider": p.name, "ok": r.ok, "error": r.error,
                        "status_code": r.status_code, "duration_ms": round(r.duration_ms, 2)})
        return alert, out


def _record(entry: HistoryEntry, provider: str, r: AttemptResult) -> None:
    d = entry.delivery(provider)
    d.attempts = 1
    d.status = "sent" if r.ok else "failed"
    d.error = r.error
    d.status_code = r.status_code
    d.updated_at = time.time()


def _bare_host(now: float) -> HostContext:
    return HostContext(socket.gethostname(), (), (0.0, 0.0, 0.0),
                       max(0.0, now - booted_at()))
