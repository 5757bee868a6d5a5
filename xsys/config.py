"""Typed configuration: one frozen-dataclass tree, its defaults, the cascade that builds it
and the validation that names the key path of every mistake.

Cascade, later wins, merged deeply (maps merge key by key, everything else replaces):
built-in defaults < ``/etc/xsys/config.json`` < ``~/.config/xsys/config.json`` <
``--config FILE`` < environment (``XSYS_SOCKET``, ``XSYS_LOG_LEVEL``, ``XSYS_LOG_FORMAT``).
A TinyMonitor ``config.json`` given at any file layer is detected and translated
(``looks_like_tinymonitor`` here, ``xsys.monitor.config.convert_tinymonitor``). Unknown keys
are errors that name their path.

Each section's dataclass lives with its owner (``xsys.fs.config``, ``xsys.watch.config``,
``xsys.monitor.config`` with ``xsys.alerts.config``, ``xsys.http.config``); those modules
import only ground (``xsys.protocol``, ``xsys.units``, the standard library), so this
module assembles the root ``Config`` from them without cycles. ``ServerConfig`` (the
framework's) and ``SysConfig`` are defined here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from xsys.bounds import at_least
from xsys.checks.config import CheckConfig, validate_checks
from xsys.fs.config import FsConfig
from xsys.http.config import HttpConfig
from xsys.metrics.config import MetricsConfig
from xsys.monitor.config import TINYMONITOR_KEYS, MonitorConfig, convert_tinymonitor
from xsys.proc.config import ProcConfig
from xsys.protocol import DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_REQUEST_OBJECTS
from xsys.push.config import PushConfig
from xsys.watch.config import WatchConfig

SYSTEM_CONFIG = Path("/etc/xsys/config.json")
USER_CONFIG = Path("~/.config/xsys/config.json")


class ConfigError(ValueError):
    """A configuration value is invalid; the message starts with the key path
    (``monitor.cpu.warning: expected a number, got 'high'``)."""


@dataclass(frozen=True)
class ServerConfig:
    """The daemon's socket, access control, limits and logging."""

    socket: str = ""
    """Socket path (on Windows the pipe name, ``\\\\.\\pipe\\<name>``); empty =
    docs/protocol.md's default resolution."""
    group: str = ""
    """Group name or gid owning the socket; when set the socket is 0660 and its dir 0750."""
    allowed_uids: tuple[int, ...] | None = None
    """Peer uids allowed to connect (SO_PEERCRED); None = the daemon's own uid and root.
    Not on Windows: its pipe admits the daemon's account, SYSTEM and Administrators."""
    allowed_gids: tuple[int, ...] = ()
    """Peer gids allowed to connect in addition to ``allowed_uids``."""
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    """Largest frame (bytes) read or written; a longer announced length gets one -32600
    frame and the connection closes. Also caps one ``fs.read``."""
    max_request_objects: int = DEFAULT_MAX_REQUEST_OBJECTS
    """msgpack objects (containers and their items) one request may decode to; above it
    the request gets -32004 and the connection stays. Bounds the decoding time and memory
    of a frame (a 16 MiB array of empty maps)."""
    max_inflight: int = 64
    """Requests read and not yet answered per connection before the server stops reading;
    at most ``workers`` of them run at once."""
    max_output_bytes: int = 32 * 1024 * 1024
    """Unsent output (bytes) of one connection from which none of its queued requests
    starts until the client reads (per-connection high-water mark)."""
    max_inflight_result_bytes: int = 256 * 1024 * 1024
    """Budget of unsent result bytes across all connections: over it, a connection with
    unsent output starts no request, and connections over their ``max_output_bytes``
    are closed, largest first."""
    max_connections: int = 1024
    """Open connections in all; beyond it new ones get -32005 (overloaded)."""
    max_connections_per_uid: int = 256
    """Connections one peer uid (on Windows: SID) may hold at once (-32005 above)."""
    reserved_connections: int = 16
    """Of ``max_connections``, kept for root and the daemon's own uid (at most half of
    them): other uids are refused (-32005) once the rest are open."""
    idle_timeout_s: float = 300.0
    """Close a connection with nothing in flight, no subscription and no traffic for this
    long; 0 = never."""
    frame_timeout_s: float = 30.0
    """Close a connection whose partial frame has not completed for this long (answered
    with -32600 first; slowloris); 0 = never."""
    outbound_queue: int = 1024
    """Notifications queued per subscription while a client reads slowly; oldest dropped."""
    outbound_queue_bytes: int = 8 * 1024 * 1024
    """Encoded bytes queued per subscription while a client reads slowly; oldest dropped."""
    workers: int = 8
    """Threads in the pool for blocking work (psutil, file I/O)."""
    shutdown_timeout_s: float = 5.0
    """Seconds from SIGTERM to exit: requests in flight, shutdown hooks and the pool's
    jobs share it; jobs still stuck then are logged and left behind."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    """Logging threshold (stderr); ``XSYS_LOG_LEVEL`` and ``--log-level`` override it."""
    log_format: Literal["text", "json"] = "text"
    """``text`` lines, or ``json``: one JSON object a line (``--log-format``)."""

    def validate(self) -> None:
        """Raise ``ValueError`` when a limit is not positive or a timeout or the reserve
        is negative."""
        at_least(self, ("max_frame_bytes", "max_request_objects", "max_inflight",
                        "max_output_bytes", "max_inflight_result_bytes", "max_connections",
                        "max_connections_per_uid", "outbound_queue", "outbound_queue_bytes",
                        "workers"), 0, strictly=True)
        at_least(self, ("idle_timeout_s", "frame_timeout_s", "shutdown_timeout_s",
                        "reserved_connections"), 0)


@dataclass(frozen=True)
class SysConfig:
    """The sys namespace."""

    sample_interval_s: float = 1.0
    """Period of the background sampler feeding cpu percent and I/O rates."""
    allow_kill: bool = False
    """Whether ``sys.kill`` may signal anything (then only the caller's own processes)."""
    min_interval_s: float = 0.25
    """Shortest ``sys.subscribe`` interval (s); faster requests are clamped to it, and the
    sampler never samples faster than it for a subscriber."""
    max_subscriptions: int = 1024
    """Live snapshot subscriptions (``sys.subscribe``, ``/ws``) the daemon holds at once;
    past it ``sys.subscribe`` fails with -32005."""
    max_subscriptions_per_uid: int = 64
    """Live snapshot subscriptions one peer uid other than root and the daemon's own may
    hold at once, so that one peer cannot take all of ``max_subscriptions`` (-32005)."""

    def validate(self) -> None:
        """Raise ``ValueError`` when an interval or a subscription cap is not positive."""
        at_least(self, ("sample_interval_s", "min_interval_s", "max_subscriptions",
                        "max_subscriptions_per_uid"), 0, strictly=True)


@dataclass(frozen=True)
class Config:
    """The whole configuration tree."""

    server: ServerConfig = field(default_factory=ServerConfig)
    sys: SysConfig = field(default_factory=SysConfig)
    fs: FsConfig = field(default_factory=FsConfig)
    watch: WatchConfig = field(default_factory=WatchConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    checks: tuple[CheckConfig, ...] = ()
    """Service checks (``xsys.checks.config``): a list, one probe each."""
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    push: PushConfig = field(default_factory=PushConfig)
    """Push mode (``xsys.push.config``): backends the daemon streams to over WebSocket."""
    proc: ProcConfig = field(default_factory=ProcConfig)
    """Supervised worker groups started with the daemon (``xsys.proc.config``)."""

    def validate(self) -> None:
        """Raise ``ValueError`` when two service checks share a name."""
        validate_checks(self.checks)


# --------------------------------------------------------------------------- validation


def _type_name(tp: Any) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "a boolean"}
    if tp in names:
        return names[tp]
    origin = typing.get_origin(tp)
    if origin in (tuple, list):
        return "a list"
    if origin in (dict, Mapping):
        return "a map"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "a map"
    return str(tp)


def _convert(tp: Any, value: Any, path: str) -> Any:
    """Check ``value`` against the annotation ``tp``, converting lists to tuples and maps to
    dataclasses; raise ``ConfigError`` naming ``path``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{path}: invalid value {value!r}")
    if origin is Literal:
        if value in args:
            return value
        raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a map, got {value!r}")
        return from_dict(tp, value, path)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        item_tp = args[0] if args else Any
        items = [_convert(item_tp, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a map, got {value!r}")
        val_tp = args[1] if len(args) == 2 else Any
        return {str(k): _convert(val_tp, v, f"{path}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:
        raise ConfigError(f"{path}: unsupported type {tp!r}")
    raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")


def from_dict(cls: type[Any], data: Mapping[str, Any], path: str = "") -> Any:
    """Build the dataclass ``cls`` from a plain map, validating every field.

    Raises ``ConfigError`` for an unknown key or a value of the wrong type, naming the
    dotted key path. Missing keys take the field's default.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        sub = f"{path}.{key}" if path else str(key)
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{sub}: unknown key (known keys here: {known})")
        kwargs[key] = _convert(hints[key], value, sub)
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{path or '<root>'}: {exc}") from exc
    check = getattr(obj, "validate", None)
    if callable(check):
        try:
            check()
        except ValueError as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"{path or '<root>'}: {exc}") from exc
    return obj


