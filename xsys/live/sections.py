"""The sections of a live snapshot, built from one sampler ``Snapshot`` with the ``sys.*``
methods' own code (``xsys.host``), so field names and units are theirs.

``build(snap, wanted, top_n)`` reads what the sampler does not keep (filesystem usage,
interface addresses, sensors, the process table) and so blocks: run it in the thread
pool. ``shape(shared, sections, per_cpu, top_n, process_sort)`` cuts one subscriber's view out of it
without touching the OS.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from xsys import host
from xsys.host.processes import LISTER

#: Every section a subscriber may ask for, in the order snapshots list them.
SECTIONS: tuple[str, ...] = ("cpu", "memory", "swap", "load", "disks", "disk_io",
                             "network", "sensors", "processes", "monitor", "checks")
#: The sections of a subscription that names none.
DEFAULT_SECTIONS: tuple[str, ...] = ("cpu", "memory", "swap", "load", "disks", "network")
#: Sections read on the event loop from other services (not from the host).
LOOP_SECTIONS: frozenset[str] = frozenset({"monitor", "checks"})
#: Processes listed when ``processes`` is asked for with ``top_processes`` 0.
DEFAULT_TOP_PROCESSES = 10
#: The most processes a subscriber may ask for.
MAX_TOP_PROCESSES = 100
#: The orders of the ``processes`` section (descending ``cpu_percent``/``memory_percent``).
PROCESS_SORTS: tuple[str, ...] = ("cpu", "memory")


def _top_processes(top_n: int) -> dict[str, Any]:
    """The process table's ``top_n`` by cpu_percent and by memory_percent, and the total
    (blocking: psutil ``process_iter``)."""
    rows = LISTER.scan()
    by_cpu = sorted(rows, key=lambda r: (-r["cpu_percent"], r["pid"]))[:top_n]
    by_mem = sorted(rows, key=lambda r: (-r["memory_percent"], r["pid"]))[:top_n]
    return {"by_cpu": by_cpu, "by_memory": by_mem, "total": len(rows), "ts": time.time()}


def build(snap: host.Snapshot, wanted: Iterable[str], top_n: int) -> dict[str, Any]:
    """Every host section in ``wanted`` from ``snap`` (blocking; pool thread). ``cpu``
    comes with ``per_cpu_percent`` (``shape`` drops it); ``processes`` holds the top
    ``top_n`` by cpu and by memory (``shape`` picks one)."""
    wanted = set(wanted)
    out: dict[str, Any] = {}
    if "cpu" in wanted:
        out["cpu"] = host.cpu_usage(snap, per_cpu=True)
    if "memory" in wanted or "swap" in wanted:
        mem = host.memory_usage(snap)
        out["memory"], out["swap"] = dict(mem["virtual"]), dict(mem["swap"])
    if "load" in wanted:
        out["load"] = host.load_averages(snap)
    if "disks" in wanted:
        out["disks"] = host.mounted_disks(False)
    if "disk_io" in wanted:
        out["disk_io"] = host.disk_io_usage(snap, per_disk=True)
    if "network" in wanted:
        out["network"] = host.network_usage(snap)
    if "sensors" in wanted:
        out["sensors"] = host.sensors()
    if "processes" in wanted:
        out["processes"] = _top_processes(max(top_n, 1))
    return out


def _top(table: Mapping[str, Any], top_n: int, sort: str) -> dict[str, Any]:
    """The first ``top_n`` processes by ``sort`` as ``{"processes": [sys.processes rows],
    "total", "truncated", "sort", "ts"}``."""
    rows = table["by_memory" if sort == "memory" else "by_cpu"][:top_n]
    return {"processes": rows, "total": table["total"], "truncated": table["total"] > top_n,
            "sort": sort, "ts": table["ts"]}


def shape(shared: Mapping[str, Any], sections: Sequence[str], per_cpu: bool,
          top_n: int, process_sort: str = "cpu") -> dict[str, Any]:
    """One subscriber's sections out of ``build``'s (shared, never changed) result."""
    out: dict[str, Any] = {}
    for name in sections:
        value = shared.get(name)
        if value is None:
            continue
        if name == "cpu" and not per_cpu:
            value = {k: v for k, v in value.items() if k != "per_cpu_percent"}
        elif name == "processes":
            value = _top(value, top_n, process_sort)
        out[name] = value
    return out
