"""node_exporter parity of ``/metrics`` (issue 11): xsys's ``node_*`` families against
Debian's ``prometheus-node-exporter`` (installed by ``make test-deps``; the differential
tests skip with the reason where it is missing), and ``NodeCollector`` on made-up
``/proc`` and ``/sys`` trees for the filters and parsing rules node_exporter applies.

The differential tests run node_exporter with its defaults on a free loopback port and a
real daemon with the HTTP gateway, scrape xsys, node_exporter, xsys again (so that a
value node_exporter read between the two xsys reads lies between them), parse all three
with ``prometheus_client.parser`` and compare, for every family xsys emits: the name is
one node_exporter emits (only ``xsys_`` families and prometheus_client's ``python_*``
runtime families may be extra), the same type and HELP, the same series (label sets,
hence devices, mountpoints, interfaces), and values: exact for flags and info series,
8 MiB for memory, otherwise within 3% (or an absolute slack for gauges that move between
two scrapes, small enough to still catch a wrong source) around the two xsys reads.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import DaemonHandle
from tests.launcher import REPO, free_port, stop_process
from tests.test_prometheus import Prometheus
from xsys.http import node as node_module
from xsys.http.node import NodeCollector

NODE_EXPORTER = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
PROMETHEUS = shutil.which("prometheus")
MIB = 1 << 20
Key = tuple[str, tuple[tuple[str, str], ...]]

#: prometheus_client's runtime families: xsys's counterpart of node_exporter's ``go_*``.
PYTHON_RUNTIME = {"python_info", "python_gc_objects_collected",
                  "python_gc_objects_uncollectable", "python_gc_collections"}
#: Families the issue requires (parser family names: counters without ``_total``).
REQUIRED = {
    "node_uname_info", "node_os_info", "node_memory_MemTotal_bytes",
    "node_memory_MemFree_bytes", "node_memory_MemAvailable_bytes",
    "node_memory_Buffers_bytes", "node_memory_Cached_bytes",
    "node_memory_SReclaimable_bytes", "node_memory_Shmem_bytes",
    "node_memory_SwapTotal_bytes", "node_memory_SwapFree_bytes",
    "node_filesystem_size_bytes", "node_filesystem_avail_bytes",
    "node_filesystem_free_bytes", "node_filesystem_files", "node_filesystem_files_free",
    "node_filesystem_readonly", "node_filesystem_device_error",
    "node_disk_read_bytes", "node_disk_written_bytes", "node_disk_io_time_seconds",
    "node_disk_io_time_weighted_seconds", "node_disk_io_now", "node_disk_reads_merged",
    "node_disk_writes_merged", "node_network_receive_bytes", "node_network_transmit_bytes",
    "node_network_speed_bytes", "node_network_mtu_bytes", "node_network_info",
    "node_network_up", "node_procs_running", "node_procs_blocked",
    "node_context_switches", "node_intr", "node_forks", "node_boot_time_seconds",
    "node_time_seconds", "node_load1", "node_load5", "node_load15", "node_cpu_seconds",
    "node_vmstat_pgfault", "node_vmstat_pgmajfault", "node_vmstat_pgpgin",
    "node_vmstat_pgpgout", "node_vmstat_pswpin", "node_vmstat_pswpout",
    "node_vmstat_oom_kill", "node_netstat_Tcp_CurrEstab", "node_sockstat_sockets_used",
    "node_sockstat_TCP_inuse",
}
#: Families of the collectors xsys implements: every one node_exporter emits with these
#: prefixes (or names) must be emitted by xsys too.
COVERED_PREFIXES = (
    "node_memory_", "node_disk_", "node_filesystem_", "node_network_", "node_cpu_seconds",
    "node_cpu_guest_seconds", "node_vmstat_", "node_netstat_", "node_sockstat_",
    "node_pressure_", "node_load", "node_time_", "node_uname_", "node_os_", "node_filefd_",
    "node_procs_", "node_context_switches", "node_intr", "node_forks",
    "node_boot_time_seconds", "node_scrape_collector_", "node_entropy_", "node_nf_conntrack_",
    "node_softnet_", "node_udp_queues", "node_arp_", "node_timex_")
#: Compared exactly (flags, info series, constants).
EXACT = ("node_network_up", "node_filesystem_readonly", "node_filesystem_device_error",
         "node_scrape_collector_success", "node_boot_time_seconds", "node_os_version",
         "node_time_zone_offset_seconds", "node_network_mtu_bytes",
         "node_network_speed_bytes", "node_filefd_maximum")
#: Gauges that move between two scrapes: absolute slack around the two xsys reads.
SLACK = {
    "node_procs_running": 4.0 * (os.cpu_count() or 1) + 8,
    "node_procs_blocked": 4.0 * (os.cpu_count() or 1) + 8,
    "node_disk_io_now": 64.0,
    "node_netstat_Tcp_CurrEstab": 64.0,
    "node_filefd_allocated": 512.0,
    "node_time_seconds": 10.0,
    "node_timex_offset_seconds": 0.01, "node_timex_maxerror_seconds": 1.0,
    "node_timex_estimated_error_seconds": 1.0,
    "node_load1": 0.5,
}
SLACK_PREFIX = {"node_sockstat_": 256.0, "node_nf_conntrack_entries": 256.0,
                "node_udp_queues": 1 << 20, "node_entropy_available_bits": 256.0,
                "node_arp_entries": 8.0}
#: Values not compared (node_exporter's own timings).
NO_VALUES = ("node_scrape_collector_duration_seconds",)

needs_node_exporter = pytest.mark.skipif(
    NODE_EXPORTER is None, reason="prometheus-node-exporter not installed (Debian package "
    "prometheus-node-exporter; `make test-deps` installs it)")



def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@dataclass
class Family:
    type: str
    help: str
    samples: dict[Key, float]


def parse(text: str) -> dict[str, Family]:
    out: dict[str, Family] = {}
    for fam in text_string_to_metric_families(text):
        out[fam.name] = Family(fam.type, fam.documentation, {
            (s.name, tuple(sorted(s.labels.items()))): s.value for s in fam.samples})
    return out


def scrape(url: str) -> dict[str, Family]:
    status, body = fetch(url)
    assert status == 200, body[:500]
    return parse(body.decode())


class NodeExporter:
    """Debian's node_exporter on a free loopback port, with its default collectors."""

    def __init__(self, workdir: Path) -> None:
        assert NODE_EXPORTER is not None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/metrics"
        self.log = workdir / "node_exporter.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if fetch(self.url)[0] == 200:
                    return
            except OSError:
                pass
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture
def node_exporter(tmp_path: Path) -> Iterator[NodeExporter]:
    if NODE_EXPORTER is None:
        pytest.skip("prometheus-node-exporter not installed (Debian package "
                    "prometheus-node-exporter; `make test-deps` installs it)")
    ne = NodeExporter(tmp_path)
    yield ne
    ne.stop()