def to_dict(obj: Any) -> Any:
    """The plain (JSON-able) form of a config dataclass tree; tuples become lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


# --------------------------------------------------------------------------- cascade


@dataclass(frozen=True)
class LoadedConfig:
    """The effective config plus, for each leaf key path, the layer it came from
    (``"defaults"``, a file path, or ``"env:XSYS_SOCKET"``)."""

    config: Config
    sources: dict[str, str]
    files: tuple[str, ...]


def _merge(base: dict[str, Any], layer: Mapping[str, Any], sources: dict[str, str],
           origin: str, prefix: str = "") -> None:
    for key, value in layer.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value, sources, origin, path)
        else:
            base[key] = _plain(value)
            for stale in [p for p in sources if p.startswith(path + ".")]:
                del sources[stale]
            _record(value, sources, origin, path)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _record(value: Any, sources: dict[str, str], origin: str, path: str) -> None:
    if isinstance(value, Mapping) and value:
        for k, v in value.items():
            _record(v, sources, origin, f"{path}.{k}")
    else:
        sources[path] = origin


def looks_like_tinymonitor(data: Mapping[str, Any]) -> bool:
    """True when ``data`` is a TinyMonitor config: it has TinyMonitor's top-level keys
    (``xsys.monitor.config.TINYMONITOR_KEYS``) and none of xsys's own sections
    (``server``, ``monitor``...); ``metrics``, a name both use, counts as TinyMonitor's
    when it is a map of checks (``{"cpu": {"enabled": ..., "threshold": ...}}``)."""
    keys = set(data)
    own = {f.name for f in dataclasses.fields(Config)}
    shared = own & TINYMONITOR_KEYS  # "metrics": TinyMonitor's checks, xsys's app metrics
    if keys & (own - shared):
        return False
    for key in keys & shared:  # TinyMonitor's is a map of checks, each a map
        value = data[key]
        if not (isinstance(value, Mapping) and value
                and all(isinstance(v, Mapping) for v in value.values())):
            return False
    return bool(keys & TINYMONITOR_KEYS)


def read_config_file(path: Path) -> dict[str, Any]:
    """Read one JSON config file and translate TinyMonitor's format if it is one.

    Raises ``ConfigError`` naming the file on unreadable or invalid JSON.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a JSON object")
    if looks_like_tinymonitor(data):
        data = convert_tinymonitor(data)
    result: dict[str, Any] = data
    return result


