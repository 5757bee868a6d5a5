"""Live snapshot streams (issue 10): ``SnapshotHub`` turns the one background sampler
into per-subscriber streams of snapshots (``sys.subscribe``, ``/ws``, push mode), with
``SECTIONS`` (the valid section names) and ``DEFAULT_SECTIONS``.

Usage (loop thread)::

    sub = hub.subscribe(1.0, ["cpu", "memory"], per_cpu=True, top_processes=5)
    async for snap in sub:          # {"seq", "ts", "dropped", "cpu": {...}, ...}
        ...
    sub.close()

    one = await hub.snapshot(["load"])   # one snapshot now
"""

from __future__ import annotations

from xsys.live.aloy import ALOY_SECTIONS, aloy_message
from xsys.live.hub import (
    MAX_INTERVAL_S,
    LiveStats,
    LiveSubscription,
    OnSnapshot,
    SnapshotHub,
)
from xsys.live.sections import DEFAULT_SECTIONS, MAX_TOP_PROCESSES, PROCESS_SORTS, SECTIONS

__all__ = [
    "ALOY_SECTIONS",
    "DEFAULT_SECTIONS",
    "MAX_INTERVAL_S",
    "MAX_TOP_PROCESSES",
    "PROCESS_SORTS",
    "SECTIONS",
    "LiveStats",
    "LiveSubscription",
    "OnSnapshot",
    "SnapshotHub",
    "aloy_message",
]