@pytest.fixture
def xsys_url(daemon_factory: Callable[..., DaemonHandle]) -> str:
    port = free_port()
    daemon_factory({"http": {"enabled": True, "port": port}})
    return f"http://127.0.0.1:{port}/metrics"


def tolerance(family: str, sample: str, values: list[float]) -> float:
    if family.startswith(EXACT) or family.endswith("_info"):
        return 0.0
    if family.startswith("node_memory_") and family.endswith("_bytes"):
        return 8.0 * MIB
    slack = SLACK.get(family, 0.0)
    for prefix, value in SLACK_PREFIX.items():
        if family.startswith(prefix):
            slack = value * (os.sysconf("SC_PAGE_SIZE") if sample.endswith("_mem_bytes")
                             else 1.0)
    return max(slack, 0.03 * max(abs(v) for v in values))


def differences(before: dict[str, Family], reference: dict[str, Family],
                after: dict[str, Family]) -> list[str]:
    """Every way xsys's ``before``/``after`` scrapes differ from node_exporter's
    ``reference`` (see the module docstring)."""
    problems: list[str] = []
    for name, fam in before.items():
        if name.startswith("xsys_") or name in PYTHON_RUNTIME:
            continue
        ref = reference.get(name)
        if ref is None:
            problems.append(f"{name}: a family node_exporter does not know")
            continue
        if (fam.type, fam.help) != (ref.type, ref.help):
            problems.append(f"{name}: type/help {(fam.type, fam.help)} != "
                            f"{(ref.type, ref.help)}")
        if not name.startswith("node_"):
            continue  # process_*: another process's values
        mine, theirs = set(fam.samples), set(ref.samples)
        if name.startswith("node_scrape_collector_"):
            if not mine <= theirs:
                problems.append(f"{name}: collectors node_exporter lacks: {mine - theirs}")
        elif mine != theirs:
            problems.append(f"{name}: series only in xsys {sorted(mine - theirs)[:5]}, "
                            f"only in node_exporter {sorted(theirs - mine)[:5]}")
        if name in NO_VALUES:
            continue
        for key in mine & theirs:
            x1, x2 = fam.samples[key], after.get(name, fam).samples.get(key, fam.samples[key])
            want = ref.samples[key]
            if any(math.isnan(v) for v in (x1, x2, want)):
                if not all(math.isnan(v) for v in (x1, x2, want)):
                    problems.append(f"{key}: NaN mismatch {x1} {want} {x2}")
                continue
            tol = tolerance(name, key[0], [x1, x2, want]) + 1e-9 * abs(want)
            if not min(x1, x2) - tol <= want <= max(x1, x2) + tol:
                problems.append(f"{key}: xsys {x1}..{x2}, node_exporter {want} "
                                f"(tolerance {tol:g})")
    return problems


def compare_until_equal(xsys_url: str, ne_url: str,
                        tries: int = 3) -> tuple[dict[str, Family], dict[str, Family]]:
    """Scrape xsys, node_exporter, xsys; up to ``tries`` rounds (a busy machine can move
    a value past its tolerance between two reads); fail with the last round's
    differences. Returns (xsys's first scrape, node_exporter's) of the last round."""
    problems: list[str] = []
    for _ in range(tries):
        before = scrape(xsys_url)
        reference = scrape(ne_url)
        after = scrape(xsys_url)
        problems = differences(before, reference, after)
        if not problems:
            return before, reference
    pytest.fail("xsys and node_exporter differ:\n" + "\n".join(problems))


