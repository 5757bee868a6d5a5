"""Giving memory back to the system after large results (glibc on Linux; no-ops elsewhere).

glibc serves a request of at least ``M_MMAP_THRESHOLD`` bytes with its own ``mmap`` and
unmaps it on ``free``; smaller ones come from heaps that it returns only from their top.
By default the threshold adapts upwards (to 32 MiB) each time a large block is freed,
and a burst of multi-MiB results can leave the daemon hundreds of MiB larger for good.
``tune_malloc`` fixes the mmap threshold at ``MMAP_THRESHOLD_BYTES`` and the trim
threshold at ``TRIM_THRESHOLD_BYTES`` (so large results reuse heap pages while a client
reads; measured in ``bench/fs.py``) and keeps one malloc arena (``malloc_trim`` cannot
return the top of a thread arena's heap), and ``trim_malloc`` returns the free pages inside
the heaps (``malloc_trim(0)``) after connections that had large results close, which
brings the daemon back near its baseline (``tests/test_server_limits.py``).
``MALLOC_MMAP_THRESHOLD_`` in the environment wins over ``tune_malloc``.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

#: glibc's ``mallopt`` parameter numbers (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
#: Allocations of at least this many bytes are mapped and unmapped on their own (glibc's
#: adaptive maximum): multi-MiB file results below it reuse heap pages from one request to
#: the next instead of being mapped and faulted in every time.
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
#: Free memory at the top of a heap kept for reuse; setting the mmap threshold fixes this
#: at glibc's 128 KiB default, which would hand every large result back and fault it in
#: again. What stays is returned by ``trim_malloc`` when large-result clients leave.
TRIM_THRESHOLD_BYTES = 64 * 1024 * 1024

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
    ok = bool(libc.mallopt(ctypes.c_int(M_TRIM_THRESHOLD),
                           ctypes.c_int(TRIM_THRESHOLD_BYTES))) and ok
    # one arena: ``malloc_trim`` returns the top of the main heap, but never the top of
    # a thread arena's heap, where worker threads' large buffers would otherwise stay
    ok = bool(libc.mallopt(ctypes.c_int(M_ARENA_MAX), ctypes.c_int(1))) and ok
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
