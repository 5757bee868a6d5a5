"""node_exporter's host metrics on xsys's ``/metrics``, as node_exporter reports them, so
existing dashboards ("Node Exporter Full" and the like) work against an xsys target.

``NodeCollector`` is a prometheus_client collector run at scrape time (in the thread pool:
the gateway renders ``/metrics`` through ``App.run_blocking``). It reads ``/proc`` and
``/sys`` directly, the same files and fields node_exporter's default Linux collectors read
(node_exporter 1.5.0 as Debian ships it; https://github.com/prometheus/node_exporter,
``collector/*_linux.go``, and prometheus/procfs v0.8.0 for the parsing), so each family has
node_exporter's name, type, HELP text, label names and value semantics:

=============  ==========================================================================
collector      files read, families
=============  ==========================================================================
cpu            /proc/stat: ``node_cpu_seconds_total{cpu,mode}``,
               ``node_cpu_guest_seconds_total{cpu,mode}``
meminfo        /proc/meminfo: every field as ``node_memory_<Field>[_bytes]``
loadavg        /proc/loadavg: ``node_load1``, ``node_load5``, ``node_load15``
stat           /proc/stat: ``node_intr_total``, ``node_context_switches_total``,
               ``node_forks_total``, ``node_boot_time_seconds``, ``node_procs_running``,
               ``node_procs_blocked``
time           clock, /sys/devices/system/clocksource: ``node_time_seconds``,
               ``node_time_zone_offset_seconds``, ``node_time_clocksource_*_info``
uname          uname(2), /proc/sys/kernel/domainname: ``node_uname_info``
os             /etc/os-release (else /usr/lib/os-release): ``node_os_info``,
               ``node_os_version``
filesystem     /proc/1/mounts (else /proc/mounts), statfs(2): ``node_filesystem_*``
diskstats      /proc/diskstats, /run/udev/data: ``node_disk_*``
netdev         /proc/net/dev, /sys/class/net/<dev>/statistics/rx_nohandler:
               ``node_network_{receive,transmit}_*_total``
netclass       /sys/class/net/<dev>/*: ``node_network_up``, ``node_network_info``,
               ``node_network_mtu_bytes``, ``node_network_speed_bytes``, ...
pressure       /proc/pressure/{cpu,io,memory}: ``node_pressure_*_seconds_total``
vmstat         /proc/vmstat: ``node_vmstat_<field>`` (``VMSTAT_FIELDS``)
netstat        /proc/net/{netstat,snmp,snmp6}: ``node_netstat_<Proto>_<Field>``
               (``NETSTAT_FIELDS``)
sockstat       /proc/net/sockstat{,6}: ``node_sockstat_*``
filefd         /proc/sys/fs/file-nr: ``node_filefd_allocated``, ``node_filefd_maximum``
entropy        /proc/sys/kernel/random: ``node_entropy_available_bits``, ``..._pool_size_bits``
conntrack      /proc/sys/net/netfilter, /proc/net/stat/nf_conntrack: ``node_nf_conntrack_*``
softnet        /proc/net/softnet_stat: ``node_softnet_*_total{cpu}``
udp_queues     /proc/net/udp{,6}: ``node_udp_queues{ip,queue}``
arp            /proc/net/arp: ``node_arp_entries{device}``
timex          adjtimex(2): ``node_timex_*``
=============  ==========================================================================

Each collector's outcome is ``node_scrape_collector_success{collector}`` and its time
``node_scrape_collector_duration_seconds{collector}``, as node_exporter reports them: a
collector whose files cannot be read is 0 there (and logged once), and the others still
answer. Families without samples are left out (as node_exporter's registry does).

The filters are node_exporter's defaults (``DISKSTATS_DEVICE_EXCLUDE``,
``NETDEV_DEVICE_EXCLUDE``, ``FILESYSTEM_MOUNT_POINTS_EXCLUDE``,
``FILESYSTEM_FS_TYPES_EXCLUDE``), matched as Go's ``regexp.MatchString`` does (unanchored
search).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    UnknownMetricFamily,
)
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

#: ``--collector.diskstats.device-exclude``'s default: partitions, loop, ram and floppy
#: devices (node_exporter 1.5.0, diskstats_linux.go).
DISKSTATS_DEVICE_EXCLUDE = r"^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$"
#: ``--collector.netdev.device-exclude``'s default in Debian's package (the loopback).
NETDEV_DEVICE_EXCLUDE = r"^lo$"
#: ``--collector.filesystem.mount-points-exclude``'s default in Debian's package.
FILESYSTEM_MOUNT_POINTS_EXCLUDE = (
    r"^/(dev|proc|run|sys|mnt|media|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)")
#: ``--collector.filesystem.fs-types-exclude``'s default (filesystem_linux.go).
FILESYSTEM_FS_TYPES_EXCLUDE = (
    r"^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|"
    r"iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|"
    r"squashfs|sysfs|tracefs)$")
#: ``--collector.vmstat.fields``'s default.
VMSTAT_FIELDS = r"^(oom_kill|pgpg|pswp|pg.*fault).*"
#: ``--collector.netstat.fields``'s default.
NETSTAT_FIELDS = (
    r"^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|"
    r"Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts)|"
    r"Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)|"
    r"Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$")
#: ``--collector.filesystem.mount-timeout``'s default: a statfs(2) slower than this marks
#: the mount stuck (``node_filesystem_device_error`` 1) until that call returns.
MOUNT_TIMEOUT_S = 5.0
#: Filesystem types whose statfs(2) may hang on a server (run in a watched thread).
REMOTE_FS_TYPES = re.compile(
    r"^(nfs4?|cifs|smb3?|smbfs|ceph|glusterfs|9p|afs|lustre|gfs2|ocfs2|davfs|fuse(\..*)?|"
    r"fuseblk)$")

class _Timex(ctypes.Structure):
    """``struct timex`` of adjtimex(2) (glibc's layout)."""

    _fields_ = [
        ("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
        ("constant", ctypes.c_long), ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long), ("time_sec", ctypes.c_long),
        ("time_usec", ctypes.c_long), ("tick", ctypes.c_long), ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long), ("shift", ctypes.c_int), ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long), ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int), ("_reserved", ctypes.c_int * 11),
    ]


