"""Hardware sensors: temperatures, fans and the battery (psutil ``sensors_*``), where the
platform has them. Blocking (reads /sys)."""

from __future__ import annotations

import logging
from typing import TypedDict

import psutil

log = logging.getLogger(__name__)


class Temperature(TypedDict):
    """One temperature sensor (psutil ``sensors_temperatures``): ``chip`` (driver name,
    e.g. ``coretemp``), ``label``, ``current_celsius``, ``high_celsius`` and
    ``critical_celsius`` (None where the chip gives no threshold)."""

    chip: str
    label: str
    current_celsius: float
    high_celsius: float | None
    critical_celsius: float | None


class Fan(TypedDict):
    """One fan (psutil ``sensors_fans``): ``chip``, ``label``, ``current_rpm``."""

    chip: str
    label: str
    current_rpm: int


class Battery(TypedDict):
    """The battery (psutil ``sensors_battery``): ``percent`` charged (0..100),
    ``time_left_s`` (seconds until empty; None while plugged in or unknown: psutil
    ``secsleft`` is negative then) and ``power_plugged`` (None when unknown)."""

    percent: float
    time_left_s: int | None
    power_plugged: bool | None


class Sensors(TypedDict):
    """``sys.sensors``: ``temperatures`` and ``fans`` (empty lists where there are none)
    and ``battery`` (None without one)."""

    temperatures: list[Temperature]
    fans: list[Fan]
    battery: Battery | None


_SENSOR_ERRORS = (AttributeError, OSError, RuntimeError)


def temperatures() -> list[Temperature]:
    """Every temperature sensor; empty where the platform has none or reading fails."""
    out: list[Temperature] = []
    try:
        for chip, entries in (psutil.sensors_temperatures() or {}).items():
            for e in entries:
                out.append({"chip": chip, "label": e.label, "current_celsius": e.current,
                            "high_celsius": e.high, "critical_celsius": e.critical})
    except _SENSOR_ERRORS as exc:
        log.debug("temperatures unavailable: %s", exc)
    return out


def fans() -> list[Fan]:
    """Every fan; empty where the platform has none or reading fails."""
    out: list[Fan] = []
    try:
        for chip, entries in (psutil.sensors_fans() or {}).items():
            for f in entries:
                out.append({"chip": chip, "label": f.label, "current_rpm": f.current})
    except _SENSOR_ERRORS as exc:
        log.debug("fans unavailable: %s", exc)
    return out


def battery() -> Battery | None:
    """The battery, or None without one (or when reading fails)."""
    try:
        bat = psutil.sensors_battery()
    except _SENSOR_ERRORS as exc:
        log.debug("battery unavailable: %s", exc)
        return None
    if bat is None:
        return None
    secs = bat.secsleft
    return {"percent": bat.percent,
            "time_left_s": secs if isinstance(secs, int) and secs >= 0 else None,
            "power_plugged": bat.power_plugged}


def sensors() -> Sensors:
    """The ``sys.sensors`` result: never an error, empty where nothing is there."""
    return {"temperatures": temperatures(), "fans": fans(), "battery": battery()}
