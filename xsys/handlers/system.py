"""The ``sys`` namespace: machine facts and live metrics, each method one call into
``xsys.host`` (psutil and /proc live there, not here).

Field names are psutil's (https://psutil.readthedocs.io), with units: byte counts are
integer ``*_bytes``, ``percent`` fields are 0..100, durations ``*_s``, timestamps epoch
seconds (``*_at``; ``ts`` is when the values were read), rates per second (``*_per_s``).
Percentages and rates come from the background sampler (``xsys.host.sampler``), so calls
never wait for a sampling interval and the first call is never a meaningless 0.0.
"""

from __future__ import annotations

import signal as signal_mod
from typing import Annotated, Any, Literal, TypedDict

from xsys import host
from xsys.host import (
    ConnectionKind,
    CpuUsage,
    DiskIOUsage,
    Disks,
    HostInfo,
    LoadAverages,
    MemoryUsage,
    NetworkUsage,
    Ports,
    ProcessDetails,
    ProcessList,
    ProcessSort,
    Sampler,
    Sensors,
    SignalSent,
    Snapshot,
    Users,
)
from xsys.live import LiveStats, SnapshotHub
from xsys.protocol import InvalidParams, PermissionDenied
from xsys.server.app import App
from xsys.server.context import Context, Subscription
from xsys.server.router import Doc, Range, Router


def _snapshot(ctx: Context) -> Snapshot:
    """The daemon sampler's latest snapshot (``Sampler.snapshot``)."""
    sampler: Sampler = ctx.app.services.sampler
    return sampler.snapshot()


def info(ctx: Context) -> HostInfo:
    """Host identity and totals: hostname, os, kernel, arch, boot time, uptime, CPU
    count/model, memory and swap totals, load.

    Returns ``{"hostname", "os", "system", "kernel", "arch", "booted_at" (epoch s),
    "uptime_s", "cpu_count_logical", "cpu_count_physical", "cpu_model", "cpu_percent",
    "memory_total_bytes", "memory_available_bytes", "memory_percent",
    "swap_total_bytes", "swap_percent", "load": [1, 5, 15], "python", "ts"}`` plus
    ``disks`` ([{mountpoint, device, fstype, total_bytes, used_bytes, free_bytes,
    percent}]) and ``network`` ([{name, isup, addresses, bytes_sent_per_s,
    bytes_recv_per_s}]) summaries.
    """
    return host.host_info(_snapshot(ctx))


def cpu(ctx: Context,
        per_cpu: Annotated[bool, Doc("include one entry per logical CPU")] = True,
        ) -> CpuUsage:
    """CPU use over the last sampling interval, times, frequency and counts.

    Returns ``{"percent", "per_cpu_percent": [..], "times_percent": {user, system,
    idle, iowait...}, "times_s": {user, system, idle... (seconds since boot)},
    "freq_mhz": {current, min, max} | None, "count_logical", "count_physical",
    "stats": {ctx_switches, interrupts, soft_interrupts, syscalls},
    "interval_s", "ts"}``. Source: psutil ``cpu_percent``, ``cpu_times_percent``,
    ``cpu_times``, ``cpu_freq``, ``cpu_stats``.
    """
    return host.cpu_usage(_snapshot(ctx), per_cpu)


def memory(ctx: Context) -> MemoryUsage:
    """Virtual memory and swap, in bytes and percent (psutil ``virtual_memory``,
    ``swap_memory``; sampled in the background).

    Returns ``{"virtual": {total_bytes, available_bytes, percent, used_bytes, free_bytes,
    active_bytes, inactive_bytes, buffers_bytes, cached_bytes, shared_bytes,
    slab_bytes}, "swap": {total_bytes, used_bytes, free_bytes, percent, sin_bytes,
    sout_bytes}, "ts"}``.
    """
    return host.memory_usage(_snapshot(ctx))


def disks(ctx: Context,
          all: Annotated[bool, Doc("include pseudo, loop and duplicate mounts")] = False,
          ) -> Disks:
    """Mounted filesystems with usage (pseudo filesystems such as squashfs/overlay and
    loop devices skipped unless ``all``).

    Returns ``{"disks": [{device, mountpoint, fstype, opts, total_bytes, used_bytes,
    free_bytes, percent, inodes_total, inodes_used, inodes_free, inodes_percent}],
    "ts"}``; ``error`` instead of the usage where a filesystem cannot be read.
    """
    return host.mounted_disks(all)


def disk_io(ctx: Context,
            per_disk: Annotated[bool, Doc("include one entry per disk")] = True,
            ) -> DiskIOUsage:
    """Disk I/O counters and per-second rates, total and per disk (psutil
    ``disk_io_counters``: ``read_bytes``, ``write_bytes``, ``read_count``,
    ``write_count``, ``read_time_s``/``write_time_s``, ``busy_time_s``; rates
    ``read_bytes_per_s``...).

    Returns ``{"total": {...}, "disks": {name: {...}}, "interval_s", "ts"}``.
    """
    return host.disk_io_usage(_snapshot(ctx), per_disk)