_libc: ctypes.CDLL | None = None


def adjtimex() -> tuple[int, _Timex]:
    """adjtimex(2) with ``modes`` 0 (read only): (clock state, ``struct timex``).
    Raises ``OSError``."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    tx = _Timex()
    state = int(_libc.adjtimex(ctypes.byref(tx)))
    if state < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return state, tx


_SECTOR_BYTES = 512.0
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
_USER_HZ = float(os.sysconf("SC_CLK_TCK"))
_PARENS = re.compile(r"\((.*)\)")
_OS_VERSION = re.compile(r"^[0-9]+\.?[0-9]*")


def _read(path: str) -> str:
    """The text of ``path`` (os.open/os.read: a third of ``open()``'s cost for the ~100
    small files of a scrape); raises ``OSError``."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")


def _read_value(path: str) -> str | None:
    """A sysfs attribute stripped of whitespace; None when it cannot be read (absent,
    not permitted, EINVAL for a link that is down...): procfs's ``SysReadFile``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, 4096).decode("utf-8", "replace").strip()
    except OSError:
        return None
    finally:
        os.close(fd)


def _int_or_none(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text, 0) if text.startswith("0x") else int(text)
    except ValueError:
        return None


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    fam = GaugeMetricFamily(name, doc)
    fam.add_metric([], value)
    return fam


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    fam = CounterMetricFamily(name, doc)
    fam.add_metric([], value)
    return fam


def _untyped(name: str, doc: str, value: float) -> UnknownMetricFamily:
    fam = UnknownMetricFamily(name, doc)
    fam.add_metric([], value)
    return fam


# ----------------------------------------------------------------------------- parsers


def parse_meminfo(text: str) -> dict[str, float]:
    """/proc/meminfo as node_exporter names its fields: ``Active(anon)`` ->
    ``Active_anon``, a line with a unit (kB) -> ``<name>_bytes`` times 1024."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        key = _PARENS.sub(r"_\1", parts[0].rstrip(":"))
        value = float(parts[1])
        if len(parts) == 3:
            value *= 1024
            key += "_bytes"
        elif len(parts) != 2:
            raise ValueError(f"invalid line in meminfo: {line!r}")
        out[key] = value
    return out


@dataclass
class ProcStat:
    """/proc/stat: per-CPU times in seconds (user, nice, system, idle, iowait, irq,
    softirq, steal, guest, guest_nice; USER_HZ ticks divided) and the kernel counters."""

    cpus: dict[str, list[float]] = field(default_factory=dict)
    intr: float = 0.0
    ctxt: float = 0.0
    btime: float = 0.0
    processes: float = 0.0
    procs_running: float = 0.0
    procs_blocked: float = 0.0


def parse_stat(text: str) -> ProcStat:
    """``ProcStat`` of /proc/stat's text."""
    st = ProcStat()
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        key = parts[0]
        if key.startswith("cpu") and key != "cpu":
            times = [float(v) / _USER_HZ for v in parts[1:11]]
            times += [0.0] * (10 - len(times))
            st.cpus[key[3:]] = times
        elif key == "intr":
            st.intr = float(parts[1])
        elif key == "ctxt":
            st.ctxt = float(parts[1])
        elif key == "btime":
            st.btime = float(parts[1])
        elif key == "processes":
            st.processes = float(parts[1])
        elif key == "procs_running":
            st.procs_running = float(parts[1])
        elif key == "procs_blocked":
            st.procs_blocked = float(parts[1])
    return st


def parse_net_dev(text: str) -> dict[str, list[int]]:
    """/proc/net/dev: device -> its 16 columns (receive bytes, packets, errs, drop, fifo,
    frame, compressed, multicast; transmit bytes, packets, errs, drop, fifo, colls,
    carrier, compressed)."""
    out: dict[str, list[int]] = {}
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        if not sep:
            continue
        values = [int(v) for v in rest.split()]
        if len(values) >= 16:
            out[name.strip()] = values[:16]
    return out


def parse_net_stats(text: str) -> dict[str, dict[str, str]]:
    """/proc/net/netstat or /proc/net/snmp: pairs of ``Proto: names`` and
    ``Proto: values`` lines -> protocol -> field -> value text."""
    out: dict[str, dict[str, str]] = {}
    lines = text.splitlines()
    for names_line, values_line in zip(lines[::2], lines[1::2], strict=False):
        names = names_line.split(" ")
        values = values_line.split(" ")
        proto = names[0].rstrip(":")
        if len(names) != len(values):
            raise ValueError(f"field count mismatch in {proto}")
        out[proto] = dict(zip(names[1:], values[1:], strict=True))
    return out


def parse_snmp6(text: str) -> dict[str, dict[str, str]]:
    """/proc/net/snmp6: ``Ip6InOctets 123`` lines -> ``{"Ip6": {"InOctets": "123"}}``
    (split after the first ``6``; lines without one skipped)."""
    out: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        six = parts[0].find("6")
        if six < 0:
            continue
        out.setdefault(parts[0][:six + 1], {})[parts[0][six + 1:]] = parts[1]
    return out


def parse_sockstat(text: str) -> tuple[int | None, list[tuple[str, dict[str, int]]]]:
    """/proc/net/sockstat{,6}: (``sockets: used``, [(protocol, {key: value})])."""
    used: int | None = None
    protocols: list[tuple[str, dict[str, int]]] = []
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) < 3:
            continue
        proto = fields[0].rstrip(":")
        kvs = {fields[i]: int(fields[i + 1]) for i in range(1, len(fields) - 1, 2)}
        if proto == "sockets":
            used = kvs.get("used", 0)
        else:
            protocols.append((proto, kvs))
    return used, protocols


