"""``xsys.host`` against the real machine (psutil, /proc, /sys): shapes, units and the
relations between fields (total >= available, booted_at < now...), the one partition
filter with both rule sets, the sampler without an App, and the unit-naming rule of every
``sys.*`` result shape."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest

from xsys import host
from xsys.host import Partition, Sampler, Snapshot
from xsys.protocol import NotFound

T = TypeVar("T")

LINUX = sys.platform.startswith("linux")


@pytest.fixture(scope="module")
def snap() -> Snapshot:
    sampler = Sampler(1.0)
    sampler.prime()
    return sampler.sample_now(min_span_s=0.05)


# --------------------------------------------------------------------------- units


#: Names the unit rule replaced (the field without its unit); none may come back.
UNITLESS = {"total", "used", "free", "available", "boot_time", "create_time", "started",
            "secs_left", "mtu", "read_time", "write_time", "busy_time", "times",
            "cpu_times", "memory_total", "memory_available", "swap_total", "rss", "vms",
            "sin", "sout", "buffers", "cached"}


def _numbers(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every (path, key) of a number in the maps in ``value``."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, (int, float)) and not isinstance(item, bool):
                yield path, key
            yield from _numbers(item, f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            yield from _numbers(item, f"{path}[]")


def test_no_sys_result_names_a_quantity_without_its_unit(snap: Snapshot) -> None:
    results: dict[str, Any] = {
        "sys.info": host.host_info(snap),
        "sys.cpu": host.cpu_usage(snap),
        "sys.memory": host.memory_usage(snap),
        "sys.disks": host.mounted_disks(include_all=True),
        "sys.disk_io": host.disk_io_usage(snap),
        "sys.network": host.network_usage(snap),
        "sys.load": host.load_averages(snap),
        "sys.processes": host.list_processes(limit=5),
        "sys.process": host.process_details(os.getpid()),
        "sys.sensors": host.sensors(),
        "sys.users": host.users(),
    }
    bad = [f"{method}{path}: {key}" for method, result in results.items()
           for path, key in _numbers(result)
           if key in UNITLESS and (method, path, key) != ("sys.processes", "", "total")]
    assert bad == []  # sys.processes' "total" counts rows: a count has no unit
    info = results["sys.info"]
    assert {"memory_total_bytes", "memory_available_bytes", "swap_total_bytes",
            "booted_at", "uptime_s"} <= set(info)
    assert "created_at" in results["sys.process"] and "cpu_times_s" in results["sys.process"]


# --------------------------------------------------------------------------- memory


def test_virtual_memory_in_bytes() -> None:
    vm = host.virtual_memory()
    assert vm["total_bytes"] >= vm["available_bytes"] > 0
    assert vm["total_bytes"] >= vm["used_bytes"] >= 0
    assert 0.0 <= vm["percent"] <= 100.0
    assert vm["total_bytes"] == psutil.virtual_memory().total
    assert all(k == "percent" or k.endswith("_bytes") for k in vm)
    if LINUX:
        assert {"buffers_bytes", "cached_bytes", "shared_bytes", "slab_bytes"} <= set(vm)


def test_swap_memory_in_bytes() -> None:
    sw = host.swap_memory()
    assert set(sw) == {"total_bytes", "used_bytes", "free_bytes", "percent", "sin_bytes",
                       "sout_bytes"}
    assert sw["total_bytes"] == psutil.swap_memory().total
    assert sw["total_bytes"] >= sw["used_bytes"] >= 0 and 0.0 <= sw["percent"] <= 100.0


# --------------------------------------------------------------------------- info


def test_booted_at_is_in_the_past() -> None:
    booted = host.booted_at()
    assert 0 < booted < time.time()
    assert booted == psutil.boot_time()


def test_host_info(snap: Snapshot) -> None:
    info = host.host_info(snap)
    assert info["hostname"] == socket.gethostname()
    assert info["booted_at"] < info["ts"] <= time.time()
    assert info["uptime_s"] > 0
    assert info["memory_total_bytes"] >= info["memory_available_bytes"] > 0
    assert info["cpu_count_logical"] == psutil.cpu_count()
    assert len(info["load"]) == 3
    assert all({"total_bytes", "used_bytes", "free_bytes", "percent"} <= set(d)
               for d in info["disks"])
    assert any(n["name"] == "lo" for n in info["network"]) or not LINUX


def test_users_started_before_now() -> None:
    now = time.time()
    for user in host.users()["users"]:
        assert user["started_at"] <= now and user["name"]


# --------------------------------------------------------------------------- disks


def _part(device: str = "/dev/sda1", mountpoint: str = "/", fstype: str = "ext4",
          opts: str = "rw") -> Partition:
    return Partition(device, mountpoint, fstype, opts)


def _monitor_skips(part: Partition, include: tuple[str, ...] = ()) -> bool:
    """The filter as the monitor's filesystem check calls it."""
    return host.skip_partition(part, include=include, skip_images=True,
                               skip_fstypes=host.PSEUDO_FS | {"tmpfs", "devfs", "nullfs",
                                                              "udf"})


