"""The alert dispatcher: one delivery lane per provider, so that a provider that hangs or
fails never delays, starves or drops the alerts of another.

- Routing: each alert becomes one job per provider that ``accepts`` it (levels/rules).
- Lanes: every provider has its own queue, bounded in count (``queue_size``) and in bytes
  (``queue_max_bytes``, the msgpack size of the alerts), and its own concurrency limit
  (``workers`` attempts in flight). An attempt is one task, bounded by the provider's
  ``timeout``; nothing is shared between lanes but the event loop.
- Full lane: the oldest job of the lowest severity is dropped (or the new one, when it is
  of lower severity than everything queued), logged and counted in
  ``xsys_alerts_dropped_total{provider}``; never silently.
- Retries: connection errors, timeouts, 5xx and 429 are retried ``retries`` times, after
  ``backoff_s * 2**n`` seconds (at most ``backoff_max_s``) with jitter, or after the
  server's ``Retry-After`` (at most ``retry_after_max_s``). A job waiting for its retry
  sits in its lane's queue with a timer (``loop.call_later``); it holds no worker.
- Circuit breaker (per lane): ``circuit_failures`` consecutive failed attempts open it;
  while open no attempt is made and new jobs queue (bounded, as above); after
  ``circuit_open_s`` it goes half-open and lets one probe through; the probe's success
  closes it (the queue then flows), its failure opens it again.
- Results go to the alert's history entry (status, attempts, error per provider), to the
  lane's counters (``provider_status()``, shown by ``monitor.status``) and to the
  Prometheus metrics of ``xsys.alerts.metrics``; failures and drops are logged with the
  provider and alert id.
- ``stop(deadline_s)`` drains: no new jobs, queued ones are delivered until the deadline
  (retries and breaker cool-downs that would pass it are given up at once), then every
  attempt task is cancelled and awaited, every timer cancelled, and what is left is
  marked dropped (queued) or failed (waiting for a retry) and counted.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import itertools
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypedDict

import msgpack

from xsys.alerts.config import AlertsConfig
from xsys.alerts.history import HistoryEntry
from xsys.alerts.metrics import AlertMetrics
from xsys.alerts.model import SEVERITY_RANK, Alert
from xsys.alerts.providers.base import DeliveryError, Provider
from xsys.alerts.tinymonitor import LOADED_NAMES
from xsys.protocol import Overloaded

log = logging.getLogger(__name__)

_job_seq = itertools.count()

CircuitState = Literal["closed", "open", "half_open"]
#: ``xsys_alert_circuit_state`` values.
CIRCUIT_STATE_VALUE: dict[str, int] = {"closed": 0, "half_open": 1, "open": 2}
#: What a queued job costs besides its alert (the Job, its timer, references), in bytes.
JOB_OVERHEAD_BYTES = 256


class ProviderStatus(TypedDict):
    """One provider's delivery state (``monitor.status`` ``provider_status``): ``name``,
    ``state`` of its circuit breaker (closed|open|half_open), jobs ``queued`` and their
    ``queued_bytes``, attempts ``in_flight``, ``consecutive_failures``, the
    ``delivered_total``/``failed_total``/``dropped_total`` counters, ``next_attempt_at``
    (epoch s when attempts are held back, else None) and ``last_error``."""

    name: str
    state: CircuitState
    queued: int
    queued_bytes: int
    in_flight: int
    consecutive_failures: int
    delivered_total: int
    failed_total: int
    dropped_total: int
    next_attempt_at: float | None
    last_error: str | None


class TimerHandle(Protocol):
    """What ``call_later`` returns: something that can be cancelled
    (``asyncio.TimerHandle``)."""

    def cancel(self) -> None:
        """Stop the callback from running (no-op once it ran)."""


#: ``call_later(delay_s, callback) -> TimerHandle``: run ``callback()`` on the loop after
#: ``delay_s`` seconds (default: the running loop's ``call_later``).
CallLater = Callable[[float, Callable[[], None]], TimerHandle]


@dataclass(eq=False)
class Job:
    """One delivery: ``alert`` to ``provider``, recorded in ``entry``. ``size_bytes``: what
    it counts against ``queue_max_bytes``; ``attempts`` made so far; while it waits for a
    retry: ``timer``, ``due_at`` (epoch s) and ``due_mono`` (loop time)."""

    alert: Alert
    provider: Provider
    entry: HistoryEntry
    seq: int = 0
    size_bytes: int = JOB_OVERHEAD_BYTES
    attempts: int = 0
    timer: TimerHandle | None = field(default=None, repr=False)
    due_at: float | None = None
    due_mono: float | None = None

    @property
    def rank(self) -> int:
        """Severity rank (warning 1, critical 2): lower ranks are dropped first."""
        return SEVERITY_RANK[self.alert.severity]

    @property
    def order(self) -> tuple[int, int]:
        """Drop order: the smallest goes first (lowest severity, then oldest)."""
        return self.rank, self.seq


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


class Lane:
    """The delivery state of one provider: its queue (``ready`` jobs and ``delayed`` ones
    waiting for a retry), the attempt ``tasks`` in flight, the circuit breaker and the
    counters ``provider_status`` reports."""

    def __init__(self, provider: Provider, concurrency: int) -> None:
        self.provider = provider
        self.name = provider.name
        self.concurrency = concurrency
        self.ready: collections.deque[Job] = collections.deque()
        self.delayed: dict[int, Job] = {}
        self.tasks: dict[asyncio.Task[None], Job] = {}
        self.queued_bytes = 0
        self.state: CircuitState = "closed"
        self.consecutive_failures = 0
        self.reopen_at: float | None = None
        self.reopen_mono: float | None = None
        self.reopen_timer: TimerHandle | None = None
        self.delivered_total = 0
        self.failed_total = 0
        self.dropped_total = 0
        self.last_error: str | None = None

    @property
    def queued(self) -> int:
        """Jobs waiting: ready ones and those waiting for a retry."""
        return len(self.ready) + len(self.delayed)

    @property
    def inflight(self) -> int:
        """Attempts running now."""
        return len(self.tasks)

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing in flight."""
        return not self.ready and not self.delayed and not self.tasks

    def pending(self) -> Iterator[Job]:
        """Every queued job (ready, then waiting for a retry)."""
        yield from self.ready
        yield from self.delayed.values()

    def next_attempt_at(self) -> float | None:
        """Epoch seconds of the next attempt when it is held back: the end of an open
        breaker's cool-down, or the earliest retry when only retries are queued; None when
        an attempt may start as soon as there is a job and a free slot."""
        if self.state == "open":
            return self.reopen_at
        if not self.ready and self.delayed:
            dues = [j.due_at for j in self.delayed.values() if j.due_at is not None]
            return min(dues) if dues else None
        return None

    def to_wire(self) -> ProviderStatus:
        """``{name, state (closed|open|half_open), queued, queued_bytes, in_flight,
        consecutive_failures, delivered_total, failed_total, dropped_total,
        next_attempt_at (epoch s or None), last_error}``."""
        return {
            "name": self.name,
            "state": self.state,
            "queued": self.queued,
            "queued_bytes": self.queued_bytes,
            "in_flight": self.inflight,
            "consecutive_failures": self.consecutive_failures,
            "delivered_total": self.delivered_total,
            "failed_total": self.failed_total,
            "dropped_total": self.dropped_total,
            "next_attempt_at": self.next_attempt_at(),
            "last_error": self.last_error,
        }


