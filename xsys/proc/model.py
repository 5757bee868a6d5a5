"""The proc namespace's results, as declared to clients (``rpc.methods``)."""

from __future__ import annotations

from typing import Literal, TypedDict

#: A group's state: ``running`` (its instances supervised), ``stopping``, ``stopped``,
#: ``failed`` (an instance restarted more than ``max_restarts`` times within
#: ``restart_window_s``, or its command could not be executed: see ``error``).
GroupState = Literal["running", "stopping", "stopped", "failed"]

#: An instance's state: ``starting`` (spawned, not ready yet), ``running`` (ready),
#: ``backoff`` (waiting to be started again after an exit), ``stopping``, ``exited``
#: (ended and not restarted by the policy), ``stopped``, ``failed``.
InstanceState = Literal["starting", "running", "backoff", "stopping", "exited", "stopped",
                        "failed"]

EventName = Literal["started", "ready", "exited", "restarted", "limit_exceeded", "failed"]


class ProcInstance(TypedDict):
    """One worker process of a group: ``id`` (its ``XSYS_WORKER_ID``), ``pid`` (None
    when not running), ``state``, ``ready``, ``restarts`` (times it was started again),
    ``started_at`` (epoch s of the current process), ``uptime_s``, ``cpu_percent`` (of
    one core, last sample), ``rss_bytes`` (last sample), ``last_exit_code`` and
    ``last_signal`` (name, when killed by one) of the previous process, ``last_exit_at``,
    ``log_lines`` (lines in its ring), ``dropped_lines`` (lines that left the ring or
    never fit in it)."""

    id: int
    pid: int | None
    state: InstanceState
    ready: bool
    restarts: int
    started_at: float | None
    uptime_s: float | None
    cpu_percent: float | None
    rss_bytes: int | None
    last_exit_code: int | None
    last_signal: str | None
    last_exit_at: float | None
    log_lines: int
    dropped_lines: int


class ProcGroup(TypedDict):
    """One group: ``name``, ``state``, ``error`` (why it failed), ``command`` (argv),
    ``cwd``, ``desired`` (the instance count asked for), ``running`` / ``ready``
    (instances with a process / ready), ``restart`` policy, ``uid``/``gid`` it runs
    as, ``owner_uid`` (who may manage it besides root), ``source`` (``config`` or
    ``request``), ``detach``, ``created_at`` (epoch s), ``restarts`` (sum over
    instances), ``instances`` (one row each, by id)."""

    name: str
    state: GroupState
    error: str | None
    command: list[str]
    cwd: str | None
    desired: int
    running: int
    ready: int
    restart: Literal["never", "on-failure", "always"]
    uid: int
    gid: int
    owner_uid: int
    source: Literal["config", "request"]
    detach: bool
    created_at: float
    restarts: int
    instances: list[ProcInstance]


class ProcList(TypedDict):
    """``proc.list``: every group, by name."""

    groups: list[ProcGroup]


class ProcLogLine(TypedDict):
    """One line of a worker's output: ``seq`` (increasing per group; pass the last one
    as ``after_seq`` to follow), ``instance``, ``stream`` (stdout|stderr), ``at`` (epoch s
    it was read), ``line`` (UTF-8, invalid bytes replaced, without the newline; longer
    lines come in pieces)."""

    seq: int
    instance: int
    stream: Literal["stdout", "stderr"]
    at: float
    line: str


class ProcLogs(TypedDict):
    """``proc.logs``: ``name``, the ``lines`` (oldest first), ``last_seq`` (the highest
    seq of the group so far) and ``dropped_lines`` (lines its rings lost)."""

    name: str
    lines: list[ProcLogLine]
    last_seq: int
    dropped_lines: int


class ProcSubscribed(TypedDict):
    """``proc.subscribe``: the stream's id."""

    subscription: str


class ProcUnsubscribed(TypedDict):
    """``proc.unsubscribe``: the stream ended."""

    subscription: str
    closed: bool