@needs_node_exporter
def test_every_node_family_matches_node_exporter(xsys_url: str,
                                                 node_exporter: NodeExporter) -> None:
    """Names, types, HELP, series and values of every family xsys emits, against
    node_exporter's defaults; the families the issue lists are there; every family of
    the collectors xsys covers is there (all meminfo fields...)."""
    mine, theirs = compare_until_equal(xsys_url, node_exporter.url)
    missing = {n for n in REQUIRED if n not in mine and n in theirs}
    assert missing == set()
    covered = {n for n in theirs if n.startswith(COVERED_PREFIXES)}
    assert covered - set(mine) == set()
    # the examples of wrong values, named
    assert mine["node_network_up"].samples == theirs["node_network_up"].samples
    devices = {dict(k[1])["device"] for k in mine["node_disk_io_now"].samples}
    assert not any(d.startswith("loop") for d in devices), devices
    assert not any(dict(k[1])["device"] == "lo"
                   for k in mine["node_network_receive_bytes"].samples)
    if os.path.exists("/proc/pressure/cpu"):
        assert "node_pressure_cpu_waiting_seconds" in mine


@needs_node_exporter
def test_the_comparison_catches_a_wrong_value_and_an_unknown_family(
        xsys_url: str, node_exporter: NodeExporter) -> None:
    """The differential check is not vacuous: a psutil-style Cached (with
    SReclaimable), a loopback marked up, an extra node_ family, a changed HELP and a
    partition device are each reported."""
    before = scrape(xsys_url)
    reference = scrape(node_exporter.url)
    after = scrape(xsys_url)

    def tamper(fams: dict[str, Family]) -> dict[str, Family]:
        out = {k: Family(v.type, v.help, dict(v.samples)) for k, v in fams.items()}
        cached = out["node_memory_Cached_bytes"].samples
        reclaim = next(iter(out["node_memory_SReclaimable_bytes"].samples.values()))
        for key in cached:
            cached[key] += max(reclaim, 16 * MIB)
        up = out["node_network_up"].samples
        up[("node_network_up", (("device", "lo"),))] = 1.0
        out["node_made_up_bytes"] = Family("gauge", "Not node_exporter's.",
                                           {("node_made_up_bytes", ()): 1.0})
        out["node_load1"] = Family("gauge", "1 minute load average.",
                                   out["node_load1"].samples)
        io_now = out["node_disk_io_now"].samples
        io_now[("node_disk_io_now", (("device", "sda1"),))] = 0.0
        return out

    problems = "\n".join(differences(tamper(before), reference, tamper(after)))
    assert "node_memory_Cached_bytes" in problems
    assert "node_network_up" in problems
    assert "node_made_up_bytes: a family node_exporter does not know" in problems
    assert "node_load1: type/help" in problems
    assert "sda1" in problems


def test_metrics_stay_served_when_a_collector_fails(tmp_path: Path) -> None:
    """A collector whose files are missing reports ``node_scrape_collector_success`` 0;
    the others still answer (nothing raised out of the scrape)."""
    collector = NodeCollector(proc=str(tmp_path / "no-proc"), sys=str(tmp_path / "no-sys"),
                              udev_data=str(tmp_path / "no-udev"), rootfs=str(tmp_path))
    registry = CollectorRegistry()
    registry.register(collector)
    fams = parse(generate_latest(registry).decode())
    success = {dict(k[1])["collector"]: v
               for k, v in fams["node_scrape_collector_success"].samples.items()}
    assert success["meminfo"] == 0 and success["cpu"] == 0 and success["netclass"] == 0
    assert success["uname"] == 1 and success["time"] == 1
    assert "node_uname_info" in fams and "node_memory_MemTotal_bytes" not in fams


