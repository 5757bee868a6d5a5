"""Detection and translation of TinyMonitor's ``config.json`` into xsys's config tree."""

from __future__ import annotations

from typing import Any


def looks_like_tinymonitor(data: dict[str, Any]) -> bool:
    """True when ``data`` is a TinyMonitor config (placeholder)."""
    return False


def convert_tinymonitor(data: dict[str, Any]) -> dict[str, Any]:
    """Translate a TinyMonitor config into xsys's config map (placeholder)."""
    return data
