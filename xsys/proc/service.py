"""Supervised worker processes: groups of identical children started, watched, restarted
with backoff, limited, stopped, and the views behind ``proc.*``.

Each instance has one supervisor task on the loop. A child is started by
``subprocess.Popen`` in a worker thread (the fork and exec stay off the loop; an exec
failure comes back as the ``OSError`` of the exec), in its own session and process group
(``start_new_session``), with stdin from /dev/null and stdout/stderr on pipes read by two
tasks into the instance's bounded ring (``xsys.proc.output``). Its end is awaited on a
pidfd (Linux 5.3+; elsewhere a thread waits) and it is reaped at once (``Popen.wait``),
so no child stays a zombie; what it left in its process group is killed then.

Stopping sends ``stop_signal`` to the process group, then SIGKILL after
``stop_timeout_s``. CPU percent and RSS are sampled with psutil in the thread pool every
``sample_interval_s`` and checked against the group's limits.

Permissions: a group runs as its owner (``Owner``: the requesting peer's uid, gid and
groups when the daemon is root and the peer is not; the daemon's own identity otherwise);
only the owner or root may stop, restart, scale it or read its logs. Its ``cwd`` and log
files are checked and opened with the owner's file credentials (``xsys.fs.creds``).

The service never sees the App: it takes a ``Runner`` (``run_blocking``, ``spawn``) and
an ``Alert`` callback (the composition root routes it to the monitor).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import errno
import logging
import os
import resource
import signal as signal_mod
import stat as stat_mod
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import IO, Any, Protocol, TypeVar

import psutil

from xsys.fs.creds import as_peer
from xsys.proc.config import GroupConfig, ProcConfig
from xsys.proc.model import (
    EventName,
    GroupState,
    InstanceState,
    ProcGroup,
    ProcInstance,
    ProcLogLine,
    ProcLogs,
)
from xsys.proc.output import LogFile, Ring, Stream, new_seq
from xsys.protocol import (
    AlreadyExists,
    Conflict,
    InvalidParams,
    NotFound,
    Overloaded,
    PermissionDenied,
    XsysError,
    error_from_oserror,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Bytes read from a child's pipe at once.
READ_CHUNK_BYTES = 64 * 1024
#: Seconds between TCP readiness probes.
READY_POLL_S = 0.05
#: The PATH a worker gets when its ``env`` gives none.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

Alert = Callable[[str, str | None], None]
"""``alert(group, error)``: the group failed (``error`` says why), or ``error`` None: it
no longer is (stopped, replaced); the composition root feeds the monitor."""
Listener = Callable[[dict[str, Any]], None]
"""``listener(event)`` for each ``proc.event`` (loop thread, must not block)."""


class Runner(Protocol):
    """What the supervisor needs of the daemon (``xsys.server.app.App`` has it)."""

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in the bounded thread pool (may raise ``Overloaded``)."""
        ...

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        """A background task cancelled and awaited at shutdown."""
        ...


@dataclasses.dataclass(frozen=True)
class Owner:
    """Who a group belongs to and runs as: ``owner_uid`` may manage it (with root);
    the children run as ``uid``/``gid``/``groups``, switched to only when ``switch``
    (a root daemon running a peer's command); ``source``: ``config`` or ``request``."""

    owner_uid: int
    uid: int
    gid: int
    groups: tuple[int, ...] = ()
    switch: bool = False
    source: str = "request"

    @classmethod
    def daemon(cls) -> Owner:
        """The daemon's own identity (config groups, the HTTP mirror)."""
        return cls(os.geteuid(), os.geteuid(), os.getegid(), (), False, "config")

    @classmethod
    def for_peer(cls, uid: int | None, gid: int | None,
                 groups: Sequence[int] | None) -> Owner:
        """The owner of a group a peer asks for: the daemon's identity for a peer with
        its uid, for root and for an unknown peer; the peer's uid, gid and groups when the
        daemon is root. Raises ``PermissionDenied`` (``reason: "foreign_peer"``) when the
        daemon is not root and the peer is another uid."""
        own = os.geteuid()
        if uid is None or uid == own:
            return dataclasses.replace(cls.daemon(), source="request")
        if uid == 0:
            return cls(0, own, os.getegid(), (), False, "request")
        if own != 0:
            raise PermissionDenied(
                f"this daemon runs as uid {own} and cannot run processes as uid {uid}",
                {"reason": "foreign_peer", "uid": uid})
        peer_gid = gid if gid is not None else uid
        if groups is None:
            groups = _user_groups(uid, peer_gid)
        return cls(uid, uid, peer_gid, tuple(sorted(set(groups))), True, "request")


def _user_groups(uid: int, gid: int) -> list[int]:
    try:
        import pwd

        return os.getgrouplist(pwd.getpwuid(uid).pw_name, gid)
    except (KeyError, OSError):
        return [gid]


