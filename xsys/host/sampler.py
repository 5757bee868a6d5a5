"""The background sampler: one pass over the machine every ``sys.sample_interval_s``
seconds in the thread pool, kept as an immutable ``Snapshot`` so that requests
(``sys.cpu``, ``sys.memory``...) and the monitor read the last sample without touching the
OS.

CPU percentages are psutil's ``cpu_percent``/``cpu_times_percent`` over the interval
between two samples, so the first answer is never the meaningless 0.0 of a first call.
Rates (``*_per_s``) are the counter deltas between the last two samples divided by the
seconds between them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar, cast

from xsys.host.cpu import (
    CpuFreq,
    cpu_count_logical,
    cpu_count_physical,
    cpu_freq_mhz,
    cpu_percent_per_cpu,
    cpu_stats,
    cpu_times_percent,
    cpu_times_s,
    getloadavg,
    prime_cpu_percent,
)
from xsys.host.disks import DiskIO, disk_io_counters
from xsys.host.memory import SwapMemory, VirtualMemory, swap_memory, virtual_memory
from xsys.host.network import NetIO, net_io_counters

log = logging.getLogger(__name__)

T = TypeVar("T")


class Runner(Protocol):
    """What the sampler needs of its host application (``xsys.server.app.App`` is one):
    a bounded thread pool and background tasks cancelled at shutdown."""

    async def run_blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run blocking ``fn(*args, **kwargs)`` in the pool and await its result."""
        ...

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        """Start a background task that is cancelled and awaited at shutdown."""
        ...


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """One sample of the machine (read it, never change it: it is shared).

    - ``ts``: epoch seconds of the sample; ``interval_s``: seconds since the previous one
      (0.0 for a first sample, whose rates are then 0.0).
    - ``cpu_percent`` (0..100 overall), ``cpu_percent_per_cpu`` (one per logical CPU),
      ``cpu_times_percent`` (percent per mode), ``cpu_times_s`` (seconds per mode since
      boot), ``cpu_stats`` (counts), ``cpu_freq_mhz`` (or None),
      ``cpu_count_logical``/``cpu_count_physical`` (see ``xsys.host.cpu``).
    - ``memory``: ``VirtualMemory``; ``swap``: ``SwapMemory`` (``xsys.host.memory``).
    - ``load``: 1/5/15-minute load averages (zeros where the platform has none).
    - ``disk_io``: per block device, ``DiskIO`` counters plus ``*_per_s`` rates;
      ``disk_io_total``: their sum (partitions included, as psutil lists them).
    - ``net_io``: per interface, ``NetIO`` counters plus ``*_per_s`` rates;
      ``net_io_total``: their sum.
    """

    ts: float
    interval_s: float
    cpu_percent: float
    cpu_percent_per_cpu: tuple[float, ...]
    cpu_times_percent: Mapping[str, float]
    memory: VirtualMemory
    swap: SwapMemory
    load: tuple[float, float, float]
    disk_io: Mapping[str, DiskIO]
    disk_io_total: DiskIO
    net_io: Mapping[str, NetIO]
    net_io_total: NetIO
    cpu_times_s: Mapping[str, float] = dataclasses.field(default_factory=dict)
    cpu_stats: Mapping[str, int] = dataclasses.field(default_factory=dict)
    cpu_freq_mhz: CpuFreq | None = None
    cpu_count_logical: int = 1
    cpu_count_physical: int | None = None


_DISK_RATE_FIELDS = ("read_bytes", "write_bytes", "read_count", "write_count")
_NET_RATE_FIELDS = ("bytes_sent", "bytes_recv", "packets_sent", "packets_recv",
                    "errin", "errout", "dropin", "dropout")


#: Counters by device or interface (``DiskIO``, ``NetIO``).
_Counters = Mapping[str, Mapping[str, Any]]


def _with_rates(now: _Counters, before: _Counters, fields: tuple[str, ...],
                dt: float) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, counters in now.items():
        row = dict(counters)
        prev = before.get(name)
        for f in fields:
            if f not in counters:
                continue
            if prev is None or dt <= 0 or f not in prev:
                row[f"{f}_per_s"] = 0.0
            else:
                # counters can wrap or reset (device re-plugged): never report negatives
                row[f"{f}_per_s"] = max(0.0, (counters[f] - prev[f]) / dt)
        out[name] = row
    return out


def _total(rows: _Counters) -> dict[str, Any]:
    total: dict[str, Any] = {}
    for row in rows.values():
        for k, v in row.items():
            if isinstance(v, (int, float)):
                total[k] = total.get(k, 0) + v
    return total


