"""A Prometheus collector with node_exporter's metric names, so existing dashboards work
against xsys's ``/metrics``. Collected at scrape time (run it in the thread pool: it reads
/proc through ``xsys.host``).

Names and labels follow node_exporter's collectors (cpu, meminfo, loadavg, filesystem,
diskstats, netdev, netclass, stat, time).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from xsys import host

#: ``xsys.host.VirtualMemory`` field -> node_exporter's meminfo name.
_MEMINFO = {
    "total_bytes": "MemTotal", "available_bytes": "MemAvailable", "free_bytes": "MemFree",
    "buffers_bytes": "Buffers", "cached_bytes": "Cached", "shared_bytes": "Shmem",
    "active_bytes": "Active", "inactive_bytes": "Inactive", "slab_bytes": "Slab",
}


class NodeCollector(Collector):
    """node_exporter-compatible host metrics from ``xsys.host``."""

    def collect(self) -> Iterator[Metric]:
        yield from self._cpu()
        yield from self._memory()
        yield from self._load()
        yield from self._filesystems()
        yield from self._disks()
        yield from self._network()
        boot = GaugeMetricFamily("node_boot_time_seconds", "Node boot time, in unixtime.")
        boot.add_metric([], host.booted_at())
        yield boot
        now = GaugeMetricFamily("node_time_seconds", "System time in seconds since epoch.")
        now.add_metric([], time.time())
        yield now

    def _cpu(self) -> Iterator[Metric]:
        fam = CounterMetricFamily("node_cpu_seconds_total",
                                  "Seconds the CPUs spent in each mode.",
                                  labels=["cpu", "mode"])
        for i, times in enumerate(host.cpu_times_per_cpu_s()):
            for mode, value in times.items():
                if mode in ("guest", "guest_nice"):
                    continue
                fam.add_metric([str(i), mode], value)
        yield fam

    def _memory(self) -> Iterator[Metric]:
        vm = host.virtual_memory()
        for field, name in _MEMINFO.items():
            value = vm.get(field)
            if isinstance(value, int):
                g = GaugeMetricFamily(f"node_memory_{name}_bytes",
                                      f"Memory information field {name}_bytes.")
                g.add_metric([], value)
                yield g
        sw = host.swap_memory()
        for name, value in (("SwapTotal", sw["total_bytes"]), ("SwapFree", sw["free_bytes"])):
            g = GaugeMetricFamily(f"node_memory_{name}_bytes",
                                  f"Memory information field {name}_bytes.")
            g.add_metric([], value)
            yield g

    def _load(self) -> Iterator[Metric]:
        loads = host.getloadavg()
        if loads is None:
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
        for part in host.partitions():
            lv = [part.device, part.fstype, part.mountpoint]
            try:
                usage = host.fs_usage(part.mountpoint)
            except OSError:
                continue
            fams["size"].add_metric(lv, usage.total_bytes)
            fams["free"].add_metric(lv, usage.free_bytes + usage.reserved_bytes)
            fams["avail"].add_metric(lv, usage.free_bytes)
            fams["files"].add_metric(lv, usage.inodes_total)
            fams["files_free"].add_metric(lv, usage.inodes_free)
        yield from fams.values()

    def _disks(self) -> Iterator[Metric]:
        counters = host.disk_io_counters()
        spec = [
            ("node_disk_read_bytes_total", "The total number of bytes read successfully.",
             "read_bytes"),
            ("node_disk_written_bytes_total",
             "The total number of bytes written successfully.", "write_bytes"),
            ("node_disk_reads_completed_total",
             "The total number of reads completed successfully.", "read_count"),
            ("node_disk_writes_completed_total",
             "The total number of writes completed successfully.", "write_count"),
            ("node_disk_read_time_seconds_total",
             "The total number of seconds spent by all reads.", "read_time_s"),
            ("node_disk_write_time_seconds_total",
             "This is the total number of seconds spent by all writes.", "write_time_s"),
            ("node_disk_io_time_seconds_total", "Total seconds spent doing I/Os.",
             "busy_time_s"),
        ]
        for name, doc, field in spec:
            fam = CounterMetricFamily(name, doc, labels=["device"])
            for dev, c in counters.items():
                value = c.get(field)
                if isinstance(value, (int, float)):
                    fam.add_metric([dev], value)
            yield fam

    def _network(self) -> Iterator[Metric]:
        counters = host.net_io_counters()
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
                value = c.get(field)
                if isinstance(value, int):
                    fam.add_metric([dev], value)
            yield fam
        up = GaugeMetricFamily("node_network_up",
                               "Value is 1 if operstate is 'up', 0 otherwise.",
                               labels=["device"])
        for dev, st in host.interface_stats().items():
            up.add_metric([dev], 1.0 if st.isup else 0.0)
        yield up
