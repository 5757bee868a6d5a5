"""The ``proc`` namespace: supervised worker groups (start, stop, rolling restart, scale,
status, logs, events). Each method is one call into ``xsys.proc.service.ProcService``
(``Services.proc``), which the composition root (``xsys.daemon``) builds, starts, stops
and reconfigures with the daemon (SIGHUP reload).

A group runs as the calling peer (its uid, gid and groups when the daemon is root; a
root daemon never runs a peer's command as root), and only that peer's uid or root may
stop, restart, scale it or read its logs (-32002, ``data.reason: "not_owner"``)."""

from __future__ import annotations

import fnmatch
from typing import Annotated, Any, Literal

from xsys.config import ConfigError, from_dict
from xsys.proc.config import GroupConfig, normalize_start_params
from xsys.proc.model import ProcGroup, ProcList, ProcLogs, ProcSubscribed, ProcUnsubscribed
from xsys.proc.service import Owner, ProcService
from xsys.protocol import InvalidParams
from xsys.server.app import App
from xsys.server.context import Context, Subscription
from xsys.server.router import Doc, Range, Router

#: The defaults of a group (``GroupConfig``), shown in ``rpc.methods``.
_D = GroupConfig(name="-", command=("-",))

Name = Annotated[str, Doc("the group's name")]


def _proc(ctx: Context) -> ProcService:
    """The daemon's ``ProcService`` (``Services.proc``)."""
    service: ProcService = ctx.app.services.proc
    return service


async def start(
    ctx: Context,
    name: Name,
    command: Annotated[list[str], Doc("argv: the program and its arguments (no shell)")],
    instances: Annotated[int, Range(0, 4096), Doc("copies to run; 0 = the CPU count")]
    = _D.instances,
    cwd: Annotated[str | None, Doc("working directory")] = None,
    env: Annotated[dict[str, Any] | None,
                   Doc("environment (strings); PATH defaults to the system's")] = None,
    restart: Annotated[Literal["never", "on-failure", "always"],
                       Doc("when an exited instance is started again")] = _D.restart,
    backoff: Annotated[dict[str, Any] | None,
                       Doc("{initial_s, max_s}: delay before a restart, doubling")] = None,
    max_restarts: Annotated[int, Range(0, 1_000_000),
                            Doc("restarts of one instance within restart_window_s "
                                "before the group is marked failed")] = _D.max_restarts,
    restart_window_s: Annotated[float, Range(0.001, 1e9)] = _D.restart_window_s,
    max_memory_bytes: Annotated[int | None, Range(1, 2**62),
                                Doc("RSS limit of each instance")] = None,
    max_cpu_percent: Annotated[float | None, Range(0.001, 1e6),
                               Doc("CPU limit of each instance (100 = one core)")] = None,
    enforce: Annotated[bool, Doc("restart an instance over a limit (else warn)")] = False,
    stop_signal: Annotated[str | int, Doc("signal that asks an instance to stop")]
    = _D.stop_signal,
    stop_timeout_s: Annotated[float, Range(0.001, 86400),
                              Doc("seconds from stop_signal to SIGKILL")] = _D.stop_timeout_s,
    ready: Annotated[dict[str, Any] | float | None,
                     Doc("{after_s, port, host, timeout_s}: when an instance is ready "
                         "(a port: port + XSYS_WORKER_ID accepts TCP)")] = None,
    ready_after_s: Annotated[float | None, Range(0, 86400),
                             Doc("ready after this many seconds up")] = None,
    ready_port: Annotated[int | None, Range(1, 65535),
                          Doc("ready when port + XSYS_WORKER_ID accepts TCP")] = None,
    rlimit_nofile: Annotated[int | None, Range(1, 2**31)] = None,
    rlimit_as: Annotated[int | None, Range(1, 2**62), Doc("address space limit, bytes")]
    = None,
    log_lines: Annotated[int, Range(1, 1_000_000),
                         Doc("lines kept per instance")] = _D.log_lines,
    log_bytes: Annotated[int, Range(1, 2**31),
                         Doc("bytes kept per instance")] = _D.log_bytes,
    log_dir: Annotated[str | None, Doc("also write output to files here, rotated")] = None,
    log_max_bytes: Annotated[int, Range(1, 2**40)] = _D.log_max_bytes,
    log_backups: Annotated[int, Range(0, 1000)] = _D.log_backups,
    detach: Annotated[bool, Doc("leave running when the daemon stops")] = False,
) -> ProcGroup:
    """Start a group of supervised worker processes.

    Each instance gets ``XSYS_WORKER_ID`` (0-based) and ``XSYS_WORKER_COUNT`` (and
    ``XSYS_WORKER_PORT`` with a ready port) and runs in its own process group as the
    caller. Returns the group's status (``proc.status``) once every instance's process
    exists; -32003 when a running group has the name; an exec failure is the OS error
    (-32001 ENOENT, -32002 EACCES, ``data.errno``) and leaves the group failed; -32005
    past ``proc.max_groups``/``max_instances``/``max_log_bytes``.
    """
    params = dict(name=name, command=command, instances=instances, cwd=cwd, env=env,
                  restart=restart, backoff=backoff, max_restarts=max_restarts,
                  restart_window_s=restart_window_s, max_memory_bytes=max_memory_bytes,
                  max_cpu_percent=max_cpu_percent, enforce=enforce,
                  stop_signal=str(stop_signal), stop_timeout_s=stop_timeout_s, ready=ready,
                  ready_after_s=ready_after_s, ready_port=ready_port,
                  rlimit_nofile=rlimit_nofile, rlimit_as=rlimit_as, log_lines=log_lines,
                  log_bytes=log_bytes, log_dir=log_dir, log_max_bytes=log_max_bytes,
                  log_backups=log_backups, detach=detach)
    try:
        cfg = from_dict(GroupConfig, normalize_start_params(params))
    except (ConfigError, ValueError) as exc:
        text = str(exc)
        parts = [p.strip() for p in text.split(":")]
        param = parts[1] if parts[0] == "<root>" and len(parts) > 2 else parts[0]
        raise InvalidParams(text, {"param": param.split(".")[0].split("[")[0]}) from None
    owner = Owner.for_peer(ctx.peer.uid, ctx.peer.gid, ctx.peer.groups)
    return await _proc(ctx).start_group(cfg, owner)


