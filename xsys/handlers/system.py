"""The ``sys`` namespace: machine facts and live metrics from psutil.

Field names are psutil's (https://psutil.readthedocs.io), with units: byte counts are
integer bytes, ``percent`` fields are 0..100, times are seconds, timestamps epoch
seconds (``*_at``/``ts``), rates per second (``*_per_s``). Percentages and rates come from
the background sampler (``xsys.monitor.sampler``), so calls never wait for a sampling
interval and the first call is never a meaningless 0.0.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import os
import platform
import signal as signal_mod
import socket
import sys
import time
from typing import Annotated, Any, Literal, NamedTuple

import psutil

from xsys.monitor.collectors import PSEUDO_FS
from xsys.monitor.sampler import Sampler, Snapshot
from xsys.protocol import InvalidParams, NotFound, PermissionDenied, error_from_oserror
from xsys.server.app import App
from xsys.server.context import Context
from xsys.server.router import Doc, Range, Router


def _nt(value: Any) -> dict[str, Any]:
    return dict(value._asdict()) if value is not None else {}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith(("model name", "Hardware", "Processor")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _os_name() -> str:
    try:
        info = platform.freedesktop_os_release()
        return info.get("PRETTY_NAME") or info.get("NAME") or platform.system()
    except OSError:
        return f"{platform.system()} {platform.release()}"


def skip_partition(part: Any) -> bool:
    """True for pseudo filesystems and loop/ram devices (``sys.disks`` without ``all``)."""
    dev = str(part.device)
    return (part.fstype in PSEUDO_FS or dev.startswith(("/dev/loop", "/dev/ram"))
            or part.fstype == "")


def partitions(include_all: bool = False) -> list[Any]:
    """psutil ``disk_partitions`` entries of real filesystems, one per mountpoint (all of
    them with ``include_all``)."""
    if include_all:
        return list(psutil.disk_partitions(all=True))
    out = []
    seen: set[str] = set()
    for part in psutil.disk_partitions(all=False):
        if not skip_partition(part) and part.mountpoint not in seen:
            seen.add(part.mountpoint)
            out.append(part)
    return out


def list_disks(include_all: bool = False) -> list[dict[str, Any]]:
    """Mounted filesystems with usage (blocking: ``statvfs`` may stall on network mounts).

    Each: ``device``, ``mountpoint``, ``fstype``, ``opts``, ``total``/``used``/``free``
    bytes, ``percent``, and ``inodes_total``/``inodes_used``/``inodes_free``/
    ``inodes_percent`` where the filesystem has inodes. Source: psutil
    ``disk_partitions``/``disk_usage`` and ``os.statvfs``.
    """
    out = []
    for part in partitions(include_all):
        row: dict[str, Any] = {
            "device": part.device, "mountpoint": part.mountpoint, "fstype": part.fstype,
            "opts": part.opts,
        }
        try:
            usage = psutil.disk_usage(part.mountpoint)
            row.update(total=usage.total, used=usage.used, free=usage.free,
                       percent=usage.percent)
            st = os.statvfs(part.mountpoint)
            if st.f_files:
                used_inodes = st.f_files - st.f_ffree
                row.update(inodes_total=st.f_files, inodes_used=used_inodes,
                           inodes_free=st.f_ffree,
                           inodes_percent=round(100.0 * used_inodes / st.f_files, 2))
        except OSError as exc:
            row["error"] = exc.strerror or str(exc)
        out.append(row)
    return out


def _snapshot(app: App) -> Snapshot:
    sampler: Sampler = app.services["sampler"]
    snap = sampler.latest
    if snap is None:  # only before start() returned, e.g. direct use in tests
        snap = sampler.sample_now()
    return snap


def _process_row(info: dict[str, Any]) -> dict[str, Any]:
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
        "create_time": info.get("create_time"),
        "cmdline": info.get("cmdline") or [],
    }


_PROC_ATTRS = ["pid", "ppid", "name", "username", "status", "cpu_percent", "memory_percent",
               "memory_info", "num_threads", "create_time", "cmdline"]


class ProcessLister:
    """``sys.processes``'s scan: psutil ``process_iter`` keeps ``Process`` objects between
    calls, so ``cpu_percent`` covers the time since the previous scan; when that scan is
    older than ``stale_s`` (or there was none) a priming scan runs ``prime_s`` first."""

    def __init__(self, prime_s: float = 0.2, stale_s: float = 30.0) -> None:
        self.prime_s = prime_s
        self.stale_s = stale_s
        self._last = 0.0

    def scan(self) -> list[dict[str, Any]]:
        """All processes as rows (blocking)."""
        now = time.monotonic()
        if now - self._last > self.stale_s:
            for _p in psutil.process_iter(["cpu_percent"]):
                pass
            time.sleep(self.prime_s)
        self._last = time.monotonic()
        return [_process_row(p.info) for p in psutil.process_iter(_PROC_ATTRS)]


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


def _protected_reason(pid: int) -> str | None:
    """Why ``pid`` may never be signalled through the daemon (``init``, ``daemon``,
    ``daemon_ancestor``, ``daemon_descendant``), or None."""
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
    reason = _protected_reason(target.tgid)
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
    rules (see its docstring). On Linux the process is pinned by a pidfd before the checks
    and signalled through it, so a pid that dies and is reused in between is never
    signalled. Raises ``PermissionDenied``, ``NotFound`` or the mapped ``OSError``."""
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