def network(ctx: Context) -> NetworkUsage:
    """Network interfaces with addresses, MAC, up/speed/MTU, counters and per-second
    rates (psutil ``net_if_addrs``, ``net_if_stats``, ``net_io_counters``).

    Returns ``{"interfaces": [{name, isup, speed_mbps, mtu_bytes, duplex, mac,
    addresses: [{family: "ipv4"|"ipv6", address, netmask, broadcast}], bytes_sent,
    bytes_recv, packets_sent, packets_recv, errin, errout, dropin, dropout,
    bytes_sent_per_s, bytes_recv_per_s, ...}], "total": {...}, "interval_s", "ts"}``.
    """
    return host.network_usage(_snapshot(ctx))


def load(ctx: Context) -> LoadAverages:
    """Load averages over 1, 5 and 15 minutes, absolute and per logical CPU
    (``os.getloadavg``; node_exporter's ``node_load1``...).

    Returns ``{"load1", "load5", "load15", "per_cpu": {load1, load5, load15},
    "cpu_count", "ts"}``.
    """
    return host.load_averages(_snapshot(ctx))


def processes(
    ctx: Context,
    sort: Annotated[ProcessSort, Doc("sort key; cpu and memory sort descending")] = "cpu",
    limit: Annotated[int, Range(1, 100_000), Doc("rows at most")] = 50,
    name: Annotated[str | None, Doc("glob on the process name (case-insensitive)")] = None,
    user: Annotated[str | None, Doc("only this user's processes")] = None,
) -> ProcessList:
    """Processes sorted and filtered; ``cpu_percent`` is over the time since the
    previous listing (at least 0.2 s).

    Returns ``{"processes": [{pid, ppid, name, username, status, cpu_percent,
    memory_percent, memory_rss_bytes, memory_vms_bytes, num_threads, created_at,
    cmdline}], "total": <matching before limit>, "truncated": bool, "ts"}``.
    """
    return host.list_processes(sort, limit, name, user)


def process(ctx: Context, pid: Annotated[int, Range(0, 2**31)]) -> ProcessDetails:
    """One process in detail; -32001 not_found when it does not exist (or is gone).

    Returns the ``sys.processes`` row plus ``exe``, ``cwd``, ``terminal``, ``nice``,
    ``cpu_times_s`` ({user, system, ...} seconds), ``memory_info`` ({rss_bytes,
    vms_bytes, ...}), ``num_fds``, ``io_counters``, ``num_ctx_switches``,
    ``open_files_count``, ``children`` (pids). Fields the OS refuses are None.
    """
    return host.process_details(pid)


def sensors(ctx: Context) -> Sensors:
    """Temperatures (°C), fans (RPM) and battery where the platform has them; empty
    lists otherwise, never an error (psutil ``sensors_*``).

    Returns ``{"temperatures": [{chip, label, current_celsius, high_celsius,
    critical_celsius}], "fans": [{chip, label, current_rpm}], "battery":
    {percent, time_left_s, power_plugged} | None}``.
    """
    return host.sensors()


def users(ctx: Context) -> Users:
    """Users logged in (psutil ``users``): ``{"users": [{name, terminal, host,
    started_at (epoch s), pid}]}``."""
    return host.users()


def ports(ctx: Context,
          kind: Annotated[ConnectionKind,
                          Doc("socket families (psutil net_connections kind)")] = "inet",
          ) -> Ports:
    """Listening sockets (TCP LISTEN, bound UDP) with pid where visible (psutil
    ``net_connections``; other users' pids need root).

    Returns ``{"ports": [{proto: tcp|udp, family: ipv4|ipv6|unix, address,
    port, pid, process}]}``.
    """
    return host.listening_ports(kind)


def kill(ctx: Context, pid: Annotated[int, Range(1, 2**31)],
         signal: Annotated[str | int,
                           Doc("signal name (TERM, SIGKILL, hup) or number")] = "TERM",
         ) -> SignalSent:
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
    host.send_signal(pid, signum, ctx.peer.uid)
    return {"pid": pid, "signal": signum.name, "sent": True}


SectionName = Literal["cpu", "memory", "swap", "load", "disks", "disk_io", "network",
                      "sensors", "processes", "monitor", "checks"]


class SysSubscribed(TypedDict):
    """``sys.subscribe``: the ``subscription`` id its ``sys.snapshot`` notifications carry,
    the ``interval_s`` granted (clamped to ``sys.min_interval_s``) and the ``sections``
    each snapshot holds."""

    subscription: str
    interval_s: float
    sections: list[str]


class SysUnsubscribed(TypedDict):
    """``sys.unsubscribe``: the ``subscription`` ended (``closed`` is always true)."""

    subscription: str
    closed: bool


def _hub(ctx: Context) -> SnapshotHub:
    """The daemon's snapshot hub (``Services.live``)."""
    hub: SnapshotHub = ctx.app.services.live
    return hub


