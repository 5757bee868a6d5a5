"""The ``proc`` config section: supervised worker groups started with the daemon, and the
supervisor's own limits. Ground level: imports only the standard library and
``xsys.bounds``.

A group (``GroupConfig``) is also what ``proc.start`` takes: the handler builds one from
its parameters (``normalize_start_params``, then ``xsys.config.from_dict``) so that both
paths share one validation."""

from __future__ import annotations

import signal as signal_mod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from xsys.bounds import at_least

RestartPolicy = Literal["never", "on-failure", "always"]


@dataclass(frozen=True)
class BackoffConfig:
    """Delay before a crashed instance is started again: ``initial_s`` after the first
    crash, doubled on each further crash in a row, at most ``max_s``; a run that lasted
    longer than ``max_s`` resets it."""

    initial_s: float = 1.0
    max_s: float = 30.0

    def validate(self) -> None:
        """Raise ``ValueError`` for a negative delay or ``max_s < initial_s``."""
        at_least(self, ("initial_s", "max_s"), 0)
        if self.max_s < self.initial_s:
            raise ValueError(f"max_s: must be >= initial_s ({self.initial_s}), "
                             f"got {self.max_s}")


@dataclass(frozen=True)
class ReadyConfig:
    """When a started instance counts as ready (``proc.event`` ``ready``, the rolling
    restart's gate): when ``port`` is set, once a TCP connection to ``host``:``port +
    XSYS_WORKER_ID`` succeeds (each instance gets its own port, also passed to it as
    ``XSYS_WORKER_PORT``), else after ``after_s`` seconds up (0: at once).
    ``timeout_s``: how long a rolling restart waits for a new instance to become ready."""

    after_s: float = 0.0
    port: int | None = None
    host: str = "127.0.0.1"
    timeout_s: float = 30.0

    def validate(self) -> None:
        """Raise ``ValueError`` for a negative delay or a port out of range."""
        at_least(self, ("after_s",), 0)
        at_least(self, ("timeout_s",), 0, strictly=True)
        if self.port is not None and not 1 <= self.port <= 65535:
            raise ValueError(f"port: must be 1..65535, got {self.port}")


@dataclass(frozen=True)
class GroupConfig:
    """One group of identical worker processes (``proc.start``'s parameters).

    ``command`` is an argv list run without a shell (``command[0]`` looked up in the
    ``PATH`` of ``env``); ``instances`` copies (0 = the CPU count), each given
    ``XSYS_WORKER_ID`` (0-based) and ``XSYS_WORKER_COUNT``; ``restart`` policy with
    ``backoff``; more than ``max_restarts`` restarts of one instance within
    ``restart_window_s`` mark the group failed (a critical alert through the monitor).
    ``max_memory_bytes`` (RSS) / ``max_cpu_percent`` (of one core): a ``limit_exceeded``
    event and a warning, and a restart of that instance when ``enforce``.
    ``stop_signal`` then SIGKILL after ``stop_timeout_s``. ``rlimit_nofile`` /
    ``rlimit_as`` (bytes): resource limits set in the child. ``log_lines`` /
    ``log_bytes``: the output ring per instance; ``log_dir``: also write the output to
    ``<log_dir>/<name>-<id>.out.log`` / ``.err.log``, rotated at ``log_max_bytes`` keeping
    ``log_backups`` old files. ``detach``: left running when the daemon stops (its output
    then goes only to ``log_dir``, or nowhere).
    """

    name: str
    """The group's name (1..64 characters, no ``/``): ``proc.stop {name}`` and friends."""
    command: tuple[str, ...]
    instances: int = 1
    cwd: str | None = None
    """Working directory of every instance (None: the daemon's working directory)."""
    env: dict[str, str] = field(default_factory=dict)
    restart: RestartPolicy = "on-failure"
    backoff: BackoffConfig = field(default_factory=BackoffConfig)
    max_restarts: int = 10
    restart_window_s: float = 60.0
    max_memory_bytes: int | None = None
    max_cpu_percent: float | None = None
    enforce: bool = False
    stop_signal: str = "SIGTERM"
    stop_timeout_s: float = 5.0
    ready: ReadyConfig = field(default_factory=ReadyConfig)
    rlimit_nofile: int | None = None
    rlimit_as: int | None = None
    log_lines: int = 1000
    log_bytes: int = 1024 * 1024
    log_dir: str | None = None
    log_max_bytes: int = 10 * 1024 * 1024
    log_backups: int = 3
    detach: bool = False

    def validate(self) -> None:
        """Raise ``ValueError`` for an empty name or command, an ``env`` name with ``=`` or
        a NUL byte, a NUL byte in a path, a bad signal or a limit out of range."""
        if not self.name or "/" in self.name or len(self.name) > 64:
            raise ValueError(f"name: must be 1..64 characters without '/', got "
                             f"{self.name!r}")
        if not self.command or not self.command[0]:
            raise ValueError("command: must be a non-empty argv list")
        if any("\0" in a for a in self.command):
            raise ValueError("command: NUL byte in an argument")
        for key, value in self.env.items():
            if not key or "=" in key or "\0" in key or "\0" in value:
                raise ValueError(f"env: {key!r}: a variable name is not empty and has no "
                                 "'=' or NUL byte, and a value has no NUL byte")
        for name in ("cwd", "log_dir"):
            value = getattr(self, name)
            if value is not None and (not value or "\0" in value):
                raise ValueError(f"{name}: an empty path or a NUL byte in it")
        at_least(self, ("instances", "max_restarts", "log_backups"), 0)
        at_least(self, ("restart_window_s", "stop_timeout_s", "log_lines", "log_bytes",
                        "log_max_bytes"), 0, strictly=True)
        for name in ("max_memory_bytes", "max_cpu_percent", "rlimit_nofile", "rlimit_as"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name}: must be > 0, got {value}")
        parse_signal(self.stop_signal)

    @property
    def stop_signum(self) -> signal_mod.Signals:
        """``stop_signal`` as a signal number."""
        return parse_signal(self.stop_signal)