def register(router: Router, app: App) -> None:
    """Declare the sys.* methods."""
    lister = ProcessLister()
    app.capabilities.append("sys")

    @router.method("sys.info", kind="blocking", safe=True)
    def info(ctx: Context) -> dict[str, Any]:
        """Host identity and totals: hostname, os, kernel, arch, boot time, uptime, CPU
        count/model, memory and swap totals, load.

        Returns ``{"hostname", "os", "kernel", "arch", "boot_time" (epoch s),
        "uptime_s", "cpu_count_logical", "cpu_count_physical", "cpu_model",
        "memory_total" (bytes), "swap_total" (bytes), "load": [1, 5, 15],
        "python", "ts"}`` plus ``memory``, ``disks``, ``network`` summaries.
        """
        snap = _snapshot(ctx.app)
        boot = psutil.boot_time()
        disks = list_disks()
        nics = psutil.net_if_stats()
        addrs = psutil.net_if_addrs()
        network = []
        for name, st in sorted(nics.items()):
            ips = [a.address for a in addrs.get(name, []) if a.family in (
                socket.AF_INET, socket.AF_INET6)]
            rates = snap.net_io.get(name, {})
            network.append({"name": name, "isup": st.isup, "addresses": ips,
                            "bytes_sent_per_s": rates.get("bytes_sent_per_s", 0.0),
                            "bytes_recv_per_s": rates.get("bytes_recv_per_s", 0.0)})
        return {
            "hostname": socket.gethostname(),
            "os": _os_name(),
            "system": platform.system(),
            "kernel": platform.release(),
            "arch": platform.machine(),
            "boot_time": boot,
            "uptime_s": round(time.time() - boot, 3),
            "cpu_count_logical": psutil.cpu_count(logical=True),
            "cpu_count_physical": psutil.cpu_count(logical=False),
            "cpu_model": _cpu_model(),
            "cpu_percent": snap.cpu_percent,
            "memory_total": int(snap.memory.get("total", 0)),
            "memory_available": int(snap.memory.get("available", 0)),
            "memory_percent": snap.memory.get("percent", 0.0),
            "swap_total": int(snap.swap.get("total", 0)),
            "swap_percent": snap.swap.get("percent", 0.0),
            "load": list(snap.load),
            "disks": [{k: d.get(k) for k in ("mountpoint", "device", "fstype", "total",
                                               "used", "free", "percent")} for d in disks],
            "network": network,
            "python": platform.python_version(),
            "ts": snap.ts,
        }

    @router.method("sys.cpu", kind="inline", safe=True)
    def cpu(ctx: Context,
            per_cpu: Annotated[bool, Doc("include one entry per logical CPU")] = True,
            ) -> dict[str, Any]:
        """CPU use over the last sampling interval, times, frequency and counts.

        Returns ``{"percent", "per_cpu_percent": [..], "times_percent": {user, system,
        idle, iowait...}, "times": {user, system, idle... (seconds since boot)},
        "freq_mhz": {current, min, max} | None, "count_logical", "count_physical",
        "stats": {ctx_switches, interrupts, soft_interrupts, syscalls},
        "interval_s", "ts"}``. Source: psutil ``cpu_percent``, ``cpu_times_percent``,
        ``cpu_times``, ``cpu_freq``, ``cpu_stats``.
        """
        snap = _snapshot(ctx.app)
        out: dict[str, Any] = {
            "percent": snap.cpu_percent,
            "times_percent": dict(snap.cpu_times_percent),
            "interval_s": round(snap.interval_s, 6),
            "ts": snap.ts,
        }
        if per_cpu:
            out["per_cpu_percent"] = list(snap.cpu_percent_per_cpu)
        out.update(
            times=dict(snap.cpu_times),
            freq_mhz=dict(snap.cpu_freq_mhz) if snap.cpu_freq_mhz else None,
            count_logical=snap.cpu_count_logical,
            count_physical=snap.cpu_count_physical,
            stats=dict(snap.cpu_stats),
        )
        return out

    @router.method("sys.memory", kind="inline", safe=True)
    def memory(ctx: Context) -> dict[str, Any]:
        """Virtual memory and swap, in bytes and percent (psutil ``virtual_memory``,
        ``swap_memory``; sampled in the background).

        Returns ``{"virtual": {total, available, percent, used, free, active, inactive,
        buffers, cached, shared, slab}, "swap": {total, used, free, percent, sin, sout},
        "ts"}``.
        """
        snap = _snapshot(ctx.app)
        return {"virtual": dict(snap.memory), "swap": dict(snap.swap), "ts": snap.ts}

    @router.method("sys.disks", kind="blocking", safe=True)
    def disks(ctx: Context,
              all: Annotated[bool, Doc("include pseudo, loop and duplicate mounts")] = False,
              ) -> dict[str, Any]:
        """Mounted filesystems with usage (pseudo filesystems such as squashfs/overlay and
        loop devices skipped unless ``all``).

        Returns ``{"disks": [{device, mountpoint, fstype, opts, total, used, free,
        percent, inodes_total, inodes_used, inodes_free, inodes_percent}], "ts"}``.
        """
        return {"disks": list_disks(all), "ts": time.time()}

    @router.method("sys.disk_io", kind="inline", safe=True)
    def disk_io(ctx: Context,
                per_disk: Annotated[bool, Doc("include one entry per disk")] = True,
                ) -> dict[str, Any]:
        """Disk I/O counters and per-second rates, total and per disk (psutil
        ``disk_io_counters``: ``read_bytes``, ``write_bytes``, ``read_count``,
        ``write_count``, ``read_time``/``write_time`` ms, ``busy_time`` ms; rates
        ``read_bytes_per_s``...).

        Returns ``{"total": {...}, "disks": {name: {...}}, "interval_s", "ts"}``.
        """
        snap = _snapshot(ctx.app)
        out: dict[str, Any] = {"total": dict(snap.disk_io_total),
                               "interval_s": round(snap.interval_s, 6), "ts": snap.ts}
        if per_disk:
            out["disks"] = {k: dict(v) for k, v in snap.disk_io.items()}
        return out

    @router.method("sys.network", kind="blocking", safe=True)
    def network(ctx: Context) -> dict[str, Any]:
        """Network interfaces with addresses, MAC, up/speed/MTU, counters and per-second
        rates (psutil ``net_if_addrs``, ``net_if_stats``, ``net_io_counters``).

        Returns ``{"interfaces": [{name, isup, speed_mbps, mtu, duplex, mac,
        addresses: [{family: "ipv4"|"ipv6", address, netmask, broadcast}], bytes_sent,
        bytes_recv, packets_sent, packets_recv, errin, errout, dropin, dropout,
        bytes_sent_per_s, bytes_recv_per_s, ...}], "total": {...}, "ts"}``.
        """
        snap = _snapshot(ctx.app)
        stats = psutil.net_if_stats()
        addrs = psutil.net_if_addrs()
        link = getattr(psutil, "AF_LINK", -1)
        interfaces = []
        for name in sorted(set(stats) | set(addrs)):
            st = stats.get(name)
            row: dict[str, Any] = {
                "name": name,
                "isup": st.isup if st else False,
                "speed_mbps": st.speed if st else 0,
                "mtu": st.mtu if st else 0,
                "duplex": str(getattr(st, "duplex", "")).rsplit("_", 1)[-1].lower()
                if st else "",
                "mac": None,
                "addresses": [],
            }
            for a in addrs.get(name, []):
                if a.family == link:
                    row["mac"] = a.address
                elif a.family in (socket.AF_INET, socket.AF_INET6):
                    row["addresses"].append({
                        "family": "ipv4" if a.family == socket.AF_INET else "ipv6",
                        "address": a.address, "netmask": a.netmask,
                        "broadcast": a.broadcast})
            row.update(snap.net_io.get(name, {}))
            interfaces.append(row)
        return {"interfaces": interfaces, "total": dict(snap.net_io_total),
                "interval_s": round(snap.interval_s, 6), "ts": snap.ts}

    @router.method("sys.load", kind="inline", safe=True)
    def load(ctx: Context) -> dict[str, Any]:
        """Load averages over 1, 5 and 15 minutes, absolute and per logical CPU
        (``os.getloadavg``; node_exporter's ``node_load1``...).

        Returns ``{"load1", "load5", "load15", "per_cpu": {load1, load5, load15},
        "cpu_count", "ts"}``.
        """
        snap = _snapshot(ctx.app)
        n = snap.cpu_count_logical
        l1, l5, l15 = snap.load
        return {"load1": l1, "load5": l5, "load15": l15,
                "per_cpu": {"load1": round(l1 / n, 4), "load5": round(l5 / n, 4),
                            "load15": round(l15 / n, 4)},
                "cpu_count": n, "ts": snap.ts}

    @router.method("sys.processes", kind="blocking", safe=True)
    def processes(
        ctx: Context,
        sort: Annotated[Literal["cpu", "memory", "pid", "name"],
                        Doc("sort key; cpu and memory sort descending")] = "cpu",
        limit: Annotated[int, Range(1, 100_000), Doc("rows at most")] = 50,
        name: Annotated[str | None, Doc("glob on the process name (case-insensitive)")] = None,
        user: Annotated[str | None, Doc("only this user's processes")] = None,
    ) -> dict[str, Any]:
        """Processes sorted and filtered; ``cpu_percent`` is over the time since the
        previous listing (at least 0.2 s).

        Returns ``{"processes": [{pid, ppid, name, username, status, cpu_percent,
        memory_percent, memory_rss_bytes, memory_vms_bytes, num_threads, create_time,
        cmdline}], "total": <matching before limit>, "truncated": bool, "ts"}``.
        """
        rows = lister.scan()
        if name:
            pattern = name.lower()
            if not any(c in pattern for c in "*?["):
                pattern = f"*{pattern}*"
            rows = [r for r in rows if fnmatch.fnmatchcase(r["name"].lower(), pattern)]
        if user:
            rows = [r for r in rows if r["username"] == user]
        keys = {
            "cpu": (lambda r: (-r["cpu_percent"], r["pid"])),
            "memory": (lambda r: (-r["memory_percent"], r["pid"])),
            "pid": (lambda r: (r["pid"],)),
            "name": (lambda r: (r["name"].lower(), r["pid"])),
        }
        rows.sort(key=keys[sort])
        total = len(rows)
        return {"processes": rows[:limit], "total": total, "truncated": total > limit,
                "ts": time.time()}

    @router.method("sys.process", kind="blocking", safe=True)
    def process(ctx: Context, pid: Annotated[int, Range(0, 2**31)]) -> dict[str, Any]:
        """One process in detail; -32001 not_found when it does not exist (or is gone).

        Returns the ``sys.processes`` row plus ``exe``, ``cwd``, ``terminal``, ``nice``,
        ``cpu_times`` (s), ``memory_info`` (bytes), ``num_fds``, ``io_counters``,
        ``num_ctx_switches``, ``connections_count``, ``open_files_count``, ``children``
        (pids), ``environ_count``. Fields the OS refuses are None.
        """
        try:
            proc = psutil.Process(pid)
            with proc.oneshot():
                row = _process_row(proc.as_dict(_PROC_ATTRS))
                row["cpu_percent"] = proc.cpu_percent(interval=0.1)
                extra = proc.as_dict(["exe", "cwd", "terminal", "nice", "cpu_times",
                                      "memory_info", "num_fds", "io_counters",
                                      "num_ctx_switches"])
        except psutil.NoSuchProcess:
            raise NotFound(f"no process {pid}", {"pid": pid}) from None
        except psutil.AccessDenied:
            raise PermissionDenied(f"access to process {pid} denied", {"pid": pid}) from None
        for key in ("cpu_times", "memory_info", "io_counters", "num_ctx_switches"):
            extra[key] = _nt(extra[key]) if extra.get(key) is not None else None
        row.update(extra)
        try:
            row["children"] = [c.pid for c in proc.children()]
            row["open_files_count"] = len(proc.open_files())
        except (psutil.AccessDenied, psutil.NoSuchProcess):
            row["children"], row["open_files_count"] = [], None
        return row

    @router.method("sys.sensors", kind="blocking", safe=True)
    def sensors(ctx: Context) -> dict[str, Any]:
        """Temperatures (°C), fans (RPM) and battery where the platform has them; empty
        lists otherwise, never an error (psutil ``sensors_*``).

        Returns ``{"temperatures": [{chip, label, current_celsius, high_celsius,
        critical_celsius}], "fans": [{chip, label, current_rpm}], "battery":
        {percent, secs_left, power_plugged} | None}``.
        """
        temps: list[dict[str, Any]] = []
        fans: list[dict[str, Any]] = []
        battery: dict[str, Any] | None = None
        try:
            for chip, entries in (psutil.sensors_temperatures() or {}).items():
                for e in entries:
                    temps.append({"chip": chip, "label": e.label,
                                  "current_celsius": e.current, "high_celsius": e.high,
                                  "critical_celsius": e.critical})
        except (AttributeError, OSError, RuntimeError):
            pass
        try:
            for chip, fentries in (psutil.sensors_fans() or {}).items():
                for f in fentries:
                    fans.append({"chip": chip, "label": f.label, "current_rpm": f.current})
        except (AttributeError, OSError, RuntimeError):
            pass
        try:
            bat = psutil.sensors_battery()
            if bat is not None:
                secs = bat.secsleft
                battery = {"percent": bat.percent,
                           "secs_left": secs if isinstance(secs, int) and secs >= 0 else None,
                           "power_plugged": bat.power_plugged}
        except (AttributeError, OSError, RuntimeError):
            pass
        return {"temperatures": temps, "fans": fans, "battery": battery}

    @router.method("sys.users", kind="blocking", safe=True)
    def users(ctx: Context) -> dict[str, Any]:
        """Users logged in (psutil ``users``): ``{"users": [{name, terminal, host,
        started (epoch s), pid}]}``."""
        return {"users": [{"name": u.name, "terminal": u.terminal, "host": u.host,
                           "started": u.started, "pid": getattr(u, "pid", None)}
                          for u in psutil.users()]}

    @router.method("sys.ports", kind="blocking", safe=True)
    def ports(ctx: Context,
              kind: Annotated[Literal["inet", "inet4", "inet6", "tcp", "udp", "unix", "all"],
                              Doc("socket families (psutil net_connections kind)")] = "inet",
              ) -> dict[str, Any]:
        """Listening sockets (TCP LISTEN, bound UDP) with pid where visible (psutil
        ``net_connections``; other users' pids need root).

        Returns ``{"ports": [{proto: tcp|udp|unix, family: ipv4|ipv6|unix, address,
        port, pid, process}]}``.
        """
        try:
            conns = psutil.net_connections(kind=kind)
        except psutil.AccessDenied:
            raise PermissionDenied("listing sockets needs more privileges") from None
        names: dict[int, str] = {}
        rows = []
        for c in conns:
            if c.type == socket.SOCK_STREAM and c.status != psutil.CONN_LISTEN:
                continue
            if c.type == socket.SOCK_DGRAM and c.raddr:
                continue
            fam = {socket.AF_INET: "ipv4", socket.AF_INET6: "ipv6"}.get(c.family, "unix")
            if c.laddr and isinstance(c.laddr, tuple):
                address, port = c.laddr[0], c.laddr[1]
            else:
                address, port = (c.laddr or ""), None
            proc_name = None
            if c.pid:
                if c.pid not in names:
                    try:
                        names[c.pid] = psutil.Process(c.pid).name()
                    except (psutil.NoSuchProcess, psutil.AccessDenied):
                        names[c.pid] = ""
                proc_name = names[c.pid] or None
            rows.append({"proto": "tcp" if c.type == socket.SOCK_STREAM else "udp",
                         "family": fam, "address": address, "port": port, "pid": c.pid,
                         "process": proc_name})
        rows.sort(key=lambda r: (r["proto"], r["port"] or 0, r["address"]))
        return {"ports": rows}

    @router.method("sys.kill", kind="blocking")
    def kill(ctx: Context, pid: Annotated[int, Range(1, 2**31)],
             signal: Annotated[str | int,
                               Doc("signal name (TERM, SIGKILL, hup) or number")] = "TERM",
             ) -> dict[str, Any]:
        """Send a signal to a process (off unless ``sys.allow_kill``).

        Never to pid 1, the daemon, its ancestors or its descendants, whoever asks; a
        non-root caller only to processes whose real or saved uid is its own (as kill(2)).
        A thread id stands for its process. Refusals are -32002 permission_denied with
        ``data.reason`` (``disabled``, ``init``, ``daemon``, ``daemon_ancestor``,
        ``daemon_descendant``, ``unknown_peer``, ``not_owner``); -32001 not_found when
        the pid does not exist. On Linux the signal goes through a pidfd opened before
        the checks, so a pid reused meanwhile is never signalled.

        Returns ``{"pid", "signal", "sent": true}``.
        """
        if not ctx.app.config.sys.allow_kill:
            raise PermissionDenied("sys.kill is disabled (set sys.allow_kill: true)",
                                   {"setting": "sys.allow_kill", "reason": "disabled"})
        try:
            if isinstance(signal, int):
                signum = signal_mod.Signals(signal)
            else:
                name = signal.upper()
                signum = signal_mod.Signals[name if name.startswith("SIG") else f"SIG{name}"]
        except (KeyError, ValueError):
            raise InvalidParams(f"unknown signal {signal!r}", {"param": "signal"}) from None
        send_signal(pid, signum, ctx.peer.uid)
        return {"pid": pid, "signal": signum.name, "sent": True}