class Sampler:
    """Samples the machine periodically in the thread pool and keeps the latest
    ``Snapshot``.

    ``latest`` is None until the first real sample, ``min(interval, 0.25)`` s after
    ``start()`` primed (``start`` returns after it unless ``wait=False``;
    ``first_sampled`` tells when; the daemon's requests wait for it through
    ``App.warming``). Usable without a loop too:
    ``prime()`` then ``sample_now()`` (both blocking). ``samples_taken`` counts samples.

    The background loop samples every ``period_s``: ``interval_s`` (``sys.sample_interval_s``)
    or, while a consumer asked for faster through ``want_interval`` (the live hub, for
    its fastest subscriber), that. After each background sample every callable in
    ``listeners`` gets the ``Snapshot`` (loop thread; it must not block).
    """

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self.latest: Snapshot | None = None
        self.samples_taken = 0
        self._prev_disk: _Counters = {}
        self._prev_net: _Counters = {}
        self._prev_ts = 0.0
        self._task: asyncio.Task[None] | None = None
        self._wanted_s: float | None = None
        self._wake: asyncio.Future[None] | None = None
        self.listeners: list[Callable[[Snapshot], None]] = []
        self._first: asyncio.Future[None] | None = None
        self._count_logical = cpu_count_logical()
        self._count_physical = cpu_count_physical()

    def prime(self) -> None:
        """Start the intervals the first sample's percentages and rates cover (blocking:
        reads /proc)."""
        prime_cpu_percent()
        self._prev_ts = time.time()
        self._prev_disk = disk_io_counters()
        self._prev_net = net_io_counters()

    def sample_now(self, min_span_s: float = 0.0) -> Snapshot:
        """Take one sample (blocking: reads /proc); store and return it. When the previous
        reading (``prime`` or a sample) is less than ``min_span_s`` old, first wait out
        the rest (percentages over a few milliseconds are noise)."""
        if self._prev_ts and min_span_s > 0:
            gap = time.time() - self._prev_ts
            if 0 <= gap < min_span_s:
                time.sleep(min_span_s - gap)
        ts = time.time()
        per_cpu = cpu_percent_per_cpu()
        times_pct = cpu_times_percent()
        overall = sum(per_cpu) / len(per_cpu) if per_cpu else 0.0
        disk_now = disk_io_counters()
        net_now = net_io_counters()
        dt = ts - self._prev_ts if self._prev_ts else 0.0
        disk = _with_rates(disk_now, self._prev_disk, _DISK_RATE_FIELDS, dt)
        net = _with_rates(net_now, self._prev_net, _NET_RATE_FIELDS, dt)
        snap = Snapshot(
            ts=ts,
            interval_s=dt,
            cpu_percent=round(overall, 2),
            cpu_percent_per_cpu=tuple(per_cpu),
            cpu_times_percent=times_pct,
            memory=virtual_memory(),
            swap=swap_memory(),
            load=getloadavg() or (0.0, 0.0, 0.0),
            disk_io=cast("dict[str, DiskIO]", disk),
            disk_io_total=cast(DiskIO, _total(disk)),
            net_io=cast("dict[str, NetIO]", net),
            net_io_total=cast(NetIO, _total(net)),
            cpu_times_s=cpu_times_s(),
            cpu_stats=cpu_stats(),
            cpu_freq_mhz=cpu_freq_mhz(),
            cpu_count_logical=self._count_logical,
            cpu_count_physical=self._count_physical,
        )
        self._prev_ts, self._prev_disk, self._prev_net = ts, disk_now, net_now
        self.latest = snap
        self.samples_taken += 1
        return snap

    def snapshot(self) -> Snapshot:
        """The latest sample; before the first one (``start`` not yet returned, direct
        use in tests) one taken now (blocking)."""
        snap = self.latest
        return snap if snap is not None else self.sample_now()

    async def start(self, runner: Runner, wait: bool = True) -> None:
        """Prime, then sample in the background (a ``runner.spawn`` task, cancelled at
        shutdown): the first real sample ``min(interval_s, 0.25)`` s after priming, then
        every ``period_s``. Returns once that first sample is taken, or with ``wait=False``
        at once after priming (the daemon: READY does not wait for it; ``first_sampled``
        tells when). Blocking reads go through ``runner.run_blocking``."""
        await runner.run_blocking(self.prime)
        first = self._first = asyncio.get_running_loop().create_future()
        self._task = runner.spawn(self._loop(runner), "sampler")
        if wait:
            await asyncio.shield(first)

    @property
    def first_sampled(self) -> asyncio.Future[None] | None:
        """Done once the first sample after ``start()`` has been taken (or has failed,
        logged; or the sampler was stopped first); None before ``start()``."""
        return self._first

    def _first_done(self) -> None:
        first = self._first
        if first is not None and not first.done():
            first.set_result(None)

    @property
    def period_s(self) -> float:
        """Seconds between background samples: ``interval_s``, or the faster interval a
        consumer asked for with ``want_interval``."""
        wanted = self._wanted_s
        return self.interval_s if wanted is None else min(self.interval_s, wanted)

    def want_interval(self, interval_s: float | None) -> None:
        """Ask the background loop to sample at least every ``interval_s`` seconds (None:
        back to ``interval_s`` alone); a faster period takes effect at once (loop thread)."""
        before = self.period_s
        self._wanted_s = interval_s
        wake = self._wake
        if self.period_s < before and wake is not None and not wake.done():
            wake.set_result(None)

    async def _sleep(self, delay_s: float) -> None:
        """Sleep ``delay_s`` seconds, or less when ``want_interval`` shortens the period."""
        loop = asyncio.get_running_loop()
        wake = self._wake = loop.create_future()

        def ring() -> None:
            if not wake.done():
                wake.set_result(None)

        timer = loop.call_later(delay_s, ring)
        try:
            await wake
        finally:
            timer.cancel()
            self._wake = None

    async def _loop(self, runner: Runner) -> None:
        loop = asyncio.get_running_loop()
        try:  # the first sample: percentages and rates over a real span since prime()
            await asyncio.sleep(min(self.interval_s, 0.25))
            await runner.run_blocking(self.sample_now)
        except Exception:
            log.exception("sampling failed")
        finally:
            self._first_done()
        last_at = loop.time()
        while True:
            next_at = last_at + self.period_s
            while loop.time() < next_at:
                await self._sleep(next_at - loop.time())
                next_at = last_at + self.period_s  # the period may have shrunk meanwhile
            # keep to the grid unless we fell behind (suspend, overload): do not burst
            last_at = next_at if loop.time() - next_at < self.period_s else loop.time()
            try:
                snap = await runner.run_blocking(self.sample_now)
            except Exception:
                log.exception("sampling failed")
                continue
            for listener in list(self.listeners):
                try:
                    listener(snap)
                except Exception:
                    log.exception("sampler listener failed")
