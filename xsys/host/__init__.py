"""The machine as xsys sees it: psutil, /proc and /sys behind one package (psutil's own
``_psplatform`` idea), one module per subject (node_exporter's one collector per file).

- ``sampler``: the background ``Sampler`` and its immutable ``Snapshot`` (CPU percent,
  memory, load, I/O counters and rates), read by ``sys.*``, the monitor and ``/health``.
- ``cpu``, ``memory``: readers, and the ``sys.cpu``/``sys.load``/``sys.memory`` results
  shaped from a snapshot.
- ``disks``: partitions and the one filter of real filesystems (``PSEUDO_FS``,
  ``skip_partition``), space and inodes (``fs_usage``), I/O counters, whole disks.
- ``network``: interfaces, addresses, counters, listening sockets.
- ``processes``: listing, details, and signalling under ``sys.kill``'s rules.
- ``sensors``: temperatures, fans, battery.
- ``info``: identity, boot time, users and the ``sys.info`` overview.

Results are frozen dataclasses (domain values such as ``Partition``, ``FsUsage``,
``Snapshot``) or TypedDicts (the wire shapes of the ``sys.*`` results), every field with
its unit in its name (``_bytes``, ``_s``, ``_at``; ``percent`` is psutil's, 0..100). Only
readers block; functions taking a ``Snapshot`` never touch the OS. This package imports
only the ground layer (``xsys.protocol``): the daemon, the handlers, the HTTP gateway and
the monitor call into it.
"""

from __future__ import annotations

from xsys.host.cpu import (
    CpuFreq,
    CpuUsage,
    LoadAverages,
    cpu_times_per_cpu_s,
    cpu_usage,
    getloadavg,
    load_averages,
)
from xsys.host.disks import (
    PSEUDO_FS,
    DiskIO,
    DiskIOUsage,
    DiskRow,
    Disks,
    DiskSummary,
    FsUsage,
    Partition,
    disk_io_counters,
    disk_io_usage,
    fs_usage,
    is_whole_disk,
    list_disks,
    mounted_disks,
    partitions,
    skip_partition,
)
from xsys.host.info import HostInfo, User, Users, booted_at, host_info, hostname, users
from xsys.host.memory import (
    MemoryUsage,
    SwapMemory,
    VirtualMemory,
    memory_usage,
    swap_memory,
    virtual_memory,
)
from xsys.host.network import (
    ConnectionKind,
    Interface,
    InterfaceAddress,
    InterfaceStats,
    NetIO,
    NetworkUsage,
    Port,
    Ports,
    interface_stats,
    listening_ports,
    local_addresses,
    net_io_counters,
    network_usage,
    route_address,
)
from xsys.host.processes import (
    ProcessDetails,
    ProcessList,
    ProcessRow,
    ProcessSort,
    SignalSent,
    list_processes,
    process_details,
    protected_reason,
    send_signal,
)
from xsys.host.sampler import Runner, Sampler, Snapshot
from xsys.host.sensors import Battery, Fan, Sensors, Temperature, sensors

__all__ = [
    "PSEUDO_FS",
    "Battery",
    "ConnectionKind",
    "CpuFreq",
    "CpuUsage",
    "DiskIO",
    "DiskIOUsage",
    "DiskRow",
    "DiskSummary",
    "Disks",
    "Fan",
    "FsUsage",
    "HostInfo",
    "Interface",
    "InterfaceAddress",
    "InterfaceStats",
    "LoadAverages",
    "MemoryUsage",
    "NetIO",
    "NetworkUsage",
    "Partition",
    "Port",
    "Ports",
    "ProcessDetails",
    "ProcessList",
    "ProcessRow",
    "ProcessSort",
    "Runner",
    "Sampler",
    "Sensors",
    "SignalSent",
    "Snapshot",
    "SwapMemory",
    "Temperature",
    "User",
    "Users",
    "VirtualMemory",
    "booted_at",
    "cpu_times_per_cpu_s",
    "cpu_usage",
    "disk_io_counters",
    "disk_io_usage",
    "fs_usage",
    "getloadavg",
    "host_info",
    "hostname",
    "interface_stats",
    "is_whole_disk",
    "list_disks",
    "list_processes",
    "listening_ports",
    "load_averages",
    "local_addresses",
    "memory_usage",
    "mounted_disks",
    "net_io_counters",
    "network_usage",
    "partitions",
    "process_details",
    "protected_reason",
    "route_address",
    "send_signal",
    "sensors",
    "skip_partition",
    "swap_memory",
    "users",
    "virtual_memory",
]
