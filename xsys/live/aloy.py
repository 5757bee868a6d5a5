"""ALOY's flat message (the agent xsys replaces): one snapshot as ``{"cpu_usage",
"memory_usage", "disk_usage", "net_sent", "net_recv", "ip"}``, as the HTTP gateway's
``/ws`` (``"format": "aloy"``) and push mode (``format: aloy``) send it."""

from __future__ import annotations

from typing import Any

#: The sections a snapshot needs for ``aloy_message``.
ALOY_SECTIONS: tuple[str, ...] = ("cpu", "memory", "disks", "network")


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else 0.0


def aloy_message(snap: dict[str, Any], ip: str) -> dict[str, Any]:
    """ALOY's bare message from a snapshot with the ``cpu``, ``memory``, ``disks`` and
    ``network`` sections: ``{"cpu_usage" (percent), "memory_usage" (percent),
    "disk_usage" (percent of the filesystem mounted at ``/``, else the first one),
    "net_sent", "net_recv" (bytes since boot, all interfaces), "ip"}``."""
    cpu = snap.get("cpu") or {}
    memory = snap.get("memory") or {}
    if isinstance(memory.get("virtual"), dict):
        memory = memory["virtual"]
    disks = snap.get("disks") or []
    if isinstance(disks, dict):
        disks = disks.get("disks") or []
    disk_percent = 0.0
    rows = [d for d in disks if isinstance(d, dict)]
    root = next((d for d in rows if d.get("mountpoint") == "/"), rows[0] if rows else None)
    if root is not None:
        disk_percent = _num(root.get("percent"))
    network = snap.get("network") or {}
    total = network.get("total") or {}
    return {"cpu_usage": _num(cpu.get("percent")), "memory_usage": _num(memory.get("percent")),
            "disk_usage": disk_percent, "net_sent": int(_num(total.get("bytes_sent"))),
            "net_recv": int(_num(total.get("bytes_recv"))), "ip": ip}