@pytest.mark.parametrize(
    ("part", "sys_skips", "monitor_skips"),
    [
        (_part(), False, False),
        (_part(fstype="squashfs", device="/dev/loop3"), True, True),
        (_part(fstype="overlay", device="overlay"), True, True),
        (_part(fstype="", device="none"), True, True),
        (_part(device="/dev/loop0"), True, True),
        (_part(device="/dev/ram0"), True, True),
        (_part(fstype="tmpfs", device="tmpfs", mountpoint="/run"), False, True),
        (_part(device="/dev/mapper/loop0p1"), False, True),
        (_part(mountpoint="/var/lib/docker/volumes/x"), False, True),
        (_part(device="/dev/sr0", fstype="ext4", opts="ro,cdrom"), False, True),
    ],
)
def test_one_filter_both_rule_sets(part: Partition, sys_skips: bool,
                                   monitor_skips: bool) -> None:
    assert host.skip_partition(part) is sys_skips
    assert _monitor_skips(part) is monitor_skips


def test_filter_include_and_exclude() -> None:
    tmpfs = _part(fstype="tmpfs", mountpoint="/run")
    # include: exactly those mountpoints, nothing else looked at
    assert _monitor_skips(tmpfs, include=("/run",)) is False
    assert host.skip_partition(_part(), include=("/run",)) is True
    # exclude: substrings of the mountpoint
    assert host.skip_partition(_part(mountpoint="/mnt/backup"), exclude=("backup",)) is True
    assert host.skip_partition(_part(mountpoint="/mnt/data"), exclude=("backup",)) is False


def test_partitions_are_real_and_unique() -> None:
    parts = host.partitions()
    mounts = [p.mountpoint for p in parts]
    assert len(mounts) == len(set(mounts))
    assert all(p.fstype and p.fstype not in host.PSEUDO_FS
               and not p.device.startswith(("/dev/loop", "/dev/ram")) for p in parts)
    everything = {p.mountpoint for p in host.partitions(include_all=True)}
    assert set(mounts) <= everything
    if LINUX:
        assert "/proc" in everything and "/proc" not in mounts


def test_fs_usage_is_psutils_disk_usage(tmp_path: Path) -> None:
    """Same numbers as psutil ``disk_usage`` (retried: other processes write meanwhile)."""
    for _ in range(5):
        ours = host.fs_usage(str(tmp_path))
        theirs = psutil.disk_usage(str(tmp_path))
        if (ours.total_bytes, ours.used_bytes, ours.free_bytes, ours.percent) == tuple(theirs):
            break
    else:
        pytest.fail(f"fs_usage {ours} differs from psutil {theirs}")
    assert ours.total_bytes >= ours.used_bytes + ours.free_bytes
    assert ours.reserved_bytes == ours.total_bytes - ours.used_bytes - ours.free_bytes
    st = os.statvfs(tmp_path)
    if st.f_files:
        assert ours.inodes_total == ours.inodes_used + ours.inodes_free > 0
        assert ours.inodes_percent is not None and 0.0 <= ours.inodes_percent <= 100.0
    else:
        assert ours.inodes_percent is None


