"""Processes: listing, one process in detail, and signalling one under ``sys.kill``'s
rules (pid 1, the daemon and its family are never signalled; non-root peers only their
own processes; on Linux through a pidfd pinned before the checks).

Everything here blocks (it reads /proc through psutil): call it from the thread pool.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import os
import signal as signal_mod
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, NamedTuple, TypedDict

import psutil

from xsys.protocol import NotFound, PermissionDenied, error_from_oserror

#: How ``sys.processes`` sorts: ``cpu`` and ``memory`` descending, ``pid`` and ``name``
#: ascending (ties by pid).
ProcessSort = Literal["cpu", "memory", "pid", "name"]


class ProcessRow(TypedDict):
    """One process as ``sys.processes`` lists it (psutil ``Process`` fields; None where
    the OS refuses): ``pid``, ``ppid``, ``name``, ``username``, ``status`` (``running``,
    ``sleeping``...), ``cpu_percent`` (over the time since the previous listing; 100 =
    one full CPU), ``memory_percent`` (RSS of total memory), ``memory_rss_bytes`` and
    ``memory_vms_bytes`` (psutil ``memory_info().rss/vms``), ``num_threads``,
    ``created_at`` (epoch seconds; psutil ``create_time``), ``cmdline`` (argv)."""

    pid: int
    ppid: int | None
    name: str
    username: str | None
    status: str | None
    cpu_percent: float
    memory_percent: float
    memory_rss_bytes: int | None
    memory_vms_bytes: int | None
    num_threads: int | None
    created_at: float | None
    cmdline: list[str]


class ProcessDetails(ProcessRow):
    """``sys.process``: the ``ProcessRow`` (``cpu_percent`` measured over 0.1 s) plus
    ``exe``, ``cwd``, ``terminal``, ``nice``, ``cpu_times_s`` (seconds per mode: ``user``,
    ``system``, ``children_user``, ``children_system``, ``iowait``; psutil
    ``cpu_times``), ``memory_info`` (psutil ``memory_info`` fields as ``<name>_bytes``:
    ``rss_bytes``, ``vms_bytes``, Linux also ``shared_bytes``, ``text_bytes``,
    ``lib_bytes``, ``data_bytes``, ``dirty_bytes``), ``num_fds``, ``io_counters``
    (``read_count``, ``write_count``, ``read_bytes``, ``write_bytes``, Linux also
    ``read_chars``/``write_chars``: bytes passed to read/write calls), ``num_ctx_switches``
    (``voluntary``, ``involuntary``), ``children`` (pids) and ``open_files_count``. Fields
    the OS refuses are None (``children`` then empty)."""

    exe: str | None
    cwd: str | None
    terminal: str | None
    nice: int | None
    cpu_times_s: dict[str, float] | None
    memory_info: dict[str, int] | None
    num_fds: int | None
    io_counters: dict[str, int] | None
    num_ctx_switches: dict[str, int] | None
    children: list[int]
    open_files_count: int | None


class ProcessList(TypedDict):
    """``sys.processes``: ``processes`` (``ProcessRow`` each, sorted, at most the limit),
    ``total`` (matching before the limit), ``truncated`` and ``ts`` (epoch seconds)."""

    processes: list[ProcessRow]
    total: int
    truncated: bool
    ts: float


class SignalSent(TypedDict):
    """``sys.kill``: the ``signal`` (its name, ``SIGTERM``) went to ``pid``; ``sent`` is
    always true (a refusal is an error)."""

    pid: int
    signal: str
    sent: bool


_PROC_ATTRS = ["pid", "ppid", "name", "username", "status", "cpu_percent", "memory_percent",
               "memory_info", "num_threads", "create_time", "cmdline"]


def _process_row(info: dict[str, Any]) -> ProcessRow:
    mem = info.get("memory_info")
    return {
        "pid": info["pid"],
        "ppid": info.get("ppid"),
        "name": info.get("name") or "",
        "username": info.get("username"),
        "status": info.get("status"),
        "cpu_percent": round(info.get("cpu_percent") or 0.0, 2),
        "memory_percent": round(info.get("memory_percent") or 0.0, 3),
        "memory_rss_bytes": mem.rss if mem is not None else None,
        "memory_vms_bytes": mem.vms if mem is not None else None,
        "num_threads": info.get("num_threads"),
        "created_at": info.get("create_time"),
        "cmdline": info.get("cmdline") or [],
    }


class ProcessLister:
    """``sys.processes``'s scan: psutil ``process_iter`` keeps ``Process`` objects between
    calls (process-wide), so ``cpu_percent`` covers the time since the previous scan; when
    that scan is older than ``stale_s`` (or there was none) a priming scan runs
    ``prime_s`` first."""

    def __init__(self, prime_s: float = 0.2, stale_s: float = 30.0) -> None:
        self.prime_s = prime_s
        self.stale_s = stale_s
        self._last = 0.0
        self._lock = threading.Lock()

    def scan(self) -> list[ProcessRow]:
        """All processes as rows (blocking)."""
        with self._lock:
            now = time.monotonic()
            if now - self._last > self.stale_s:
                for _p in psutil.process_iter(["cpu_percent"]):
                    pass
                time.sleep(self.prime_s)
            self._last = time.monotonic()
        return [_process_row(p.info) for p in psutil.process_iter(_PROC_ATTRS)]

    def list(self, sort: ProcessSort = "cpu", limit: int = 50, name: str | None = None,
             user: str | None = None) -> ProcessList:
        """The ``sys.processes`` result: ``scan()`` filtered by ``name`` (a glob on the
        process name, case-insensitive; a plain word matches anywhere) and ``user``,
        sorted by ``sort``, at most ``limit`` rows."""
        rows = self.scan()
        if name:
            pattern = name.lower()
            if not any(c in pattern for c in "*?["):
                pattern = f"*{pattern}*"
            rows = [r for r in rows if fnmatch.fnmatchcase(r["name"].lower(), pattern)]
        if user:
            rows = [r for r in rows if r["username"] == user]
        keys: dict[str, Callable[[ProcessRow], tuple[Any, ...]]] = {
            "cpu": (lambda r: (-r["cpu_percent"], r["pid"])),
            "memory": (lambda r: (-r["memory_percent"], r["pid"])),
            "pid": (lambda r: (r["pid"],)),
            "name": (lambda r: (r["name"].lower(), r["pid"])),
        }
        rows.sort(key=keys[sort])
        total = len(rows)
        return {"processes": rows[:limit], "total": total, "truncated": total > limit,
                "ts": time.time()}


#: The process-wide lister (psutil's ``process_iter`` cache is process-wide too).
LISTER = ProcessLister()


def list_processes(sort: ProcessSort = "cpu", limit: int = 50, name: str | None = None,
                   user: str | None = None) -> ProcessList:
    """The ``sys.processes`` result through ``LISTER`` (see ``ProcessLister.list``)."""
    return LISTER.list(sort, limit, name, user)


def _fields(nt: Any) -> dict[str, Any] | None:
    return dict(nt._asdict()) if nt is not None else None


def process_details(pid: int) -> ProcessDetails:
    """The ``sys.process`` result for ``pid`` (blocks 0.1 s to measure ``cpu_percent``).
    Raises ``NotFound`` when there is no such process (or it is gone) and
    ``PermissionDenied`` when the OS refuses to describe it at all."""
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            info = proc.as_dict(_PROC_ATTRS)
            cpu = proc.cpu_percent(interval=0.1)
            extra = proc.as_dict(["exe", "cwd", "terminal", "nice", "cpu_times",
                                  "memory_info", "num_fds", "io_counters",
                                  "num_ctx_switches"])
    except psutil.NoSuchProcess:
        raise NotFound(f"no process {pid}", {"pid": pid}) from None
    except psutil.AccessDenied:
        raise PermissionDenied(f"access to process {pid} denied", {"pid": pid}) from None
    row = _process_row(info)
    row["cpu_percent"] = cpu
    memory_info = _fields(extra.get("memory_info"))
    try:
        children = [c.pid for c in proc.children()]
        open_files: int | None = len(proc.open_files())
    except (psutil.AccessDenied, psutil.NoSuchProcess):
        children, open_files = [], None
    return {
        **row,
        "exe": extra.get("exe"),
        "cwd": extra.get("cwd"),
        "terminal": extra.get("terminal"),
        "nice": extra.get("nice"),
        "cpu_times_s": _fields(extra.get("cpu_times")),
        "memory_info": ({f"{k}_bytes": v for k, v in memory_info.items()}
                        if memory_info is not None else None),
        "num_fds": extra.get("num_fds"),
        "io_counters": _fields(extra.get("io_counters")),
        "num_ctx_switches": _fields(extra.get("num_ctx_switches")),
        "children": children,
        "open_files_count": open_files,
    }


# --------------------------------------------------------------------------- signals


class _Target(NamedTuple):
    """What ``sys.kill`` checks of a process: its thread-group id (the process a thread id
    stands for) and its real and saved uids."""

    tgid: int
    real_uid: int
    saved_uid: int


def _target(pid: int) -> _Target:
    """The process behind ``pid`` (Linux: ``/proc/<pid>/status``, so thread ids resolve to
    their process; elsewhere psutil). Raises ``NotFound``."""
    if sys.platform.startswith("linux"):
        try:
            with open(f"/proc/{pid}/status", "rb") as fh:
                fields = dict(line.split(b":", 1) for line in fh.read().splitlines()
                              if b":" in line)
            uids = fields[b"Uid"].split()
            return _Target(int(fields[b"Tgid"]), int(uids[0]), int(uids[2]))
        except (FileNotFoundError, ProcessLookupError, KeyError, IndexError, ValueError):
            raise NotFound(f"no process {pid}", {"pid": pid}) from None
    try:
        ids = psutil.Process(pid).uids()
    except psutil.NoSuchProcess:
        raise NotFound(f"no process {pid}", {"pid": pid}) from None
    return _Target(pid, ids.real, ids.saved)


def protected_reason(pid: int) -> str | None:
    """Why ``pid`` may never be signalled through the daemon (``init``, ``daemon``,
    ``daemon_ancestor``, ``daemon_descendant``; the daemon is this process), or None."""
    me = os.getpid()
    if pid == 1:
        return "init"
    if pid == me:
        return "daemon"
    daemon = psutil.Process(me)
    if any(p.pid == pid for p in daemon.parents()):
        return "daemon_ancestor"
    if any(p.pid == pid for p in daemon.children(recursive=True)):
        return "daemon_descendant"
    return None


_WHO = {"init": "pid 1 (init)", "daemon": "the xsys daemon itself",
        "daemon_ancestor": "an ancestor of the xsys daemon",
        "daemon_descendant": "a process of the xsys daemon"}


def _check_kill(pid: int, target: _Target, peer_uid: int | None) -> None:
    """Raise ``PermissionDenied`` (with ``data.reason``) unless a peer of ``peer_uid`` may
    signal ``target``."""
    reason = protected_reason(target.tgid)
    if reason is not None:
        raise PermissionDenied(
            f"process {pid} is {_WHO[reason]}; sys.kill never signals it",
            {"pid": pid, "reason": reason})
    if peer_uid is None:
        raise PermissionDenied("sys.kill needs the caller's uid, which is unknown here",
                               {"pid": pid, "reason": "unknown_peer"})
    if peer_uid != 0 and peer_uid not in (target.real_uid, target.saved_uid):
        raise PermissionDenied(
            f"process {pid} does not belong to the caller (uid {peer_uid})",
            {"pid": pid, "reason": "not_owner", "owner_uid": target.real_uid,
             "uid": peer_uid})


def send_signal(pid: int, signum: signal_mod.Signals, peer_uid: int | None) -> None:
    """Send ``signum`` to process ``pid`` for a peer of ``peer_uid`` under the ``sys.kill``
    rules: never pid 1, the daemon, its ancestors or descendants (a thread id stands for
    its process); a non-root peer only processes whose real or saved uid is its own. On
    Linux the process is pinned by a pidfd before the checks and signalled through it, so
    a pid that dies and is reused in between is never signalled. Raises
    ``PermissionDenied`` (``data.reason``), ``NotFound`` or the mapped ``OSError``."""
    target = _target(pid)
    fd = _pidfd_open(target.tgid)
    if fd is None:  # no pidfds here: check, then kill (a reuse race remains)
        _check_kill(pid, target, peer_uid)
        try:
            os.kill(target.tgid, signum)
        except OSError as exc:
            raise error_from_oserror(exc) from None
        return
    try:
        target = _target(target.tgid)  # read again: now about the pinned process
        # Still alive (EPERM says so too), so what was just read is the pinned process's.
        with contextlib.suppress(PermissionError):
            signal_mod.pidfd_send_signal(fd, 0)
        _check_kill(pid, target, peer_uid)
        signal_mod.pidfd_send_signal(fd, signum)
    except ProcessLookupError:
        raise NotFound(f"no process {pid}", {"pid": pid}) from None
    except OSError as exc:
        raise error_from_oserror(exc) from None
    finally:
        os.close(fd)


def _pidfd_open(pid: int) -> int | None:
    """A pidfd for ``pid``, or None where the platform or kernel has none. Raises
    ``NotFound``."""
    if not hasattr(os, "pidfd_open") or not hasattr(signal_mod, "pidfd_send_signal"):
        return None
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        raise NotFound(f"no process {pid}", {"pid": pid}) from None
    except OSError as exc:
        if exc.errno in (errno.ENOSYS, errno.EPERM):  # old kernel, or seccomp says no
            return None
        raise error_from_oserror(exc) from None
