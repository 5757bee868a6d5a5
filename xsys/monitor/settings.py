"""Configuration dataclasses of the monitor (``monitor`` section of the config)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MonitorConfig:
    """The monitor section (placeholder; filled in by the monitor work)."""

    enabled: bool = True
    refresh_s: float = 10.0
