"""Filesystems and block devices: mounted partitions and the one filter that decides which
of them are real filesystems, space and inode usage, I/O counters and whole-disk detection.

Everything here blocks (``statvfs`` can stall on a network mount; the rest reads /proc and
/sys): call it from the thread pool. ``disk_io_usage`` shapes a ``Snapshot`` into the
``sys.disk_io`` result without touching the OS.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import TYPE_CHECKING, Any, TypedDict, cast

import psutil

if TYPE_CHECKING:
    from xsys.host.sampler import Snapshot

#: Pseudo, image and container-layer filesystems (node_exporter's default
#: fs-types-exclude): skipped by ``sys.disks``, ``/metrics`` and the monitor's filesystem
#: check.
PSEUDO_FS = frozenset({
    "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts",
    "devtmpfs", "fusectl", "hugetlbfs", "iso9660", "mqueue", "nsfs", "overlay", "proc",
    "procfs", "pstore", "rpc_pipefs", "securityfs", "selinuxfs", "squashfs", "sysfs",
    "tracefs", "aufs", "fuse.snapfuse", "fuse.lxcfs", "ramfs", "efivarfs",
})


@dataclasses.dataclass(frozen=True)
class Partition:
    """A mounted filesystem (psutil ``disk_partitions``): ``device`` (``/dev/sda1``, or
    what the mount table says for pseudo filesystems), ``mountpoint``, ``fstype``
    (``ext4``...; empty when unknown), ``opts`` (comma-separated mount options)."""

    device: str
    mountpoint: str
    fstype: str
    opts: str


@dataclasses.dataclass(frozen=True)
class FsUsage:
    """Space and inodes of one filesystem, from one ``statvfs``.

    Space as psutil ``disk_usage`` and ``df`` count it: ``total_bytes`` (size),
    ``used_bytes`` (size less free blocks), ``free_bytes`` (available to unprivileged
    users: psutil's ``free``, node_exporter's ``avail``), ``reserved_bytes`` (free blocks
    only root may use; node_exporter's ``free`` is ``free_bytes + reserved_bytes``) and
    ``percent`` (``used / (used + free)``, 0..100, one decimal). Inodes: ``inodes_total``,
    ``inodes_used``, ``inodes_free`` (counts) and ``inodes_percent`` (two decimals), None
    for a filesystem without a fixed inode table (``f_files == 0``: btrfs, vfat...).
    """

    total_bytes: int
    used_bytes: int
    free_bytes: int
    reserved_bytes: int
    percent: float
    inodes_total: int
    inodes_used: int
    inodes_free: int
    inodes_percent: float | None


class _DiskRow(TypedDict):
    device: str
    mountpoint: str
    fstype: str
    opts: str


class DiskRow(_DiskRow, total=False):
    """One ``sys.disks`` row: the ``Partition`` fields, then ``total_bytes``,
    ``used_bytes``, ``free_bytes`` and ``percent`` (see ``FsUsage``), and
    ``inodes_total``/``inodes_used``/``inodes_free``/``inodes_percent`` where the
    filesystem has an inode table; instead of all of these, ``error`` (the OS's message)
    when the filesystem could not be read."""

    total_bytes: int
    used_bytes: int
    free_bytes: int
    percent: float
    inodes_total: int
    inodes_used: int
    inodes_free: int
    inodes_percent: float
    error: str


class Disks(TypedDict):
    """``sys.disks``: ``disks`` (``DiskRow`` each) and ``ts`` (epoch seconds)."""

    disks: list[DiskRow]
    ts: float


class DiskSummary(TypedDict):
    """A filesystem in ``sys.info``: where and what, with ``total_bytes``,
    ``used_bytes``, ``free_bytes`` and ``percent`` (None when it could not be read)."""

    mountpoint: str
    device: str
    fstype: str
    total_bytes: int | None
    used_bytes: int | None
    free_bytes: int | None
    percent: float | None


class DiskIO(TypedDict, total=False):
    """I/O counters of one disk, or of all (psutil ``disk_io_counters``), since boot.

    ``read_count``/``write_count`` (operations), ``read_bytes``/``write_bytes``,
    ``read_time_s``/``write_time_s`` (seconds spent reading/writing; psutil's
    ``read_time``/``write_time`` in ms), Linux also ``read_merged_count``,
    ``write_merged_count`` and ``busy_time_s`` (seconds doing I/O; psutil ``busy_time``
    ms). In a ``Snapshot``, also per-second rates over the sampling interval:
    ``read_bytes_per_s``, ``write_bytes_per_s``, ``read_count_per_s``,
    ``write_count_per_s``.
    """

    read_count: int
    write_count: int
    read_bytes: int
    write_bytes: int
    read_time_s: float
    write_time_s: float
    read_merged_count: int
    write_merged_count: int
    busy_time_s: float
    read_bytes_per_s: float
    write_bytes_per_s: float
    read_count_per_s: float
    write_count_per_s: float


class _DiskIOUsage(TypedDict):
    total: DiskIO
    interval_s: float
    ts: float


class DiskIOUsage(_DiskIOUsage, total=False):
    """``sys.disk_io``: ``total`` (``DiskIO`` summed over every disk), ``disks`` (name ->
    ``DiskIO``; absent when not asked for), ``interval_s`` (seconds the rates span) and
    ``ts`` (epoch seconds of the sample)."""

    disks: dict[str, DiskIO]


# ------------------------------------------------------------------------- partitions


def skip_partition(
    part: Partition,
    *,
    skip_fstypes: frozenset[str] = PSEUDO_FS,
    exclude: tuple[str, ...] = (),
    include: tuple[str, ...] = (),
    skip_images: bool = False,
) -> bool:
    """True for a partition that is not a real filesystem to report.

    With a non-empty ``include`` (mountpoints), exactly those are kept and nothing else is
    looked at. Otherwise skipped: ``fstype`` in ``skip_fstypes`` (default ``PSEUDO_FS``) or
    unknown, loop and ram devices (``/dev/loop*``, ``/dev/ram*``), mountpoints containing
    one of the ``exclude`` substrings, and with ``skip_images`` (the monitor's rules, as
    TinyMonitor's) also any device with ``loop`` in its name (kpartx maps of images),
    Docker mounts and CD-ROMs.
    """
    if include:
        return part.mountpoint not in include
    dev = part.device
    if part.fstype in skip_fstypes or part.fstype == "":
        return True
    if dev.startswith(("/dev/loop", "/dev/ram")):
        return True
    if skip_images and ("loop" in dev or "docker" in part.mountpoint
                        or "cdrom" in part.opts):
        return True
    return any(ex and ex in part.mountpoint for ex in exclude)


def partitions(
    include_all: bool = False,
    *,
    skip_fstypes: frozenset[str] = PSEUDO_FS,
    exclude: tuple[str, ...] = (),
    include: tuple[str, ...] = (),
    skip_images: bool = False,
) -> list[Partition]:
    """Mounted real filesystems, one per mountpoint (the first one the mount table lists
    that ``skip_partition`` keeps, called with these keywords); with ``include_all`` every
    mount, pseudo and duplicate ones too, unfiltered (psutil
    ``disk_partitions(all=True)``)."""
    if include_all:
        return [_partition(p) for p in psutil.disk_partitions(all=True)]
    out: list[Partition] = []
    seen: set[str] = set()
    for raw in psutil.disk_partitions(all=False):
        part = _partition(raw)
        if part.mountpoint in seen or skip_partition(
                part, skip_fstypes=skip_fstypes, exclude=exclude, include=include,
                skip_images=skip_images):
            continue
        seen.add(part.mountpoint)
        out.append(part)
    return out


def _partition(p: Any) -> Partition:
    return Partition(str(p.device), str(p.mountpoint), str(p.fstype), str(p.opts))


def fs_usage(mountpoint: str) -> FsUsage:
    """Space and inodes of the filesystem mounted at ``mountpoint`` (one ``os.statvfs``;
    see ``FsUsage``). Raises ``OSError`` (the mount is gone, no permission...)."""
    st = os.statvfs(mountpoint)
    total = st.f_blocks * st.f_frsize
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    free = st.f_bavail * st.f_frsize
    user_total = used + free
    inodes_used = st.f_files - st.f_ffree
    return FsUsage(
        total_bytes=total,
        used_bytes=used,
        free_bytes=free,
        reserved_bytes=max(0, (st.f_bfree - st.f_bavail) * st.f_frsize),
        percent=round(100.0 * used / user_total, 1) if user_total > 0 else 0.0,
        inodes_total=st.f_files,
        inodes_used=inodes_used,
        inodes_free=st.f_ffree,
        inodes_percent=(round(100.0 * inodes_used / st.f_files, 2) if st.f_files
                        else None),
    )


def list_disks(include_all: bool = False) -> list[DiskRow]:
    """``partitions(include_all)`` with their usage, as ``sys.disks`` rows."""
    out: list[DiskRow] = []
    for part in partitions(include_all):
        row: DiskRow = {"device": part.device, "mountpoint": part.mountpoint,
                        "fstype": part.fstype, "opts": part.opts}
        try:
            u = fs_usage(part.mountpoint)
        except OSError as exc:
            row["error"] = exc.strerror or str(exc)
        else:
            row["total_bytes"] = u.total_bytes
            row["used_bytes"] = u.used_bytes
            row["free_bytes"] = u.free_bytes
            row["percent"] = u.percent
            if u.inodes_percent is not None:
                row["inodes_total"] = u.inodes_total
                row["inodes_used"] = u.inodes_used
                row["inodes_free"] = u.inodes_free
                row["inodes_percent"] = u.inodes_percent
        out.append(row)
    return out


def mounted_disks(include_all: bool = False) -> Disks:
    """The ``sys.disks`` result: ``list_disks(include_all)`` and the time it was read."""
    return {"disks": list_disks(include_all), "ts": time.time()}


def disk_summaries() -> list[DiskSummary]:
    """The real filesystems with their space, as ``sys.info`` lists them."""
    return [{"mountpoint": d["mountpoint"], "device": d["device"], "fstype": d["fstype"],
             "total_bytes": d.get("total_bytes"), "used_bytes": d.get("used_bytes"),
             "free_bytes": d.get("free_bytes"), "percent": d.get("percent")}
            for d in list_disks()]


# ------------------------------------------------------------------------ block devices

_MS_FIELDS = {"read_time": "read_time_s", "write_time": "write_time_s",
              "busy_time": "busy_time_s"}


def disk_io_counters() -> dict[str, DiskIO]:
    """I/O counters since boot per block device (psutil
    ``disk_io_counters(perdisk=True)``; see ``DiskIO``, without rates). Partitions are
    listed beside their disks: sum only ``is_whole_disk`` names."""
    out: dict[str, DiskIO] = {}
    for name, c in (psutil.disk_io_counters(perdisk=True) or {}).items():
        row = c._asdict()
        for ms, s in _MS_FIELDS.items():
            if ms in row:
                row[s] = row.pop(ms) / 1000.0
        out[name] = cast(DiskIO, row)
    return out


_PARTITION_CACHE: dict[str, bool] = {}


def is_whole_disk(name: str) -> bool:
    """True for a physical disk (not a partition, loop, ram, device-mapper, md or optical
    device), so that disk I/O is not counted twice. Reads ``/sys/class/block`` once per
    name."""
    if name.startswith(("loop", "ram", "dm-", "md", "zram", "sr", "fd", "nbd")):
        return False
    cached = _PARTITION_CACHE.get(name)
    if cached is None:
        cached = not os.path.exists(f"/sys/class/block/{name}/partition")
        _PARTITION_CACHE[name] = cached
    return cached


def disk_io_usage(snap: Snapshot, per_disk: bool = True) -> DiskIOUsage:
    """The ``sys.disk_io`` result from ``snap`` (``disks`` only with ``per_disk``)."""
    out: DiskIOUsage = {"total": snap.disk_io_total.copy(),
                        "interval_s": round(snap.interval_s, 6), "ts": snap.ts}
    if per_disk:
        out["disks"] = {k: v.copy() for k, v in snap.disk_io.items()}
    return out