def alert_size_bytes(alert: Alert) -> int:
    """What one queued delivery of ``alert`` counts against ``queue_max_bytes``: the
    msgpack size of the alert plus ``JOB_OVERHEAD_BYTES``."""
    return len(msgpack.packb(alert.to_wire(), use_bin_type=True)) + JOB_OVERHEAD_BYTES


class Dispatcher:
    """Delivers alerts to ``providers`` (name -> provider), one ``Lane`` each, with
    ``config``'s limits, retries and circuit breaker. ``call_later`` (timers), ``clock``
    (epoch seconds, for ``next_attempt_at``) and ``rng`` (jitter, 0..1) are injectable for
    tests."""

    def __init__(self, providers: dict[str, Provider], config: AlertsConfig,
                 metrics: AlertMetrics, call_later: CallLater | None = None,
                 clock: Callable[[], float] = time.time,
                 rng: Callable[[], float] = random.random) -> None:
        self.providers = dict(providers)
        self.config = config
        self.metrics = metrics
        self._call_later_arg = call_later
        self._call_later: CallLater | None = call_later
        self._clock = clock
        self._rng = rng
        self.lanes: dict[str, Lane] = {name: self._new_lane(p)
                                       for name, p in self.providers.items()}
        self._changed = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._accepting = False
        self._stopping = False
        self._closed = False
        self._deadline: float | None = None

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start accepting jobs (on the running loop)."""
        if self._accepting or self._stopping:
            return
        loop = asyncio.get_running_loop()
        self._loop = loop
        if self._call_later_arg is None:
            def call_later(delay: float, callback: Callable[[], None]) -> TimerHandle:
                return loop.call_later(delay, callback)

            self._call_later = call_later
        self._accepting = True
        for lane in self.lanes.values():
            self._publish(lane)

    async def stop(self, deadline_s: float | None = None) -> None:
        """Drain within ``deadline_s`` (default ``drain_timeout_s``), then cancel and await
        every attempt task and cancel every timer; what is left is marked dropped (queued)
        or failed (waiting for a retry) and counted."""
        self._accepting = False
        budget = self.config.drain_timeout_s if deadline_s is None else deadline_s
        loop = asyncio.get_running_loop()
        if not self._stopping:
            self._stopping = True
            self._deadline = loop.time() + budget
            for lane in self.lanes.values():
                self._sweep(lane)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._drained(), budget)
        self._closed = True  # no new attempt from here on
        tasks = [t for lane in self.lanes.values() for t in lane.tasks]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for lane in self.lanes.values():
            if lane.reopen_timer is not None:
                lane.reopen_timer.cancel()
                lane.reopen_timer = None
            for job in list(lane.delayed.values()):
                self._give_up(lane, job)
            while lane.ready:
                self._drop(lane, self._unqueue_ready(lane), "undelivered at shutdown")
            self._publish(lane)

    async def _drained(self) -> None:
        while not all(lane.idle for lane in self.lanes.values()):
            self._changed.clear()
            await self._changed.wait()

    def _signal(self) -> None:
        self._changed.set()

    @property
    def depth(self) -> int:
        """Jobs waiting, all providers together (not counting those being delivered)."""
        return sum(lane.queued for lane in self.lanes.values())

    @property
    def in_flight(self) -> int:
        """Attempts running now, all providers together."""
        return sum(lane.inflight for lane in self.lanes.values())

    @property
    def dropped(self) -> int:
        """Jobs dropped so far, all providers together."""
        return sum(lane.dropped_total for lane in self.lanes.values())

    def provider_status(self) -> list[ProviderStatus]:
        """One ``Lane.to_wire()`` map per provider, in the providers' order."""
        return [lane.to_wire() for lane in self.lanes.values()]

    # ---------------------------------------------------------------- routing

    def route(self, alert: Alert) -> list[Provider]:
        """The providers that take ``alert`` (their ``levels``/``rules``)."""
        return [p for p in self.providers.values() if p.accepts(alert)]

    def submit(self, alert: Alert, entry: HistoryEntry,
               providers: Iterable[Provider] | None = None) -> list[str]:
        """Queue ``alert`` for its routed providers (or the given ones); never blocks.
        Returns the provider names queued (drops of a full lane are recorded in
        ``entry``, the lanes' counters and the metrics)."""
        targets = list(self.route(alert) if providers is None else providers)
        names = []
        size = alert_size_bytes(alert) if targets else 0
        for provider in targets:
            entry.delivery(provider.name).updated_at = time.time()
            lane = self._lane(provider)
            job = Job(alert, provider, entry, next(_job_seq), size)
            names.append(provider.name)
            if not self._accepting:
                self._drop(lane, job, "dispatcher stopped")
                continue
            if self._admit(lane, job):
                lane.ready.append(job)
                lane.queued_bytes += job.size_bytes
                self._pump(lane)
            self._publish(lane)
        return names

    def _lane(self, provider: Provider) -> Lane:
        lane = self.lanes.get(provider.name)
        if lane is None:
            lane = self.lanes[provider.name] = self._new_lane(provider)
        return lane

    def _new_lane(self, provider: Provider) -> Lane:
        """A lane with ``workers`` slots, fewer when the provider caps its concurrency
        (``Provider.max_concurrency``: SMTP holds a thread of the shared pool per attempt)."""
        cap = provider.max_concurrency
        return Lane(provider, self.config.workers if cap is None
                    else max(1, min(cap, self.config.workers)))

    def _admit(self, lane: Lane, job: Job) -> bool:
        """Make room for ``job`` in ``lane``'s queue (count and bytes), dropping the
        lowest-ranked, oldest job, or ``job`` itself when it ranks lowest. True when
        ``job`` may be queued."""
        cfg = self.config
        while lane.queued and (lane.queued >= cfg.queue_size
                               or lane.queued_bytes + job.size_bytes > cfg.queue_max_bytes):
            reason = (f"queue full ({cfg.queue_size} deliveries)"
                      if lane.queued >= cfg.queue_size
                      else f"queue full ({cfg.queue_max_bytes} bytes)")
            victim = min(lane.pending(), key=lambda j: j.order)
            if job.order < victim.order:
                self._drop(lane, job, reason)
                return False
            self._unqueue(lane, victim)
            self._drop(lane, victim, reason)
        if job.size_bytes > cfg.queue_max_bytes:
            self._drop(lane, job, f"alert larger than queue_max_bytes ({cfg.queue_max_bytes})")
            return False
        return True

    def _unqueue(self, lane: Lane, job: Job) -> None:
        if job.seq in lane.delayed:
            del lane.delayed[job.seq]
            if job.timer is not None:
                job.timer.cancel()
                job.timer = None
        else:
            lane.ready.remove(job)
        lane.queued_bytes -= job.size_bytes

    def _unqueue_ready(self, lane: Lane) -> Job:
        job = lane.ready.popleft()
        lane.queued_bytes -= job.size_bytes
        return job

    def _drop(self, lane: Lane, job: Job, reason: str) -> None:
        d = job.entry.delivery(lane.name)
        d.status = "dropped"
        d.error = reason if d.error is None else f"{reason} (last error: {d.error})"
        d.updated_at = time.time()
        lane.dropped_total += 1
        self.metrics.dropped.labels(lane.name).inc()
        log.warning("alert %s to %s dropped: %s (%s %s %s)", job.alert.id, lane.name,
                    reason, job.alert.component, job.alert.severity, job.alert.status,
                    extra={"alert_id": job.alert.id, "provider": lane.name})
        self._signal()

    def _publish(self, lane: Lane) -> None:
        """Set the lane's gauges. Not once stopping began: on a reload the new dispatcher
        owns the gauges of the same provider names while this one drains."""
        if self._stopping:
            return
        m = self.metrics
        m.provider_queue_depth.labels(lane.name).set(lane.queued)
        m.provider_inflight.labels(lane.name).set(lane.inflight)
        m.circuit_state.labels(lane.name).set(CIRCUIT_STATE_VALUE[lane.state])
        m.queue_depth.set(self.depth)

    # ---------------------------------------------------------------- attempts

    def _pump(self, lane: Lane) -> None:
        """Start attempts while the lane has ready jobs, free slots and a breaker that
        lets them through (half-open: one probe, alone)."""
        loop = self._loop
        if loop is None or self._closed:
            return
        while lane.ready and lane.inflight < lane.concurrency:
            if lane.state == "open" or (lane.state == "half_open" and lane.tasks):
                break
            job = self._unqueue_ready(lane)
            task = loop.create_task(self._run(lane, job),
                                    name=f"alert-{lane.name}-{job.alert.id}")
            lane.tasks[task] = job
            task.add_done_callback(functools.partial(self._finished, lane))
            if lane.state == "half_open":
                log.info("provider %s half-open: probing with alert %s", lane.name,
                         job.alert.id)
                break
        self._publish(lane)

    def _finished(self, lane: Lane, task: asyncio.Task[None]) -> None:
        lane.tasks.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery task of %s crashed", lane.name, exc_info=task.exception())
        self._pump(lane)
        self._signal()

    async def _run(self, lane: Lane, job: Job) -> None:
        d = job.entry.delivery(lane.name)
        job.attempts += 1
        if job.attempts > 1:
            self.metrics.retries.labels(lane.name).inc()
        d.attempts = job.attempts
        try:
            result = await self.attempt(job.provider, job.alert)
        except asyncio.CancelledError:
            self._drop(lane, job, "undelivered at shutdown")
            raise
        try:
            self._settle(lane, job, result)
        except Exception:  # a bug here must not leave the job unaccounted for
            log.exception("settling alert %s to %s failed", job.alert.id, lane.name)
            if d.status == "pending":
                self._fail(lane, job, "internal error")

    def _settle(self, lane: Lane, job: Job, result: AttemptResult) -> None:
        """Record an attempt's result: success closes the breaker; a failure counts towards
        opening it and is retried on a timer, or ends the job as failed."""
        alert = job.alert
        d = job.entry.delivery(lane.name)
        d.updated_at = time.time()
        d.status_code = result.status_code
        if result.ok:
            d.status, d.error = "sent", None
            lane.delivered_total += 1
            lane.consecutive_failures = 0
            self.metrics.sent.labels(lane.name).inc()
            log.info("alert %s sent to %s (%s %s %s)", alert.id, lane.name,
                     alert.component, alert.severity, alert.status,
                     extra={"alert_id": alert.id, "provider": lane.name})
            if lane.state != "closed":
                self._close(lane)
            return
        d.error = lane.last_error = result.error
        lane.consecutive_failures += 1
        if lane.state == "half_open" or (
                lane.state == "closed"
                and lane.consecutive_failures >= self.config.circuit_failures):
            self._open(lane)
        if result.retryable and job.attempts <= self.config.retries:
            delay = self.backoff(job.attempts - 1, result.retry_after)
            log.info("alert %s to %s failed (%s); retry %d in %.2fs", alert.id, lane.name,
                     result.error, job.attempts, delay)
            self._schedule_retry(lane, job, delay)
            return
        self._fail(lane, job)

    def _fail(self, lane: Lane, job: Job, note: str = "") -> None:
        d = job.entry.delivery(lane.name)
        d.status = "failed"
        if note:
            d.error = f"{d.error} ({note})"
        d.updated_at = time.time()
        lane.failed_total += 1
        self.metrics.failed.labels(lane.name).inc()
        log.error("alert %s to %s failed after %d attempt(s): %s", job.alert.id, lane.name,
                  job.attempts, d.error,
                  extra={"alert_id": job.alert.id, "provider": lane.name})
        self._signal()

    def _give_up(self, lane: Lane, job: Job) -> None:
        """End a job waiting for a retry that shutdown will not wait for."""
        self._unqueue(lane, job)
        self._fail(lane, job, "gave up: shutting down")

    def _schedule_retry(self, lane: Lane, job: Job, delay: float) -> None:
        """Queue ``job`` again (bounded like a new one) with a timer that makes it ready
        after ``delay`` seconds; it holds no worker meanwhile."""
        loop = self._loop
        assert loop is not None and self._call_later is not None
        if self._stopping and self._past_deadline(loop.time() + delay):
            self._fail(lane, job, "gave up: shutting down")
            return
        if not self._admit(lane, job):
            return
        job.due_at = self._clock() + delay
        job.due_mono = loop.time() + delay
        lane.delayed[job.seq] = job
        lane.queued_bytes += job.size_bytes
        job.timer = self._call_later(delay, functools.partial(self._retry_due, lane, job))
        self._publish(lane)
        self._sweep(lane)

    def _retry_due(self, lane: Lane, job: Job) -> None:
        if lane.delayed.pop(job.seq, None) is None:
            return
        job.timer = job.due_at = job.due_mono = None
        lane.ready.append(job)
        self._pump(lane)
        self._signal()

    # ---------------------------------------------------------------- circuit breaker

    def _open(self, lane: Lane) -> None:
        loop = self._loop
        assert loop is not None and self._call_later is not None
        cool_down = self.config.circuit_open_s
        was = lane.state
        lane.state = "open"
        lane.reopen_at = self._clock() + cool_down
        lane.reopen_mono = loop.time() + cool_down
        if lane.reopen_timer is not None:
            lane.reopen_timer.cancel()
        lane.reopen_timer = self._call_later(cool_down,
                                             functools.partial(self._half_open, lane))
        self.metrics.circuit_opens.labels(lane.name).inc()
        log.warning("provider %s paused (circuit %s -> open) after %d consecutive failed "
                    "attempt(s), last: %s; %d queued; next attempt in %gs", lane.name, was,
                    lane.consecutive_failures, lane.last_error, lane.queued, cool_down,
                    extra={"provider": lane.name})
        self._publish(lane)
        if self._stopping:
            self._sweep(lane)

    def _half_open(self, lane: Lane) -> None:
        lane.reopen_timer = None
        if lane.state != "open":
            return
        lane.state = "half_open"
        lane.reopen_at = lane.reopen_mono = None
        log.info("provider %s half-open: the next delivery is a probe (%d queued)",
                 lane.name, lane.queued, extra={"provider": lane.name})
        self._pump(lane)
        self._signal()

    def _close(self, lane: Lane) -> None:
        if lane.reopen_timer is not None:
            lane.reopen_timer.cancel()
            lane.reopen_timer = None
        lane.state = "closed"
        lane.reopen_at = lane.reopen_mono = None
        log.info("provider %s resumed (circuit closed); %d queued", lane.name, lane.queued,
                 extra={"provider": lane.name})
        self._publish(lane)

    # ---------------------------------------------------------------- shutdown

    def _past_deadline(self, mono: float) -> bool:
        return self._deadline is not None and mono > self._deadline

    def _sweep(self, lane: Lane) -> None:
        """While stopping: end at once what cannot happen before the deadline (retries due
        after it; everything queued behind a breaker that stays open past it)."""
        if not self._stopping:
            return
        paused = lane.state == "open" and (lane.reopen_mono is None
                                           or self._past_deadline(lane.reopen_mono))
        for job in list(lane.delayed.values()):
            if paused or job.due_mono is None or self._past_deadline(job.due_mono):
                self._give_up(lane, job)
        if paused:
            while lane.ready:
                self._drop(lane, self._unqueue_ready(lane),
                           "undelivered at shutdown (circuit open)")
        self._publish(lane)

    # ---------------------------------------------------------------- one attempt

    async def attempt(self, provider: Provider, alert: Alert) -> AttemptResult:
        """One attempt bounded by the provider's timeout, classified; for a
        ``tinymonitor`` alert the result is also logged as TinyMonitor's providers log it
        (logger ``tinymonitor``)."""
        result = await self._attempt(provider, alert)
        if alert.tinymonitor:
            _log_like_tinymonitor(provider, result)
        return result

    async def _attempt(self, provider: Provider, alert: Alert) -> AttemptResult:
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


