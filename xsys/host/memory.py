"""Memory and swap (psutil ``virtual_memory`` and ``swap_memory``), byte fields named
``*_bytes``; ``percent`` is psutil's (0..100).

The readers block briefly (they read /proc/meminfo); ``memory_usage`` shapes a
``Snapshot`` into the ``sys.memory`` result without touching the OS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict, cast

import psutil

if TYPE_CHECKING:
    from xsys.host.sampler import Snapshot


class _VirtualMemory(TypedDict):
    total_bytes: int
    available_bytes: int
    percent: float
    used_bytes: int
    free_bytes: int


class VirtualMemory(_VirtualMemory, total=False):
    """Physical memory (psutil ``virtual_memory()``, each field ``<psutil name>_bytes``).

    Everywhere: ``total_bytes``, ``available_bytes`` (what can be given to processes
    without swapping), ``used_bytes``, ``free_bytes``, ``percent`` (``(total -
    available) / total``, 0..100). Where the platform has them: ``active_bytes``,
    ``inactive_bytes``, ``buffers_bytes``, ``cached_bytes``, ``shared_bytes``,
    ``slab_bytes`` (Linux), ``wired_bytes`` (BSD, macOS).
    """

    active_bytes: int
    inactive_bytes: int
    buffers_bytes: int
    cached_bytes: int
    shared_bytes: int
    slab_bytes: int
    wired_bytes: int


class SwapMemory(TypedDict):
    """Swap (psutil ``swap_memory()``): ``total_bytes``, ``used_bytes``, ``free_bytes``,
    ``percent`` (0..100), ``sin_bytes``/``sout_bytes`` (swapped in from / out to disk since
    boot; psutil ``sin``/``sout``, 0 on Windows)."""

    total_bytes: int
    used_bytes: int
    free_bytes: int
    percent: float
    sin_bytes: int
    sout_bytes: int


class MemoryUsage(TypedDict):
    """``sys.memory``: ``virtual`` and ``swap`` as sampled; ``ts`` epoch seconds of the
    sample."""

    virtual: VirtualMemory
    swap: SwapMemory
    ts: float


def _with_units(fields: dict[str, Any]) -> dict[str, Any]:
    """psutil's memory fields with ``_bytes`` on every one but ``percent``."""
    return {k if k == "percent" else f"{k}_bytes": v for k, v in fields.items()}


def virtual_memory() -> VirtualMemory:
    """Physical memory now (psutil ``virtual_memory()``; see ``VirtualMemory``)."""
    return cast(VirtualMemory, _with_units(psutil.virtual_memory()._asdict()))


def swap_memory() -> SwapMemory:
    """Swap now (psutil ``swap_memory()``; see ``SwapMemory``)."""
    return cast(SwapMemory, _with_units(psutil.swap_memory()._asdict()))


def memory_usage(snap: Snapshot) -> MemoryUsage:
    """The ``sys.memory`` result from ``snap`` (copies: the snapshot stays as it was)."""
    return {"virtual": snap.memory.copy(), "swap": snap.swap.copy(), "ts": snap.ts}