ENV_KEYS = {
    "XSYS_SOCKET": ("server", "socket"),
    "XSYS_LOG_LEVEL": ("server", "log_level"),
    "XSYS_LOG_FORMAT": ("server", "log_format"),
}


def load_config(
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    system_file: Path = SYSTEM_CONFIG,
    user_file: Path = USER_CONFIG,
    overrides: Mapping[str, Any] | None = None,
) -> LoadedConfig:
    """Build the effective config by the cascade (module docstring).

    ``config_file`` must exist when given; the system and user files are optional.
    ``overrides`` (e.g. from CLI flags such as ``--socket``) apply last.
    Raises ``ConfigError``.
    """
    env = os.environ if environ is None else environ
    merged: dict[str, Any] = to_dict(Config())
    sources: dict[str, str] = {}
    _record(merged, sources, "defaults", "")
    sources = {k.lstrip("."): v for k, v in sources.items()}
    files: list[str] = []
    layers: list[tuple[str, Mapping[str, Any]]] = []
    for candidate in (system_file, user_file.expanduser()):
        if candidate.is_file():
            layers.append((str(candidate), read_config_file(candidate)))
    if config_file is not None:
        path = Path(config_file).expanduser()
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        layers.append((str(path), read_config_file(path)))
    for var, (section, key) in ENV_KEYS.items():
        if env.get(var):
            value = env[var].upper() if key == "log_level" else env[var]
            layers.append((f"env:{var}", {section: {key: value}}))
    if overrides:
        layers.append(("command line", overrides))
    for origin, layer in layers:
        if not origin.startswith(("env:", "command line")):
            files.append(origin)
        _merge(merged, layer, sources, origin)
    config = from_dict(Config, merged)
    return LoadedConfig(config=config, sources=sources, files=tuple(files))
