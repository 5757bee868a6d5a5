"""Parsing and formatting of quantities, shared by the CLI, the alerts and the monitor:
sizes and byte rates written like TinyMonitor's (``"10MB"``, ``"500K"``, ``"70%"`` of a
maximum; 1024-based), values with their unit, and durations for humans. Ground level:
imports only the standard library.

The one format per kind of value, wherever a person reads it (CLI tables, the monitor,
alert messages): percentages with their sign and one decimal (``format_percent``:
``22.7%``), bytes in IEC units (``format_bytes(n, iec=True)``: ``1.5 KiB``, rates
``1.5 KiB/s``), instants as local ISO-8601 to the second (``format_time``:
``2026-11-30T17:02:03``), durations as ``1d 2h 3m`` (``format_duration``).
``format_field`` picks one of them from a field's name (the codebase's unit suffixes:
``_bytes``, ``_percent``, ``_at``, ``_s``).
"""

from __future__ import annotations

import datetime as dt
import math
import re

_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_RATE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([KMGT]?)(?:I?B)?(?:/S)?\s*$")


def parse_bytes(value: float | str) -> float:
    """Bytes (or bytes/s) from a number or a string such as ``"10MB"``, ``"500K"``,
    ``"1.5GiB"``, ``"2G/s"`` (units 1024-based, as TinyMonitor's ``io`` thresholds).

    Raises ``ValueError`` for anything else (including percentages: see ``parse_rate``).
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a size, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"expected a non-negative size, got {value!r}")
        return float(value)
    m = _RATE_RE.match(value.upper())
    if not m:
        raise ValueError(f"expected a size like 10MB, 500K or a number of bytes, got {value!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_rate(value: float | str | None, max_speed: float | str | None = None) -> float | None:
    """A threshold in bytes/s: a number, a size string (``parse_bytes``) or a percentage
    (``"70%"``) of ``max_speed``; None stays None (no threshold).

    Raises ``ValueError`` on an unparsable value or a percentage without ``max_speed``.
    """
    if value is None:
        return None
    if isinstance(value, str) and value.strip().endswith("%"):
        if max_speed is None or max_speed == "":
            raise ValueError(f"{value!r} is a percentage but max_speed is not set")
        try:
            pct = float(value.strip()[:-1])
        except ValueError:
            raise ValueError(f"expected a percentage like 70%, got {value!r}") from None
        return parse_bytes(max_speed) * pct / 100.0
    return parse_bytes(value)


def format_bytes(n: float, iec: bool = False) -> str:
    """``1536`` -> ``"1.5KB"`` (1024-based, one decimal, TinyMonitor's labels); with
    ``iec`` -> ``"1.5 KiB"`` (the CLI's tables)."""
    size = float(n)
    labels = ("B", "KiB", "MiB", "GiB", "TiB", "PiB") if iec else ("B", "KB", "MB", "GB", "TB")
    sep = " " if iec else ""
    for label in labels:
        if abs(size) < 1024 or label == labels[-1]:
            return f"{size:.1f}{sep}{label}" if label != "B" else f"{size:.0f}{sep}B"
        size /= 1024
    return f"{size:.1f}{labels[-1]}"  # pragma: no cover - loop always returns


def format_value(value: float, unit: str) -> str:
    """A value with its unit for humans: ``85.2%``, ``1.2 MiB/s``, ``3.10``, ``yes``."""
    if unit == "percent":
        return f"{value:.1f}%"
    if unit == "bytes_per_second":
        return f"{format_bytes(value, iec=True)}/s"
    if unit == "bool":
        return "yes" if value else "no"
    if unit == "load_per_cpu":
        return f"{value:.2f}/cpu"
    if unit == "check_state":  # a service check's alert level (xsys.checks.service)
        return {0: "up", 1: "down", 2: "failed"}.get(int(value), f"{value:g}")
    return f"{value:.2f}"


def format_duration(seconds: float) -> str:
    """``93784`` -> ``"1d 2h 3m"``; under a minute ``"42s"``."""
    s = int(max(0, seconds))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {s}s"
    return f"{s}s"


def format_percent(value: float | None) -> str:
    """``22.73`` -> ``"22.7%"`` (one decimal, always the sign); blank for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{float(value):.1f}%"


def format_time(ts: float | None, timespec: str = "seconds") -> str:
    """Epoch seconds -> local ISO-8601 to the second, ``"2026-11-30T17:02:03"`` (to the
    millisecond with ``timespec="milliseconds"``: event streams); blank for None, NaN or a
    value out of range."""
    if ts is None or isinstance(ts, bool) or not isinstance(ts, (int, float)):
        return ""
    try:
        return dt.datetime.fromtimestamp(ts).isoformat(timespec=timespec)
    except (OverflowError, OSError, ValueError):
        return ""


def format_field(name: str, value: object) -> str | None:
    """``value`` formatted by the unit its field ``name`` carries: ``*_bytes`` ->
    ``format_bytes`` (IEC), ``*percent`` -> ``format_percent``, ``*_at`` / ``*_time`` ->
    ``format_time``, ``*_s`` -> seconds with ``s``; None when the name carries no unit (or
    the value is not a number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if name.endswith("_bytes"):
        return format_bytes(value, iec=True)
    if name.endswith("percent"):
        return format_percent(value)
    if name.endswith(("_at", "create_time")):
        return format_time(value)
    if name.endswith("_s"):
        return f"{value:.1f}s" if value < 60 else format_duration(value)
    return None