def test_readme_names_the_covered_and_uncovered_collectors() -> None:
    """Issue 11: "The README says which node_exporter collectors are covered and which
    are not" -- and says it right: its covered list is exactly NodeCollector's."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    found = re.search(r"Collectors covered: ([a-z_, ]+)\. Not covered: ([a-z_, ]+)", text)
    assert found, "README.md lacks the node_exporter collector lists"
    covered = {c.strip() for c in found.group(1).split(",")}
    uncovered = {c.strip() for c in found.group(2).split(",")}
    actual = {name for name, _ in NodeCollector()._collectors}
    assert covered == actual, (covered ^ actual)
    assert not covered & uncovered and {"hwmon", "systemd", "textfile"} <= uncovered


# ------------------------------------------------------------- made-up /proc and /sys


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


MEMINFO = """MemTotal:       16000000 kB
MemFree:         1000000 kB
Active(anon):     200000 kB
Inactive(file):   300000 kB
HugePages_Total:       4
Hugepagesize:       2048 kB
"""
DISKSTATS = "".join(
    f"{maj} {mnr} {name} 10 2 80 7 20 3 160 9 1 15 16 4 5 6 7 8 9\n"
    for maj, mnr, name in [(8, 0, "sda"), (8, 1, "sda1"), (7, 0, "loop0"), (1, 0, "ram0"),
                           (259, 0, "nvme0n1"), (259, 1, "nvme0n1p1"), (253, 0, "dm-0"),
                           (2, 0, "fd0"), (252, 0, "zram0"), (202, 0, "xvda"),
                           (202, 1, "xvda1"), (9, 0, "md0")])
NET_DEV = (
    "Inter-|   Receive                            |  Transmit\n"
    " face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop "
    "fifo colls carrier compressed\n"
    "    lo: 100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n"
    "  eth0: 5000 50 1 2 3 4 5 6 7000 70 7 8 9 10 11 12\n")


@dataclass
class Tree:
    root: Path
    collector: NodeCollector

    def scrape(self) -> dict[str, Family]:
        registry = CollectorRegistry()
        registry.register(self.collector)
        return parse(generate_latest(registry).decode())


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    root = tmp_path / "root"
    proc, sysfs = root / "proc", root / "sys"
    write(root, "proc/meminfo", MEMINFO)
    write(root, "proc/diskstats", DISKSTATS)
    write(root, "proc/net/dev", NET_DEV)
    write(root, "proc/stat", "cpu  1 2 3 4 5 6 7 8 9 10\ncpu0 100 200 300 400 500 600 700 "
          "800 900 1000\nintr 12345 1 2\nctxt 999\nbtime 1700000000\nprocesses 4242\n"
          "procs_running 3\nprocs_blocked 1\n")
    write(root, "proc/loadavg", "0.50 0.25 0.10 1/100 4242\n")
    write(root, "proc/vmstat", "nr_free_pages 10\npgfault 77\npgmajfault 7\npswpin 1\n"
          "oom_kill 2\npgalloc_normal 5\n")
    write(root, "proc/pressure/cpu", "some avg10=0.00 avg60=0.00 avg300=0.00 total=2500000\n"
          "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    write(root, "proc/pressure/io", "some avg10=0.00 avg60=0.00 avg300=0.00 total=1000000\n"
          "full avg10=0.00 avg60=0.00 avg300=0.00 total=500000\n")
    write(root, "proc/pressure/memory", "some avg10=0 avg60=0 avg300=0 total=0\n"
          "full avg10=0 avg60=0 avg300=0 total=0\n")
    write(root, "proc/net/netstat", "TcpExt: ListenDrops TCPTimeouts PAWSActive\n"
          "TcpExt: 3 4 5\nIpExt: InOctets OutOctets InMcastPkts\nIpExt: 10 20 30\n")
    write(root, "proc/net/snmp", "Tcp: RtoMin CurrEstab InErrs\nTcp: 200 7 1\n"
          "Udp: InDatagrams NoPorts IgnoredMulti\nUdp: 9 8 6\n")
    write(root, "proc/net/snmp6", "Ip6InOctets                     	123\n"
          "Udp6InDatagrams 5\nUdp6IgnoredMulti 9\nIcmp6OutMsgs 2\n")
    write(root, "proc/net/sockstat", "sockets: used 22\nTCP: inuse 4 orphan 0 tw 1 alloc 5 "
          "mem 48\nUDP: inuse 2 mem 3\nFRAG: inuse 0 memory 0\n")
    write(root, "proc/sys/fs/file-nr", "640\t0\t9223372036854775807\n")
    write(root, "proc/sys/kernel/domainname", "(none)\n")
    write(root, "proc/sys/kernel/random/entropy_avail", "256\n")
    write(root, "proc/sys/kernel/random/poolsize", "256\n")
    write(root, "proc/sys/net/netfilter/nf_conntrack_count", "12\n")
    write(root, "proc/sys/net/netfilter/nf_conntrack_max", "262144\n")
    head = "entries clashres found new invalid ignore delete chainlength insert " \
           "insert_failed drop early_drop icmp_error expect_new expect_create " \
           "expect_delete search_restart\n"
    row = " ".join(f"{i:08x}" for i in range(17)) + "\n"
    write(root, "proc/net/stat/nf_conntrack", head + row + row)
    write(root, "proc/net/softnet_stat", "0000000a 00000001 00000002 0 0 0 0 0 0 0 0\n"
          "000000ff 00000000 00000003 0 0 0 0 0 0 0 0\n")
    udp_head = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when " \
               "retrnsmt   uid  timeout inode ref pointer drops\n"
    write(root, "proc/net/udp", udp_head +
          "  1: 00000000:0044 00000000:0000 07 00000010:00000200 00:00000000 00000000"
          "     0        0 1 2 0000000000000000 0\n"
          "  2: 00000000:0045 00000000:0000 07 00000001:00000002 00:00000000 00000000"
          "     0        0 1 2 0000000000000000 0\n")
    write(root, "proc/net/arp", "IP address       HW type     Flags       HW address"
          "            Mask     Device\n"
          "10.0.0.1         0x1         0x2         52:54:00:00:00:01     *        eth0\n"
          "10.0.0.2         0x1         0x2         52:54:00:00:00:02     *        eth0\n"
          "10.1.0.1         0x1         0x2         52:54:00:00:00:03     *        eth1\n")
    (root / "mnt-ok").mkdir()
    write(root, "proc/1/mounts", "\n".join([
        "/dev/sda1 / ext4 rw,relatime 0 0",
        "/dev/sda1 / ext4 rw,relatime 0 0",                    # listed twice: once
        "/dev/sdb1 /data\\040disk ext4 ro,relatime 0 0",       # escaped space, read-only
        "tmpfs /run tmpfs rw 0 0", "tmpfs /run/user/0 tmpfs rw 0 0",
        "/dev/sdc1 /mnt/usb vfat rw 0 0", "/dev/sdd1 /media/cd vfat rw 0 0",
        "proc /proc proc rw 0 0", "sysfs /sys sysfs rw 0 0", "devtmpfs /dev devtmpfs rw 0 0",
        "overlay /var/lib/docker/overlay2/x/merged overlay rw 0 0",
        "overlay /srv/ov overlay rw 0 0", "cgroup2 /cgroup cgroup2 rw 0 0",
        "tmpfs /tmp tmpfs rw,nosuid 0 0",
        "/dev/sde1 /gone ext4 rw 0 0",                         # statfs fails
    ]) + "\n")
    (root / "data disk").mkdir()
    (root / "tmp").mkdir()
    net = sysfs / "class" / "net"
    for dev, attrs in {
        "lo": {"operstate": "unknown", "mtu": "65536", "address": "00:00:00:00:00:00",
               "type": "772", "flags": "0x9"},
        "eth0": {"operstate": "up", "mtu": "1500", "address": "52:54:00:12:34:56",
                 "broadcast": "ff:ff:ff:ff:ff:ff", "speed": "1000", "duplex": "full",
                 "carrier": "1", "carrier_changes": "2", "type": "1", "flags": "0x1003",
                 "statistics/rx_nohandler": "13"},
        "ifb0": {"operstate": "down", "mtu": "1500", "speed": "-1", "type": "1"},
    }.items():
        for attr, value in attrs.items():
            write(net / dev, attr, value + "\n")
    write(sysfs, "class/net/bonding_masters", "\n")  # a regular file: not a device
    write(sysfs, "devices/system/clocksource/clocksource0/available_clocksource",
          "tsc hpet acpi_pm\n")
    write(sysfs, "devices/system/clocksource/clocksource0/current_clocksource", "tsc\n")
    write(root, "udev/b8:0", "S:disk/by-id/x\nE:ID_MODEL=QEMU_HARDDISK\nE:ID_SERIAL_SHORT=S1"
          "\nE:ID_PATH=pci-0000:00:01.1-ata-1\nE:ID_ATA=1\nE:ID_ATA_ROTATION_RATE_RPM=0\n"
          "E:ID_FS_TYPE=\n")
    write(root, "udev/b253:0", "E:DM_NAME=vg-root\nE:DM_VG_NAME=vg\nE:DM_LV_NAME=root\n")
    write(root, "etc/os-release", 'NAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n'
          'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION="12 (bookworm)"\n')
    return Tree(root, NodeCollector(proc=str(proc), sys=str(sysfs),
                                    udev_data=str(root / "udev"), rootfs=str(root)))


def values(fams: dict[str, Family], name: str, label: str | None = None) -> dict[str, float]:
    """``name``'s samples keyed by ``label``'s value (or the sample name)."""
    return {(dict(k[1])[label] if label else k[0]): v
            for k, v in fams[name].samples.items()}


def test_diskstats_default_device_filter_and_units(tree: Tree) -> None:
    """Partitions, loop, ram and floppy devices are dropped (node_exporter's default
    ``device-exclude``); sectors become bytes, milliseconds seconds; discarded sectors
    stay sectors; udev properties fill ``node_disk_info`` and the dm/ata families."""
    fams = tree.scrape()
    reads = values(fams, "node_disk_reads_completed", "device")
    assert set(reads) == {"sda", "nvme0n1", "dm-0", "zram0", "xvda", "md0"}
    assert values(fams, "node_disk_read_bytes", "device")["sda"] == 80 * 512
    assert values(fams, "node_disk_read_time_seconds", "device")["sda"] == pytest.approx(0.007)
    assert values(fams, "node_disk_reads_merged", "device")["sda"] == 2
    assert values(fams, "node_disk_writes_merged", "device")["sda"] == 3
    assert values(fams, "node_disk_io_now", "device")["sda"] == 1
    assert fams["node_disk_io_now"].type == "gauge"
    assert values(fams, "node_disk_io_time_weighted_seconds", "device")["sda"] == \
        pytest.approx(0.016)
    assert values(fams, "node_disk_discarded_sectors", "device")["sda"] == 6
    assert values(fams, "node_disk_flush_requests_time_seconds", "device")["sda"] == \
        pytest.approx(0.009)
    info = {dict(k[1])["device"]: dict(k[1]) for k in fams["node_disk_info"].samples}
    assert info["sda"]["model"] == "QEMU_HARDDISK" and info["sda"]["serial"] == "S1"
    assert info["sda"]["major"] == "8" and info["nvme0n1"]["model"] == ""
    assert values(fams, "node_disk_ata_rotation_rate_rpm", "device") == {"sda": 0}
    assert values(fams, "node_disk_device_mapper_info", "name") == {"vg-root": 1}
    assert "node_disk_filesystem_info" not in fams  # empty ID_FS_TYPE: none


def test_filesystem_mount_filters_readonly_and_device_error(tree: Tree) -> None:
    fams = tree.scrape()
    errors = values(fams, "node_filesystem_device_error", "mountpoint")
    assert errors == {"/": 0, "/data disk": 0, "/tmp": 0, "/gone": 1}
    assert values(fams, "node_filesystem_readonly", "mountpoint") == {
        "/": 0, "/data disk": 1, "/tmp": 0}
    size = values(fams, "node_filesystem_size_bytes", "mountpoint")
    st = os.statvfs(tree.root)
    assert size["/"] == st.f_blocks * st.f_bsize
    labels = {k[1] for k in fams["node_filesystem_avail_bytes"].samples}
    assert (("device", "/dev/sda1"), ("fstype", "ext4"), ("mountpoint", "/")) in labels


def test_meminfo_fields_one_to_one(tree: Tree) -> None:
    fams = tree.scrape()
    mem = {n: next(iter(f.samples.values())) for n, f in fams.items()
           if n.startswith("node_memory_")}
    assert mem == {"node_memory_MemTotal_bytes": 16000000 * 1024,
                   "node_memory_MemFree_bytes": 1000000 * 1024,
                   "node_memory_Active_anon_bytes": 200000 * 1024,
                   "node_memory_Inactive_file_bytes": 300000 * 1024,
                   "node_memory_HugePages_Total": 4,
                   "node_memory_Hugepagesize_bytes": 2048 * 1024}
    assert fams["node_memory_HugePages_Total"].help == \
        "Memory information field HugePages_Total."


def test_network_netdev_and_netclass(tree: Tree) -> None:
    """netdev: /proc/net/dev's columns, lo excluded; netclass: every interface (lo too),
    ``up`` from operstate, speed in bytes (-1 Mbit/s kept as -125000), attributes that
    cannot be read left out, ``bonding_masters`` not a device."""
    fams = tree.scrape()
    assert values(fams, "node_network_receive_bytes", "device") == {"eth0": 5000}
    assert values(fams, "node_network_transmit_carrier", "device") == {"eth0": 11}
    assert values(fams, "node_network_receive_multicast", "device") == {"eth0": 6}
    assert values(fams, "node_network_receive_nohandler", "device") == {"eth0": 13}
    assert values(fams, "node_network_up", "device") == {"eth0": 1, "lo": 0, "ifb0": 0}
    assert values(fams, "node_network_speed_bytes", "device") == {
        "eth0": 125_000_000, "ifb0": -125_000}
    assert values(fams, "node_network_mtu_bytes", "device") == {
        "eth0": 1500, "lo": 65536, "ifb0": 1500}
    assert values(fams, "node_network_flags", "device")["eth0"] == 0x1003
    assert values(fams, "node_network_carrier", "device") == {"eth0": 1}
    assert fams["node_network_carrier_changes"].type == "counter"
    info = {dict(k[1])["device"]: dict(k[1]) for k in fams["node_network_info"].samples}
    assert info["eth0"] == {"device": "eth0", "address": "52:54:00:12:34:56",
                            "broadcast": "ff:ff:ff:ff:ff:ff", "duplex": "full",
                            "operstate": "up", "ifalias": ""}


def test_stat_cpu_load_pressure_vmstat_netstat_sockstat(tree: Tree) -> None:
    fams = tree.scrape()
    hz = os.sysconf("SC_CLK_TCK")
    cpu = values(fams, "node_cpu_seconds", "mode")
    assert cpu == {m: v / hz for m, v in zip(
        ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"),
        (100, 200, 300, 400, 500, 600, 700, 800), strict=True)}
    assert values(fams, "node_cpu_guest_seconds", "mode") == {"user": 900 / hz,
                                                              "nice": 1000 / hz}
    one = {n: next(iter(f.samples.values())) for n, f in fams.items()}
    assert (one["node_intr"], one["node_context_switches"], one["node_forks"]) == \
        (12345, 999, 4242)
    assert (one["node_procs_running"], one["node_procs_blocked"]) == (3, 1)
    assert one["node_boot_time_seconds"] == 1700000000
    assert (one["node_load1"], one["node_load5"], one["node_load15"]) == (0.5, 0.25, 0.1)
    assert one["node_pressure_cpu_waiting_seconds"] == 2.5
    assert one["node_pressure_io_stalled_seconds"] == 0.5
    assert "node_pressure_cpu_stalled_seconds" not in one  # node_exporter 1.5.0 has none
    vm = {n for n in one if n.startswith("node_vmstat_")}
    assert vm == {"node_vmstat_pgfault", "node_vmstat_pgmajfault", "node_vmstat_pswpin",
                  "node_vmstat_oom_kill"}
    assert fams["node_vmstat_pgfault"].type == "unknown"  # untyped, as node_exporter
    net = {n: v for n, v in one.items() if n.startswith("node_netstat_")}
    assert net == {"node_netstat_TcpExt_ListenDrops": 3, "node_netstat_TcpExt_TCPTimeouts": 4,
                   "node_netstat_IpExt_InOctets": 10, "node_netstat_IpExt_OutOctets": 20,
                   "node_netstat_Tcp_CurrEstab": 7, "node_netstat_Tcp_InErrs": 1,
                   "node_netstat_Udp_InDatagrams": 9, "node_netstat_Udp_NoPorts": 8,
                   "node_netstat_Ip6_InOctets": 123, "node_netstat_Udp6_InDatagrams": 5,
                   "node_netstat_Icmp6_OutMsgs": 2}
    assert fams["node_netstat_Tcp_CurrEstab"].help == "Statistic TcpCurrEstab."
    assert one["node_sockstat_sockets_used"] == 22
    assert one["node_sockstat_TCP_mem_bytes"] == 48 * os.sysconf("SC_PAGE_SIZE")
    assert one["node_sockstat_UDP_mem"] == 3 and one["node_sockstat_FRAG_memory"] == 0
    assert "node_sockstat_UDP_tw" not in one
    assert (one["node_filefd_allocated"], one["node_filefd_maximum"]) == \
        (640, float(9223372036854775807))


def test_arp_conntrack_entropy_softnet_udp_queues(tree: Tree) -> None:
    """Hex columns summed over CPUs (conntrack) or per CPU (softnet), UDP queue bytes
    summed over sockets (no /proc/net/udp6: no v6 series), ARP entries per device."""
    fams = tree.scrape()
    one = {n: next(iter(f.samples.values())) for n, f in fams.items()}
    assert (one["node_entropy_available_bits"], one["node_entropy_pool_size_bits"]) == \
        (256, 256)
    assert (one["node_nf_conntrack_entries"], one["node_nf_conntrack_entries_limit"]) == \
        (12, 262144)
    assert one["node_nf_conntrack_stat_found"] == 2 * 2
    assert one["node_nf_conntrack_stat_search_restart"] == 2 * 16
    assert values(fams, "node_softnet_processed", "cpu") == {"0": 10, "1": 255}
    assert values(fams, "node_softnet_times_squeezed", "cpu") == {"0": 2, "1": 3}
    assert {(dict(k[1])["ip"], dict(k[1])["queue"]): v
            for k, v in fams["node_udp_queues"].samples.items()} == {
        ("v4", "tx"): 0x11, ("v4", "rx"): 0x202}
    assert values(fams, "node_arp_entries", "device") == {"eth0": 2, "eth1": 1}


def test_os_uname_and_time(tree: Tree) -> None:
    fams = tree.scrape()
    os_info = dict(next(iter(fams["node_os_info"].samples))[1])
    assert os_info["pretty_name"] == "Debian GNU/Linux 12 (bookworm)"
    assert os_info["id"] == "debian" and os_info["variant"] == ""
    assert values(fams, "node_os_version", "id") == {"debian": 12}
    uname = dict(next(iter(fams["node_uname_info"].samples))[1])
    assert uname["nodename"] == os.uname().nodename and uname["domainname"] == "(none)"
    assert values(fams, "node_time_clocksource_available_info", "clocksource") == {
        "tsc": 1, "hpet": 1, "acpi_pm": 1}
    assert values(fams, "node_time_clocksource_current_info", "clocksource") == {"tsc": 1}
    # adjtimex(2) is the real clock's: a tick of 1/USER_HZ s, a 0/1 sync flag
    one = {n: next(iter(f.samples.values())) for n, f in fams.items()}
    assert one["node_timex_tick_seconds"] == pytest.approx(1 / os.sysconf("SC_CLK_TCK"))
    assert one["node_timex_sync_status"] in (0, 1)
    assert fams["node_timex_pps_jitter"].type == "counter"


def test_the_fast_rendering_matches_prometheus_clients(tree: Tree) -> None:
    """``render_text`` (what the gateway serves) parses to the same families, types,
    HELP, series and values as ``generate_latest`` of the same collector; escaping of
    label values and HELP included; ``excluded()`` hides the collector from the
    registry."""
    write(tree.root, "sys/class/net/eth0/ifalias", 'uplink "a"\\b\n')
    fast = parse(tree.collector.render_text())
    slow = tree.scrape()
    assert set(fast) == set(slow)
    moving = {"node_time_seconds", "node_scrape_collector_duration_seconds"}
    for name, fam in slow.items():
        assert (fast[name].type, fast[name].help) == (fam.type, fam.help), name
        assert set(fast[name].samples) == set(fam.samples), name
        if name not in moving and not name.startswith("node_filesystem_"):  # a real disk
            assert fast[name].samples == fam.samples, name
    info = {dict(k[1])["device"]: dict(k[1]) for k in fast["node_network_info"].samples}
    assert info["eth0"]["ifalias"] == 'uplink "a"\\b'
    registry = CollectorRegistry()
    registry.register(tree.collector)
    with tree.collector.excluded():
        assert generate_latest(registry) == b""
    assert b"node_load1" in generate_latest(registry)


def test_a_stuck_mount_is_a_device_error_until_its_statfs_returns(
        tree: Tree, monkeypatch: pytest.MonkeyPatch) -> None:
    """A network mount whose statfs(2) hangs: reported as a device error after the
    mount timeout, not asked again while the first call hangs, back once it returns."""
    write(tree.root, "proc/1/mounts", "srv:/export /nfs nfs4 rw 0 0\n")
    (tree.root / "nfs").mkdir()
    tree.collector = NodeCollector(proc=str(tree.root / "proc"), sys=str(tree.root / "sys"),
                                   rootfs=str(tree.root), mount_timeout_s=0.05)
    release = threading.Event()
    calls: list[str] = []
    real = os.statvfs

    def hanging(path: Any) -> os.statvfs_result:
        calls.append(str(path))
        if str(path).endswith("/nfs"):
            release.wait(30)
        return real(path)

    monkeypatch.setattr(node_module.os, "statvfs", hanging)
    assert values(tree.scrape(), "node_filesystem_device_error", "mountpoint") == {"/nfs": 1}
    assert values(tree.scrape(), "node_filesystem_device_error", "mountpoint") == {"/nfs": 1}
    assert len(calls) == 1  # the stuck mount was not asked again
    release.set()
    deadline = time.monotonic() + 30
    while tree.collector._statfs.stuck(str(tree.root) + "/nfs"):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    fams = tree.scrape()
    assert values(fams, "node_filesystem_device_error", "mountpoint") == {"/nfs": 0}
    assert "node_filesystem_size_bytes" in fams


# --------------------------------------------------- a real Prometheus, dashboard queries

class TwoJobPrometheus(Prometheus):
    """test_prometheus's real Prometheus, scraping one job per target every second."""

    def __init__(self, workdir: Path, jobs: dict[str, str]) -> None:
        assert PROMETHEUS is not None
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                       "scrape_timeout": "1s"},
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [target]}]}
                               for job, target in jobs.items()],
        }
        self.config = workdir / "prometheus.yml"
        self.config.write_text(json.dumps(config))  # JSON is YAML
        self.log = workdir / "prometheus.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [PROMETHEUS, f"--config.file={self.config}",
                 f"--storage.tsdb.path={workdir / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


