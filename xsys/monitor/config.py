"""The ``monitor`` config section: the engine's rhythm and policy, one section per check,
and ``alerts`` (delivery and providers, ``xsys.alerts.config``). Ground level: imports only
``xsys.units``, ``xsys.alerts.config`` and the standard library, so ``xsys.config``
assembles it into the root tree without cycles.

The tree mirrors TinyMonitor's ``config.json`` (github.com/Gu1llaum-3/tinymonitor, Python
version) nested under ``monitor``, so a TinyMonitor file translates key for key
(``convert_tinymonitor``, at the end of this module). Differences: ``cooldown`` is called
``repeat_interval`` (Alertmanager's word), and xsys adds checks (``swap``, ``inodes``,
``network``), a ``hysteresis`` per check, and the ``alertmanager`` and ``console``
providers.

Units: every duration is in seconds (``refresh``, ``repeat_interval``, ``duration``,
``timeout``...), percentages are 0..100, byte rates are bytes/s (numbers, or strings such
as ``"10MB"``/``"500K"`` 1024-based, or ``"70%"`` of ``max_speed``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from xsys.alerts.config import AlertsConfig
from xsys.units import parse_bytes, parse_rate

log = logging.getLogger(__name__)

def _check_thresholds(duration: float, hysteresis: float) -> None:
    if duration < 0:
        raise ValueError(f"duration: must be >= 0 seconds, got {duration}")
    if not 0 <= hysteresis < 1:
        raise ValueError(f"hysteresis: must be a fraction in [0, 1), got {hysteresis}")


@dataclass(frozen=True)
class ThresholdCheck:
    """A check with ``warning``/``critical`` thresholds (value >= threshold is that level;
    None disables the level), a ``duration`` (s) the level must hold before it fires
    (Prometheus ``for:``), and a ``hysteresis``: the fraction of a threshold the value must
    fall below it before the level is left (0.05: a 90 % threshold clears under 85.5 %).
    ``duration`` defaults to 0 (alert at once); the ``cpu`` and ``load`` checks default to
    60 s, so that a machine that is merely busy for a while does not alert (TinyMonitor
    uses 60 s on load too)."""

    enabled: bool = True
    warning: float | None = None
    critical: float | None = None
    duration: float = 0.0
    hysteresis: float = 0.05

    def validate(self) -> None:
        """Raise ``ValueError`` when duration < 0 or hysteresis is not in [0, 1). (A
        critical line below the warning one is allowed: critical is checked first, as
        TinyMonitor does.)"""
        _check_thresholds(self.duration, self.hysteresis)

    def thresholds(self) -> tuple[float | None, float | None]:
        """``(warning, critical)`` in the check's unit."""
        return self.warning, self.critical


@dataclass(frozen=True)
class CpuCheck(ThresholdCheck):
    """Overall CPU utilisation, percent (psutil ``cpu_percent`` from the sampler); fires
    only after ``duration`` (default 60 s) at or above a line: a build or a backup keeping
    the CPUs busy for a few seconds is not an incident."""

    warning: float | None = 80.0
    critical: float | None = 95.0
    duration: float = 60.0


@dataclass(frozen=True)
class MemoryCheck(ThresholdCheck):
    """Physical memory used, percent (psutil ``virtual_memory().percent``)."""

    warning: float | None = 85.0
    critical: float | None = 95.0


@dataclass(frozen=True)
class SwapCheck(ThresholdCheck):
    """Swap used, percent (psutil ``swap_memory().percent``); hosts without swap never
    alert."""

    warning: float | None = 50.0
    critical: float | None = 80.0


@dataclass(frozen=True)
class FilesystemCheck(ThresholdCheck):
    """Space used per mounted filesystem, percent (psutil ``disk_usage``), one component
    ``filesystem:<mountpoint>`` each. Pseudo filesystems (proc, tmpfs, overlay, squashfs,
    loop devices...) are skipped; ``exclude`` skips mountpoints containing any of its
    substrings (TinyMonitor); a non-empty ``include`` keeps only those exact mountpoints."""

    warning: float | None = 85.0
    critical: float | None = 95.0
    exclude: tuple[str, ...] = ()
    include: tuple[str, ...] = ()


@dataclass(frozen=True)
class InodesCheck(ThresholdCheck):
    """Inodes used per filesystem, percent (``statvfs``), component ``inodes:<mountpoint>``;
    the filesystems are those of the ``filesystem`` check (its include/exclude)."""

    warning: float | None = 85.0
    critical: float | None = 95.0