async def stop(
    ctx: Context,
    name: Name,
    remove: Annotated[bool, Doc("also forget the group (else it stays listed, stopped)")]
    = False,
) -> ProcGroup:
    """Stop a group: each instance gets its stop_signal, then SIGKILL after
    stop_timeout_s.

    Returns its status (``state: "stopped"``); the group stays listed (``proc.restart``
    or ``proc.start`` of the name runs it again) unless ``remove``. -32001 when no group
    has the name, -32002 when it is not the caller's (``data.reason: "not_owner"``).
    """
    return await _proc(ctx).stop_group(name, ctx.peer.uid, remove)


async def restart(ctx: Context, name: Name) -> ProcGroup:
    """Rolling restart: one instance at a time, the next only once the new one is ready.

    Returns the group's status after the rollout; -32007 when a new instance is not
    ready within ``ready.timeout_s`` (the rollout stops there); a failed group is started
    again whole.
    """
    return await _proc(ctx).restart_group(name, ctx.peer.uid)


async def scale(
    ctx: Context,
    name: Name,
    instances: Annotated[int, Range(0, 4096), Doc("the new count; 0 = the CPU count")],
) -> ProcGroup:
    """Change a group's number of instances (new ones get the next ids, the highest ids
    stop first).

    Returns the group's status; -32007 when the group is not running.
    """
    return await _proc(ctx).scale(name, instances, ctx.peer.uid)


def list_groups(ctx: Context) -> ProcList:
    """Every supervised group with its instances: ``{"groups": [<proc.status>]}``."""
    return {"groups": _proc(ctx).list_groups()}