def _conflate(sub: Subscription) -> int:
    """Drop the snapshots still queued for ``sub`` (its client reads slowly: the newer
    one replaces them); returns how many."""
    dropped = 0
    while sub.queue:
        frame, _weight = sub.queue.popleft()
        sub.queued_bytes -= len(frame)
        dropped += 1
    return dropped


def subscribe(
    ctx: Context,
    interval_s: Annotated[float, Doc("seconds between snapshots (clamped to "
                                     "sys.min_interval_s; at most 3600)")] = 1.0,
    sections: Annotated[list[SectionName] | None,
                        Doc("sections wanted (default: cpu, memory, swap, load, disks, "
                            "network)")] = None,
    per_cpu: Annotated[bool, Doc("include cpu.per_cpu_percent")] = False,
    top_processes: Annotated[int, Range(0, 100),
                             Doc("rows of the processes section (> 0 adds the "
                                 "section)")] = 0,
    process_sort: Annotated[Literal["cpu", "memory"],
                            Doc("order of the processes section (descending)")] = "cpu",
) -> SysSubscribed:
    """Stream live snapshots: ``sys.snapshot`` notifications, one per interval.

    Returns ``{"subscription", "interval_s", "sections"}``; then pushes ``sys.snapshot``
    with flat params ``{"subscription", "seq" (1, 2, ...), "ts" (epoch s of the sample),
    "dropped" (snapshots replaced unsent so far: a slow reader gets the latest, not a
    backlog), <section>: {...}}``. Sections carry the ``sys.*`` results' fields: ``cpu``
    (sys.cpu), ``memory``/``swap`` (sys.memory's virtual/swap), ``load``, ``disks``,
    ``disk_io``, ``network``, ``sensors`` (as their methods), ``processes``
    (``{"processes": [the top_processes sys.processes rows by process_sort], "total",
    "truncated", "sort", "ts"}``), ``monitor``
    (``{"firing", "checks": [monitor.status rows]}``), ``checks`` (``{"checks":
    [checks.status rows]}``). Errors: -32602 unknown section or bad interval, -32005
    past ``sys.max_subscriptions`` (or ``sys.max_subscriptions_per_uid`` for a peer other
    than root and the daemon's user). Ends with ``sys.unsubscribe`` or the connection.
    """
    sub = ctx.subscribe("sys")

    def push(snap: dict[str, Any]) -> None:
        if sub.queue:
            live.dropped += _conflate(sub)
        snap["dropped"] = live.dropped
        sub.push("snapshot", snap)

    try:
        live = _hub(ctx).subscribe(interval_s, sections, per_cpu, top_processes,
                                   process_sort, on_snapshot=push, uid=ctx.peer.uid)
    except BaseException:
        sub.close()
        raise
    sub.on_close(lambda _s: live.close())
    sub.info.update(interval_s=live.interval_s, sections=list(live.sections))
    return {"subscription": sub.id, "interval_s": live.interval_s,
            "sections": list(live.sections)}


def unsubscribe(ctx: Context,
                subscription: Annotated[str, Doc("id from sys.subscribe")],
                ) -> SysUnsubscribed:
    """End a ``sys.subscribe`` stream; -32001 when it is not one of this connection's.
    Returns ``{"subscription", "closed": true}``."""
    ctx.subscription(subscription, "sys").close()
    return {"subscription": subscription, "closed": True}


def live_stats(ctx: Context) -> LiveStats:
    """The snapshot hub's counters: ``{"subscriptions", "sampler_passes" (background
    samples taken since start: N subscribers cost one pass per interval),
    "sampler_period_s" (now), "ticks", "busy_skips", "snapshots_made", "dropped"}``."""
    return _hub(ctx).stats()


def register(router: Router, app: App) -> None:
    """Declare the sys.* methods (the sampler is the daemon's: ``Services.sampler``).

    ``inline`` methods only read the latest snapshot; ``blocking`` ones read the OS in the
    thread pool.
    """
    app.capabilities.append("sys")
    router.add("sys.info", info, kind="blocking", safe=True)
    router.add("sys.cpu", cpu, kind="inline", safe=True)
    router.add("sys.memory", memory, kind="inline", safe=True)
    router.add("sys.disks", disks, kind="blocking", safe=True)
    router.add("sys.disk_io", disk_io, kind="inline", safe=True)
    router.add("sys.network", network, kind="blocking", safe=True)
    router.add("sys.load", load, kind="inline", safe=True)
    router.add("sys.processes", processes, kind="blocking", safe=True)
    router.add("sys.process", process, kind="blocking", safe=True)
    router.add("sys.sensors", sensors, kind="blocking", safe=True)
    router.add("sys.users", users, kind="blocking", safe=True)
    router.add("sys.ports", ports, kind="blocking", safe=True)
    router.add("sys.kill", kill, kind="blocking")
    router.add("sys.subscribe", subscribe, kind="inline", streams="sys.snapshot")
    router.add("sys.unsubscribe", unsubscribe, kind="inline")
    router.add("sys.live_stats", live_stats, kind="inline", safe=True)