def test_fs_usage_of_a_missing_mount_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        host.fs_usage(str(tmp_path / "missing"))


def test_list_disks_rows() -> None:
    rows = host.mounted_disks()["disks"]
    assert rows, "no real filesystem found"
    for row in rows:
        if "error" in row:
            continue
        assert row["total_bytes"] >= row["used_bytes"] >= 0
        assert 0.0 <= row["percent"] <= 100.0
        if "inodes_total" in row:
            assert row["inodes_total"] == row["inodes_used"] + row["inodes_free"]


@pytest.mark.skipif(not LINUX, reason="/sys/class/block is Linux's")
def test_disk_io_counters_in_seconds_and_whole_disks() -> None:
    counters = host.disk_io_counters()
    for name, row in counters.items():
        assert not {"read_time", "write_time", "busy_time"} & set(row), name
        assert row["read_time_s"] >= 0 and row["read_bytes"] >= 0
    raw = psutil.disk_io_counters(perdisk=True) or {}
    for name, c in raw.items():
        if name in counters:  # read a moment apart: the counters only grow
            assert counters[name]["read_time_s"] <= c.read_time / 1000.0
    for name in os.listdir("/sys/class/block"):
        is_partition = os.path.exists(f"/sys/class/block/{name}/partition")
        if is_partition or name.startswith("loop"):
            assert host.is_whole_disk(name) is False, name


# --------------------------------------------------------------------------- sampler


def test_sampler_snapshot(snap: Snapshot) -> None:
    assert snap.interval_s >= 0.05  # sample_now waited out min_span_s after priming
    assert snap.ts <= time.time()
    assert 0.0 <= snap.cpu_percent <= 100.0
    assert len(snap.cpu_percent_per_cpu) == snap.cpu_count_logical == psutil.cpu_count()
    assert snap.memory["total_bytes"] >= snap.memory["available_bytes"]
    rows: list[Mapping[str, Any]] = [*snap.disk_io.values(), *snap.net_io.values()]
    assert all(v >= 0 for row in rows for k, v in row.items() if k.endswith("_per_s"))
    assert snap.net_io_total.get("bytes_sent", 0) == sum(
        r.get("bytes_sent", 0) for r in snap.net_io.values())


def test_sampler_keeps_the_latest_and_does_not_resample() -> None:
    sampler = Sampler(1.0)
    sampler.prime()
    first = sampler.snapshot()  # none yet: taken now
    assert sampler.samples_taken == 1 and sampler.latest is first
    assert sampler.snapshot() is first
    second = sampler.sample_now()
    assert sampler.samples_taken == 2 and second.ts >= first.ts


class ThreadRunner:
    """The smallest ``xsys.host.Runner``: a thread pool and tracked tasks (no App)."""

    def __init__(self) -> None:
        self.pool = concurrent.futures.ThreadPoolExecutor(2)
        self.tasks: list[asyncio.Task[Any]] = []

    async def run_blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, functools.partial(fn, *args, **kwargs))

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self.tasks.append(task)
        return task


async def test_sampler_runs_on_a_runner_protocol() -> None:
    runner = ThreadRunner()
    sampler = Sampler(0.05)
    try:
        await sampler.start(runner)
        assert sampler.latest is not None and sampler.latest.interval_s > 0
        assert len(runner.tasks) == 1
        taken = sampler.samples_taken
        while sampler.samples_taken < taken + 2:  # the background loop keeps sampling
            await asyncio.sleep(0.01)
    finally:
        for task in runner.tasks:
            task.cancel()
        await asyncio.gather(*runner.tasks, return_exceptions=True)
        runner.pool.shutdown()