def parse_os_release(text: str) -> dict[str, str]:
    """An os-release file's ``KEY=value`` lines, quotes and backslash escapes removed."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            quote, value = value[0], value[1:-1]
            if quote == '"':
                value = re.sub(r"\\(.)", r"\1", value)
        out[key.strip()] = value
    return out


def parse_mounts(text: str) -> list[tuple[str, str, str, str]]:
    """/proc/<pid>/mounts: (device, mountpoint, fstype, options), the mountpoint's
    ``\\040`` and ``\\011`` escapes decoded (as node_exporter does)."""
    out: list[tuple[str, str, str, str]] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        mountpoint = parts[1].replace("\\040", " ").replace("\\011", "\t")
        out.append((parts[0], mountpoint, parts[2], parts[3]))
    return out


# ------------------------------------------------------------------------- the statfs


class _StatFs:
    """statfs(2) of mountpoints, never stuck on a hung server: remote and FUSE
    filesystems are asked in a daemon thread watched for ``timeout_s``; past it the
    mount is stuck (reported as a device error, not asked again) until that call
    returns, as node_exporter's ``stuckMounts``."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._stuck: set[str] = set()
        self._lock = threading.Lock()

    def stuck(self, mountpoint: str) -> bool:
        with self._lock:
            return mountpoint in self._stuck

    def statfs(self, mountpoint: str, fstype: str) -> os.statvfs_result | None:
        """The statfs of ``mountpoint``; None when it is stuck; raises ``OSError``."""
        if not REMOTE_FS_TYPES.match(fstype):
            return os.statvfs(mountpoint)
        with self._lock:
            if mountpoint in self._stuck:
                return None
        box: list[os.statvfs_result | OSError] = []

        def run() -> None:
            try:
                box.append(os.statvfs(mountpoint))
            except OSError as exc:
                box.append(exc)
            with self._lock:
                self._stuck.discard(mountpoint)

        worker = threading.Thread(target=run, name="xsys-statfs", daemon=True)
        worker.start()
        worker.join(self.timeout_s)
        with self._lock:
            if not box:
                self._stuck.add(mountpoint)
                log.warning("statfs of %s did not answer in %.1f s: marked stuck",
                            mountpoint, self.timeout_s)
                return None
        result = box[0]
        if isinstance(result, OSError):
            raise result
        return result


# ------------------------------------------------------------------------ the collector


_DISK_COUNTERS: tuple[tuple[str, str, bool, float], ...] = (
    # (name, help, counter?, factor): the /proc/diskstats columns after the name, in order
    ("node_disk_reads_completed_total", "The total number of reads completed successfully.",
     True, 1.0),
    ("node_disk_reads_merged_total", "The total number of reads merged.", True, 1.0),
    ("node_disk_read_bytes_total", "The total number of bytes read successfully.", True,
     _SECTOR_BYTES),
    ("node_disk_read_time_seconds_total", "The total number of seconds spent by all reads.",
     True, 0.001),
    ("node_disk_writes_completed_total",
     "The total number of writes completed successfully.", True, 1.0),
    ("node_disk_writes_merged_total", "The number of writes merged.", True, 1.0),
    ("node_disk_written_bytes_total", "The total number of bytes written successfully.",
     True, _SECTOR_BYTES),
    ("node_disk_write_time_seconds_total",
     "This is the total number of seconds spent by all writes.", True, 0.001),
    ("node_disk_io_now", "The number of I/Os currently in progress.", False, 1.0),
    ("node_disk_io_time_seconds_total", "Total seconds spent doing I/Os.", True, 0.001),
    ("node_disk_io_time_weighted_seconds_total",
     "The weighted # of seconds spent doing I/Os.", True, 0.001),
    ("node_disk_discards_completed_total",
     "The total number of discards completed successfully.", True, 1.0),
    ("node_disk_discards_merged_total", "The total number of discards merged.", True, 1.0),
    ("node_disk_discarded_sectors_total",
     "The total number of sectors discarded successfully.", True, 1.0),
    ("node_disk_discard_time_seconds_total",
     "This is the total number of seconds spent by all discards.", True, 0.001),
    ("node_disk_flush_requests_total",
     "The total number of flush requests completed successfully", True, 1.0),
    ("node_disk_flush_requests_time_seconds_total",
     "This is the total number of seconds spent by all flush requests.", True, 0.001),
)

_NETDEV_COLUMNS = (
    "receive_bytes", "receive_packets", "receive_errs", "receive_drop", "receive_fifo",
    "receive_frame", "receive_compressed", "receive_multicast",
    "transmit_bytes", "transmit_packets", "transmit_errs", "transmit_drop", "transmit_fifo",
    "transmit_colls", "transmit_carrier", "transmit_compressed",
)

#: netclass: (sysfs attribute, metric suffix, counter?) in node_exporter's order.
_NETCLASS_FIELDS: tuple[tuple[str, str, bool], ...] = (
    ("addr_assign_type", "address_assign_type", False),
    ("carrier", "carrier", False),
    ("carrier_changes", "carrier_changes_total", True),
    ("carrier_up_count", "carrier_up_changes_total", True),
    ("carrier_down_count", "carrier_down_changes_total", True),
    ("dev_id", "device_id", False),
    ("dormant", "dormant", False),
    ("flags", "flags", False),
    ("ifindex", "iface_id", False),
    ("iflink", "iface_link", False),
    ("link_mode", "iface_link_mode", False),
    ("mtu", "mtu_bytes", False),
    ("name_assign_type", "name_assign_type", False),
    ("netdev_group", "net_dev_group", False),
    ("speed", "speed_bytes", False),
    ("tx_queue_len", "transmit_queue_length", False),
    ("type", "protocol_type", False),
)

_FS_LABELS = ["device", "fstype", "mountpoint"]


