"""Acting with a peer's credentials: file operations for a peer run in a worker thread whose
filesystem uid, gid and supplementary groups are the peer's (Linux), so the kernel grants
exactly what the peer could do itself.

Linux keeps credentials per thread. ``setfsuid(2)``/``setfsgid(2)`` change only the calling
thread, and so does the raw ``setgroups`` system call (glibc's ``setgroups()`` wrapper would
broadcast to every thread, so it is not used). When the fs uid changes from 0 to another
uid the kernel drops the file capabilities (``CAP_DAC_OVERRIDE``, ``CAP_DAC_READ_SEARCH``,
``CAP_FOWNER``, ``CAP_FSETID``, ``CAP_CHOWN``...) from the thread's effective set and gives
them back when it returns to 0 (capabilities(7), "Effect of user ID changes on
capabilities"). Files created meanwhile belong to the peer; ``chmod`` of setuid/setgid bits
follows the kernel's own rules for that uid.

The rule (docs/security.md, "Privilege"):
- daemon running as root, peer known (socket, SO_PEERCRED) and not root: the operation runs
  as the peer (``as_peer``);
- peer with the daemon's own uid, or peer root, or no peer credentials (the HTTP mirror,
  which is reached with the daemon user's token): the daemon's own credentials;
- daemon not root and a peer of another uid: it cannot act as that peer, so fs requests are
  refused with -32002 (``reason: "foreign_peer"``).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import importlib
import logging
import os
import platform
import sys
import threading
from collections.abc import Iterator, Sequence

from xsys.protocol import PermissionDenied

log = logging.getLogger(__name__)

#: Raw ``setgroups`` system call numbers (per thread, unlike glibc's wrapper).
_SYS_SETGROUPS = {"x86_64": 116, "amd64": 116, "aarch64": 159, "arm64": 159,
                  "riscv64": 159, "ppc64le": 81, "s390x": 206}

_local = threading.local()

#: Modules the fs code imports on first use (to keep the idle daemon small). A thread that
#: holds a peer's fs uid may be unable to read the interpreter's own files (a venv under
#: /root is 0700), so these are imported with the daemon's credentials before the first
#: switch (``_preload``); else the first fs.grep, fs.archive or fs.extract of such a peer
#: failed with -32603 (ModuleNotFoundError: tarfile).
LAZY_MODULES = ("xsys.fs.archive", "regex", "pathspec", "gzip", "bz2", "lzma",
                "encodings.cp437")
_preloaded = False


def _preload() -> None:
    """Import ``LAZY_MODULES`` once, with the daemon's own credentials."""
    global _preloaded
    if _preloaded:
        return
    for name in LAZY_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as exc:  # an optional codec missing from this Python
            log.debug("cannot preload %s: %s", name, exc)
    _preloaded = True


class _Libc:
    """The three calls, loaded once (Linux only)."""

    def __init__(self) -> None:
        self.libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self.setgroups_nr = _SYS_SETGROUPS.get(platform.machine().lower())
        self.libc.setfsuid.argtypes = [ctypes.c_uint]
        self.libc.setfsuid.restype = ctypes.c_int
        self.libc.setfsgid.argtypes = [ctypes.c_uint]
        self.libc.setfsgid.restype = ctypes.c_int

    def setfsuid(self, uid: int) -> int:
        return int(self.libc.setfsuid(uid))

    def setfsgid(self, gid: int) -> int:
        return int(self.libc.setfsgid(gid))

    def setgroups(self, groups: Sequence[int]) -> None:
        if self.setgroups_nr is None:
            raise OSError("setgroups: unknown system call number on this machine")
        arr = (ctypes.c_uint * max(1, len(groups)))(*groups)
        rc = self.libc.syscall(ctypes.c_long(self.setgroups_nr), ctypes.c_size_t(len(groups)),
                               arr)
        if rc != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setgroups: {os.strerror(err)}")


_LIBC: _Libc | None = None


def _libc() -> _Libc:
    global _LIBC
    if _LIBC is None:
        _LIBC = _Libc()
    return _LIBC


def can_switch() -> bool:
    """Whether this process can take another uid's file credentials (Linux, euid 0)."""
    return sys.platform.startswith("linux") and hasattr(os, "geteuid") and os.geteuid() == 0


def _peer_groups(uid: int, gid: int, groups: Sequence[int] | None) -> list[int]:
    if groups is not None:
        return sorted(set(groups) | {gid})
    try:  # no SO_PEERGROUPS: the groups the user database gives that uid
        import pwd

        name = pwd.getpwuid(uid).pw_name
        return sorted(set(os.getgrouplist(name, gid)))
    except (KeyError, OSError):
        return [gid]


@contextlib.contextmanager
def as_peer(uid: int | None, gid: int | None,
            groups: Sequence[int] | None = None) -> Iterator[None]:
    """Run the body with the file credentials of ``uid``/``gid``/``groups`` in this thread
    (see the module docstring for when it switches, acts as the daemon, or refuses).

    Raises ``PermissionDenied`` (-32002, ``reason: "foreign_peer"``) when the daemon is not
    root and the peer is another uid. Nested use inside an ``as_peer`` body is a no-op.
    If the credentials cannot be restored afterwards the process exits (a worker thread
    must never keep a peer's identity).
    """
    if uid is None or getattr(_local, "active", False):
        yield
        return
    own = os.geteuid() if hasattr(os, "geteuid") else uid
    if uid == own or uid == 0:
        yield
        return
    if not can_switch():
        raise PermissionDenied(
            f"this daemon runs as uid {own} and cannot act as uid {uid}; file operations "
            "for other users need a daemon running as root",
            {"reason": "foreign_peer", "uid": uid})
    _preload()
    lib = _libc()
    peer_gid = gid if gid is not None else uid
    old_groups = os.getgroups()
    lib.setgroups(_peer_groups(uid, peer_gid, groups))
    try:
        lib.setfsgid(peer_gid)
        lib.setfsuid(uid)
        if lib.setfsuid(0xFFFFFFFF) != uid or lib.setfsgid(0xFFFFFFFF) != peer_gid:
            raise PermissionDenied(f"could not take the credentials of uid {uid}",
                                   {"reason": "setfsuid_failed", "uid": uid})
        _local.active = True
        try:
            yield
        finally:
            _local.active = False
    finally:
        try:
            lib.setfsuid(0)
            lib.setfsgid(os.getegid())
            lib.setgroups(old_groups)
            if lib.setfsuid(0xFFFFFFFF) != 0:
                raise OSError("setfsuid(0) did not take")
        except OSError:  # pragma: no cover - the kernel refused to give root back
            log.critical("could not restore the daemon's credentials in %s; exiting",
                         threading.current_thread().name, exc_info=True)
            os._exit(70)
