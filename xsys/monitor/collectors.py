"""Collectors: one blocking pass over the machine that turns psutil readings into
``Sample`` values for the rules, plus the ``HostContext`` attached to alerts; and
``CHECKS``, the one table of the checks (name, component naming, unit, collector,
thresholds) that the engine, the service and ``monitor.checks`` derive from. A new check
is a collector method on ``Collectors``, a row in ``CHECKS`` and its config section in
``xsys.monitor.config``.

CPU, memory, swap, load, disk and network rates come from the sys namespace's background
``Sampler`` snapshot (``xsys.host.sampler``) when the daemon has one, so the monitor adds
no second psutil pass for them; filesystems, inodes and the reboot flags are read here.
Sources: ``xsys.host`` (partitions and their space and inodes, addresses, boot time), and
Debian's ``/run/reboot-required`` flag file.

Everything here blocks (``statvfs`` can stall on a network mount): call ``collect`` through
``App.run_blocking``.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from xsys.alerts.config import PUBLIC_IP_TIMEOUT_S, PUBLIC_IP_TTL_S
from xsys.alerts.model import HostContext
from xsys.host import (
    PSEUDO_FS,
    Sampler,
    Snapshot,
    booted_at,
    fs_usage,
    getloadavg,
    hostname,
    is_whole_disk,
    local_addresses,
    partitions,
    route_address,
)
from xsys.monitor.config import MonitorConfig, RateCheck, ThresholdCheck
from xsys.monitor.rules import Thresholds

log = logging.getLogger(__name__)

#: Filesystem types the monitor never checks, as TinyMonitor: ``xsys.host.PSEUDO_FS``
#: (pseudo, image and container-layer filesystems) plus memory-backed and optical ones.
UNCHECKED_FS = PSEUDO_FS | {"tmpfs", "devfs", "nullfs", "udf"}

@dataclass(frozen=True)
class Sample:
    """One reading: ``check`` (``filesystem``), ``component`` (``filesystem:/``), ``value``
    in ``unit``; ``text``: the value as TinyMonitor words it (``compat: tinymonitor``
    only, else empty)."""

    check: str
    component: str
    value: float
    unit: str
    text: str = ""


#: TinyMonitor's component names (src/tinymonitor/metrics/*.py), by xsys check; the
#: filesystem's is ``DISK:<mountpoint>``.
TINYMONITOR_COMPONENTS = {"cpu": "CPU", "memory": "MEMORY", "load": "LOAD", "io": "I/O",
                          "reboot": "REBOOT"}
#: TinyMonitor's REBOOT value texts (src/tinymonitor/metrics/reboot.py).
REBOOT_REQUIRED_TEXT = "System requires a reboot (updates installed)"
REBOOT_OK_TEXT = "OK"


def tinymonitor_rate(bytes_per_s: float) -> str:
    """A byte rate as TinyMonitor's I/O metric writes it: divided by 1024 while above
    1024, one decimal, ``B/s``, ``KB/s``, ``MB/s``... (``1536`` -> ``"1.5KB/s"``)."""
    size = float(bytes_per_s)
    n = 0
    while size > 1024:
        size /= 1024
        n += 1
    return f"{size:.1f}{('', 'K', 'M', 'G', 'T')[n] if n < 5 else ''}B/s"


def tinymonitor_percent(value: float) -> str:
    """A percentage as TinyMonitor shows psutil's (one decimal, Python's float text):
    ``"91.3%"``, ``"45.0%"``."""
    return f"{round(float(value), 1)}%"


def lookup_public_ip(url: str, timeout_s: float) -> str:
    """The body of ``url`` (a what-is-my-IP service answering plain text), stripped;
    ``"N/A"`` on any failure or an answer that is not one short line (blocking)."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            text = resp.read(256).decode("ascii", "replace").strip()
    except Exception as exc:  # TinyMonitor: any failure -> "N/A"
        log.info("public IP lookup at %s failed: %s", url, exc)
        return "N/A"
    return text if text and len(text) <= 64 and " " not in text else "N/A"


@dataclass(frozen=True)
class Collection:
    """The result of one pass: ``samples``, the ``host`` context, ``errors`` (check ->
    message, for checks that failed this time; their states are left as they were),
    ``ts`` (epoch s) and ``duration_ms`` (wall time of the pass)."""

    samples: tuple[Sample, ...]
    host: HostContext
    errors: dict[str, str] = field(default_factory=dict)
    ts: float = 0.0
    duration_ms: float = 0.0