def parse_signal(value: str | int) -> signal_mod.Signals:
    """A signal from its name (``TERM``, ``SIGINT``, ``hup``) or number; raises
    ``ValueError`` naming the value."""
    try:
        if isinstance(value, int) or str(value).isdigit():
            return signal_mod.Signals(int(value))
        name = str(value).upper()
        return signal_mod.Signals[name if name.startswith("SIG") else f"SIG{name}"]
    except (KeyError, ValueError):
        raise ValueError(f"stop_signal: unknown signal {value!r}") from None


@dataclass(frozen=True)
class ProcConfig:
    """The ``proc`` section: ``groups`` started with the daemon (as its own user; SIGHUP
    applies added, removed and changed groups and leaves the others alone);
    ``sample_interval_s``: how often each instance's CPU and RSS are sampled (and the
    limits checked); ``max_groups`` / ``max_instances``: caps across the daemon;
    ``max_log_bytes``: the output rings' bytes (``log_bytes`` x instances) across the
    running groups; ``max_groups_per_uid``: groups one non-root peer uid may hold, so
    that one peer cannot take all of ``max_groups`` (-32005 above any of them)."""

    groups: tuple[GroupConfig, ...] = ()
    sample_interval_s: float = 1.0
    max_groups: int = 64
    max_instances: int = 256
    max_log_bytes: int = 256 * 1024 * 1024
    max_groups_per_uid: int = 16

    def validate(self) -> None:
        """Raise ``ValueError`` for two groups with one name or a bound out of range."""
        at_least(self, ("sample_interval_s", "max_groups", "max_instances",
                        "max_log_bytes", "max_groups_per_uid"), 0, strictly=True)
        seen: set[str] = set()
        for group in self.groups:
            if group.name in seen:
                raise ValueError(f"groups: two groups are named {group.name!r}")
            seen.add(group.name)


def normalize_start_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """``proc.start``'s parameters as the plain map of a ``GroupConfig`` (for
    ``xsys.config.from_dict``): ``None`` values left out; ``ready`` may be a number
    (``after_s``); ``ready_after_s`` and ``ready_port`` are accepted at the top level and
    inside ``ready``. Raises ``ValueError`` for a ``ready`` of another type."""
    data = {k: v for k, v in params.items() if v is not None}
    ready = data.pop("ready", None)
    ready_map: dict[str, Any] = {}
    if isinstance(ready, (int, float)) and not isinstance(ready, bool):
        ready_map["after_s"] = ready
    elif isinstance(ready, Mapping):
        ready_map.update(ready)
        if "ready_after_s" in ready_map:
            ready_map["after_s"] = ready_map.pop("ready_after_s")
    elif ready is not None:
        raise ValueError("ready: expected a map {after_s, port, host, timeout_s}")
    if "ready_after_s" in data:
        ready_map["after_s"] = data.pop("ready_after_s")
    if "ready_port" in data:
        ready_map["port"] = data.pop("ready_port")
    if ready_map:
        data["ready"] = ready_map
    return data