#: The "Node Exporter Full" dashboard's panels (instance and job filters left out).
DASHBOARD = {
    "cpu_busy": '100 * (1 - avg by (job) (rate(node_cpu_seconds_total{mode="idle"}[5s])))',
    "sys_load": "avg by (job) (node_load1) * 100 / count by (job) "
                "(count by (job, cpu) (node_cpu_seconds_total))",
    "ram_used": "node_memory_MemTotal_bytes - node_memory_MemFree_bytes - "
                "(node_memory_Cached_bytes + node_memory_Buffers_bytes + "
                "node_memory_SReclaimable_bytes)",
    "ram_used_pct": "(1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes) * 100",
    "swap_total": "node_memory_SwapTotal_bytes",
    "root_fs_used_pct": '100 - ((node_filesystem_avail_bytes{mountpoint="/",'
                        'fstype!="rootfs"} * 100) / node_filesystem_size_bytes'
                        '{mountpoint="/",fstype!="rootfs"})',
    "uptime": "node_time_seconds - node_boot_time_seconds",
    "cores": "count by (job) (count by (job, cpu) (node_cpu_seconds_total))",
    "disk_io": "sum by (job) (rate(node_disk_io_time_seconds_total[5s]))",
    "disk_read": "sum by (job) (rate(node_disk_read_bytes_total[5s]))",
    "net_rx": "sum by (job) (rate(node_network_receive_bytes_total[5s]) * 8)",
    "ctxt": "rate(node_context_switches_total[5s])",
    "procs": "node_procs_running",
}
PRESSURE = {"pressure_cpu": "rate(node_pressure_cpu_waiting_seconds_total[5s])",
            "pressure_io": "rate(node_pressure_io_waiting_seconds_total[5s])",
            "pressure_mem": "rate(node_pressure_memory_waiting_seconds_total[5s])"}
