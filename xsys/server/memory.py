"""Giving memory back to the system after large results (glibc on Linux; no-ops elsewhere).

glibc serves a request of at least ``M_MMAP_THRESHOLD`` bytes with its own ``mmap`` and
unmaps it on ``free``; smaller ones come from heaps that it returns only from their top.
By default the threshold adapts upwards (to 32 MiB) each time a large block is freed,
so after a few multi-MiB file reads every later buffer of that size lands in a heap
and a burst of them leaves the daemon hundreds of MiB larger for good. ``tune_malloc``
fixes the threshold at ``MMAP_THRESHOLD_BYTES`` (the size from which results are written
as separate parts, ``protocol.LARGE_FRAME_BYTES``); ``trim_malloc`` returns the free
pages inside the heaps as well (``malloc_trim(0)``), after connections that had large
results close. ``MALLOC_MMAP_THRESHOLD_`` in the environment wins over ``tune_malloc``.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

from xsys.protocol import LARGE_FRAME_BYTES

log = logging.getLogger(__name__)

#: glibc's ``mallopt`` parameter numbers (malloc.h).
M_MMAP_THRESHOLD = -3
#: Allocations of at least this many bytes are mapped and unmapped on their own.
MMAP_THRESHOLD_BYTES = LARGE_FRAME_BYTES

_libc: ctypes.CDLL | None = None
_probed = False


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (Linux), else None."""
    global _libc, _probed
    if _probed:
        return _libc
    _probed = True
    if not sys.platform.startswith("linux"):
        return None
    try:
        version = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        version = ""
    if not version.startswith("glibc"):
        return None
    try:
        _libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None
    return _libc


def tune_malloc() -> bool:
    """Fix glibc's mmap threshold at ``MMAP_THRESHOLD_BYTES`` (call once at start, before
    large allocations). Returns whether it was set (False off glibc, or when the
    environment sets ``MALLOC_MMAP_THRESHOLD_``)."""
    libc = _glibc()
    if libc is None or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    ok = bool(libc.mallopt(ctypes.c_int(M_MMAP_THRESHOLD), ctypes.c_int(MMAP_THRESHOLD_BYTES)))
    log.debug("malloc mmap threshold %d bytes: %s", MMAP_THRESHOLD_BYTES,
              "set" if ok else "refused")
    return ok


def trim_malloc() -> bool:
    """Return free heap memory to the system (glibc ``malloc_trim(0)``); False where
    there is nothing to call or nothing was returned."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.malloc_trim(ctypes.c_size_t(0)))
