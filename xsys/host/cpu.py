"""CPU and load: counts, times, utilisation, frequency and load averages.

Readers (blocking, they read /proc through psutil) feed the background ``Sampler``;
``cpu_usage`` and ``load_averages`` shape a ``Snapshot`` into the ``sys.cpu`` and
``sys.load`` results without touching the OS. Field names are psutil's, with units:
times in seconds (``*_s``), utilisation in percent (psutil's ``percent``, 0..100),
frequencies in MHz.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, TypedDict

import psutil

if TYPE_CHECKING:
    from xsys.host.sampler import Snapshot


class CpuFreq(TypedDict):
    """CPU frequency in MHz (psutil ``cpu_freq()``): ``current``, ``min``, ``max`` (0.0
    where the platform does not say)."""

    current: float
    min: float
    max: float


class _CpuUsage(TypedDict):
    percent: float
    times_percent: dict[str, float]
    times_s: dict[str, float]
    freq_mhz: CpuFreq | None
    count_logical: int
    count_physical: int | None
    stats: dict[str, int]
    interval_s: float
    ts: float


class CpuUsage(_CpuUsage, total=False):
    """``sys.cpu``: utilisation over the last sampling interval.

    - ``percent``: all CPUs, 0..100 (psutil ``cpu_percent``); ``per_cpu_percent``: one per
      logical CPU (absent when not asked for).
    - ``times_percent``: share of the interval per mode (``user``, ``system``, ``idle``,
      ``iowait``...; psutil ``cpu_times_percent``).
    - ``times_s``: seconds spent in each mode since boot, all CPUs (psutil ``cpu_times``).
    - ``freq_mhz``: ``CpuFreq`` or None; ``count_logical``/``count_physical`` (psutil
      ``cpu_count``; physical None where unknown).
    - ``stats``: counts since boot (``ctx_switches``, ``interrupts``, ``soft_interrupts``,
      ``syscalls``; psutil ``cpu_stats``).
    - ``interval_s``: seconds the percentages span; ``ts``: epoch seconds of the sample.
    """

    per_cpu_percent: list[float]


class LoadPerCpu(TypedDict):
    """Load averages divided by the logical CPU count."""

    load1: float
    load5: float
    load15: float


class LoadAverages(TypedDict):
    """``sys.load``: run-queue averages over 1, 5 and 15 minutes (``os.getloadavg``;
    node_exporter's ``node_load1``...), absolute and ``per_cpu``; ``cpu_count`` logical
    CPUs; ``ts`` epoch seconds of the sample."""

    load1: float
    load5: float
    load15: float
    per_cpu: LoadPerCpu
    cpu_count: int
    ts: float


# --------------------------------------------------------------------------- readers


def cpu_count_logical() -> int:
    """Logical CPUs (psutil ``cpu_count(logical=True)``; at least 1)."""
    return psutil.cpu_count(logical=True) or 1


def cpu_count_physical() -> int | None:
    """Physical cores (psutil ``cpu_count(logical=False)``), None where unknown."""
    return psutil.cpu_count(logical=False)


def prime_cpu_percent() -> None:
    """Start psutil's utilisation interval: the next ``cpu_percent_per_cpu`` and
    ``cpu_times_percent`` cover the time since this call (a first call alone says 0.0)."""
    psutil.cpu_percent(percpu=True)
    psutil.cpu_times_percent()


def cpu_percent_per_cpu() -> list[float]:
    """Utilisation of each logical CPU since the previous call, percent (psutil
    ``cpu_percent(percpu=True)``)."""
    return list(psutil.cpu_percent(percpu=True))


def cpu_times_percent() -> dict[str, float]:
    """Share of the time since the previous call spent in each mode, percent (psutil
    ``cpu_times_percent()``)."""
    return psutil.cpu_times_percent()._asdict()


def cpu_times_s() -> dict[str, float]:
    """Seconds all CPUs spent in each mode since boot (psutil ``cpu_times()``: ``user``,
    ``nice``, ``system``, ``idle``, ``iowait``, ``irq``, ``softirq``, ``steal``, ``guest``,
    ``guest_nice`` on Linux)."""
    return psutil.cpu_times()._asdict()


def cpu_times_per_cpu_s() -> list[dict[str, float]]:
    """``cpu_times_s`` for each logical CPU, in CPU order (psutil
    ``cpu_times(percpu=True)``)."""
    return [t._asdict() for t in psutil.cpu_times(percpu=True)]


def cpu_stats() -> dict[str, int]:
    """Counts since boot: ``ctx_switches``, ``interrupts``, ``soft_interrupts``,
    ``syscalls`` (psutil ``cpu_stats()``)."""
    return psutil.cpu_stats()._asdict()


def cpu_freq_mhz() -> CpuFreq | None:
    """Current, min and max frequency in MHz (psutil ``cpu_freq()``), None where the
    platform has none."""
    try:
        f = psutil.cpu_freq()
    except (OSError, NotImplementedError, AttributeError):
        return None
    if not f:
        return None
    return {"current": float(f.current), "min": float(f.min), "max": float(f.max)}


def getloadavg() -> tuple[float, float, float] | None:
    """Load averages over 1, 5 and 15 minutes (``os.getloadavg``), None where the
    platform has none."""
    try:
        l1, l5, l15 = os.getloadavg()
    except (AttributeError, OSError):
        return None
    return (float(l1), float(l5), float(l15))


# --------------------------------------------------------------------------- views


def cpu_usage(snap: Snapshot, per_cpu: bool = True) -> CpuUsage:
    """The ``sys.cpu`` result from ``snap`` (``per_cpu_percent`` only with ``per_cpu``)."""
    out: CpuUsage = {
        "percent": snap.cpu_percent,
        "times_percent": dict(snap.cpu_times_percent),
        "interval_s": round(snap.interval_s, 6),
        "ts": snap.ts,
        "times_s": dict(snap.cpu_times_s),
        "freq_mhz": snap.cpu_freq_mhz.copy() if snap.cpu_freq_mhz else None,
        "count_logical": snap.cpu_count_logical,
        "count_physical": snap.cpu_count_physical,
        "stats": dict(snap.cpu_stats),
    }
    if per_cpu:
        out["per_cpu_percent"] = list(snap.cpu_percent_per_cpu)
    return out


def load_averages(snap: Snapshot) -> LoadAverages:
    """The ``sys.load`` result from ``snap``."""
    n = snap.cpu_count_logical
    l1, l5, l15 = snap.load
    return {"load1": l1, "load5": l5, "load15": l15,
            "per_cpu": {"load1": round(l1 / n, 4), "load5": round(l5 / n, 4),
                        "load15": round(l15 / n, 4)},
            "cpu_count": n, "ts": snap.ts}
