"""The background sampler: one psutil pass every ``sys.sample_interval_s`` seconds in the
thread pool, kept as an immutable ``Snapshot`` so that requests (``sys.cpu``,
``sys.memory``...) and the monitor read the last sample without touching the OS.

CPU percentages are psutil's ``cpu_percent``/``cpu_times_percent`` over the interval
between two samples, so the first answer is never the meaningless 0.0 of a first call.
Rates (``*_per_s``) are the counter deltas between the last two samples divided by the
seconds between them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psutil

if TYPE_CHECKING:
    from xsys.server.app import App

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """One sample of the machine.

    - ``ts``: epoch seconds of the sample; ``interval_s``: seconds since the previous one.
    - ``cpu_percent`` (0..100 overall), ``cpu_percent_per_cpu`` (one per logical CPU),
      ``cpu_times_percent`` (psutil ``cpu_times_percent()`` fields, percent).
    - ``memory``: psutil ``virtual_memory()`` as a map (bytes, ``percent``);
      ``swap``: ``swap_memory()`` (bytes, ``percent``, ``sin``/``sout`` bytes).
    - ``load``: 1/5/15-minute load averages (``os.getloadavg``; zeros where missing).
    - ``disk_io``: per disk, psutil ``disk_io_counters(perdisk=True)`` fields (bytes,
      counts, ``*_time`` ms) plus ``*_per_s`` rates; ``disk_io_total``: the sum.
    - ``net_io``: per interface, psutil ``net_io_counters(pernic=True)`` fields plus
      ``*_per_s`` rates; ``net_io_total``: the sum.
    - ``cpu_times`` (seconds since boot), ``cpu_stats`` (counts), ``cpu_freq_mhz``
      (current/min/max or None), ``cpu_count_logical``/``cpu_count_physical``.
    """

    ts: float
    interval_s: float
    cpu_percent: float
    cpu_percent_per_cpu: tuple[float, ...]
    cpu_times_percent: Mapping[str, float]
    memory: Mapping[str, float]
    swap: Mapping[str, float]
    load: tuple[float, float, float]
    disk_io: Mapping[str, Mapping[str, float]]
    disk_io_total: Mapping[str, float]
    net_io: Mapping[str, Mapping[str, float]]
    net_io_total: Mapping[str, float]
    cpu_times: Mapping[str, float] = field(default_factory=dict)
    cpu_stats: Mapping[str, float] = field(default_factory=dict)
    cpu_freq_mhz: Mapping[str, float] | None = None
    cpu_count_logical: int = 1
    cpu_count_physical: int | None = None


def _asdict(nt: Any) -> dict[str, float]:
    return dict(nt._asdict()) if nt is not None else {}


_DISK_RATE_FIELDS = ("read_bytes", "write_bytes", "read_count", "write_count")
_NET_RATE_FIELDS = ("bytes_sent", "bytes_recv", "packets_sent", "packets_recv",
                    "errin", "errout", "dropin", "dropout")


def _with_rates(
    now: Mapping[str, Mapping[str, float]],
    before: Mapping[str, Mapping[str, float]],
    fields: tuple[str, ...],
    dt: float,
) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
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


def _total(rows: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for row in rows.values():
        for k, v in row.items():
            if isinstance(v, (int, float)):
                total[k] = total.get(k, 0) + v
    return total


class Sampler:
    """Samples psutil periodically in the thread pool and keeps the latest ``Snapshot``.

    ``latest`` is None until ``start()`` has returned (start takes one priming sample,
    waits ``min(interval, 0.25)`` s and takes the first real one). Also usable without a
    loop: ``sample_now()`` takes one sample synchronously (blocking).
    """

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self.latest: Snapshot | None = None
        self._prev_disk: dict[str, dict[str, float]] = {}
        self._prev_net: dict[str, dict[str, float]] = {}
        self._prev_ts = 0.0
        self._task: asyncio.Task[None] | None = None
        self.samples_taken = 0
        self._count_logical = psutil.cpu_count(logical=True) or 1
        self._count_physical = psutil.cpu_count(logical=False)

    def _prime(self) -> None:
        psutil.cpu_percent(percpu=True)
        psutil.cpu_times_percent()
        self._prev_ts = time.time()
        self._prev_disk = {k: _asdict(v) for k, v in
                           (psutil.disk_io_counters(perdisk=True) or {}).items()}
        self._prev_net = {k: _asdict(v) for k, v in
                          (psutil.net_io_counters(pernic=True) or {}).items()}

    def sample_now(self) -> Snapshot:
        """Take one sample (blocking: reads /proc); store and return it."""
        ts = time.time()
        per_cpu = psutil.cpu_percent(percpu=True)
        times_pct = _asdict(psutil.cpu_times_percent())
        overall = sum(per_cpu) / len(per_cpu) if per_cpu else 0.0
        try:
            load = os.getloadavg()
        except (AttributeError, OSError):
            load = (0.0, 0.0, 0.0)
        disk_now = {k: _asdict(v) for k, v in
                    (psutil.disk_io_counters(perdisk=True) or {}).items()}
        net_now = {k: _asdict(v) for k, v in
                   (psutil.net_io_counters(pernic=True) or {}).items()}
        dt = ts - self._prev_ts if self._prev_ts else 0.0
        disk = _with_rates(disk_now, self._prev_disk, _DISK_RATE_FIELDS, dt)
        net = _with_rates(net_now, self._prev_net, _NET_RATE_FIELDS, dt)
        try:
            f = psutil.cpu_freq()
            freq = {"current": f.current, "min": f.min, "max": f.max} if f else None
        except (OSError, NotImplementedError, AttributeError):
            freq = None
        snap = Snapshot(
            ts=ts,
            interval_s=dt,
            cpu_percent=round(overall, 2),
            cpu_percent_per_cpu=tuple(per_cpu),
            cpu_times_percent=times_pct,
            memory=_asdict(psutil.virtual_memory()),
            swap=_asdict(psutil.swap_memory()),
            load=(float(load[0]), float(load[1]), float(load[2])),
            disk_io=disk,
            disk_io_total=_total(disk),
            net_io=net,
            net_io_total=_total(net),
            cpu_times=_asdict(psutil.cpu_times()),
            cpu_stats=_asdict(psutil.cpu_stats()),
            cpu_freq_mhz=freq,
            cpu_count_logical=self._count_logical,
            cpu_count_physical=self._count_physical,
        )
        self._prev_ts, self._prev_disk, self._prev_net = ts, disk_now, net_now
        self.latest = snap
        self.samples_taken += 1
        return snap

    async def start(self, app: App) -> None:
        """Prime psutil, take the first real sample, then keep sampling in the background
        (an ``app.spawn`` task, cancelled at shutdown)."""
        await app.run_blocking(self._prime)
        await asyncio.sleep(min(self.interval_s, 0.25))
        await app.run_blocking(self.sample_now)
        self._task = app.spawn(self._loop(app), "sampler")

    async def _loop(self, app: App) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += self.interval_s
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            try:
                await app.run_blocking(self.sample_now)
            except Exception:
                log.exception("sampling failed")
                continue
            if loop.time() - next_at > self.interval_s:
                next_at = loop.time()  # fell behind (suspend, overload): do not burst
