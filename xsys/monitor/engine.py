"""The monitor engine: every ``refresh`` seconds one collection pass (blocking, in the
thread pool) and one evaluation of every check's rule; due notifications go to the
``on_outcome`` callback (history, IPC bus, dispatcher). The engine never waits for a
delivery, so slow providers do not shift its rhythm; a collection pass that overruns is
waited for at most ``max(30 s, 5 * refresh)`` and no second one starts while it runs.

``clock`` (epoch seconds) is injectable: tests drive ``tick()`` directly with a fake
clock and a fake ``collect``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable

from xsys.alerts.model import SEVERITY_RANK
from xsys.monitor.collectors import CHECKS, COLLECTOR_NAME, Collection
from xsys.monitor.config import MonitorConfig
from xsys.monitor.rules import CheckStatus, Outcome, Policy, Rule, Thresholds, TinyMonitorRule
from xsys.monitor.silences import Silence, Silences

log = logging.getLogger(__name__)

Collect = Callable[[], Awaitable[Collection]]
OnOutcome = Callable[[Outcome, Silence | None], None]

def rule_specs(cfg: MonitorConfig) -> dict[str, tuple[str, Thresholds]]:
    """The enabled checks of ``cfg`` (from ``collectors.CHECKS``): check -> (unit,
    thresholds)."""
    specs: dict[str, tuple[str, Thresholds]] = {}
    for check in CHECKS:
        thresholds = check.thresholds(cfg)
        if thresholds is not None:
            specs[check.name] = (check.unit_of(cfg), thresholds)
    return specs


class Engine:
    """Rules, silences and the tick loop (see the module docstring)."""

    def __init__(self, config: MonitorConfig, collect: Collect, on_outcome: OnOutcome,
                 silences: Silences, clock: Callable[[], float] = time.time,
                 on_tick: Callable[[Collection, float], None] | None = None) -> None:
        self.config = config
        self._collect = collect
        self._on_outcome = on_outcome
        self._on_tick = on_tick
        self.silences = silences
        self.clock = clock
        self.rules: dict[str, Rule] = {}
        self.ticks = 0
        self.last_tick_at: float | None = None
        self.last_tick_ms: float | None = None
        self.last_collect_ms: float | None = None
        self.errors: dict[str, str] = {}
        self.skipped_ticks = 0
        self._pending: asyncio.Future[Collection] | None = None
        self.reconfigure(config)

    # ------------------------------------------------------------------ config

    def reconfigure(self, config: MonitorConfig) -> None:
        """Apply a (reloaded) config: rules of enabled checks are updated in place (their
        states survive), new ones created, disabled ones forgotten; ``compat:
        tinymonitor`` makes ``TinyMonitorRule`` rules (a change of ``compat`` starts
        every rule afresh)."""
        self.config = config
        policy = Policy(config.repeat_interval, config.send_resolved)
        specs = rule_specs(config)
        kind = TinyMonitorRule if config.compat == "tinymonitor" else Rule
        for name in [n for n in self.rules
                     if n not in specs or type(self.rules[n]) is not kind]:
            del self.rules[name]
        for name, (unit, th) in specs.items():
            rule = self.rules.get(name)
            if rule is None:
                self.rules[name] = kind(name, unit, th, policy)
            else:
                rule.reconfigure(unit, th, policy)

    # ------------------------------------------------------------------ ticks

    async def tick(self, guarded: bool = False) -> list[Outcome]:
        """Collect once, evaluate every rule, hand due notifications to ``on_outcome``.
        Returns them (silenced ones included). ``guarded``: bound the collection pass (see
        ``_guarded_collect``), as the loop does."""
        started = time.perf_counter()
        collection = await (self._guarded_collect() if guarded else self._collect())
        now = collection.ts or self.clock()
        self.errors = dict(collection.errors)
        outcomes: list[tuple[Outcome, Silence | None]] = []
        seen: dict[str, set[str]] = {}
        for sample in collection.samples:
            rule = self.rules.get(sample.check)
            if rule is None:
                continue
            seen.setdefault(sample.check, set()).add(sample.component)
            silence = self.silences.match(sample.check, sample.component, now)
            outcome = rule.evaluate(sample.component, sample.value, now, collection.host,
                                    silenced=silence is not None, text=sample.text)
            if outcome is not None:
                outcomes.append((outcome, silence))
        for name, rule in self.rules.items():
            if COLLECTOR_NAME.get(name, name) in collection.errors:  # state left alone
                continue
            for outcome in rule.sweep(seen.get(name, set()), now, collection.host):
                silence = self.silences.match(name, outcome.alert.component, now)
                outcomes.append((outcome, silence))
        self.ticks += 1
        self.last_tick_at = now
        self.last_collect_ms = collection.duration_ms
        for outcome, silence in outcomes:
            try:
                self._on_outcome(outcome, silence)
            except Exception:
                log.exception("handling alert %s failed", outcome.alert.id)
        self.last_tick_ms = (time.perf_counter() - started) * 1000
        if self._on_tick is not None:
            self._on_tick(collection, self.last_tick_ms)
        return [o for o, _ in outcomes]

    async def run(self) -> None:
        """Tick every ``config.refresh`` seconds until cancelled, on a fixed grid (a slow
        tick does not shift the following ones; missed slots are skipped, not bunched)."""
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            await self._guarded_tick()
            refresh = self.config.refresh
            next_at += refresh
            now = loop.time()
            if next_at <= now:
                missed = math.floor((now - next_at) / refresh) + 1
                self.skipped_ticks += missed
                next_at += missed * refresh
            await asyncio.sleep(next_at - now)

    async def _guarded_tick(self) -> None:
        if self._pending is not None and not self._pending.done():
            self.skipped_ticks += 1
            log.warning("monitor: the previous collection is still running; tick skipped")
            return
        try:
            await self.tick(guarded=True)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("monitor tick failed")

    async def _guarded_collect(self) -> Collection:
        """``collect()``, abandoned after ``max(30, 5 * refresh)`` seconds (a stalled
        ``statvfs``): the thread finishes on its own and no new pass starts until it has."""
        fut = asyncio.ensure_future(self._collect())
        self._pending = fut
        timeout = max(30.0, 5 * self.config.refresh)
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"collection took more than {timeout:g}s") from None

    async def close(self) -> None:
        """Cancel and await a collection pass still in flight (shutdown)."""
        fut, self._pending = self._pending, None
        if fut is not None and not fut.done():
            fut.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await fut

    # ------------------------------------------------------------------ views

    def status_rows(self) -> list[CheckStatus]:
        """Every component of every rule (``ComponentState.to_wire``), sorted."""
        rows = []
        for name in sorted(self.rules):
            rule = self.rules[name]
            for component in sorted(rule.states):
                rows.append(rule.states[component].to_wire(rule.thresholds))
        return rows

    def firing(self) -> list[CheckStatus]:
        """Rows of the components currently firing, most severe first."""
        rows = [r for r in self.status_rows() if r["state"] != "ok"]
        rows.sort(key=lambda r: -SEVERITY_RANK[r["state"]])
        return rows