class NodeCollector(Collector):
    """node_exporter-compatible host metrics (see the module docstring), read at each
    ``collect()`` from ``proc``, ``sys``, ``udev_data`` and the os-release files under
    ``rootfs`` (defaults: the real ones; other roots serve tests). Scrapes may run in
    several threads at once (per-scrape state is thread-local); a failing collector is
    reported in ``node_scrape_collector_success`` and never raises out of
    ``collect()``."""

    def __init__(self, proc: str = "/proc", sys: str = "/sys",
                 udev_data: str = "/run/udev/data", rootfs: str = "/",
                 mount_timeout_s: float = MOUNT_TIMEOUT_S) -> None:
        self.proc = proc.rstrip("/")
        self.sys = sys.rstrip("/")
        self.udev_data = udev_data.rstrip("/")
        self.rootfs = rootfs.rstrip("/")
        self._statfs = _StatFs(mount_timeout_s)
        self._disk_exclude = re.compile(DISKSTATS_DEVICE_EXCLUDE)
        self._netdev_exclude = re.compile(NETDEV_DEVICE_EXCLUDE)
        self._mount_exclude = re.compile(FILESYSTEM_MOUNT_POINTS_EXCLUDE)
        self._fstype_exclude = re.compile(FILESYSTEM_FS_TYPES_EXCLUDE)
        self._vmstat_fields = re.compile(VMSTAT_FIELDS)
        self._netstat_fields = re.compile(NETSTAT_FIELDS)
        self._os_cache: tuple[str, float, dict[str, str]] | None = None
        self._failed: set[str] = set()
        self._local = threading.local()
        self._collectors: tuple[tuple[str, Callable[[], Iterator[Metric]]], ...] = (
            ("arp", self._arp), ("conntrack", self._conntrack), ("cpu", self._cpu),
            ("diskstats", self._diskstats), ("entropy", self._entropy),
            ("filefd", self._filefd), ("filesystem", self._filesystem),
            ("loadavg", self._loadavg), ("meminfo", self._meminfo),
            ("netclass", self._netclass), ("netdev", self._netdev),
            ("netstat", self._netstat), ("os", self._os), ("pressure", self._pressure),
            ("sockstat", self._sockstat), ("softnet", self._softnet), ("stat", self._stat),
            ("time", self._time), ("timex", self._timex), ("udp_queues", self._udp_queues),
            ("uname", self._uname),
            ("vmstat", self._vmstat),
        )

    @contextlib.contextmanager
    def excluded(self) -> Iterator[None]:
        """Within this block (this thread), ``collect`` yields nothing (the gateway
        renders these families itself with ``render_text``)."""
        self._local.off = True
        try:
            yield
        finally:
            self._local.off = False

    def collect(self) -> Iterator[Metric]:
        """Every collector's families, then ``node_scrape_collector_*``; nothing inside
        ``excluded()``."""
        if getattr(self._local, "off", False):
            return
        yield from self._families()

    def render_text(self) -> str:
        """One ``collect()`` in the Prometheus text format 0.0.4, as ``generate_latest``
        renders it (HELP, TYPE, samples) without its per-sample name and label
        validation: ~3x faster for node_exporter's ~400 samples."""
        out: list[str] = []
        add = out.append
        for metric in self._families():
            name = metric.name
            mtype = metric.type
            if mtype == "counter":
                name += "_total"
            elif mtype == "unknown":
                mtype = "untyped"
            doc = metric.documentation.replace("\\", "\\\\").replace("\n", "\\n")
            add(f"# HELP {name} {doc}\n# TYPE {name} {mtype}\n")
            for sample in metric.samples:
                value = sample.value
                text = repr(value) if type(value) is float else repr(float(value))
                if sample.labels:
                    labels = ",".join(
                        f'{k}="{_escape_label(v)}"' for k, v in sample.labels.items())
                    add(f"{sample.name}{{{labels}}} {text}\n")
                else:
                    add(f"{sample.name} {text}\n")
        return "".join(out)

    def _families(self) -> Iterator[Metric]:
        duration = GaugeMetricFamily(
            "node_scrape_collector_duration_seconds",
            "node_exporter: Duration of a collector scrape.", labels=["collector"])
        success = GaugeMetricFamily(
            "node_scrape_collector_success",
            "node_exporter: Whether a collector succeeded.", labels=["collector"])
        self._local.stat = None  # /proc/stat read once per scrape (cpu and stat)
        for name, collector in self._collectors:
            started = time.perf_counter()
            try:
                metrics = [m for m in collector() if m.samples]
            except (OSError, ValueError, IndexError) as exc:
                ok = 0.0
                if name not in self._failed:
                    self._failed.add(name)
                    log.warning("node collector %s failed: %s", name, exc)
            else:
                ok = 1.0
                self._failed.discard(name)
                yield from metrics
            duration.add_metric([name], time.perf_counter() - started)
            success.add_metric([name], ok)
        yield duration
        yield success

    def _proc_stat(self) -> ProcStat:
        st: ProcStat | None = getattr(self._local, "stat", None)
        if st is None:
            st = self._local.stat = parse_stat(_read(self.proc + "/stat"))
        return st

    # -- cpu, stat, loadavg, meminfo, vmstat, pressure, filefd

    def _cpu(self) -> Iterator[Metric]:
        st = self._proc_stat()
        cpu = CounterMetricFamily("node_cpu_seconds_total",
                                  "Seconds the CPUs spent in each mode.",
                                  labels=["cpu", "mode"])
        guest = CounterMetricFamily("node_cpu_guest_seconds_total",
                                    "Seconds the CPUs spent in guests (VMs) for each mode.",
                                    labels=["cpu", "mode"])
        modes = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
        for num, times in st.cpus.items():
            for mode, value in zip(modes, times, strict=False):
                cpu.add_metric([num, mode], value)
            guest.add_metric([num, "user"], times[8])
            guest.add_metric([num, "nice"], times[9])
        yield cpu
        yield guest

    def _stat(self) -> Iterator[Metric]:
        st = self._proc_stat()
        yield _counter("node_intr_total", "Total number of interrupts serviced.", st.intr)
        yield _counter("node_context_switches_total", "Total number of context switches.",
                       st.ctxt)
        yield _counter("node_forks_total", "Total number of forks.", st.processes)
        yield _gauge("node_boot_time_seconds", "Node boot time, in unixtime.", st.btime)
        yield _gauge("node_procs_running", "Number of processes in runnable state.",
                     st.procs_running)
        yield _gauge("node_procs_blocked",
                     "Number of processes blocked waiting for I/O to complete.",
                     st.procs_blocked)

    def _loadavg(self) -> Iterator[Metric]:
        parts = _read(self.proc + "/loadavg").split()
        for name, value in zip(("node_load1", "node_load5", "node_load15"), parts[:3],
                               strict=True):
            yield _gauge(name, f"{name[9:]}m load average.", float(value))

    def _meminfo(self) -> Iterator[Metric]:
        for key, value in parse_meminfo(_read(self.proc + "/meminfo")).items():
            name = f"node_memory_{key}"
            doc = f"Memory information field {key}."
            yield (_counter(name, doc, value) if key.endswith("_total")
                   else _gauge(name, doc, value))

    def _vmstat(self) -> Iterator[Metric]:
        for line in _read(self.proc + "/vmstat").splitlines():
            parts = line.split()
            if len(parts) < 2 or not self._vmstat_fields.search(parts[0]):
                continue
            yield _untyped(f"node_vmstat_{parts[0]}",
                           f"/proc/vmstat information field {parts[0]}.", float(parts[1]))

    def _pressure(self) -> Iterator[Metric]:
        docs = {
            ("cpu", "some"): ("node_pressure_cpu_waiting_seconds_total",
                              "Total time in seconds that processes have waited for CPU "
                              "time"),
            ("io", "some"): ("node_pressure_io_waiting_seconds_total",
                             "Total time in seconds that processes have waited due to IO "
                             "congestion"),
            ("io", "full"): ("node_pressure_io_stalled_seconds_total",
                             "Total time in seconds no process could make progress due "
                             "to IO congestion"),
            ("memory", "some"): ("node_pressure_memory_waiting_seconds_total",
                                 "Total time in seconds that processes have waited for "
                                 "memory"),
            ("memory", "full"): ("node_pressure_memory_stalled_seconds_total",
                                 "Total time in seconds no process could make progress "
                                 "due to memory congestion"),
        }
        for resource in ("cpu", "io", "memory"):
            try:
                text = _read(f"{self.proc}/pressure/{resource}")
            except (FileNotFoundError, NotADirectoryError):
                return  # no PSI on this kernel: node_exporter's ErrNoData
            except OSError as exc:
                if exc.errno == 95:  # EOPNOTSUPP: psi=0 on the kernel command line
                    return
                raise
            for line in text.splitlines():
                parts = line.split()
                if not parts or (resource, parts[0]) not in docs:
                    continue
                total = next((float(p[6:]) for p in parts if p.startswith("total=")), None)
                if total is not None:
                    name, doc = docs[(resource, parts[0])]
                    yield _counter(name, doc, total / 1e6)

    def _filefd(self) -> Iterator[Metric]:
        parts = _read(self.proc + "/sys/fs/file-nr").split()
        yield _gauge("node_filefd_allocated", "File descriptor statistics: allocated.",
                     float(parts[0]))
        yield _gauge("node_filefd_maximum", "File descriptor statistics: maximum.",
                     float(parts[2]))

    def _entropy(self) -> Iterator[Metric]:
        base = self.proc + "/sys/kernel/random/"
        yield _gauge("node_entropy_available_bits", "Bits of available entropy.",
                     float(_read(base + "entropy_avail")))
        yield _gauge("node_entropy_pool_size_bits", "Bits of entropy pool.",
                     float(_read(base + "poolsize")))

    def _conntrack(self) -> Iterator[Metric]:
        base = self.proc + "/sys/net/netfilter/"
        try:
            count = float(_read(base + "nf_conntrack_count"))
            limit = float(_read(base + "nf_conntrack_max"))
            lines = _read(self.proc + "/net/stat/nf_conntrack").splitlines()[1:]
        except FileNotFoundError:
            return  # nf_conntrack not loaded: node_exporter's ErrNoData
        yield _gauge("node_nf_conntrack_entries",
                     "Number of currently allocated flow entries for connection tracking.",
                     count)
        yield _gauge("node_nf_conntrack_entries_limit",
                     "Maximum size of connection tracking table.", limit)
        sums = [0] * 17
        for line in lines:
            fields = line.split()
            if len(fields) != 17:
                raise ValueError("invalid conntrack stat entry")
            for i, raw in enumerate(fields):
                sums[i] += int(raw, 16)
        for name, column, doc in (
                ("found", 2, "Number of searched entries which were successful."),
                ("invalid", 4, "Number of packets seen which can not be tracked."),
                ("ignore", 5, "Number of packets seen which are already connected to a "
                              "conntrack entry."),
                ("insert", 8, "Number of entries inserted into the list."),
                ("insert_failed", 9, "Number of entries for which list insertion was "
                                     "attempted but failed."),
                ("drop", 10, "Number of packets dropped due to conntrack failure."),
                ("early_drop", 11, "Number of dropped conntrack entries to make room for "
                                   "new ones, if maximum table size was reached."),
                ("search_restart", 16, "Number of conntrack table lookups which had to be "
                                       "restarted due to hashtable resizes.")):
            yield _gauge(f"node_nf_conntrack_stat_{name}", doc, float(sums[column]))

    def _softnet(self) -> Iterator[Metric]:
        fams = [CounterMetricFamily(f"node_softnet_{name}_total", doc, labels=["cpu"])
                for name, doc in (("processed", "Number of processed packets"),
                                  ("dropped", "Number of dropped packets"),
                                  ("times_squeezed", "Number of times processing packets "
                                                     "ran out of quota"))]
        for cpu, line in enumerate(_read(self.proc + "/net/softnet_stat").splitlines()):
            fields = line.split()
            for fam, raw in zip(fams, fields[:3], strict=True):
                fam.add_metric([str(cpu)], float(int(raw, 16)))
        yield from fams

    def _udp_queues(self) -> Iterator[Metric]:
        fam = GaugeMetricFamily(
            "node_udp_queues",
            "Number of allocated memory in the kernel for UDP datagrams in bytes.",
            labels=["queue", "ip"])
        for path, ip in (("/net/udp", "v4"), ("/net/udp6", "v6")):
            try:
                lines = _read(self.proc + path).splitlines()[1:]
            except FileNotFoundError:
                continue
            tx = rx = 0
            for line in lines:
                fields = line.split()
                if len(fields) > 4:
                    tx_hex, _, rx_hex = fields[4].partition(":")
                    tx += int(tx_hex, 16)
                    rx += int(rx_hex, 16)
            fam.add_metric(["tx", ip], float(tx))
            fam.add_metric(["rx", ip], float(rx))
        yield fam

    def _arp(self) -> Iterator[Metric]:
        counts: dict[str, int] = {}
        for line in _read(self.proc + "/net/arp").splitlines():
            columns = line.split()
            if len(columns) < 6:
                raise ValueError("unexpected ARP table format")
            if columns[0] != "IP":
                counts[columns[-1]] = counts.get(columns[-1], 0) + 1
        fam = GaugeMetricFamily("node_arp_entries", "ARP entries by device",
                                labels=["device"])
        for device, count in counts.items():
            fam.add_metric([device], float(count))
        yield fam

    # -- time, uname, os

    def _time(self) -> Iterator[Metric]:
        now = time.time()
        yield _gauge("node_time_seconds", "System time in seconds since epoch (1970).", now)
        local = time.localtime(now)
        zone = GaugeMetricFamily("node_time_zone_offset_seconds",
                                 "System time zone offset in seconds.",
                                 labels=["time_zone"])
        zone.add_metric([local.tm_zone or "UTC"], float(local.tm_gmtoff or 0))
        yield zone
        available = GaugeMetricFamily(
            "node_time_clocksource_available_info",
            "Available clocksources read from '/sys/devices/system/clocksource'.",
            labels=["clocksource", "device"])
        current = GaugeMetricFamily(
            "node_time_clocksource_current_info",
            "Current clocksource read from '/sys/devices/system/clocksource'.",
            labels=["clocksource", "device"])
        base = self.sys + "/devices/system/clocksource"
        try:
            names = sorted(n for n in os.listdir(base) if n.startswith("clocksource"))
        except OSError:
            names = []
        for i, name in enumerate(names):
            for cs in (_read_value(f"{base}/{name}/available_clocksource") or "").split():
                available.add_metric([cs, str(i)], 1.0)
            cur = _read_value(f"{base}/{name}/current_clocksource")
            if cur is not None:
                current.add_metric([cur, str(i)], 1.0)
        yield available
        yield current

    def _timex(self) -> Iterator[Metric]:
        try:
            state, tx = adjtimex()
        except PermissionError:
            return  # node_exporter's ErrNoData
        divisor = 1e9 if tx.status & 0x2000 else 1e6  # STA_NANO: offsets in ns
        ppm16 = 1e6 * 65536.0  # adjtimex(2) NOTES: ppm with a 16-bit fraction
        for name, doc, value, counter in (
                ("offset_seconds", "Time offset in between local system and reference "
                                   "clock.", tx.offset / divisor, False),
                ("frequency_adjustment_ratio", "Local clock frequency adjustment.",
                 1 + tx.freq / ppm16, False),
                ("maxerror_seconds", "Maximum error in seconds.", tx.maxerror / 1e6, False),
                ("estimated_error_seconds", "Estimated error in seconds.",
                 tx.esterror / 1e6, False),
                ("status", "Value of the status array bits.", float(tx.status), False),
                ("loop_time_constant", "Phase-locked loop time constant.",
                 float(tx.constant), False),
                ("tick_seconds", "Seconds between clock ticks.", tx.tick / 1e6, False),
                ("pps_frequency_hertz", "Pulse per second frequency.", tx.ppsfreq / ppm16,
                 False),
                ("pps_jitter_seconds", "Pulse per second jitter.", tx.jitter / divisor,
                 False),
                ("pps_shift_seconds", "Pulse per second interval duration.",
                 float(tx.shift), False),
                ("pps_stability_hertz", "Pulse per second stability, average of recent "
                                        "frequency changes.", tx.stabil / ppm16, False),
                ("pps_jitter_total", "Pulse per second count of jitter limit exceeded "
                                     "events.", float(tx.jitcnt), True),
                ("pps_calibration_total", "Pulse per second count of calibration "
                                          "intervals.", float(tx.calcnt), True),
                ("pps_error_total", "Pulse per second count of calibration errors.",
                 float(tx.errcnt), True),
                ("pps_stability_exceeded_total", "Pulse per second count of stability "
                                                 "limit exceeded events.",
                 float(tx.stbcnt), True),
                ("tai_offset_seconds", "International Atomic Time (TAI) offset.",
                 float(tx.tai), False),
                ("sync_status", "Is clock synchronized to a reliable server (1 = yes, "
                                "0 = no).", 0.0 if state == 5 else 1.0, False)):  # TIME_ERROR
            name = f"node_timex_{name}"
            yield _counter(name, doc, value) if counter else _gauge(name, doc, value)

    def _uname(self) -> Iterator[Metric]:
        u = os.uname()
        domain = _read_value(self.proc + "/sys/kernel/domainname") or "(none)"
        fam = GaugeMetricFamily(
            "node_uname_info",
            "Labeled system information as provided by the uname system call.",
            labels=["sysname", "release", "version", "machine", "nodename", "domainname"])
        fam.add_metric([u.sysname, u.release, u.version, u.machine, u.nodename, domain],
                       1.0)
        yield fam

    def _os(self) -> Iterator[Metric]:
        release: dict[str, str] | None = None
        for path in (self.rootfs + "/etc/os-release", self.rootfs + "/usr/lib/os-release"):
            try:
                mtime = os.stat(path).st_mtime
            except FileNotFoundError:
                continue
            if self._os_cache and self._os_cache[:2] == (path, mtime):
                release = self._os_cache[2]
            else:
                release = parse_os_release(_read(path))
                self._os_cache = (path, mtime, release)
            break
        if release is None:
            return
        keys = ("build_id", "id", "id_like", "image_id", "image_version", "name",
                "pretty_name", "variant", "variant_id", "version", "version_codename",
                "version_id")
        info = GaugeMetricFamily(
            "node_os_info",
            "A metric with a constant '1' value labeled by build_id, id, id_like, "
            "image_id, image_version, name, pretty_name, variant, variant_id, version, "
            "version_codename, version_id.", labels=list(keys))
        info.add_metric([release.get(k.upper(), "") for k in keys], 1.0)
        yield info
        match = _OS_VERSION.match(release.get("VERSION_ID", ""))
        version = float(match.group(0)) if match else 0.0
        if version > 0:
            fam = GaugeMetricFamily("node_os_version",
                                    "Metric containing the major.minor part of the OS "
                                    "version.", labels=["id", "id_like", "name"])
            fam.add_metric([release.get("ID", ""), release.get("ID_LIKE", ""),
                            release.get("NAME", "")], version)
            yield fam

    # -- filesystem, diskstats

    def _filesystem(self) -> Iterator[Metric]:
        try:
            text = _read(self.proc + "/1/mounts")
        except OSError:
            text = _read(self.proc + "/mounts")
        fams = {
            "size": GaugeMetricFamily("node_filesystem_size_bytes",
                                      "Filesystem size in bytes.", labels=_FS_LABELS),
            "free": GaugeMetricFamily("node_filesystem_free_bytes",
                                      "Filesystem free space in bytes.", labels=_FS_LABELS),
            "avail": GaugeMetricFamily("node_filesystem_avail_bytes",
                                       "Filesystem space available to non-root users in "
                                       "bytes.", labels=_FS_LABELS),
            "files": GaugeMetricFamily("node_filesystem_files",
                                       "Filesystem total file nodes.", labels=_FS_LABELS),
            "files_free": GaugeMetricFamily("node_filesystem_files_free",
                                            "Filesystem total free file nodes.",
                                            labels=_FS_LABELS),
            "readonly": GaugeMetricFamily("node_filesystem_readonly",
                                          "Filesystem read-only status.", labels=_FS_LABELS),
            "device_error": GaugeMetricFamily(
                "node_filesystem_device_error",
                "Whether an error occurred while getting statistics for the given device.",
                labels=_FS_LABELS),
        }
        seen: set[tuple[str, str, str]] = set()
        for device, mountpoint, fstype, options in parse_mounts(text):
            if (self._mount_exclude.search(mountpoint)
                    or self._fstype_exclude.search(fstype)):
                continue
            labels = [device, fstype, mountpoint]
            if (device, fstype, mountpoint) in seen:
                continue
            seen.add((device, fstype, mountpoint))
            try:
                st = self._statfs.statfs(self.rootfs + mountpoint if self.rootfs else
                                         mountpoint, fstype)
            except OSError:
                st = None
            if st is None:
                fams["device_error"].add_metric(labels, 1.0)
                continue
            fams["device_error"].add_metric(labels, 0.0)
            bsize = float(st.f_bsize)
            fams["size"].add_metric(labels, st.f_blocks * bsize)
            fams["free"].add_metric(labels, st.f_bfree * bsize)
            fams["avail"].add_metric(labels, st.f_bavail * bsize)
            fams["files"].add_metric(labels, float(st.f_files))
            fams["files_free"].add_metric(labels, float(st.f_ffree))
            fams["readonly"].add_metric(labels,
                                        1.0 if "ro" in options.split(",") else 0.0)
        yield from fams.values()

    def _udev(self, major: str, minor: str) -> dict[str, str]:
        try:
            text = _read(f"{self.udev_data}/b{major}:{minor}")
        except OSError:
            return {}
        out: dict[str, str] = {}
        for line in text.splitlines():
            if line.startswith("E:"):
                key, sep, value = line[2:].partition("=")
                if sep:
                    out[key] = value
        return out

    def _diskstats(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("node_disk_info", "Info of /sys/block/<block_device>.",
                                 labels=["device", "major", "minor", "path", "wwn", "model",
                                         "serial", "revision"])
        fs_info = GaugeMetricFamily("node_disk_filesystem_info", "Info about disk filesystem.",
                                    labels=["device", "type", "usage", "uuid", "version"])
        dm_info = GaugeMetricFamily("node_disk_device_mapper_info",
                                    "Info about disk device mapper.",
                                    labels=["device", "name", "uuid", "vg_name", "lv_name",
                                            "lv_layer"])
        ata = {key: GaugeMetricFamily(name, doc, labels=["device"]) for key, name, doc in (
            ("ID_ATA_WRITE_CACHE", "node_disk_ata_write_cache", "ATA disk has a write cache."),
            ("ID_ATA_WRITE_CACHE_ENABLED", "node_disk_ata_write_cache_enabled",
             "ATA disk has its write cache enabled."),
            ("ID_ATA_ROTATION_RATE_RPM", "node_disk_ata_rotation_rate_rpm",
             "ATA disk rotation rate in RPMs (0 for SSDs)."))}
        fams: list[CounterMetricFamily | GaugeMetricFamily] = [
            CounterMetricFamily(name, doc, labels=["device"]) if counter
            else GaugeMetricFamily(name, doc, labels=["device"])
            for name, doc, counter, _ in _DISK_COUNTERS]
        for line in _read(self.proc + "/diskstats").splitlines():
            parts = line.split()
            if len(parts) < 4:
                continue
            major, minor, dev = parts[0], parts[1], parts[2]
            if self._disk_exclude.search(dev):
                continue
            udev = self._udev(major, minor)
            info.add_metric([dev, major, minor, udev.get("ID_PATH", ""),
                             udev.get("ID_WWN", ""), udev.get("ID_MODEL", ""),
                             udev.get("ID_SERIAL_SHORT", ""), udev.get("ID_REVISION", "")],
                            1.0)
            for fam, spec, raw in zip(fams, _DISK_COUNTERS, parts[3:], strict=False):
                fam.add_metric([dev], float(raw) * spec[3])
            if udev.get("ID_FS_TYPE"):
                fs_info.add_metric([dev, udev["ID_FS_TYPE"], udev.get("ID_FS_USAGE", ""),
                                    udev.get("ID_FS_UUID", ""),
                                    udev.get("ID_FS_VERSION", "")], 1.0)
            if udev.get("DM_NAME"):
                dm_info.add_metric([dev, udev["DM_NAME"], udev.get("DM_UUID", ""),
                                    udev.get("DM_VG_NAME", ""), udev.get("DM_LV_NAME", ""),
                                    udev.get("DM_LV_LAYER", "")], 1.0)
            if udev.get("ID_ATA"):
                for key, fam_ata in ata.items():
                    with contextlib.suppress(KeyError, ValueError):
                        fam_ata.add_metric([dev], float(udev[key]))
        yield info
        yield from fams
        yield fs_info
        yield dm_info
        yield from ata.values()

    # -- netdev, netclass, netstat, sockstat

    def _netdev(self) -> Iterator[Metric]:
        fams = [CounterMetricFamily(f"node_network_{col}_total",
                                    f"Network device statistic {col}.", labels=["device"])
                for col in _NETDEV_COLUMNS]
        nohandler = CounterMetricFamily("node_network_receive_nohandler_total",
                                        "Network device statistic receive_nohandler.",
                                        labels=["device"])
        for dev, values in parse_net_dev(_read(self.proc + "/net/dev")).items():
            if self._netdev_exclude.search(dev):
                continue
            for fam, value in zip(fams, values, strict=True):
                fam.add_metric([dev], float(value))
            raw = _int_or_none(_read_value(
                f"{self.sys}/class/net/{dev}/statistics/rx_nohandler"))
            nohandler.add_metric([dev], float(raw or 0))
        yield from fams
        yield nohandler

    def _netclass(self) -> Iterator[Metric]:
        base = self.sys + "/class/net"
        up = GaugeMetricFamily("node_network_up",
                               "Value is 1 if operstate is 'up', 0 otherwise.",
                               labels=["device"])
        info = GaugeMetricFamily(
            "node_network_info",
            "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
            labels=["device", "address", "broadcast", "duplex", "operstate", "ifalias"])
        fams = [
            (attr, (CounterMetricFamily if counter else GaugeMetricFamily)(
                f"node_network_{suffix}", f"Network device property: {suffix}",
                labels=["device"]))
            for attr, suffix, counter in _NETCLASS_FIELDS]
        with os.scandir(base) as entries:
            devices = sorted(e.name for e in entries if not e.is_file(follow_symlinks=False))
        for dev in devices:
            path = f"{base}/{dev}/"
            operstate = _read_value(path + "operstate") or ""
            up.add_metric([dev], 1.0 if operstate == "up" else 0.0)
            info.add_metric([dev, _read_value(path + "address") or "",
                             _read_value(path + "broadcast") or "",
                             _read_value(path + "duplex") or "", operstate,
                             _read_value(path + "ifalias") or ""], 1.0)
            for attr, fam in fams:
                value = _int_or_none(_read_value(path + attr))
                if value is None:
                    continue
                if attr == "speed":
                    value *= 125_000  # Mbit/s -> bytes/s, as node_exporter (-1 kept)
                fam.add_metric([dev], float(value))
        yield up
        yield info
        for _, fam in fams:
            yield fam

    def _netstat(self) -> Iterator[Metric]:
        stats = parse_net_stats(_read(self.proc + "/net/netstat"))
        stats.update(parse_net_stats(_read(self.proc + "/net/snmp")))
        with contextlib.suppress(FileNotFoundError):  # IPv6 disabled
            stats.update(parse_snmp6(_read(self.proc + "/net/snmp6")))
        for proto, fields in stats.items():
            for name, raw in fields.items():
                key = f"{proto}_{name}"
                if not self._netstat_fields.search(key):
                    continue
                yield _untyped(f"node_netstat_{key}", f"Statistic {proto}{name}.",
                               float(raw))

    def _sockstat(self) -> Iterator[Metric]:
        for path, v6 in ((self.proc + "/net/sockstat", False),
                         (self.proc + "/net/sockstat6", True)):
            try:
                used, protocols = parse_sockstat(_read(path))
            except FileNotFoundError:
                continue
            if not v6 and used is not None:
                yield _gauge("node_sockstat_sockets_used", "Number of IPv4 sockets in use.",
                             float(used))
            for proto, kvs in protocols:
                pairs = [("inuse", kvs.get("inuse", 0))]
                pairs += [(k, kvs[k]) for k in ("orphan", "tw", "alloc", "mem", "memory")
                          if k in kvs]
                if "mem" in kvs:
                    pairs.append(("mem_bytes", kvs["mem"] * _PAGE_BYTES))
                for key, value in pairs:
                    yield _gauge(f"node_sockstat_{proto}_{key}",
                                 f"Number of {proto} sockets in state {key}.", float(value))


def node_collector_names() -> list[str]:
    """The node_exporter collectors ``NodeCollector`` implements (see the module
    docstring)."""
    return [name for name, _ in NodeCollector()._collectors]