#: Panels whose values the two targets must agree on (absolute tolerance).
AGREE = {"ram_used": 256.0 * MIB, "ram_used_pct": 2.0, "swap_total": 0.0,
         "root_fs_used_pct": 1.0, "uptime": 5.0, "cores": 0.0}


@pytest.mark.skipif(PROMETHEUS is None or NODE_EXPORTER is None,
                    reason="prometheus or prometheus-node-exporter not installed (Debian "
                    "packages prometheus, prometheus-node-exporter; `make test-deps`)")
def test_dashboard_queries_answer_for_xsys_as_for_node_exporter(
        tmp_path: Path, xsys_url: str, node_exporter: NodeExporter) -> None:
    """A real Prometheus scrapes xsys and node_exporter every second; each dashboard
    panel's query returns data for both jobs, and the slow-moving ones agree."""
    prom = TwoJobPrometheus(tmp_path, {"xsys": xsys_url.split("/")[2],
                                       "node": f"127.0.0.1:{node_exporter.port}"})
    try:
        prom.wait_ready()
        queries = dict(DASHBOARD)
        if os.path.exists("/proc/pressure/cpu"):
            queries.update(PRESSURE)
        deadline = time.monotonic() + 60
        answers: dict[str, dict[str, float]] = {}
        while True:
            answers = {}
            for panel, expr in queries.items():
                answers[panel] = {r["metric"].get("job", ""): float(r["value"][1])
                                  for r in prom.query(expr)}
            if all({"xsys", "node"} <= set(a) for a in answers.values()):
                break
            assert time.monotonic() < deadline, answers
            time.sleep(0.5)
        for panel, tol in AGREE.items():
            got = answers[panel]
            assert abs(got["xsys"] - got["node"]) <= tol, (panel, got)
        assert answers["cores"]["xsys"] == os.cpu_count()
    finally:
        prom.stop()