def status(ctx: Context, name: Name) -> ProcGroup:
    """One group and each instance's pid, state, restarts, uptime, CPU, RSS and last exit.

    Returns ``{"name", "state" (running|stopping|stopped|failed), "error", "command",
    "cwd", "desired", "running", "ready", "restart", "uid", "gid", "owner_uid",
    "source", "detach", "created_at", "restarts", "instances": [{"id", "pid", "state",
    "ready", "restarts", "started_at", "uptime_s", "cpu_percent", "rss_bytes",
    "last_exit_code", "last_signal", "last_exit_at", "log_lines", "dropped_lines"}]}``;
    -32001 when no group has the name.
    """
    return _proc(ctx).status(name)


def logs(
    ctx: Context,
    name: Name,
    lines: Annotated[int, Range(1, 100_000), Doc("newest lines at most")] = 100,
    instance: Annotated[int | None, Range(0, 1_000_000), Doc("only this instance")] = None,
    stream: Annotated[Literal["stdout", "stderr"] | None, Doc("only this stream")] = None,
    after_seq: Annotated[int, Range(0, 2**62),
                         Doc("only lines after this seq (follow)")] = 0,
) -> ProcLogs:
    """The last lines of a group's output from its instances' bounded rings.

    Returns ``{"name", "lines": [{"seq", "instance", "stream", "at", "line"}],
    "last_seq", "dropped_lines"}``, oldest first; -32002 when the group is not the
    caller's.
    """
    return _proc(ctx).logs(name, ctx.peer.uid, lines, instance, stream, after_seq)


def subscribe(
    ctx: Context,
    name: Annotated[str | None, Doc("only groups whose name matches this glob")] = None,
) -> ProcSubscribed:
    """Stream the groups' lifecycle: ``proc.event`` notifications.

    Returns ``{"subscription": id}``; then pushes ``{"method": "proc.event", "params":
    {"subscription", "event" (started|ready|exited|restarted|limit_exceeded|failed),
    "name", "instance", "pid", "at", ...}}`` (exited: ``exit_code``, ``signal``,
    ``uptime_s``; restarted: ``reason``, ``restarts``; limit_exceeded: ``limit``
    (memory|cpu), ``value``, ``max``, ``action`` (warn|restart); failed: ``error``),
    until ``proc.unsubscribe`` or the connection closes.
    """
    sub = ctx.subscribe("proc")

    def push(event: dict[str, Any]) -> None:
        if name is None or fnmatch.fnmatchcase(event["name"], name):
            sub.push("event", event)

    unsubscribe = _proc(ctx).subscribe(push)

    def closed(_: Subscription) -> None:
        unsubscribe()

    sub.on_close(closed)
    sub.info.update(name=name)
    return {"subscription": sub.id}


def unsubscribe(
    ctx: Context,
    subscription: Annotated[str, Doc("id from proc.subscribe")],
) -> ProcUnsubscribed:
    """End a ``proc.subscribe`` stream; -32001 when it is not one of this connection's.
    Returns ``{"subscription": id, "closed": true}``."""
    ctx.subscription(subscription, "proc").close()
    return {"subscription": subscription, "closed": True}


def register(router: Router, app: App) -> None:
    """Declare the proc methods (on ``Services.proc``, which the composition root
    builds, starts, stops and reconfigures)."""
    app.capabilities.append("proc")
    router.add("proc.start", start, kind="async")
    router.add("proc.stop", stop, kind="async")
    router.add("proc.restart", restart, kind="async")
    router.add("proc.scale", scale, kind="async")
    router.add("proc.list", list_groups, kind="inline", safe=True)
    router.add("proc.status", status, kind="inline", safe=True)
    router.add("proc.logs", logs, kind="inline", safe=True)
    router.add("proc.subscribe", subscribe, kind="inline", streams="proc.event")
    router.add("proc.unsubscribe", unsubscribe, kind="inline")
