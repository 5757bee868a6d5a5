"""Detection and translation of TinyMonitor's ``config.json`` into xsys's config tree.

TinyMonitor (github.com/Gu1llaum-3/tinymonitor, the Python version; docs/configuration.md,
docs/metrics/*.md, docs/alerts/*.md and configs/config.example.json) reads one JSON object:

- ``refresh`` (s), ``cooldown`` (s; negative = alert once per incident), ``log_file``;
- ``cpu``, ``memory``, ``filesystem`` (+ ``exclude`` mountpoint substrings), ``load``,
  ``io`` (thresholds in bytes/s, ``"10MB"``/``"500K"`` or ``"70%"`` of ``max_speed``),
  ``reboot``: each with ``enabled``, ``warning``, ``critical``, ``duration`` (s);
- ``alerts.{google_chat,ntfy,gotify,smtp,webhook}``: ``enabled``, the provider's keys and
  the filters ``levels`` (default WARNING, CRITICAL) and ``rules`` (check -> levels, with
  ``default``).

TinyMonitor merges the file over its defaults one top-level key at a time (a section given
replaces the default section; keys missing inside it take the metric's built-in default),
so the translation does the same and writes every value out explicitly. The result is
``{"monitor": {...}}`` (see ``xsys.monitor.config``): ``cooldown`` becomes
``repeat_interval``; the load thresholds stay absolute (``per_cpu: false``), except for
TinyMonitor's default load section (0.7 and 0.9 times the CPU count), which becomes the
same thing per CPU; xsys-only checks (swap, inodes, network, boot detection) are turned
off so the same alerts come out. The older README example (``check_interval``,
``metrics.{cpu,memory,disk}.threshold``, ``alerts.console``) is understood too.
Keys TinyMonitor does not know are reported through ``warn`` and left out.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

Warn = Callable[[str], None]

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


def _xsys_sections() -> frozenset[str]:
    from xsys.config import Config

    return frozenset(f.name for f in dataclasses.fields(Config))


def looks_like_tinymonitor(data: Mapping[str, Any]) -> bool:
    """True when ``data`` is a TinyMonitor config: it has TinyMonitor's top-level keys and
    none of xsys's own sections (``server``, ``monitor``...)."""
    keys = set(data)
    if keys & _xsys_sections():
        return False
    return bool(keys & TINYMONITOR_KEYS)


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
    return {"enabled": bool(section.get("enabled", True)), "warning": section.get("warning"),
            "critical": section.get("critical"), "duration": section.get("duration", 0)}


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
        "refresh": data.get("refresh", data.get("check_interval", 2)),
        "repeat_interval": data.get("cooldown", 60),
    }
    if data.get("log_file"):
        monitor["log_file"] = data["log_file"]

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
                           "per_cpu": True, "minutes": 1}
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
    # checks TinyMonitor does not have: off, so that the same alerts come out
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
        if name == "send_recovery":  # TinyMonitor's Go port
            monitor["send_resolved"] = bool(raw)
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