class Instance:
    """One worker slot of a group and its current process (see ``ProcInstance``)."""

    def __init__(self, group: Group, index: int) -> None:
        self.group = group
        self.id = index
        self.popen: subprocess.Popen[bytes] | None = None
        self.state: InstanceState = "starting"
        self.ready = False
        self.restarts = 0
        self.started_at: float | None = None
        self.last_exit_code: int | None = None
        self.last_signal: str | None = None
        self.last_exit_at: float | None = None
        self.cpu_percent: float | None = None
        self.rss_bytes: int | None = None
        cfg = group.config
        self.ring = Ring(cfg.log_lines, cfg.log_bytes, group.seq)
        self.task: asyncio.Task[Any] | None = None
        self.stop_requested = False
        self.restart_reason: str | None = None  # a restart asked for (rolling, limit)
        self.wake = asyncio.Event()  # ends a backoff wait early
        self.exited = asyncio.Event()  # the current process ended and was reaped
        self.ready_event = asyncio.Event()
        self.next_launch = asyncio.Event()  # set (and replaced) at each launch
        self.launched: asyncio.Future[BaseException | None] = (
            asyncio.get_running_loop().create_future())
        self.generation = 0
        self.crash_times: collections.deque[float] = collections.deque()
        self.consecutive = 0
        self.over: set[str] = set()  # limits currently exceeded
        self.files: dict[Stream, LogFile] = {}

    @property
    def pid(self) -> int | None:
        """The running process's pid."""
        p = self.popen
        return p.pid if p is not None and p.returncode is None else None

    def row(self, now: float) -> ProcInstance:
        """The ``proc.status`` row."""
        pid = self.pid
        return {"id": self.id, "pid": pid, "state": self.state, "ready": self.ready,
                "restarts": self.restarts,
                "started_at": self.started_at if pid is not None else None,
                "uptime_s": (now - self.started_at) if pid is not None and self.started_at
                else None,
                "cpu_percent": self.cpu_percent if pid is not None else None,
                "rss_bytes": self.rss_bytes if pid is not None else None,
                "last_exit_code": self.last_exit_code, "last_signal": self.last_signal,
                "last_exit_at": self.last_exit_at, "log_lines": len(self.ring.lines),
                "dropped_lines": self.ring.dropped}


class Group:
    """A named group of instances, its config, owner and state."""

    def __init__(self, config: GroupConfig, owner: Owner, instances: int) -> None:
        self.config = config
        self.owner = owner
        self.wanted = instances
        self.state: GroupState = "running"
        self.error: str | None = None
        self.created_at = time.time()
        self.seq = new_seq()
        self.last_seq = 0
        self.instances: dict[int, Instance] = {}
        self.lock = asyncio.Lock()
        self.retired_dropped = 0

    @property
    def name(self) -> str:
        """The group's name."""
        return self.config.name

    def row(self) -> ProcGroup:
        """The ``proc.status`` result."""
        now = time.time()
        rows = [i.row(now) for i in sorted(self.instances.values(), key=lambda i: i.id)]
        cfg = self.config
        return {"name": cfg.name, "state": self.state, "error": self.error,
                "command": list(cfg.command), "cwd": cfg.cwd, "desired": self.wanted,
                "running": sum(1 for r in rows if r["pid"] is not None),
                "ready": sum(1 for r in rows if r["ready"]),
                "restart": cfg.restart, "uid": self.owner.uid, "gid": self.owner.gid,
                "owner_uid": self.owner.owner_uid,
                "source": "config" if self.owner.source == "config" else "request",
                "detach": cfg.detach, "created_at": self.created_at,
                "restarts": sum(r["restarts"] for r in rows), "instances": rows}


def _signal_name(code: int) -> str:
    try:
        return signal_mod.Signals(code).name
    except ValueError:
        return f"SIG{code}"


def _killpg(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _set_rlimits(nofile: int | None, address_space: int | None) -> None:
    """In the child, before exec (``preexec_fn``, used only when a limit is asked)."""
    if nofile is not None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    if address_space is not None:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))


def _nr_open() -> int | None:
    """Linux's ceiling of RLIMIT_NOFILE (``/proc/sys/fs/nr_open``), None elsewhere."""
    try:
        with open("/proc/sys/fs/nr_open", "rb") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _check_rlimits(cfg: GroupConfig, owner: Owner) -> None:
    """Raise ``InvalidParams`` (``data.param``) for an ``rlimit_nofile``/``rlimit_as`` the
    child could not set: above the daemon's hard limit for a child that is not root (it
    may only lower it), or ``rlimit_nofile`` above ``nr_open``. In the child the failure
    would only be subprocess's opaque "Exception occurred in preexec_fn"."""
    child_is_root = not owner.switch and os.geteuid() == 0
    for param, value, which in (("rlimit_nofile", cfg.rlimit_nofile, resource.RLIMIT_NOFILE),
                                ("rlimit_as", cfg.rlimit_as, resource.RLIMIT_AS)):
        if value is None:
            continue
        hard = resource.getrlimit(which)[1]
        if not child_is_root and hard != resource.RLIM_INFINITY and value > hard:
            raise InvalidParams(f"parameter {param!r}: {value} is above the hard limit "
                                f"{hard} the worker may raise it to",
                                {"param": param, "max": hard})
        ceiling = _nr_open() if which == resource.RLIMIT_NOFILE else None
        if ceiling is not None and value > ceiling:
            raise InvalidParams(f"parameter {param!r}: {value} is above the system's "
                                f"ceiling {ceiling} (/proc/sys/fs/nr_open)",
                                {"param": param, "max": ceiling})