@dataclass(frozen=True)
class LoadCheck(ThresholdCheck):
    """Load average over ``minutes`` (1, 5 or 15). With ``per_cpu`` the thresholds are per
    logical CPU (load / cpu count, unit ``load_per_cpu``); otherwise absolute (TinyMonitor's
    way: its default was 0.7 and 0.9 times the CPU count).

    The defaults mean saturation, not activity: a load of 1.0 per CPU is a machine fully
    busy with nothing waiting, which is healthy; 1.5 per CPU (warning) means half as many
    tasks again wait for a CPU as run, 2.0 (critical) as many wait as run. Both must hold
    for ``duration`` (60 s, one full window of the 1-minute average), so a load that was
    high before the daemon started cannot alert in the first window."""

    warning: float | None = 1.5
    critical: float | None = 2.0
    duration: float = 60.0
    per_cpu: bool = True
    minutes: Literal[1, 5, 15] = 1


@dataclass(frozen=True)
class RateCheck:
    """A byte-rate check (bytes/s): thresholds as numbers, size strings (``"10MB"``,
    ``"500K"``, 1024-based) or percentages (``"70%"``) of ``max_speed``; None = never."""

    enabled: bool = True
    warning: float | str | None = None
    critical: float | str | None = None
    max_speed: float | str | None = None
    duration: float = 0.0
    hysteresis: float = 0.05

    def thresholds(self) -> tuple[float | None, float | None]:
        """``(warning, critical)`` in bytes/s; raises ``ValueError`` when unparsable."""
        return parse_rate(self.warning, self.max_speed), parse_rate(self.critical, self.max_speed)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad key (``warning``, ``critical``,
        ``max_speed``)."""
        if self.max_speed not in (None, ""):
            try:
                parse_bytes(self.max_speed)
            except ValueError as exc:
                raise ValueError(f"max_speed: {exc}") from None
        for name in ("warning", "critical"):
            try:
                parse_rate(getattr(self, name), self.max_speed)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        _check_thresholds(self.duration, self.hysteresis)


@dataclass(frozen=True)
class IoCheck(RateCheck):
    """Disk I/O throughput, read + write bytes/s over all disks (TinyMonitor ``io``)."""


@dataclass(frozen=True)
class NetworkCheck(RateCheck):
    """Network throughput per interface, sent + received bytes/s, component
    ``network:<interface>``; ``exclude``: interface name globs skipped (``lo`` by default)."""

    exclude: tuple[str, ...] = ("lo",)


@dataclass(frozen=True)
class RebootCheck:
    """``required``: one of ``required_files`` exists (Debian's ``/run/reboot-required``),
    component ``reboot:required``, firing at ``severity`` while the file exists.
    ``detect_boot``: the boot time differs from the one recorded in ``state_file`` by the
    previous run, component ``reboot:happened``, firing once at ``severity`` (resolved at the
    next tick). ``state_file`` empty = ``$XDG_STATE_HOME/xsys/boot_time`` (root:
    ``/var/lib/xsys/boot_time``)."""

    enabled: bool = True
    duration: float = 0.0
    severity: Literal["warning", "critical"] = "warning"
    required_files: tuple[str, ...] = ("/run/reboot-required", "/var/run/reboot-required")
    detect_boot: bool = True
    state_file: str = ""

    def validate(self) -> None:
        """Raise ``ValueError`` for a negative duration."""
        if self.duration < 0:
            raise ValueError(f"duration: must be >= 0 seconds, got {self.duration}")


@dataclass(frozen=True)
class MonitorConfig:
    """The monitor section.

    - ``enabled``: run the engine at all.
    - ``refresh`` (s): period of an evaluation tick (TinyMonitor ``refresh``).
    - ``repeat_interval`` (s): how often a still-firing alert is sent again (TinyMonitor
      ``cooldown``); negative = once per incident (a level change still re-alerts).
    - ``send_resolved``: send resolved notifications when a firing check recovers.
    - ``log_file``: also append the monitor's and alerts' log records to this file (with
      ``compat: tinymonitor``: TinyMonitor's own log lines, in its format).
    - ``compat``: ``xsys`` (default: resolved notifications, hysteresis, level changes
      sent at once) or ``tinymonitor`` (TinyMonitor's semantics and message formats; set
      when a TinyMonitor config.json is loaded; see docs/tinymonitor.md).
    - ``history_size``: alerts kept for ``monitor.history`` (a ring).
    - the checks: ``cpu``, ``memory``, ``swap``, ``filesystem``, ``inodes``, ``load``,
      ``io``, ``network``, ``reboot``; and ``alerts`` (delivery and providers).
    """

    enabled: bool = True
    refresh: float = 5.0
    repeat_interval: float = 3600.0
    send_resolved: bool = True
    log_file: str = ""
    compat: Literal["xsys", "tinymonitor"] = "xsys"
    history_size: int = 500
    cpu: CpuCheck = field(default_factory=CpuCheck)
    memory: MemoryCheck = field(default_factory=MemoryCheck)
    swap: SwapCheck = field(default_factory=SwapCheck)
    filesystem: FilesystemCheck = field(default_factory=FilesystemCheck)
    inodes: InodesCheck = field(default_factory=InodesCheck)
    load: LoadCheck = field(default_factory=LoadCheck)
    io: IoCheck = field(default_factory=IoCheck)
    network: NetworkCheck = field(default_factory=NetworkCheck)
    reboot: RebootCheck = field(default_factory=RebootCheck)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)

    def validate(self) -> None:
        """Raise ``ValueError`` for a non-positive ``refresh`` or ``history_size``."""
        if self.refresh <= 0:
            raise ValueError(f"refresh: must be > 0 seconds, got {self.refresh}")
        if self.history_size < 1:
            raise ValueError(f"history_size: must be >= 1, got {self.history_size}")

    @property
    def refresh_s(self) -> float:
        """``refresh`` (seconds), under the name with its unit."""
        return self.refresh


# ------------------------------------------------------------- TinyMonitor's config.json
#
# Translation of TinyMonitor's ``config.json`` into xsys's config tree.
#
# TinyMonitor (github.com/Gu1llaum-3/tinymonitor, the Python version; docs/configuration.md,
# docs/metrics/*.md, docs/alerts/*.md and configs/config.example.json) reads one JSON object:
#
# - ``refresh`` (s), ``cooldown`` (s; negative = alert once per incident), ``log_file``;
# - ``cpu``, ``memory``, ``filesystem`` (+ ``exclude`` mountpoint substrings), ``load``,
#   ``io`` (thresholds in bytes/s, ``"10MB"``/``"500K"`` or ``"70%"`` of ``max_speed``),
#   ``reboot``: each with ``enabled``, ``warning``, ``critical``, ``duration`` (s);
# - ``alerts.{google_chat,ntfy,gotify,smtp,webhook}``: ``enabled``, the provider's keys and
#   the filters ``levels`` (default WARNING, CRITICAL) and ``rules`` (check -> levels, with
#   ``default``).
#
# TinyMonitor merges the file over its defaults one top-level key at a time (a section given
# replaces the default section; keys missing inside it take the metric's built-in default),
# so the translation does the same and writes every value out explicitly. The result is
# ``{"monitor": {...}}`` (the section above) with ``compat: "tinymonitor"``, which keeps
# TinyMonitor's semantics (per-component cooldown, no resolved notifications, no
# hysteresis, its component names, value texts, message bodies and log lines; see
# docs/tinymonitor.md): ``cooldown`` becomes ``repeat_interval``; the load thresholds stay
# absolute (``per_cpu: false``), except for TinyMonitor's default load section (0.7 and 0.9
# times the CPU count), which becomes the same thing per CPU; ``log_file`` defaults to
# ``tinymonitor.log`` (relative to the working directory); xsys-only checks (swap, inodes,
# network, boot detection) are turned off. The older README example (``check_interval``,
# ``metrics.{cpu,memory,disk}.threshold``, ``alerts.console``) is understood too.
# Keys TinyMonitor does not know are reported through ``warn`` and left out.
#
# ``xsys.config`` detects such a file (``looks_like_tinymonitor``, which knows xsys's own
# sections) and calls ``convert_tinymonitor``; the translation works on plain maps and
# lives here, with the section it produces, so that the config cascade imports nothing
# above the ground layer.

Warn = Callable[[str], None]

#: TinyMonitor's default ``log_file``, relative to the working directory.
TINYMONITOR_LOG_FILE = "tinymonitor.log"

#: Top-level keys of a TinyMonitor config (the older README example's included).
TINYMONITOR_KEYS = frozenset({
    "refresh", "cooldown", "log_file", "cpu", "memory", "filesystem", "load", "io",
    "reboot", "alerts", "check_interval", "metrics",
})

#: Built-in defaults of TinyMonitor's metrics for keys missing in a given section.
SECTION_DEFAULTS: dict[str, dict[str, Any]] = {
    "cpu": {"enabled": True, "warning": 70, "critical": 90, "duration": 0},
    "memory": {"enabled": True, "warning": 70, "critical": 90, "duration": 0},
    "filesystem": {"enabled": True, "warning": 80, "critical": 90, "duration": 0,
                   "exclude": []},
    "load": {"enabled": True, "warning": 7.0, "critical": 9.0, "duration": 0},
    "io": {"enabled": True, "warning": None, "critical": None, "duration": 0},
    "reboot": {"enabled": True, "duration": 0},
}

#: Keys each provider section may carry, besides ``enabled``, ``levels`` and ``rules``.
PROVIDER_KEYS: dict[str, tuple[str, ...]] = {
    "google_chat": ("webhook_url",),
    "ntfy": ("topic_url", "token"),
    "gotify": ("url", "token"),
    "smtp": ("host", "port", "user", "password", "from_addr", "to_addrs", "use_tls"),
    "webhook": ("url", "headers", "timeout"),
    "console": (),
}

#: What an enabled provider cannot work without (TinyMonitor only logged an error).
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "google_chat": ("webhook_url",),
    "ntfy": ("topic_url",),
    "gotify": ("url", "token"),
    "smtp": ("host", "from_addr", "to_addrs"),
    "webhook": ("url",),
}

_LEVELS = {"warning", "critical", "info"}


def _default_warn(message: str) -> None:
    log.warning("TinyMonitor config: %s", message)


def _section(data: Mapping[str, Any], name: str, warn: Warn,
             known: tuple[str, ...]) -> dict[str, Any] | None:
    """The section ``name`` merged over TinyMonitor's built-in defaults (None = absent)."""
    raw = data.get(name)
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        warn(f"{name}: expected an object, got {raw!r}; using the defaults")
        return None
    out = dict(SECTION_DEFAULTS[name])
    for key, value in raw.items():
        if key not in known:
            warn(f"{name}.{key}: unknown key, ignored")
            continue
        out[key] = value
    return out


def _threshold_check(section: dict[str, Any]) -> dict[str, Any]:
    # no hysteresis: TinyMonitor compares each reading with the lines as they are
    return {"enabled": bool(section.get("enabled", True)), "warning": section.get("warning"),
            "critical": section.get("critical"), "duration": section.get("duration", 0),
            "hysteresis": 0.0}


def _levels(value: Any, where: str, warn: Warn) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        warn(f"{where}: expected a list of levels, got {value!r}; ignored")
        return []
    out = []
    for level in value:
        if isinstance(level, str) and level.lower() in _LEVELS:
            out.append(level)
        else:
            warn(f"{where}: unknown level {level!r}, ignored")
    return out


def _provider(name: str, raw: Any, warn: Warn) -> dict[str, Any] | None:
    if not isinstance(raw, Mapping):
        warn(f"alerts.{name}: expected an object, got {raw!r}; ignored")
        return None
    out: dict[str, Any] = {"enabled": bool(raw.get("enabled", False))}
    for key, value in raw.items():
        if key == "enabled":
            continue
        if key == "levels":
            out["levels"] = _levels(value, f"alerts.{name}.levels", warn)
        elif key == "rules":
            if isinstance(value, Mapping):
                out["rules"] = {str(k): _levels(v, f"alerts.{name}.rules.{k}", warn)
                                for k, v in value.items()}
            else:
                warn(f"alerts.{name}.rules: expected an object, got {value!r}; ignored")
        elif key in PROVIDER_KEYS[name]:
            out[key] = value
        else:
            warn(f"alerts.{name}.{key}: unknown key, ignored")
    missing = [k for k in REQUIRED_KEYS.get(name, ()) if not out.get(k)]
    if out["enabled"] and missing:
        warn(f"alerts.{name}: enabled without {', '.join(missing)}; disabled "
             "(TinyMonitor could not send through it either)")
        out["enabled"] = False
    return out


def _legacy_metrics(data: Mapping[str, Any], monitor: dict[str, Any], warn: Warn) -> None:
    """The README's older form: ``metrics.{cpu,memory,disk}`` with one ``threshold``."""
    metrics = data.get("metrics")
    if not isinstance(metrics, Mapping):
        warn(f"metrics: expected an object, got {metrics!r}; ignored")
        return
    for name, raw in metrics.items():
        target = {"cpu": "cpu", "memory": "memory", "disk": "filesystem"}.get(name)
        if target is None or not isinstance(raw, Mapping):
            warn(f"metrics.{name}: unknown metric, ignored")
            continue
        check = dict(monitor[target])
        check["enabled"] = bool(raw.get("enabled", True))
        if "threshold" in raw:
            check["warning"] = raw["threshold"]
            check["critical"] = None
        if target == "filesystem" and raw.get("path"):
            check["include"] = [raw["path"]]
        for key in raw:
            if key not in ("enabled", "threshold", "path"):
                warn(f"metrics.{name}.{key}: unknown key, ignored")
        monitor[target] = check


def convert_tinymonitor(data: Mapping[str, Any], warn: Warn | None = None) -> dict[str, Any]:
    """Translate a TinyMonitor config into xsys's config map ``{"monitor": {...}}``.

    ``warn(message)`` receives one message per ignored key (default: logged). Values are
    passed through unchanged, so xsys's validation reports bad ones with their key path
    (``monitor.cpu.warning: expected a number, got 'high'``).
    """
    say = warn or _default_warn
    monitor: dict[str, Any] = {
        "enabled": True,
        "compat": "tinymonitor",
        "refresh": data.get("refresh", data.get("check_interval", 2)),
        "repeat_interval": data.get("cooldown", 60),
        "send_resolved": False,
        # TinyMonitor's default; an empty or null value given turns the file off
        "log_file": data.get("log_file", TINYMONITOR_LOG_FILE) or "",
    }

    cpu = _section(data, "cpu", say, ("enabled", "warning", "critical", "duration"))
    monitor["cpu"] = _threshold_check(cpu or SECTION_DEFAULTS["cpu"])
    memory = _section(data, "memory", say, ("enabled", "warning", "critical", "duration"))
    monitor["memory"] = _threshold_check(memory or SECTION_DEFAULTS["memory"])
    fs = _section(data, "filesystem", say,
                  ("enabled", "warning", "critical", "duration", "exclude"))
    fs = fs or SECTION_DEFAULTS["filesystem"]
    monitor["filesystem"] = {**_threshold_check(fs), "exclude": list(fs.get("exclude") or [])}
    load = _section(data, "load", say, ("enabled", "warning", "critical", "duration"))
    if load is None:  # TinyMonitor's default: 0.7 / 0.9 times the CPU count, for 60 s
        monitor["load"] = {"enabled": True, "warning": 0.7, "critical": 0.9, "duration": 60,
                           "hysteresis": 0.0, "per_cpu": True, "minutes": 1}
    else:
        monitor["load"] = {**_threshold_check(load), "per_cpu": False, "minutes": 1}
    io = _section(data, "io", say,
                  ("enabled", "warning", "critical", "duration", "max_speed"))
    io = io or SECTION_DEFAULTS["io"]
    monitor["io"] = {**_threshold_check(io), "max_speed": io.get("max_speed") or None}
    reboot = _section(data, "reboot", say, ("enabled", "duration", "warning", "critical"))
    reboot = reboot or SECTION_DEFAULTS["reboot"]
    monitor["reboot"] = {"enabled": bool(reboot.get("enabled", True)),
                         "duration": reboot.get("duration", 0), "severity": "warning",
                         "detect_boot": False}
    # checks TinyMonitor does not have: off
    monitor["swap"] = {"enabled": False}
    monitor["inodes"] = {"enabled": False}
    monitor["network"] = {"enabled": False}

    if "metrics" in data:
        _legacy_metrics(data, monitor, say)

    alerts: dict[str, Any] = {}
    raw_alerts = data.get("alerts", {})
    if not isinstance(raw_alerts, Mapping):
        say(f"alerts: expected an object, got {raw_alerts!r}; ignored")
        raw_alerts = {}
    for name, raw in raw_alerts.items():
        if name == "send_recovery":  # TinyMonitor's Go port, not the Python one
            say("alerts.send_recovery: a key of TinyMonitor's Go port; the Python "
                "TinyMonitor sends no recovery notifications, so neither does xsys here")
            continue
        if name == "public_ip_url":  # xsys's own key, allowed in a TinyMonitor file
            alerts["public_ip_url"] = raw
            continue
        if name not in PROVIDER_KEYS:
            say(f"alerts.{name}: unknown provider, ignored")
            continue
        provider = _provider(name, raw, say)
        if provider is not None:
            alerts[name] = provider
    monitor["alerts"] = alerts

    for key in data:
        if key not in TINYMONITOR_KEYS:
            say(f"{key}: unknown key, ignored")
    return {"monitor": monitor}