_tinymonitor_log = logging.getLogger("tinymonitor")


def _log_like_tinymonitor(provider: Provider, result: AttemptResult) -> None:
    """TinyMonitor's provider log lines: ``[ntfy] Alert sent successfully`` (e-mail:
    ``[smtp] Email sent to [...]``), ``[webhook] Failed to send alert: <status> <body>``
    for an HTTP error (ntfy and Google Chat: ``<body>`` only, as TinyMonitor's
    ``alerts/ntfy.py`` and ``alerts/google_chat.py``), ``[ntfy] Error sending alert:
    <error>`` otherwise. Only TinyMonitor's own providers get lines (not xsys's
    ``console`` or ``alertmanager``)."""
    name = provider.name
    if name not in LOADED_NAMES:
        return
    if result.ok:
        if name == "smtp":
            recipients: list[str] = getattr(provider.config, "recipients", list)()
            _tinymonitor_log.info("[%s] Email sent to %s", name, recipients)
        else:
            _tinymonitor_log.info("[%s] Alert sent successfully", name)
    elif result.status_code is not None and name != "smtp":
        detail = (result.error or "").removeprefix(f"HTTP {result.status_code}").lstrip(": ")
        if name in ("ntfy", "google_chat"):
            _tinymonitor_log.error("[%s] Failed to send alert: %s", name, detail)
        else:
            _tinymonitor_log.error("[%s] Failed to send alert: %s %s", name,
                                   result.status_code, detail)
    elif name == "smtp":
        _tinymonitor_log.error("[%s] Failed to send email: %s", name, result.error)
    else:
        _tinymonitor_log.error("[%s] Error sending alert: %s", name, result.error)
