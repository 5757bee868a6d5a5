"""The snapshot hub: live snapshot streams over the one background sampler.

Every subscriber names an interval and the sections it wants; the hub asks the sampler
(``xsys.host.sampler``) to sample at the fastest interval any subscriber wants (none:
the sampler keeps ``sys.sample_interval_s`` alone), and after each sample hands every
subscriber that is due one snapshot built from that sample: N subscribers cost one
sampling, and the sections are read once per sample for all of them.

A stream is conflated: a subscriber holds at most one undelivered snapshot; a newer one
replaces it and ``dropped`` counts the replaced ones. Consumers: the ``sys.subscribe``
handler (IPC), the HTTP gateway's ``/ws`` and push mode, through ``SnapshotHub.subscribe``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypedDict

from xsys.config import SysConfig
from xsys.host import Runner, Sampler, Snapshot
from xsys.live import sections as sec
from xsys.protocol import InvalidParams, Overloaded

log = logging.getLogger(__name__)

#: The longest interval a subscriber may ask for (s).
MAX_INTERVAL_S = 3600.0

#: ``on_snapshot(snapshot)``: a push consumer instead of the async iterator (loop thread;
#: must not block). It then owns the conflation of what it cannot send yet.
OnSnapshot = Callable[[dict[str, Any]], None]

_ids = itertools.count(1)


class LiveStats(TypedDict):
    """``SnapshotHub.stats()`` (``sys.live_stats``): ``subscriptions`` open now,
    ``sampler_passes`` (background samples since start), ``sampler_period_s`` (now),
    ``ticks`` (samples that fed subscribers), ``busy_skips`` (samples skipped while the
    previous one was still being built), ``snapshots_made``, ``dropped`` (replaced before
    delivery, over the open subscriptions)."""

    subscriptions: int
    sampler_passes: int
    sampler_period_s: float
    ticks: int
    busy_skips: int
    snapshots_made: int
    dropped: int


class LiveSubscription:
    """One subscriber's stream: an async iterator of snapshot dicts
    ``{"seq", "ts" (epoch s of the sample), "dropped", <section>: {...}, ...}``.

    ``seq`` counts the snapshots made for this subscriber from 1 (a gap means some were
    dropped); ``dropped`` is how many were replaced by a newer one before the consumer
    took them (also the attribute ``.dropped``). Iteration ends after ``close()``.
    Attributes: ``id``, ``interval_s`` (after clamping), ``sections``, ``per_cpu``,
    ``top_processes``, ``process_sort``, ``seq``, ``delivered``, ``closed``.
    """

    def __init__(self, hub: SnapshotHub, interval_s: float, sections: tuple[str, ...],
                 per_cpu: bool, top_processes: int, process_sort: str,
                 on_snapshot: OnSnapshot | None) -> None:
        self.id = f"live-{next(_ids)}"
        self.interval_s = interval_s
        self.sections = sections
        self.per_cpu = per_cpu
        self.top_processes = top_processes
        self.process_sort = process_sort
        self.seq = 0
        self.dropped = 0
        self.delivered = 0
        self.closed = False
        self.next_due = 0.0
        self.uid: int | None = None
        self._hub = hub
        self._on_snapshot = on_snapshot
        self._pending: dict[str, Any] | None = None
        self._ready = asyncio.Event()

    @property
    def shape(self) -> tuple[tuple[str, ...], bool, int, str]:
        """What a snapshot for this subscriber holds (subscribers alike share one)."""
        return self.sections, self.per_cpu, self.top_processes, self.process_sort

    def offer(self, body: Mapping[str, Any], ts: float) -> None:
        """Hand over the next snapshot's sections (the hub calls it, loop thread)."""
        if self.closed:
            return
        self.seq += 1
        snap = {"seq": self.seq, "ts": ts, "dropped": self.dropped, **body}
        if self._on_snapshot is not None:
            self.delivered += 1
            self._on_snapshot(snap)
            return
        if self._pending is not None:
            self.dropped += 1
        self._pending = snap
        self._ready.set()

    def __aiter__(self) -> LiveSubscription:
        return self

    async def __anext__(self) -> dict[str, Any]:
        while self._pending is None:
            if self.closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        snap, self._pending = self._pending, None
        snap["dropped"] = self.dropped
        self.delivered += 1
        return snap

    async def __aenter__(self) -> LiveSubscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End the stream (idempotent): the hub forgets it, iteration stops."""
        if self.closed:
            return
        self.closed = True
        self._pending = None
        self._ready.set()
        self._hub._remove(self)


class SnapshotHub:
    """Live snapshots for every subscriber from the daemon's one ``Sampler``.

    ``settings()`` gives the current ``SysConfig`` (``min_interval_s``,
    ``max_subscriptions``; read per call, so a reload applies to new subscriptions);
    ``runner`` runs the blocking section reads (the app's pool) and background tasks;
    ``monitor_states()`` and ``check_states()`` (loop thread) feed the ``monitor`` and
    ``checks`` sections (absent when not given).
    """

    def __init__(self, sampler: Sampler, runner: Runner, settings: Callable[[], SysConfig],
                 monitor_states: Callable[[], dict[str, Any]] | None = None,
                 check_states: Callable[[], dict[str, Any]] | None = None) -> None:
        self.sampler = sampler
        self.runner = runner
        self.settings = settings
        self.monitor_states = monitor_states
        self.check_states = check_states
        self.subscriptions: dict[str, LiveSubscription] = {}
        self.ticks = 0
        self.busy_skips = 0
        self.snapshots_made = 0
        self._busy = False
        self._listening = False

    # ---------------------------------------------------------------- params

    def check_params(self, interval_s: float, sections: Sequence[str] | None,
                     top_processes: int, process_sort: str = "cpu"
                     ) -> tuple[float, tuple[str, ...], int]:
        """Validate and normalise: the interval clamped to ``sys.min_interval_s``, the
        sections in ``SECTIONS`` order (default ``DEFAULT_SECTIONS``; ``top_processes``
        > 0 adds ``processes``), the process count (``processes`` without one: 10).
        Raises ``InvalidParams`` (``data.param`` names the parameter) for an interval
        that is not a number in (0, 3600], an unknown or empty section list, a process
        count outside 0..100 or a ``process_sort`` other than cpu and memory."""
        if process_sort not in sec.PROCESS_SORTS:
            raise InvalidParams(f"parameter 'process_sort': expected cpu or memory, got "
                                f"{process_sort!r}", {"param": "process_sort",
                                                      "choices": list(sec.PROCESS_SORTS)})
        if (isinstance(interval_s, bool) or not isinstance(interval_s, (int, float))
                or not math.isfinite(interval_s) or not 0 < interval_s <= MAX_INTERVAL_S):
            raise InvalidParams(f"parameter 'interval_s': expected seconds in (0, "
                                f"{MAX_INTERVAL_S:g}], got {interval_s!r}",
                                {"param": "interval_s", "max": MAX_INTERVAL_S})
        if (isinstance(top_processes, bool) or not isinstance(top_processes, int)
                or not 0 <= top_processes <= sec.MAX_TOP_PROCESSES):
            raise InvalidParams(f"parameter 'top_processes': expected 0..."
                                f"{sec.MAX_TOP_PROCESSES}, got {top_processes!r}",
                                {"param": "top_processes", "max": sec.MAX_TOP_PROCESSES})
        names = sec.DEFAULT_SECTIONS if sections is None else tuple(sections)
        if isinstance(sections, (str, bytes)) or not names:
            raise InvalidParams("parameter 'sections': expected a non-empty list of "
                                f"{', '.join(sec.SECTIONS)}",
                                {"param": "sections", "sections": list(sec.SECTIONS)})
        unknown = [n for n in names if n not in sec.SECTIONS]
        if unknown:
            raise InvalidParams(f"parameter 'sections': unknown section {unknown[0]!r} "
                                f"(valid: {', '.join(sec.SECTIONS)})",
                                {"param": "sections", "section": unknown[0],
                                 "sections": list(sec.SECTIONS)})
        wanted = set(names) | ({"processes"} if top_processes else set())
        if "processes" in wanted and not top_processes:
            top_processes = sec.DEFAULT_TOP_PROCESSES
        ordered = tuple(n for n in sec.SECTIONS if n in wanted)
        return max(float(interval_s), self.settings().min_interval_s), ordered, top_processes

    # ---------------------------------------------------------------- streams

    def subscribe(self, interval_s: float, sections: Sequence[str] | None = None,
                  per_cpu: bool = False, top_processes: int = 0,
                  process_sort: str = "cpu",
                  on_snapshot: OnSnapshot | None = None,
                  uid: int | None = None) -> LiveSubscription:
        """Open a stream (loop thread): a snapshot every ``interval_s`` seconds (clamped
        to ``sys.min_interval_s``), the first one as soon as it is built.

        ``sections``: names from ``SECTIONS`` (None: ``DEFAULT_SECTIONS``); ``per_cpu``:
        include ``cpu.per_cpu_percent``; ``top_processes``: rows of the ``processes``
        section, the top N by ``process_sort`` (``cpu``: cpu_percent, ``memory``:
        memory_percent, descending).
        ``on_snapshot``: call it with each snapshot instead of queueing one for the
        iterator. ``uid``: the subscribing peer's (None: unknown, the daemon's own).
        Raises ``InvalidParams`` (see ``check_params``) and ``Overloaded`` (-32005) past
        ``sys.max_subscriptions``, or past ``sys.max_subscriptions_per_uid`` for a ``uid``
        other than root and the daemon's own. Close it with ``.close()``.
        """
        interval, names, top = self.check_params(interval_s, sections, top_processes,
                                                 process_sort)
        limit = self.settings().max_subscriptions
        if len(self.subscriptions) >= limit:
            raise Overloaded(f"too many live subscriptions (sys.max_subscriptions={limit})",
                             {"setting": "sys.max_subscriptions", "max": limit})
        if uid is not None and uid not in (0, os.geteuid()):
            per_uid = self.settings().max_subscriptions_per_uid
            if sum(1 for s in self.subscriptions.values() if s.uid == uid) >= per_uid:
                raise Overloaded(f"uid {uid} holds {per_uid} live subscriptions already "
                                 f"(sys.max_subscriptions_per_uid)",
                                 {"setting": "sys.max_subscriptions_per_uid",
                                  "max": per_uid})
        sub = LiveSubscription(self, interval, names, bool(per_cpu), top, process_sort,
                               on_snapshot)
        sub.uid = uid
        loop = asyncio.get_running_loop()
        sub.next_due = loop.time() + interval
        self.subscriptions[sub.id] = sub
        self._retune()
        self.runner.spawn(self._first(sub), f"live-first-{sub.id}")
        return sub

    async def snapshot(self, sections: Sequence[str] | None = None, per_cpu: bool = False,
                       top_processes: int = 0, process_sort: str = "cpu"
                       ) -> dict[str, Any]:
        """One snapshot now from the latest sample: ``{"seq": 0, "ts", <section>...}``
        (awaitable: the sections not kept by the sampler are read in the pool). Raises
        ``InvalidParams`` as ``subscribe``."""
        _, names, top = self.check_params(1.0, sections, top_processes, process_sort)
        snap = self.sampler.snapshot() if self.sampler.latest is not None else \
            await self.runner.run_blocking(self.sampler.snapshot)
        shared = await self._build(snap, set(names), top)
        return {"seq": 0, "ts": snap.ts,
                **sec.shape(shared, names, bool(per_cpu), top, process_sort)}

    def stats(self) -> LiveStats:
        """The hub's counters (``LiveStats``)."""
        return {"subscriptions": len(self.subscriptions),
                "sampler_passes": self.sampler.samples_taken,
                "sampler_period_s": self.sampler.period_s, "ticks": self.ticks,
                "busy_skips": self.busy_skips, "snapshots_made": self.snapshots_made,
                "dropped": sum(s.dropped for s in self.subscriptions.values())}

    def close_all(self) -> None:
        """End every stream (shutdown)."""
        for sub in list(self.subscriptions.values()):
            sub.close()

    async def stop(self) -> None:
        """Shutdown hook: end every stream."""
        self.close_all()

    # ---------------------------------------------------------------- internals

    def _remove(self, sub: LiveSubscription) -> None:
        if self.subscriptions.pop(sub.id, None) is not None:
            self._retune()

    def _retune(self) -> None:
        """Tell the sampler the fastest interval wanted, and listen only while someone
        does."""
        fastest = min((s.interval_s for s in self.subscriptions.values()), default=None)
        self.sampler.want_interval(fastest)
        if fastest is not None and not self._listening:
            self.sampler.listeners.append(self._on_sample)
            self._listening = True
        elif fastest is None and self._listening:
            self.sampler.listeners.remove(self._on_sample)
            self._listening = False

    async def _first(self, sub: LiveSubscription) -> None:
        first = self.sampler.first_sampled  # the daemon's first sample comes after READY
        if first is not None and not first.done():
            await asyncio.shield(first)
        snap = self.sampler.latest
        if snap is None:
            return
        shared = await self._build(snap, set(sub.sections), sub.top_processes)
        if not sub.closed and sub.seq == 0:
            sub.offer(sec.shape(shared, *sub.shape), snap.ts)
            self.snapshots_made += 1

    async def _build(self, snap: Snapshot, wanted: set[str], top_n: int) -> dict[str, Any]:
        shared: dict[str, Any] = {}
        if wanted - sec.LOOP_SECTIONS:
            shared = await self.runner.run_blocking(sec.build, snap, wanted, top_n)
        if "monitor" in wanted and self.monitor_states is not None:
            shared["monitor"] = self.monitor_states()
        if "checks" in wanted and self.check_states is not None:
            shared["checks"] = self.check_states()
        return shared

    def _on_sample(self, snap: Snapshot) -> None:
        """Sampler listener: feed the subscribers due at this sample (loop thread)."""
        if self._busy:
            self.busy_skips += 1
            return
        now = asyncio.get_running_loop().time()
        slack = self.sampler.period_s / 2
        due = [s for s in self.subscriptions.values() if s.next_due - slack <= now]
        if not due:
            return
        for sub in due:
            sub.next_due += sub.interval_s
            if sub.next_due < now:  # fell behind: no burst to catch up
                sub.next_due = now + sub.interval_s
        self._busy = True
        self.ticks += 1
        self.runner.spawn(self._feed(snap, due), "live-feed")

    async def _feed(self, snap: Snapshot, due: list[LiveSubscription]) -> None:
        try:
            wanted = {name for s in due for name in s.sections}
            top = max((s.top_processes for s in due), default=0)
            try:
                shared = await self._build(snap, wanted, top)
            except Exception:
                log.exception("building live snapshot sections failed")
                return
            bodies: dict[tuple[tuple[str, ...], bool, int, str], dict[str, Any]] = {}
            for sub in due:
                body = bodies.get(sub.shape)
                if body is None:
                    body = bodies[sub.shape] = sec.shape(shared, *sub.shape)
                sub.offer(body, snap.ts)
                self.snapshots_made += 1
        finally:
            self._busy = False