class ProcService:
    """The supervisor of one daemon (``Services.proc``). Loop thread only, except what it
    runs through the runner.

    ``start()`` starts the config groups and the sampler; ``stop(budget_s)`` stops every
    group that is not ``detach``; ``reload(config)`` applies a new ``proc`` section."""

    def __init__(self, config: ProcConfig, runner: Runner, alert: Alert | None = None) -> None:
        self.config = config
        self.runner = runner
        self.alert = alert
        self.groups: dict[str, Group] = {}
        self.listeners: list[Listener] = []
        self._sampler: asyncio.Task[Any] | None = None
        self._procs: dict[int, psutil.Process] = {}  # pid -> psutil handle (sampler thread)
        self._stopping = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the config groups (as the daemon's user) and the sampler."""
        for cfg in self.config.groups:
            await self._start_config_group(cfg)
        if self._sampler is None:
            self._sampler = self.runner.spawn(self._sample_loop(), "proc-sampler")

    async def _start_config_group(self, cfg: GroupConfig) -> None:
        try:
            await self.start_group(cfg, Owner.daemon())
        except XsysError as exc:
            log.error("proc group %s from the config did not start: %s", cfg.name, exc)

    async def stop(self, budget_s: float = 5.0) -> None:
        """Stop every group but the ``detach`` ones (left running), each instance by its
        ``stop_signal`` then SIGKILL after ``min(stop_timeout_s, budget_s)``; the sampler
        ends."""
        self._stopping = True
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
            self._sampler = None
        jobs = []
        for group in list(self.groups.values()):
            if group.config.detach:
                self._abandon(group)
            else:
                jobs.append(self._stop_group(group, min(group.config.stop_timeout_s,
                                                        budget_s)))
        if jobs:
            await asyncio.gather(*jobs, return_exceptions=True)

    def _abandon(self, group: Group) -> None:
        """Leave a detached group's processes running: stop supervising them."""
        for inst in group.instances.values():
            inst.stop_requested = True
            if inst.task is not None:
                inst.task.cancel()
        log.info("proc group %s left running (detach): pids %s", group.name,
                 [i.pid for i in group.instances.values() if i.pid])

    def reload(self, new: ProcConfig) -> None:
        """Apply a new ``proc`` section (SIGHUP): config groups removed are stopped, added
        ones started, changed ones stopped and started again; the others are untouched."""
        old = {g.name: g for g in self.config.groups}
        fresh = {g.name: g for g in new.groups}
        self.config = new
        for name, cfg in old.items():
            if fresh.get(name) != cfg:
                self.runner.spawn(self._replace_config_group(name, fresh.get(name)),
                                  f"proc-reload-{name}")
        for name, cfg in fresh.items():
            if name not in old:
                self.runner.spawn(self._replace_config_group(name, cfg),
                                  f"proc-reload-{name}")

    async def _replace_config_group(self, name: str, cfg: GroupConfig | None) -> None:
        group = self.groups.get(name)
        if group is not None:
            if group.owner.source != "config":
                log.error("proc group %s: the config's group not applied, a group started "
                          "by uid %d has that name", name, group.owner.owner_uid)
                return
            await self._stop_group(group, group.config.stop_timeout_s)
            self._forget(group)
        if cfg is not None:
            log.info("proc group %s: starting (config reload)", name)
            await self._start_config_group(cfg)

    # ------------------------------------------------------------------ requests

    def authorize(self, name: str, uid: int | None) -> Group:
        """The group ``name`` if ``uid`` may manage it (its owner, root, or no peer
        credentials: the daemon's own HTTP mirror); raises ``NotFound`` or
        ``PermissionDenied`` (``reason: "not_owner"``)."""
        group = self.groups.get(name)
        if group is None:
            raise NotFound(f"no proc group {name!r}", {"name": name})
        if uid is not None and uid != 0 and uid != group.owner.owner_uid:
            raise PermissionDenied(
                f"proc group {name!r} belongs to uid {group.owner.owner_uid}",
                {"reason": "not_owner", "name": name, "owner_uid": group.owner.owner_uid})
        return group

    def _count(self, n: int) -> int:
        return n if n > 0 else (os.cpu_count() or 1)

    def _check_capacity(self, adding: int, log_bytes: int, replacing: Group | None = None,
                        new_group: bool = True, owner: Owner | None = None) -> None:
        """Raise ``Overloaded`` when ``adding`` instances (rings of ``log_bytes``) would
        pass ``proc.max_groups``, ``proc.max_instances`` or ``proc.max_log_bytes``, or a
        new group of a non-root peer ``owner`` its ``proc.max_groups_per_uid``."""
        groups = len(self.groups) - (1 if replacing is not None else 0)
        if new_group and groups >= self.config.max_groups:
            raise Overloaded(f"{groups} proc groups already (proc.max_groups)",
                             {"limit": self.config.max_groups})
        if new_group and owner is not None and owner.source == "request" \
                and owner.owner_uid not in (0, os.geteuid()):
            mine = sum(1 for g in self.groups.values()
                       if g is not replacing and g.owner.owner_uid == owner.owner_uid)
            if mine >= self.config.max_groups_per_uid:
                raise Overloaded(f"uid {owner.owner_uid} has {mine} proc groups already "
                                 "(proc.max_groups_per_uid)",
                                 {"limit": self.config.max_groups_per_uid})
        live = [g for g in self.groups.values()
                if g is not replacing and g.state in ("running", "stopping")]
        running = sum(g.wanted for g in live)
        if running + adding > self.config.max_instances:
            raise Overloaded(
                f"{running} proc instances already; {adding} more would pass "
                f"proc.max_instances ({self.config.max_instances})",
                {"limit": self.config.max_instances})
        ring_bytes = sum(g.wanted * g.config.log_bytes for g in live)
        if ring_bytes + adding * log_bytes > self.config.max_log_bytes:
            raise Overloaded(
                f"output rings of {ring_bytes} bytes already; {adding} x {log_bytes} more "
                f"would pass proc.max_log_bytes ({self.config.max_log_bytes})",
                {"limit": self.config.max_log_bytes})

    async def start_group(self, cfg: GroupConfig, owner: Owner) -> ProcGroup:
        """Start group ``cfg`` as ``owner`` and return its status once every instance's
        process exists. A group of that name that is stopped or failed is replaced (if
        ``owner`` may manage it); a running one is -32003. An exec failure marks the
        group failed and raises the OS error (``error_from_oserror``: -32001 for ENOENT,
        -32002 for EACCES), with ``data.name``."""
        if self._stopping:
            raise Overloaded("the daemon is shutting down")
        if owner.switch and cfg.cwd is not None:
            await self.runner.run_blocking(self._check_cwd, cfg.cwd, owner)
        if cfg.log_dir is not None:
            await self.runner.run_blocking(self._check_log_dir, cfg.log_dir, owner)
        _check_rlimits(cfg, owner)
        # from here to the registration, no await: two starts of one name cannot race
        old = self.groups.get(cfg.name)
        if old is not None:
            self.authorize(cfg.name, owner.owner_uid if owner.owner_uid else None)
            if old.state in ("running", "stopping"):
                raise AlreadyExists(f"proc group {cfg.name!r} is {old.state}",
                                    {"name": cfg.name})
        count = self._count(cfg.instances)
        self._check_capacity(count, cfg.log_bytes, old, owner=owner)
        if old is not None:
            self._forget(old)
        group = Group(cfg, owner, count)
        self.groups[cfg.name] = group
        log.info("proc group %s: starting %d x %s as uid %d", cfg.name, count,
                 list(cfg.command), owner.uid)
        for index in range(count):
            self._add_instance(group, index)
        results = await asyncio.gather(*(i.launched for i in group.instances.values()))
        for exc in results:
            if isinstance(exc, OSError):
                err = error_from_oserror(exc, cfg.command[0])
                if isinstance(err.data, dict):
                    err.data["name"] = cfg.name
                raise err
            if exc is not None:
                raise Conflict(f"proc group {cfg.name!r} failed to start: {exc}",
                               {"name": cfg.name})
        return group.row()

    @staticmethod
    def _check_cwd(cwd: str, owner: Owner) -> None:
        """Raise ``PermissionDenied`` when ``owner`` could not enter ``cwd`` itself."""
        with as_peer(owner.uid, owner.gid, owner.groups):
            try:
                os.stat(os.path.join(cwd, "."))
            except OSError as exc:
                raise error_from_oserror(exc, cwd) from None

    @staticmethod
    def _check_log_dir(log_dir: str, owner: Owner) -> None:
        """Raise the OS error (``error_from_oserror``: -32001 ENOENT, -32002 EACCES...) when
        ``log_dir`` is not a directory ``owner`` may create files in (checked with its file
        credentials), so a bad ``log_dir`` is refused at start, not lost in the log."""
        with as_peer(owner.uid, owner.gid, owner.groups):
            try:
                st = os.stat(log_dir)
                if not stat_mod.S_ISDIR(st.st_mode):
                    raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR),
                                             log_dir)
                if not os.access(log_dir, os.W_OK | os.X_OK, effective_ids=True):
                    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), log_dir)
            except OSError as exc:
                err = error_from_oserror(exc, log_dir)
                if isinstance(err.data, dict):
                    err.data["param"] = "log_dir"
                raise err from None

    async def stop_group(self, name: str, uid: int | None, remove: bool = False) -> ProcGroup:
        """Stop group ``name`` (stop_signal, SIGKILL after its stop_timeout_s); it stays
        listed as ``stopped`` (a failed one too: its alert resolves) unless ``remove``.
        Returns its status. ``NotFound``/``PermissionDenied``."""
        group = self.authorize(name, uid)
        was_failed = group.state == "failed"
        await self._stop_group(group, group.config.stop_timeout_s)
        group.state = "stopped"
        if was_failed and self.alert is not None:
            self.alert(group.name, None)
        if remove and self.groups.get(name) is group:
            del self.groups[name]
        return group.row()

    def _forget(self, group: Group) -> None:
        if self.groups.get(group.name) is group:
            del self.groups[group.name]
        if group.state == "failed" and self.alert is not None:
            self.alert(group.name, None)

    async def restart_group(self, name: str, uid: int | None) -> ProcGroup:
        """Rolling restart: one instance at a time, the next only once the new one is
        ready (``ready.timeout_s``; past it -32007 and the rollout stops). A failed or
        stopped group is started again whole."""
        group = self.authorize(name, uid)
        if group.state in ("failed", "stopped"):
            return await self.start_group(group.config, group.owner)
        async with group.lock:
            for index in sorted(group.instances):
                inst = group.instances.get(index)
                if inst is None or group.state != "running":
                    continue
                if inst.task is None or inst.task.done():  # exited by its policy
                    fresh = self._add_instance(group, index)
                    fresh.restarts, fresh.restart_reason = inst.restarts, "restart"
                    group.retired_dropped += inst.ring.dropped
                    await fresh.launched
                    await self._await_ready(fresh)
                    continue
                await self._restart_instance(inst, "restart")
                await self._await_ready(inst)
        return group.row()

    async def _await_ready(self, inst: Instance) -> None:
        timeout = inst.group.config.ready.timeout_s
        waiter = asyncio.ensure_future(inst.ready_event.wait())
        watched: list[asyncio.Future[Any]] = [waiter]
        if inst.task is not None:
            watched.append(inst.task)
        try:
            await asyncio.wait(watched, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if not inst.ready_event.is_set():
            raise Conflict(f"proc group {inst.group.name!r}: instance {inst.id} not ready "
                           f"{timeout:g}s after its restart; rollout stopped",
                           {"name": inst.group.name, "instance": inst.id})

    async def scale(self, name: str, instances: int, uid: int | None) -> ProcGroup:
        """Set the number of instances (0 = CPU count): new ones get the next free ids,
        the highest ids are stopped first."""
        group = self.authorize(name, uid)
        if group.state != "running":
            raise Conflict(f"proc group {name!r} is {group.state}", {"name": name})
        count = self._count(instances)
        async with group.lock:
            if count > group.wanted:
                self._check_capacity(count, group.config.log_bytes, group,
                                     new_group=False)
            group.wanted = count
            extra = sorted(i for i in group.instances if i >= count)
            added = [self._add_instance(group, i) for i in range(count)
                     if i not in group.instances]
            await asyncio.gather(*(self._stop_instance(group.instances[i],
                                                       group.config.stop_timeout_s)
                                   for i in extra))
            for i in extra:
                gone = group.instances.pop(i)
                group.retired_dropped += gone.ring.dropped
            await asyncio.gather(*(i.launched for i in added))
        return group.row()

    def status(self, name: str) -> ProcGroup:
        """The status of group ``name``; ``NotFound``."""
        group = self.groups.get(name)
        if group is None:
            raise NotFound(f"no proc group {name!r}", {"name": name})
        return group.row()

    def list_groups(self) -> list[ProcGroup]:
        """Every group's status, by name."""
        return [self.groups[n].row() for n in sorted(self.groups)]

    def logs(self, name: str, uid: int | None, lines: int, instance: int | None,
             stream: Stream | None, after_seq: int) -> ProcLogs:
        """The last ``lines`` lines of the group's rings (one instance's when given, one
        stream when given, only those after ``after_seq``), oldest first."""
        group = self.authorize(name, uid)
        insts = [group.instances[i] for i in sorted(group.instances)
                 if instance is None or i == instance]
        if instance is not None and not insts:
            raise NotFound(f"proc group {name!r} has no instance {instance}",
                           {"name": name, "instance": instance})
        merged: list[ProcLogLine] = []
        for inst in insts:
            for seq, at, strm, data in inst.ring.tail(lines, stream, after_seq):
                merged.append({"seq": seq, "instance": inst.id, "stream": strm, "at": at,
                               "line": data.decode("utf-8", "replace")})
        merged.sort(key=lambda r: r["seq"])
        dropped = group.retired_dropped + sum(i.ring.dropped
                                              for i in group.instances.values())
        return {"name": name, "lines": merged[-lines:], "last_seq": group.last_seq,
                "dropped_lines": dropped}

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` for every ``proc.event``; returns the unsubscribe."""
        self.listeners.append(listener)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self.listeners.remove(listener)

        return unsubscribe

    # ------------------------------------------------------------------ events

    def _emit(self, event: EventName, inst: Instance | None, group: Group,
              **extra: Any) -> None:
        body: dict[str, Any] = {"event": event, "name": group.name,
                                "instance": inst.id if inst is not None else None,
                                "pid": inst.pid if inst is not None else None,
                                "at": time.time()}  # exited: the pid that ended
        body.update(extra)
        for listener in list(self.listeners):
            try:
                listener(body)
            except Exception:
                log.exception("proc event listener failed")

    # ------------------------------------------------------------------ supervision

    def _add_instance(self, group: Group, index: int) -> Instance:
        inst = Instance(group, index)
        group.instances[index] = inst
        inst.task = self.runner.spawn(self._supervise(inst), f"proc-{group.name}-{index}")
        return inst

    async def _supervise(self, inst: Instance) -> None:
        """Start, await, restart one instance until stopped, exited by policy, or its
        group failed."""
        group = inst.group
        cfg = group.config
        try:
            while not inst.stop_requested:
                try:
                    await self._launch(inst)
                except Overloaded as exc:  # the thread pool is full: try again shortly
                    log.warning("proc group %s: instance %d not started yet: %s",
                                group.name, inst.id, exc)
                    inst.state = "backoff"
                    inst.wake.clear()
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(inst.wake.wait(),
                                               max(cfg.backoff.initial_s, 0.1))
                    continue
                except (OSError, subprocess.SubprocessError, ValueError) as exc:
                    if not inst.launched.done():
                        inst.launched.set_result(exc)
                    inst.state = "failed"
                    self._fail(group, f"cannot execute {cfg.command[0]!r}: {exc}")
                    return
                if not inst.launched.done():
                    inst.launched.set_result(None)
                ran_s = await self._await_exit(inst)
                if inst.stop_requested:
                    break
                if inst.restart_reason is not None:
                    continue  # asked for: at once, no backoff
                failed = inst.last_exit_code != 0
                if cfg.restart == "never" or (cfg.restart == "on-failure" and not failed):
                    inst.state = "exited"
                    return
                if self._crash_loop(inst):
                    inst.state = "failed"
                    self._fail(group, f"instance {inst.id} restarted {cfg.max_restarts} "
                               f"times within {cfg.restart_window_s:g}s; last exit "
                               f"{self._exit_text(inst)}")
                    return
                inst.consecutive = 1 if ran_s > cfg.backoff.max_s else inst.consecutive + 1
                delay = min(cfg.backoff.initial_s * 2 ** (inst.consecutive - 1),
                            cfg.backoff.max_s)
                inst.state = "backoff"
                inst.wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(inst.wake.wait(), delay)
                inst.restart_reason = inst.restart_reason or "crash"
        except asyncio.CancelledError:
            if not group.config.detach:
                self._kill_now(inst)
            raise
        finally:
            if not inst.launched.done():
                inst.launched.set_result(None)
            if inst.state not in ("exited", "failed"):
                inst.state = "stopped"

    def _crash_loop(self, inst: Instance) -> bool:
        """Record one restart; True when it would pass ``max_restarts`` in the window."""
        cfg = inst.group.config
        now = time.monotonic()
        times = inst.crash_times
        while times and times[0] < now - cfg.restart_window_s:
            times.popleft()
        if len(times) >= cfg.max_restarts:
            return True
        times.append(now)
        return False

    def _fail(self, group: Group, error: str) -> None:
        """Mark ``group`` failed: an event, a critical alert, its other instances stopped."""
        if group.state == "failed":
            return
        group.state = "failed"
        group.error = error
        log.error("proc group %s failed: %s", group.name, error)
        self._emit("failed", None, group, error=error)
        if self.alert is not None:
            self.alert(group.name, error)
        others = [i for i in group.instances.values() if i.pid is not None]
        if others:
            self.runner.spawn(self._stop_instances(others, group.config.stop_timeout_s),
                              f"proc-fail-{group.name}")

    async def _stop_instances(self, insts: list[Instance], timeout_s: float) -> None:
        await asyncio.gather(*(self._stop_instance(i, timeout_s) for i in insts))

    @staticmethod
    def _exit_text(inst: Instance) -> str:
        if inst.last_signal is not None:
            return f"signal {inst.last_signal}"
        return f"code {inst.last_exit_code}"

    def _env(self, inst: Instance) -> dict[str, str]:
        cfg = inst.group.config
        env = {"PATH": DEFAULT_PATH}
        for key in ("LANG", "LC_ALL", "TZ"):
            if key in os.environ:
                env[key] = os.environ[key]
        if inst.group.owner.switch:
            try:
                import pwd

                entry = pwd.getpwuid(inst.group.owner.uid)
                env.update(HOME=entry.pw_dir, USER=entry.pw_name, LOGNAME=entry.pw_name)
            except KeyError:
                pass
        elif "HOME" in os.environ:
            env["HOME"] = os.environ["HOME"]
        env.update(cfg.env)
        env["XSYS_WORKER_ID"] = str(inst.id)
        env["XSYS_WORKER_COUNT"] = str(inst.group.wanted)
        if cfg.ready.port is not None:
            env["XSYS_WORKER_PORT"] = str(cfg.ready.port + inst.id)
        return env

    async def _launch(self, inst: Instance) -> None:
        """Start the instance's process and its readers and readiness task."""
        group = inst.group
        inst.generation += 1
        inst.ready = False
        inst.ready_event = asyncio.Event()
        inst.exited.clear()
        inst.over.clear()
        inst.cpu_percent = inst.rss_bytes = None
        inst.state = "starting"
        popen = await self.runner.run_blocking(self._popen, inst)
        inst.popen = popen
        inst.started_at = time.time()
        inst.next_launch.set()
        inst.next_launch = asyncio.Event()
        reason, inst.restart_reason = inst.restart_reason, None
        if reason is not None:
            inst.restarts += 1
        log.info("proc group %s: instance %d started, pid %d", group.name, inst.id,
                 popen.pid)
        self._emit("started", inst, group)
        if reason is not None:
            self._emit("restarted", inst, group, reason=reason, restarts=inst.restarts)

    def _popen(self, inst: Instance) -> subprocess.Popen[bytes]:
        """Fork and exec (worker thread: the user database lookups of ``_env`` may block
        too). Output: pipes, or for a detached group the log files (or nothing)."""
        env = self._env(inst)
        group = inst.group
        cfg = group.config
        owner = group.owner
        kwargs: dict[str, Any] = {"stdin": subprocess.DEVNULL, "cwd": cfg.cwd, "env": env,
                                  "start_new_session": True, "close_fds": True}
        if owner.switch:
            kwargs.update(user=owner.uid, group=owner.gid, extra_groups=list(owner.groups))
        if cfg.rlimit_nofile is not None or cfg.rlimit_as is not None:
            kwargs["preexec_fn"] = lambda: _set_rlimits(cfg.rlimit_nofile, cfg.rlimit_as)
        files: list[int] = []
        if cfg.detach:
            for key, stream in (("stdout", "stdout"), ("stderr", "stderr")):
                if cfg.log_dir is not None:
                    lf = self._log_file(inst, stream)  # type: ignore[arg-type]
                    with as_peer(owner.uid, owner.gid, owner.groups):
                        lf.open()
                    files.append(lf.fd)
                    kwargs[key] = lf.fd
                else:
                    kwargs[key] = subprocess.DEVNULL
        else:
            kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
        try:
            return subprocess.Popen(list(cfg.command), **kwargs)
        finally:
            for fd in files:
                os.close(fd)

    def _log_file(self, inst: Instance, stream: Stream) -> LogFile:
        cfg = inst.group.config
        assert cfg.log_dir is not None
        suffix = "out" if stream == "stdout" else "err"
        path = os.path.join(cfg.log_dir, f"{cfg.name}-{inst.id}.{suffix}.log")
        return LogFile(path, cfg.log_max_bytes, cfg.log_backups)

    async def _await_exit(self, inst: Instance) -> float:
        """Read the output and wait for the process to end; reap it, record the exit and
        kill what is left of its process group. Returns the seconds it ran."""
        popen = inst.popen
        assert popen is not None
        group = inst.group
        tasks = [asyncio.ensure_future(self._ready(inst))]
        for stream, pipe in (("stdout", popen.stdout), ("stderr", popen.stderr)):
            if pipe is not None:
                tasks.append(asyncio.ensure_future(self._read(inst, stream, pipe)))  # type: ignore[arg-type]
        try:
            await self._wait_pid(popen)
        except BaseException:
            for t in tasks:
                t.cancel()
            raise
        tasks[0].cancel()
        # what it left in its group, while its zombie still holds the pid (and pgid)
        _killpg(popen.pid, signal_mod.SIGKILL)
        code = popen.wait()  # reaps at once: the pidfd said it ended
        if len(tasks) > 1:
            _, pending = await asyncio.wait(tasks[1:], timeout=1.0)
            for t in pending:
                t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for f in (popen.stdout, popen.stderr):
            if f is not None:
                f.close()
        now = time.time()
        ran_s = now - (inst.started_at or now)
        inst.last_exit_at = now
        inst.last_exit_code = code if code >= 0 else None
        inst.last_signal = _signal_name(-code) if code < 0 else None
        inst.ready = False
        self._emit("exited", inst, group, pid=popen.pid, exit_code=inst.last_exit_code,
                   signal=inst.last_signal, uptime_s=ran_s)
        inst.exited.set()
        log.log(logging.INFO if inst.stop_requested or inst.restart_reason else logging.WARNING,
                "proc group %s: instance %d (pid %d) exited with %s after %.1fs",
                group.name, inst.id, popen.pid, self._exit_text(inst), ran_s)
        inst.state = "stopped" if inst.stop_requested else "backoff"
        return ran_s

    async def _wait_pid(self, popen: subprocess.Popen[bytes]) -> None:
        """Return when ``popen`` has ended (not reaped yet): on its pidfd, else in a
        thread of the loop's default executor."""
        loop = asyncio.get_running_loop()
        try:
            fd = os.pidfd_open(popen.pid)
        except (AttributeError, OSError):
            await loop.run_in_executor(None, popen.wait)
            return
        done = loop.create_future()

        def readable() -> None:
            if not done.done():
                done.set_result(None)

        try:
            loop.add_reader(fd, readable)
            try:
                await done
            finally:
                loop.remove_reader(fd)
        finally:
            os.close(fd)

    async def _read(self, inst: Instance, stream: Stream, pipe: IO[bytes]) -> None:
        """Read one pipe into the ring (and the log file) until EOF."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=READ_CHUNK_BYTES, loop=loop)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader, loop=loop), pipe)
        cfg = inst.group.config
        logfile = self._log_file(inst, stream) if cfg.log_dir is not None else None
        owner = inst.group.owner
        try:
            if logfile is not None:
                await self.runner.run_blocking(self._open_log, logfile, owner)
            while True:
                chunk = await reader.read(READ_CHUNK_BYTES)
                if not chunk:
                    break
                inst.ring.feed(stream, chunk)
                self._track_seq(inst)
                if logfile is not None:
                    await self.runner.run_blocking(self._write_log, logfile, chunk, owner)
        except (OSError, Overloaded) as exc:
            log.warning("proc group %s: instance %d %s: %s", inst.group.name, inst.id,
                        stream, exc)
            while await reader.read(READ_CHUNK_BYTES):  # keep draining into the ring
                pass
        finally:
            inst.ring.flush(stream)
            self._track_seq(inst)
            transport.close()
            if logfile is not None:
                logfile.close()

    @staticmethod
    def _track_seq(inst: Instance) -> None:
        if inst.ring.lines:
            group = inst.group
            group.last_seq = max(group.last_seq, inst.ring.lines[-1][0])

    @staticmethod
    def _open_log(logfile: LogFile, owner: Owner) -> None:
        with as_peer(owner.uid, owner.gid, owner.groups):
            logfile.open()

    @staticmethod
    def _write_log(logfile: LogFile, chunk: bytes, owner: Owner) -> None:
        if logfile.size and logfile.size + len(chunk) > logfile.max_bytes:
            with as_peer(owner.uid, owner.gid, owner.groups):
                logfile.rotate()
        logfile.write(chunk)

    async def _ready(self, inst: Instance) -> None:
        """Mark the instance ready: once its TCP port accepts, else after ``after_s``."""
        ready = inst.group.config.ready
        if ready.port is not None:
            port = ready.port + inst.id
            waited = 0.0
            while True:
                try:
                    _, writer = await asyncio.wait_for(
                        asyncio.open_connection(ready.host, port), 1.0)
                except (OSError, asyncio.TimeoutError):
                    pause = READY_POLL_S if waited < ready.timeout_s else 1.0
                    waited += pause
                    await asyncio.sleep(pause)
                    continue
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                break
        elif ready.after_s > 0:
            await asyncio.sleep(ready.after_s)
        if inst.popen is None or inst.exited.is_set():
            return
        inst.ready = True
        inst.state = "running"
        inst.ready_event.set()
        self._emit("ready", inst, inst.group)

    def _kill_now(self, inst: Instance) -> None:
        """SIGKILL the instance's process group without waiting (supervision cancelled:
        the daemon is going; what it does not reap, init does)."""
        popen = inst.popen
        if popen is not None and popen.returncode is None:
            _killpg(popen.pid, signal_mod.SIGKILL)
            popen.poll()

    async def _signal_and_wait(self, inst: Instance, timeout_s: float) -> None:
        """Send the stop signal to the instance's process group; SIGKILL after
        ``timeout_s``; return once it ended and was reaped."""
        popen = inst.popen
        if popen is None or popen.returncode is not None or inst.exited.is_set():
            return
        inst.state = "stopping"
        _killpg(popen.pid, inst.group.config.stop_signum)
        try:
            await asyncio.wait_for(inst.exited.wait(), timeout_s)
        except asyncio.TimeoutError:
            log.warning("proc group %s: instance %d (pid %d) still running %gs after %s; "
                        "SIGKILL", inst.group.name, inst.id, popen.pid, timeout_s,
                        inst.group.config.stop_signum.name)
            _killpg(popen.pid, signal_mod.SIGKILL)
            await inst.exited.wait()

    async def _stop_instance(self, inst: Instance, timeout_s: float) -> None:
        inst.stop_requested = True
        inst.wake.set()
        await self._signal_and_wait(inst, timeout_s)
        if inst.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await inst.task

    async def _restart_instance(self, inst: Instance, reason: str) -> None:
        """Stop the instance's process gracefully and start a new one at once."""
        launched = inst.next_launch
        inst.restart_reason = reason
        await self._signal_and_wait(inst, inst.group.config.stop_timeout_s)
        inst.wake.set()  # in case it was waiting out a backoff
        if inst.task is None or inst.task.done():
            return
        waiter = asyncio.ensure_future(launched.wait())
        try:
            await asyncio.wait([waiter, inst.task], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()

    async def _stop_group(self, group: Group, timeout_s: float) -> None:
        if group.state == "running":
            group.state = "stopping"
        await asyncio.gather(*(self._stop_instance(i, timeout_s)
                               for i in list(group.instances.values())))
        if group.state != "failed":
            group.state = "stopped"
        log.info("proc group %s stopped", group.name)

    # ------------------------------------------------------------------ sampling

    async def _sample_loop(self) -> None:
        """Sample every instance's CPU and RSS, check the limits; forever."""
        while True:
            await asyncio.sleep(self.config.sample_interval_s)
            insts = [i for g in self.groups.values() if g.state == "running"
                     for i in g.instances.values() if i.pid is not None]
            if not insts:
                self._procs.clear()
                continue
            pids = [i.pid for i in insts if i.pid is not None]
            try:
                samples = await self.runner.run_blocking(self._sample, pids)
            except Overloaded:
                continue
            for inst in insts:
                got = samples.get(inst.pid or -1)
                if got is not None:
                    inst.cpu_percent, inst.rss_bytes = got
                    self._check_limits(inst)

    def _sample(self, pids: list[int]) -> dict[int, tuple[float, int]]:
        """CPU percent (of one core, since the previous sample) and RSS of ``pids``
        (worker thread); a first sample of a pid reads 0.0 CPU."""
        out: dict[int, tuple[float, int]] = {}
        keep = set(pids)
        for pid in list(self._procs):
            if pid not in keep:
                del self._procs[pid]
        for pid in pids:
            proc = self._procs.get(pid)
            try:
                if proc is None:
                    proc = self._procs[pid] = psutil.Process(pid)
                with proc.oneshot():
                    out[pid] = (proc.cpu_percent(None), proc.memory_info().rss)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                self._procs.pop(pid, None)
        return out

    def _check_limits(self, inst: Instance) -> None:
        cfg = inst.group.config
        checks = (("memory", cfg.max_memory_bytes, inst.rss_bytes),
                  ("cpu", cfg.max_cpu_percent, inst.cpu_percent))
        for limit, bound, value in checks:
            if bound is None or value is None:
                continue
            if value <= bound:
                inst.over.discard(limit)
                continue
            if limit in inst.over:
                continue
            inst.over.add(limit)
            action = "restart" if cfg.enforce else "warn"
            log.warning("proc group %s: instance %d (pid %s) over its %s limit: %s > %s; %s",
                        inst.group.name, inst.id, inst.pid, limit, value, bound, action)
            self._emit("limit_exceeded", inst, inst.group, limit=limit, value=value,
                       max=bound, action=action)
            if cfg.enforce and inst.restart_reason is None:
                if self._crash_loop(inst):
                    inst.stop_requested = True
                    self._fail(inst.group, f"instance {inst.id} restarted "
                               f"{cfg.max_restarts} times within "
                               f"{cfg.restart_window_s:g}s; last over its {limit} limit")
                else:
                    self.runner.spawn(self._restart_instance(inst, f"{limit}_limit"),
                                      f"proc-limit-{inst.group.name}-{inst.id}")
