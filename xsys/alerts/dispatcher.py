"""The alert dispatcher: a bounded queue of (alert, provider) deliveries served by a pool
of worker tasks, so that a slow or dead provider never holds up the monitor or the other
providers.

- Routing: each alert becomes one job per provider that ``accepts`` it (levels/rules).
- Bounded: at ``queue_size`` jobs, the oldest job of the lowest severity is dropped (or the
  new one, when it is of lower severity than everything queued), logged and counted in
  ``xsys_alerts_dropped_total``; never silently.
- Retries: connection errors, timeouts, 5xx and 429 are retried ``retries`` times, after
  ``backoff_s * 2**n`` seconds (at most ``backoff_max_s``) with jitter, or after the
  server's ``Retry-After`` (at most ``retry_after_max_s``). Each attempt is bounded by the
  provider's ``timeout``.
- Results go to the alert's history entry (status, attempts, error per provider) and to
  the sent/failed/dropped counters; failures are logged with the provider and alert id.
- ``stop(deadline_s)`` drains: no new jobs, queued ones are delivered until the deadline
  (backoffs that would pass it are given up), then the workers are cancelled and awaited
  and what is left is marked dropped.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from xsys.alerts.metrics import AlertMetrics
from xsys.alerts.model import SEVERITY_RANK, Alert
from xsys.alerts.providers.base import DeliveryError, Provider
from xsys.monitor.history import HistoryEntry
from xsys.monitor.settings import AlertsConfig
from xsys.protocol import Overloaded

log = logging.getLogger(__name__)

_job_seq = itertools.count()


@dataclass
class Job:
    """One delivery: ``alert`` to ``provider``, recorded in ``entry``."""

    alert: Alert
    provider: Provider
    entry: HistoryEntry
    seq: int = 0

    @property
    def rank(self) -> int:
        """Severity rank (warning 1, critical 2): lower ranks are dropped first."""
        return SEVERITY_RANK[self.alert.severity]


@dataclass(frozen=True)
class AttemptResult:
    """The outcome of one attempt: ``ok``, ``error`` text, ``retryable``, HTTP/SMTP
    ``status_code``, ``retry_after`` (s) and ``duration_ms``."""

    ok: bool
    error: str | None = None
    retryable: bool = False
    status_code: int | None = None
    retry_after: float | None = None
    duration_ms: float = 0.0


class Dispatcher:
    """Delivers alerts to ``providers`` (name -> provider) with ``config``'s pool, queue
    and retry settings. ``sleep`` and ``rng`` are injectable for tests."""

    def __init__(self, providers: dict[str, Provider], config: AlertsConfig,
                 metrics: AlertMetrics,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 rng: Callable[[], float] = random.random) -> None:
        self.providers = dict(providers)
        self.config = config
        self.metrics = metrics
        self._sleep = sleep
        self._rng = rng
        self._jobs: collections.deque[Job] = collections.deque()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
        self._busy = 0
        self._accepting = False
        self._deadline: float | None = None
        self.dropped = 0

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the worker tasks (on the running loop)."""
        if self._workers:
            return
        self._accepting = True
        loop = asyncio.get_running_loop()
        self._workers = [loop.create_task(self._worker(), name=f"alert-worker-{i}")
                         for i in range(self.config.workers)]

    async def stop(self, deadline_s: float | None = None) -> None:
        """Drain within ``deadline_s`` (default ``drain_timeout_s``), then cancel and await
        the workers; undelivered jobs are marked dropped and counted."""
        self._accepting = False
        budget = self.config.drain_timeout_s if deadline_s is None else deadline_s
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + budget
        self._stopping.set()
        if self._workers:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._drained(), budget)
        for task in self._workers:
            task.cancel()
        if self._workers:
            await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        while self._jobs:
            self._drop(self._jobs.popleft(), "undelivered at shutdown")
        self.metrics.queue_depth.set(0)

    async def _drained(self) -> None:
        while self._jobs or self._busy:
            self._idle.clear()
            await self._idle.wait()

    @property
    def depth(self) -> int:
        """Jobs waiting (not counting those being delivered)."""
        return len(self._jobs)

    @property
    def in_flight(self) -> int:
        """Jobs being delivered now."""
        return self._busy

    # ---------------------------------------------------------------- routing

    def route(self, alert: Alert) -> list[Provider]:
        """The providers that take ``alert`` (their ``levels``/``rules``)."""
        return [p for p in self.providers.values() if p.accepts(alert)]

    def submit(self, alert: Alert, entry: HistoryEntry,
               providers: Iterable[Provider] | None = None) -> list[str]:
        """Queue ``alert`` for its routed providers (or the given ones); never blocks.
        Returns the provider names queued (full-queue drops are recorded in ``entry``)."""
        targets = list(self.route(alert) if providers is None else providers)
        names = []
        for provider in targets:
            entry.delivery(provider.name).updated_at = time.time()
            job = Job(alert, provider, entry, next(_job_seq))
            names.append(provider.name)
            if not self._accepting:
                self._drop(job, "dispatcher stopped")
                continue
            if len(self._jobs) >= self.config.queue_size:
                victim = min(self._jobs, key=lambda j: (j.rank, j.seq))
                if job.rank < victim.rank:
                    self._drop(job, "queue full")
                    continue
                self._jobs.remove(victim)
                self._drop(victim, "queue full")
            self._jobs.append(job)
            self._idle.clear()
            self._wakeup.set()
        self.metrics.queue_depth.set(len(self._jobs))
        return names

    def _drop(self, job: Job, reason: str) -> None:
        d = job.entry.delivery(job.provider.name)
        d.status = "dropped"
        d.error = reason
        d.updated_at = time.time()
        self.dropped += 1
        self.metrics.dropped.labels(job.provider.name).inc()
        log.warning("alert %s to %s dropped: %s (%s %s %s)", job.alert.id, job.provider.name,
                    reason, job.alert.component, job.alert.severity, job.alert.status,
                    extra={"alert_id": job.alert.id, "provider": job.provider.name})

    # ---------------------------------------------------------------- workers

    async def _next(self) -> Job:
        while not self._jobs:
            self._wakeup.clear()
            await self._wakeup.wait()
        job = self._jobs.popleft()
        self.metrics.queue_depth.set(len(self._jobs))
        return job

    async def _worker(self) -> None:
        while True:
            job = await self._next()
            self._busy += 1
            try:
                await self.deliver(job)
            except asyncio.CancelledError:
                self._drop(job, "undelivered at shutdown")
                raise
            except Exception:  # a bug in a provider must not kill the worker
                log.exception("delivery of alert %s to %s crashed", job.alert.id,
                              job.provider.name)
            finally:
                self._busy -= 1
                if not self._jobs and not self._busy:
                    self._idle.set()

    async def attempt(self, provider: Provider, alert: Alert) -> AttemptResult:
        """One attempt bounded by the provider's timeout, classified."""
        started = time.perf_counter()

        def took() -> float:
            return (time.perf_counter() - started) * 1000

        try:
            await asyncio.wait_for(provider.send(alert), provider.timeout)
        except DeliveryError as exc:
            return AttemptResult(False, str(exc), exc.retryable, exc.status_code,
                                 exc.retry_after, took())
        except (asyncio.TimeoutError, TimeoutError):
            return AttemptResult(False, f"timed out after {provider.timeout:g}s", True,
                                 duration_ms=took())
        except (OSError, Overloaded) as exc:
            # Overloaded: the thread pool (SMTP) is saturated for now
            return AttemptResult(False, f"{type(exc).__name__}: {exc}", True,
                                 duration_ms=took())
        except Exception as exc:
            log.exception("provider %s raised", provider.name)
            return AttemptResult(False, f"{type(exc).__name__}: {exc}", False,
                                 duration_ms=took())
        return AttemptResult(True, duration_ms=took())

    def backoff(self, retry: int, retry_after: float | None) -> float:
        """Seconds before retry number ``retry`` (0-based): the server's ``Retry-After``
        (capped) if given, else ``backoff_s * 2**retry`` capped at ``backoff_max_s``,
        jittered to between half and all of it."""
        cfg = self.config
        if retry_after is not None:
            return min(max(0.0, retry_after), cfg.retry_after_max_s)
        base: float = min(cfg.backoff_max_s, cfg.backoff_s * 2.0**retry)
        return base / 2 + self._rng() * base / 2

    async def deliver(self, job: Job) -> bool:
        """Deliver one job with retries; records the result; True when sent."""
        provider, alert = job.provider, job.alert
        d = job.entry.delivery(provider.name)
        result = AttemptResult(False, "not attempted")
        for n in range(self.config.retries + 1):
            if n:
                self.metrics.retries.labels(provider.name).inc()
            d.attempts = n + 1
            result = await self.attempt(provider, alert)
            d.updated_at = time.time()
            d.status_code = result.status_code
            if result.ok:
                d.status, d.error = "sent", None
                self.metrics.sent.labels(provider.name).inc()
                log.info("alert %s sent to %s (%s %s %s)", alert.id, provider.name,
                         alert.component, alert.severity, alert.status,
                         extra={"alert_id": alert.id, "provider": provider.name})
                return True
            d.error = result.error
            if not result.retryable or n == self.config.retries:
                break
            delay = self.backoff(n, result.retry_after)
            if self._deadline is not None:
                remaining = self._deadline - asyncio.get_running_loop().time()
                if delay > remaining:
                    d.error = f"{result.error} (gave up: shutting down)"
                    break
            log.info("alert %s to %s failed (%s); retry %d in %.2fs", alert.id, provider.name,
                     result.error, n + 1, delay)
            if not await self._backoff_sleep(delay):
                d.error = f"{result.error} (gave up: shutting down)"
                break
        d.status = "failed"
        self.metrics.failed.labels(provider.name).inc()
        log.error("alert %s to %s failed after %d attempt(s): %s", alert.id, provider.name,
                  d.attempts, d.error,
                  extra={"alert_id": alert.id, "provider": provider.name})
        return False

    async def _backoff_sleep(self, delay: float) -> bool:
        """Wait ``delay`` seconds; False when a shutdown began meanwhile and the wait would
        pass its deadline (the retry is then given up)."""
        if self._stopping.is_set():
            await self._sleep(delay)
            return True
        started = asyncio.get_running_loop().time()
        sleeper = asyncio.ensure_future(self._sleep(delay))
        stopper = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in (sleeper, stopper):
                fut.cancel()
        if sleeper.done() and not sleeper.cancelled():
            return True
        loop_now = asyncio.get_running_loop().time()
        left = delay - (loop_now - started)
        if self._deadline is not None and left > self._deadline - loop_now:
            return False
        await self._sleep(max(0.0, left))
        return True