class SnapshotSource(Protocol):
    """What the collectors need of the sampler: its ``latest`` snapshot or a fresh one."""

    latest: Snapshot | None

    def sample_now(self) -> Snapshot:
        """Take one sample now (blocking)."""
        ...


def default_boot_state_file() -> Path:
    """Where the boot time of the previous run is kept: ``/var/lib/xsys/boot_time`` for
    root, else ``$XDG_STATE_HOME/xsys/boot_time`` (``~/.local/state``)."""
    if hasattr(os, "getuid") and os.getuid() == 0:
        return Path("/var/lib/xsys/boot_time")
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "xsys" / "boot_time"


class Collectors:
    """All enabled collectors of a ``MonitorConfig``.

    ``sampler``: the daemon's sampler (its ``latest`` snapshot is read); None = own one,
    sampled on every ``collect``. ``clock``: epoch seconds (tests inject one).
    """

    def __init__(self, config: MonitorConfig, sampler: SnapshotSource | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock
        self._own: Sampler | None = None
        if sampler is None:
            sampler = self._own = Sampler()
            self._own.prime()
        self.sampler: SnapshotSource = sampler
        self._hostname = hostname()
        self._addresses: tuple[str, ...] = ()
        self._addresses_at = -1e18
        self._boot_time = booted_at()
        self._boot_changed: bool | None = None
        self._boot_reported = False
        self._route = ""
        self._public_ip = "N/A"
        self._public_ip_at = -1e18

    @property
    def tinymonitor(self) -> bool:
        """``monitor.compat`` is ``tinymonitor``: TinyMonitor's component names and value
        texts."""
        return self.config.compat == "tinymonitor"

    # ------------------------------------------------------------------ pass

    def collect(self) -> Collection:
        """One pass over every enabled check (blocking)."""
        started = time.perf_counter()
        now = self._clock()
        snap = self._snapshot()
        samples: list[Sample] = []
        errors: dict[str, str] = {}
        for name, collector in enabled_collectors(self.config):
            try:
                samples.extend(collector(self, snap))
            except Exception as exc:  # one broken collector must not stop the others
                log.warning("collector %s failed: %s", name, exc, exc_info=True)
                errors[name] = f"{type(exc).__name__}: {exc}"
        host = self.host_context(snap, now)
        return Collection(tuple(samples), host, errors, now,
                          (time.perf_counter() - started) * 1000)

    def _snapshot(self) -> Snapshot:
        if self._own is None:
            snap = self.sampler.latest
            if snap is not None:
                return snap
            return self.sampler.sample_now()
        # rates and cpu percent need a span: the first pass right after priming waits up
        # to 0.1 s (this runs in the thread pool)
        return self._own.sample_now(min_span_s=0.1 if self._own.samples_taken == 0 else 0.0)

    # ------------------------------------------------------------ host info

    def host_context(self, snap: Snapshot | None, now: float) -> HostContext:
        """Hostname, addresses (refreshed once a minute), load and uptime; with
        ``compat: tinymonitor`` also the default route's address; the public IP when
        ``alerts.public_ip_url`` is set (looked up at most every ``PUBLIC_IP_TTL_S``)."""
        if now - self._addresses_at > 60:
            self._addresses = local_addresses()
            self._route = route_address() if self.tinymonitor else ""
            self._addresses_at = now
        url = self.config.alerts.public_ip_url
        if not url:
            self._public_ip = "N/A"
        elif now - self._public_ip_at > PUBLIC_IP_TTL_S:
            self._public_ip = lookup_public_ip(url, PUBLIC_IP_TIMEOUT_S)
            self._public_ip_at = now
        load = snap.load if snap is not None else getloadavg() or (0.0, 0.0, 0.0)
        return HostContext(self._hostname, self._addresses, load,
                           max(0.0, now - self._boot_time), self._route, self._public_ip)

    # ------------------------------------------------------------ the checks

    def _cpu(self, snap: Snapshot) -> list[Sample]:
        value = float(snap.cpu_percent)
        if self.tinymonitor:
            return [Sample("cpu", "CPU", value, "percent", tinymonitor_percent(value))]
        return [Sample("cpu", "cpu", value, "percent")]

    def _memory(self, snap: Snapshot) -> list[Sample]:
        value = float(snap.memory.get("percent", 0.0))
        if self.tinymonitor:
            return [Sample("memory", "MEMORY", value, "percent", tinymonitor_percent(value))]
        return [Sample("memory", "memory", value, "percent")]

    def _swap(self, snap: Snapshot) -> list[Sample]:
        pct = float(snap.swap["percent"]) if snap.swap["total_bytes"] else 0.0
        return [Sample("swap", "swap", pct, "percent")]

    def _load(self, snap: Snapshot) -> list[Sample]:
        cfg = self.config.load
        value = snap.load[{1: 0, 5: 1, 15: 2}[cfg.minutes]]
        # TinyMonitor's text: the absolute average, two decimals
        text = f"{value:.2f}" if self.tinymonitor else ""
        component = "LOAD" if self.tinymonitor else "load"
        if cfg.per_cpu:
            return [Sample("load", component, value / max(1, snap.cpu_count_logical),
                           "load_per_cpu", text)]
        return [Sample("load", component, float(value), "load", text)]

    def _io(self, snap: Snapshot) -> list[Sample]:
        read = write = 0.0
        for name, row in snap.disk_io.items():
            if is_whole_disk(name):
                read += row.get("read_bytes_per_s", 0.0)
                write += row.get("write_bytes_per_s", 0.0)
        if self.tinymonitor:
            text = f"R: {tinymonitor_rate(read)} W: {tinymonitor_rate(write)}"
            return [Sample("io", "I/O", read + write, "bytes_per_second", text)]
        return [Sample("io", "io", read + write, "bytes_per_second")]

    def _network(self, snap: Snapshot) -> list[Sample]:
        out = []
        for nic, row in sorted(snap.net_io.items()):
            if any(fnmatch.fnmatchcase(nic, pat) for pat in self.config.network.exclude):
                continue
            rate = row.get("bytes_sent_per_s", 0.0) + row.get("bytes_recv_per_s", 0.0)
            out.append(Sample("network", f"network:{nic}", rate, "bytes_per_second"))
        return out

    def _filesystems(self, snap: Snapshot) -> list[Sample]:
        fs_cfg = self.config.filesystem
        want_space = fs_cfg.enabled
        want_inodes = self.config.inodes.enabled
        out: list[Sample] = []
        for part in partitions(skip_fstypes=UNCHECKED_FS, exclude=fs_cfg.exclude,
                               include=fs_cfg.include, skip_images=True):
            mount = part.mountpoint
            try:
                usage = fs_usage(mount)
            except OSError as exc:
                log.debug("statvfs(%s) failed: %s", mount, exc)
                continue
            if want_space and self.tinymonitor:
                out.append(Sample("filesystem", f"DISK:{mount}", usage.percent, "percent",
                                  tinymonitor_percent(usage.percent)))
            elif want_space:
                out.append(Sample("filesystem", f"filesystem:{mount}", usage.percent,
                                  "percent"))
            if want_inodes and usage.inodes_percent is not None:
                out.append(Sample("inodes", f"inodes:{mount}", usage.inodes_percent,
                                  "percent"))
        return out

    def _reboot(self, snap: Snapshot) -> list[Sample]:
        cfg = self.config.reboot
        required = any(os.path.exists(p) for p in cfg.required_files)
        if self.tinymonitor:
            out = [Sample("reboot", "REBOOT", 1.0 if required else 0.0, "bool",
                          REBOOT_REQUIRED_TEXT if required else REBOOT_OK_TEXT)]
        else:
            out = [Sample("reboot", "reboot:required", 1.0 if required else 0.0, "bool")]
        if cfg.detect_boot:
            out.append(Sample("boot", "reboot:happened", 1.0 if self._boot_happened() else 0.0,
                              "bool"))
        return out

    def _boot_happened(self) -> bool:
        """True on the first pass after the boot time changed since the previous run
        (recorded in the state file), False afterwards."""
        if self._boot_changed is None:
            self._boot_changed = self._check_boot_file()
        if self._boot_changed and not self._boot_reported:
            self._boot_reported = True
            return True
        return False

    def _check_boot_file(self) -> bool:
        cfg = self.config.reboot
        path = Path(cfg.state_file) if cfg.state_file else default_boot_state_file()
        current = int(self._boot_time)
        previous: int | None = None
        try:
            previous = int(float(path.read_text(encoding="ascii").strip()))
        except (OSError, ValueError):
            previous = None
        if previous != current:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_text(f"{current}\n", encoding="ascii")
                os.replace(tmp, path)
            except OSError as exc:
                log.warning("cannot record the boot time in %s: %s", path, exc)
        # a first run (no file) is not a reboot; a clock step of a second is not either
        return previous is not None and abs(previous - current) > 2


# ------------------------------------------------------- the checks, registered once

#: A collector: one blocking pass of ``Collectors`` over the latest snapshot (and the OS),
#: returning the samples of the checks it feeds.
Collector = Callable[[Collectors, Snapshot], list[Sample]]


@dataclass(frozen=True)
class Check:
    """One check, registered once in ``CHECKS`` (node_exporter's ``registerCollector``
    idea): which collectors run, the rules and their units (``engine.rule_specs``), the
    collector error keys and ``monitor.checks`` all derive from that table.

    - ``name``: the check (``filesystem``), as in alerts, rules and metrics.
    - ``component``: how its components are named (``filesystem:<mountpoint>``).
    - ``unit``: the unit of its values, or a function of the monitor config (``load`` is
      ``load_per_cpu`` or ``load``); see ``unit_of``.
    - ``collector``: the ``Collectors`` pass producing its samples; checks sharing one
      (filesystem and inodes, reboot and boot) run it once, under the first one's name.
    - ``thresholds``: its resolved thresholds from the monitor config; None = disabled.
    """

    name: str
    component: str
    unit: str | Callable[[MonitorConfig], str]
    collector: Collector
    thresholds: Callable[[MonitorConfig], Thresholds | None]

    def unit_of(self, config: MonitorConfig) -> str:
        """The unit of this check's values under ``config``."""
        return self.unit if isinstance(self.unit, str) else self.unit(config)


def _levels(section: Callable[[MonitorConfig], ThresholdCheck | RateCheck],
            ) -> Callable[[MonitorConfig], Thresholds | None]:
    """The thresholds of a check with a warning/critical section (None when disabled)."""

    def thresholds(config: MonitorConfig) -> Thresholds | None:
        check = section(config)
        if not check.enabled:
            return None
        warning, critical = check.thresholds()
        return Thresholds(warning, critical, check.duration, check.hysteresis)

    return thresholds


def _reboot_thresholds(config: MonitorConfig, for_boot: bool) -> Thresholds | None:
    """``reboot``/``boot`` fire at the configured severity while the flag is 1."""
    rb = config.reboot
    if not rb.enabled or (for_boot and not rb.detect_boot):
        return None
    warning = 1.0 if rb.severity == "warning" else None
    critical = 1.0 if rb.severity == "critical" else None
    return Thresholds(warning, critical, 0.0 if for_boot else rb.duration, 0.0)


CHECKS: tuple[Check, ...] = (
    Check("cpu", "cpu", "percent", Collectors._cpu, _levels(lambda c: c.cpu)),
    Check("memory", "memory", "percent", Collectors._memory, _levels(lambda c: c.memory)),
    Check("swap", "swap", "percent", Collectors._swap, _levels(lambda c: c.swap)),
    Check("filesystem", "filesystem:<mountpoint>", "percent", Collectors._filesystems,
          _levels(lambda c: c.filesystem)),
    Check("inodes", "inodes:<mountpoint>", "percent", Collectors._filesystems,
          _levels(lambda c: c.inodes)),
    Check("load", "load", lambda c: "load_per_cpu" if c.load.per_cpu else "load",
          Collectors._load, _levels(lambda c: c.load)),
    Check("io", "io", "bytes_per_second", Collectors._io, _levels(lambda c: c.io)),
    Check("network", "network:<interface>", "bytes_per_second", Collectors._network,
          _levels(lambda c: c.network)),
    Check("reboot", "reboot:required", "bool", Collectors._reboot,
          lambda c: _reboot_thresholds(c, for_boot=False)),
    Check("boot", "reboot:happened", "bool", Collectors._reboot,
          lambda c: _reboot_thresholds(c, for_boot=True)),
)

#: Each check's collector name (the key of ``Collection.errors`` when it fails): the first
#: check sharing its collector (``inodes`` -> ``filesystem``, ``boot`` -> ``reboot``).
COLLECTOR_NAME: dict[str, str] = {
    c.name: next(d.name for d in CHECKS if d.collector is c.collector) for c in CHECKS}


def enabled_collectors(config: MonitorConfig) -> list[tuple[str, Collector]]:
    """The collectors the enabled checks of ``config`` need, once each, in ``CHECKS``
    order, with their names (``COLLECTOR_NAME``)."""
    out: dict[str, Collector] = {}
    for check in CHECKS:
        name = COLLECTOR_NAME[check.name]
        if name not in out and check.thresholds(config) is not None:
            out[name] = check.collector
    return list(out.items())

