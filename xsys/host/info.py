"""Host identity: hostname, OS and kernel, CPU model, boot time, logged-in users, and the
``sys.info`` overview that gathers them with the sampled totals."""

from __future__ import annotations

import platform
import socket
import time
from typing import TYPE_CHECKING, TypedDict

import psutil

from xsys.host.disks import DiskSummary, disk_summaries
from xsys.host.network import InterfaceSummary, interface_summaries

if TYPE_CHECKING:
    from xsys.host.sampler import Snapshot


class HostInfo(TypedDict):
    """``sys.info``: the host at a glance.

    - identity: ``hostname``, ``os`` (``PRETTY_NAME`` of os-release), ``system``
      (``Linux``), ``kernel`` (release), ``arch`` (``x86_64``), ``python`` (the daemon's
      version), ``cpu_model``.
    - time: ``booted_at`` (epoch seconds; psutil ``boot_time``), ``uptime_s``, ``ts``
      (epoch seconds of the sample).
    - CPU: ``cpu_count_logical``, ``cpu_count_physical`` (None where unknown),
      ``cpu_percent`` (0..100 over the last sampling interval), ``load`` ([1, 5, 15]-minute
      averages).
    - memory: ``memory_total_bytes``, ``memory_available_bytes``, ``memory_percent``,
      ``swap_total_bytes``, ``swap_percent`` (psutil ``virtual_memory``/``swap_memory``).
    - ``disks`` (``DiskSummary`` each) and ``network`` (``InterfaceSummary`` each).
    """

    hostname: str
    os: str
    system: str
    kernel: str
    arch: str
    booted_at: float
    uptime_s: float
    cpu_count_logical: int
    cpu_count_physical: int | None
    cpu_model: str
    cpu_percent: float
    memory_total_bytes: int
    memory_available_bytes: int
    memory_percent: float
    swap_total_bytes: int
    swap_percent: float
    load: list[float]
    disks: list[DiskSummary]
    network: list[InterfaceSummary]
    python: str
    ts: float


class User(TypedDict):
    """A login session (psutil ``users``): ``name``, ``terminal`` and ``host`` (None
    where there is none), ``started_at`` (epoch seconds; psutil ``started``) and ``pid``
    of the session leader (None where the platform does not say)."""

    name: str
    terminal: str | None
    host: str | None
    started_at: float
    pid: int | None


class Users(TypedDict):
    """``sys.users``: ``users`` (``User`` each)."""

    users: list[User]


def hostname() -> str:
    """This host's name (``socket.gethostname``)."""
    return socket.gethostname()


def booted_at() -> float:
    """When the system booted, epoch seconds (psutil ``boot_time``)."""
    return float(psutil.boot_time())


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; else ``platform.processor``/``machine``)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith(("model name", "Hardware", "Processor")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def os_name() -> str:
    """The OS as people name it (``PRETTY_NAME`` of os-release: ``Debian GNU/Linux
    12 (bookworm)``); else system and release."""
    try:
        info = platform.freedesktop_os_release()
        return info.get("PRETTY_NAME") or info.get("NAME") or platform.system()
    except OSError:
        return f"{platform.system()} {platform.release()}"


def users() -> Users:
    """The ``sys.users`` result (psutil ``users``)."""
    return {"users": [{"name": u.name, "terminal": u.terminal, "host": u.host,
                       "started_at": u.started, "pid": getattr(u, "pid", None)}
                      for u in psutil.users()]}


def host_info(snap: Snapshot) -> HostInfo:
    """The ``sys.info`` result: identity and boot time now, totals and rates from
    ``snap``, the filesystems' usage (blocking: ``statvfs`` may stall on a network
    mount)."""
    boot = booted_at()
    return {
        "hostname": hostname(),
        "os": os_name(),
        "system": platform.system(),
        "kernel": platform.release(),
        "arch": platform.machine(),
        "booted_at": boot,
        "uptime_s": round(time.time() - boot, 3),
        "cpu_count_logical": snap.cpu_count_logical,
        "cpu_count_physical": snap.cpu_count_physical,
        "cpu_model": cpu_model(),
        "cpu_percent": snap.cpu_percent,
        "memory_total_bytes": int(snap.memory["total_bytes"]),
        "memory_available_bytes": int(snap.memory["available_bytes"]),
        "memory_percent": snap.memory["percent"],
        "swap_total_bytes": int(snap.swap["total_bytes"]),
        "swap_percent": snap.swap["percent"],
        "load": list(snap.load),
        "disks": disk_summaries(),
        "network": interface_summaries(snap),
        "python": platform.python_version(),
        "ts": snap.ts,
    }