def test_views_of_a_snapshot(snap: Snapshot) -> None:
    cpu = host.cpu_usage(snap, per_cpu=False)
    assert "per_cpu_percent" not in cpu and cpu["ts"] == snap.ts
    assert len(host.cpu_usage(snap)["per_cpu_percent"]) == snap.cpu_count_logical
    assert cpu["times_s"]["idle"] > 0
    load = host.load_averages(snap)
    assert load["per_cpu"]["load1"] == round(load["load1"] / snap.cpu_count_logical, 4)
    io = host.disk_io_usage(snap, per_disk=False)
    assert "disks" not in io and io["total"] == snap.disk_io_total
    mem = host.memory_usage(snap)
    mem["virtual"]["total_bytes"] = -1  # a copy: the shared snapshot is untouched
    assert snap.memory["total_bytes"] > 0


# --------------------------------------------------------------------------- network


@pytest.mark.skipif(not LINUX, reason="assumes Linux's loopback interface 'lo'")
def test_loopback_interface(snap: Snapshot) -> None:
    stats = host.interface_stats()
    assert stats["lo"].isup and stats["lo"].mtu_bytes > 0
    usage = host.network_usage(snap)
    (lo,) = [i for i in usage["interfaces"] if i["name"] == "lo"]
    assert any(a["family"] == "ipv4" and a["address"] == "127.0.0.1" for a in lo["addresses"])
    assert lo["mtu_bytes"] == stats["lo"].mtu_bytes
    assert "127.0.0.1" not in host.local_addresses()


def test_listening_ports_find_our_socket() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        rows = [p for p in host.listening_ports("inet")["ports"] if p["port"] == port]
    assert [(r["proto"], r["family"], r["address"]) for r in rows] == [
        ("tcp", "ipv4", "127.0.0.1")]
    if os.geteuid() == 0:
        assert rows[0]["pid"] == os.getpid() and rows[0]["process"]


# --------------------------------------------------------------------------- processes


def test_list_processes_sorted_and_limited() -> None:
    listing = host.list_processes(sort="pid", limit=3)
    pids = [p["pid"] for p in listing["processes"]]
    assert pids == sorted(pids) and len(pids) == 3
    assert listing["truncated"] and listing["total"] > 3
    mine = host.list_processes(sort="name", limit=100_000)["processes"]
    (me,) = [p for p in mine if p["pid"] == os.getpid()]
    assert me["created_at"] is not None and me["created_at"] < time.time()
    assert me["memory_rss_bytes"] and me["memory_rss_bytes"] > 0


def test_process_details() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    try:
        details = host.process_details(os.getpid())
        assert details["pid"] == os.getpid() and details["ppid"] == os.getppid()
        assert details["created_at"] is not None
        assert host.booted_at() < details["created_at"] < time.time()
        assert details["memory_info"] is not None
        assert details["memory_info"]["rss_bytes"] > 0
        assert details["cpu_times_s"] is not None and details["cpu_times_s"]["user"] >= 0
        assert child.pid in details["children"]
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)


def test_process_details_of_no_process() -> None:
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text()) if LINUX else 2**22
    with pytest.raises(NotFound):
        host.process_details(pid_max + 1)


# --------------------------------------------------------------------------- sensors


def test_sensors_shape() -> None:
    found = host.sensors()
    assert isinstance(found["temperatures"], list) and isinstance(found["fans"], list)
    for t in found["temperatures"]:
        assert isinstance(t["current_celsius"], float)
    battery = found["battery"]
    if battery is not None:
        assert set(battery) == {"percent", "time_left_s", "power_plugged"}
        assert battery["time_left_s"] is None or battery["time_left_s"] >= 0
