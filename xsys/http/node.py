"""A Prometheus collector with node_exporter's metric names, so existing dashboards work
against xsys's ``/metrics``. Collected at scrape time (run it in the thread pool: it reads
/proc through psutil).

Names and labels follow node_exporter's collectors (cpu, meminfo, loadavg, filesystem,
diskstats, netdev, netclass, stat, time).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import psutil
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from xsys.handlers.system import partitions

_MEMINFO = {
    "total": "MemTotal", "available": "MemAvailable", "free": "MemFree",
    "buffers": "Buffers", "cached": "Cached", "shared": "Shmem", "active": "Active",
    "inactive": "Inactive", "slab": "Slab",
}


class NodeCollector(Collector):
    """node_exporter-compatible host metrics from psutil."""

    def collect(self) -> Iterator[Metric]:
        yield from self._cpu()
        yield from self._memory()
        yield from self._load()
        yield from self._filesystems()
        yield from self._disks()
        yield from self._network()
        boot = GaugeMetricFamily("node_boot_time_seconds", "Node boot time, in unixtime.")
        boot.add_metric([], psutil.boot_time())
        yield boot
        now = GaugeMetricFamily("node_time_seconds", "System time in seconds since epoch.")
        now.add_metric([], time.time())
        yield now

    def _cpu(self) -> Iterator[Metric]:
        fam = CounterMetricFamily("node_cpu_seconds_total",
                                  "Seconds the CPUs spent in each mode.",
                                  labels=["cpu", "mode"])
        for i, times in enumerate(psutil.cpu_times(percpu=True)):
            for mode, value in times._asdict().items():
                if mode in ("guest", "guest_nice"):
                    continue
                fam.add_metric([str(i), mode], value)
        yield fam

    def _memory(self) -> Iterator[Metric]:
        vm = psutil.virtual_memory()._asdict()
        for field, name in _MEMINFO.items():
            if field in vm:
                g = GaugeMetricFamily(f"node_memory_{name}_bytes",
                                      f"Memory information field {name}_bytes.")
                g.add_metric([], vm[field])
                yield g
        sw = psutil.swap_memory()
        for name, value in (("SwapTotal", sw.total), ("SwapFree", sw.free)):
            g = GaugeMetricFamily(f"node_memory_{name}_bytes",
                                  f"Memory information field {name}_bytes.")
            g.add_metric([], value)
            yield g

    def _load(self) -> Iterator[Metric]:
        try:
            loads = psutil.getloadavg()
        except (AttributeError, OSError):
            return
        for name, value in zip(("node_load1", "node_load5", "node_load15"), loads,
                               strict=True):
            g = GaugeMetricFamily(name, f"{name[9:]}m load average.")
            g.add_metric([], value)
            yield g

    def _filesystems(self) -> Iterator[Metric]:
        labels = ["device", "fstype", "mountpoint"]
        fams = {
            "size": GaugeMetricFamily("node_filesystem_size_bytes",
                                      "Filesystem size in bytes.", labels=labels),
            "free": GaugeMetricFamily("node_filesystem_free_bytes",
                                      "Filesystem free space in bytes.", labels=labels),
            "avail": GaugeMetricFamily("node_filesystem_avail_bytes",
                                       "Filesystem space available to non-root users in "
                                       "bytes.", labels=labels),
            "files": GaugeMetricFamily("node_filesystem_files",
                                       "Filesystem total file nodes.", labels=labels),
            "files_free": GaugeMetricFamily("node_filesystem_files_free",
                                            "Filesystem total free file nodes.",
                                            labels=labels),
        }
        for part in partitions():
            lv = [part.device, part.fstype, part.mountpoint]
            try:
                st = os.statvfs(part.mountpoint)
            except OSError:
                continue
            fams["size"].add_metric(lv, st.f_blocks * st.f_frsize)
            fams["free"].add_metric(lv, st.f_bfree * st.f_frsize)
            fams["avail"].add_metric(lv, st.f_bavail * st.f_frsize)
            fams["files"].add_metric(lv, st.f_files)
            fams["files_free"].add_metric(lv, st.f_ffree)
        yield from fams.values()

    def _disks(self) -> Iterator[Metric]:
        counters = psutil.disk_io_counters(perdisk=True) or {}
        spec = [
            ("node_disk_read_bytes_total", "The total number of bytes read successfully.",
             "read_bytes", 1.0),
            ("node_disk_written_bytes_total",
             "The total number of bytes written successfully.", "write_bytes", 1.0),
            ("node_disk_reads_completed_total",
             "The total number of reads completed successfully.", "read_count", 1.0),
            ("node_disk_writes_completed_total",
             "The total number of writes completed successfully.", "write_count", 1.0),
            ("node_disk_read_time_seconds_total",
             "The total number of seconds spent by all reads.", "read_time", 0.001),
            ("node_disk_write_time_seconds_total",
             "This is the total number of seconds spent by all writes.", "write_time",
             0.001),
            ("node_disk_io_time_seconds_total", "Total seconds spent doing I/Os.",
             "busy_time", 0.001),
        ]
        for name, doc, field, scale in spec:
            fam = CounterMetricFamily(name, doc, labels=["device"])
            for dev, c in counters.items():
                value = getattr(c, field, None)
                if value is not None:
                    fam.add_metric([dev], value * scale)
            yield fam

    def _network(self) -> Iterator[Metric]:
        counters = psutil.net_io_counters(pernic=True) or {}
        spec = [
            ("receive_bytes", "bytes_recv"), ("transmit_bytes", "bytes_sent"),
            ("receive_packets", "packets_recv"), ("transmit_packets", "packets_sent"),
            ("receive_errs", "errin"), ("transmit_errs", "errout"),
            ("receive_drop", "dropin"), ("transmit_drop", "dropout"),
        ]
        for suffix, field in spec:
            fam = CounterMetricFamily(f"node_network_{suffix}_total",
                                      f"Network device statistic {suffix}.",
                                      labels=["device"])
            for dev, c in counters.items():
                fam.add_metric([dev], getattr(c, field))
            yield fam
        up = GaugeMetricFamily("node_network_up",
                               "Value is 1 if operstate is 'up', 0 otherwise.",
                               labels=["device"])
        for dev, st in psutil.net_if_stats().items():
            up.add_metric([dev], 1.0 if st.isup else 0.0)
        yield up
