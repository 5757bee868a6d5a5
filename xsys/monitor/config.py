"""The ``monitor`` config section: the engine's rhythm and policy, one section per check,
and ``alerts`` (delivery and providers, ``xsys.alerts.config``). Ground level: imports only
``xsys.units``, ``xsys.alerts.config`` and the standard library, so ``xsys.config``
assembles it into the root tree without cycles.

The tree mirrors TinyMonitor's ``config.json`` (github.com/Gu1llaum-3/tinymonitor, Python
version) nested under ``monitor``, so a TinyMonitor file translates key for key
(``xsys.monitor.tinymonitor``). Differences: ``cooldown`` is called ``repeat_interval``
(Alertmanager's word), and xsys adds checks (``swap``, ``inodes``, ``network``), a
``hysteresis`` per check, and the ``alertmanager`` and ``console`` providers.

Units: every duration is in seconds (``refresh``, ``repeat_interval``, ``duration``,
``timeout``...), percentages are 0..100, byte rates are bytes/s (numbers, or strings such
as ``"10MB"``/``"500K"`` 1024-based, or ``"70%"`` of ``max_speed``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from xsys.alerts.config import AlertsConfig
from xsys.units import parse_bytes, parse_rate


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
    ``duration`` defaults to 0 (alert at once) as in TinyMonitor; 30-60 s avoids alerts on
    short CPU or load bursts."""

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
    """Overall CPU utilisation, percent (psutil ``cpu_percent`` from the sampler)."""

    warning: float | None = 80.0
    critical: float | None = 95.0


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
    way: its default was 0.7 and 0.9 times the CPU count)."""

    warning: float | None = 1.0
    critical: float | None = 2.0
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
    - ``log_file``: also append the monitor's and alerts' log records to this file.
    - ``history_size``: alerts kept for ``monitor.history`` (a ring).
    - the checks: ``cpu``, ``memory``, ``swap``, ``filesystem``, ``inodes``, ``load``,
      ``io``, ``network``, ``reboot``; and ``alerts`` (delivery and providers).
    """

    enabled: bool = True
    refresh: float = 5.0
    repeat_interval: float = 3600.0
    send_resolved: bool = True
    log_file: str = ""
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
