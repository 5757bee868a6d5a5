"""``xsys sys ...``: system metrics from the daemon, as tables or ``--json``."""

from __future__ import annotations

from functools import partial
from typing import Any

import click

from xsys.cli.common import (
    Call,
    field_cell,
    human_bytes,
    human_percent,
    human_rate,
    human_seconds,
    human_time,
    method_command,
    pairs,
    table,
    terminal_columns,
)
from xsys.cli.lazy import XsysGroup

Result = dict[str, Any]


@click.group("sys", cls=XsysGroup)
def sys_group() -> None:
    """System metrics: CPU, memory, disks, network, processes, sensors."""


# ------------------------------------------------------------------------- renderers


def render_info(r: Result) -> str:
    """``sys.info``: host lines, then the disks and network tables."""
    host = pairs([
        ("hostname", r["hostname"]), ("os", r["os"]), ("kernel", r["kernel"]),
        ("arch", r["arch"]), ("uptime", human_seconds(r["uptime_s"])),
        ("cpu", f"{r['cpu_model']} ({r['cpu_count_logical']} logical, "
                f"{r['cpu_count_physical']} physical) {r['cpu_percent']:.1f}% used"),
        ("memory", f"{human_bytes(r['memory_total_bytes'] - r['memory_available_bytes'])} "
                   f"used of {human_bytes(r['memory_total_bytes'])} "
                   f"({r['memory_percent']:.1f}%)"),
        ("swap", f"{human_bytes(r['swap_total_bytes'])} ({r['swap_percent']:.1f}% used)"),
        ("load", " ".join(f"{x:.2f}" for x in r["load"])),
    ])
    disks = table([[d["mountpoint"], d["device"], d["fstype"], human_bytes(d["total_bytes"]),
                    human_bytes(d["used_bytes"]), human_bytes(d["free_bytes"]),
                    human_percent(d["percent"])] for d in r["disks"]],
                  ["MOUNT", "DEVICE", "FS", "SIZE", "USED", "FREE", "USE%"],
                  right=(3, 4, 5, 6))
    network = table([[n["name"], n["isup"], human_rate(n["bytes_recv_per_s"]),
                      human_rate(n["bytes_sent_per_s"]), n["addresses"]] for n in r["network"]],
                    ["IFACE", "UP", "RX", "TX", "ADDRESSES"], right=(2, 3))
    return f"{host}\n\ndisks\n{disks}\n\nnetwork\n{network}"


def render_cpu(r: Result) -> str:
    """``sys.cpu``: overall lines, then one row per logical CPU."""
    tp = r["times_percent"]
    freq = r.get("freq_mhz") or {}
    overall = pairs([
        ("cpu", f"{r['percent']:.1f}%"),
        ("user/system/idle", f"{tp.get('user', 0):.1f}% / {tp.get('system', 0):.1f}% / "
                             f"{tp.get('idle', 0):.1f}%"),
        ("iowait", f"{tp.get('iowait', 0):.1f}%"),
        ("frequency", f"{freq.get('current', 0):.0f} MHz" if freq else "n/a"),
        ("cores", f"{r['count_logical']} logical, {r['count_physical']} physical"),
    ])
    per_cpu = table([[i, f"{p:.1f}%"] for i, p in enumerate(r.get("per_cpu_percent", []))],
                    ["CPU", "USE"], right=(1,))
    return f"{overall}\n{per_cpu}"


def render_memory(r: Result) -> str:
    """``sys.memory``: memory and swap rows."""
    v, s = r["virtual"], r["swap"]
    return table([
        ["memory", human_bytes(v["total_bytes"]), human_bytes(v["used_bytes"]),
         human_bytes(v["available_bytes"]), f"{v['percent']:.1f}%"],
        ["swap", human_bytes(s["total_bytes"]), human_bytes(s["used_bytes"]),
         human_bytes(s["free_bytes"]), f"{s['percent']:.1f}%"],
    ], ["", "TOTAL", "USED", "AVAILABLE", "USE%"], right=(1, 2, 3, 4))


def render_disks(r: Result) -> str:
    """``sys.disks``: one row per mounted filesystem."""
    return table([[d["mountpoint"], d["device"], d["fstype"], human_bytes(d.get("total_bytes")),
                   human_bytes(d.get("used_bytes")), human_bytes(d.get("free_bytes")),
                   human_percent(d.get("percent")), human_percent(d.get("inodes_percent"))]
                  for d in r["disks"]],
                 ["MOUNT", "DEVICE", "FS", "SIZE", "USED", "FREE", "USE%", "INODE%"],
                 right=(3, 4, 5, 6, 7))


#: Block devices ``sys disk-io`` hides unless ``--all``: loop and RAM disks, the devices
#: ``sys disks`` (the daemon's ``sys.disks``) leaves out unless ``--all`` too.
HIDDEN_DEVICES = ("loop", "ram")


def is_hidden_device(name: str) -> bool:
    """True for a loop or RAM block device name (``loop3``, ``/dev/loop3``, ``ram0``)."""
    return name.rsplit("/", 1)[-1].startswith(HIDDEN_DEVICES)


def render_disk_io(r: Result, show_all: bool = False) -> str:
    """``sys.disk_io``: one row per disk (loop and RAM devices only with ``show_all``)
    and a total row (whole disks only, as the daemon counts it)."""
    rows = [[name, human_rate(d.get("read_bytes_per_s")), human_rate(d.get("write_bytes_per_s")),
             human_bytes(d.get("read_bytes")), human_bytes(d.get("write_bytes"))]
            for name, d in sorted(r.get("disks", {}).items())
            if show_all or not is_hidden_device(name)]
    t = r["total"]
    rows.append(["total", human_rate(t.get("read_bytes_per_s")),
                 human_rate(t.get("write_bytes_per_s")), human_bytes(t.get("read_bytes")),
                 human_bytes(t.get("write_bytes"))])
    return table(rows, ["DISK", "READ/S", "WRITE/S", "READ", "WRITTEN"], right=(1, 2, 3, 4))


def disk_io_notes(r: Result) -> list[str]:
    """How many loop/RAM devices the table left out (when any)."""
    hidden = sum(1 for name in r.get("disks", {}) if is_hidden_device(name))
    return [f"({hidden} loop/RAM devices hidden; --all shows them)"] if hidden else []


def render_network(r: Result) -> str:
    """``sys.network``: one row per interface, the addresses last (cut to a terminal's
    width: ``--json`` has them all)."""
    return table([[n["name"], n["isup"], n["mtu_bytes"], n["speed_mbps"],
                   human_rate(n.get("bytes_recv_per_s")), human_rate(n.get("bytes_sent_per_s")),
                   n.get("mac") or "", [a["address"] for a in n["addresses"]]]
                  for n in r["interfaces"]],
                 ["IFACE", "UP", "MTU", "MBPS", "RX", "TX", "MAC", "ADDRESSES"],
                 right=(2, 3, 4, 5))


def render_load(r: Result) -> str:
    """``sys.load``: absolute and per-CPU rows."""
    pc = r["per_cpu"]
    return table([["load", r["load1"], r["load5"], r["load15"]],
                  ["per cpu", pc["load1"], pc["load5"], pc["load15"]]],
                 ["", "1m", "5m", "15m"], right=(1, 2, 3))


def command_line(p: Result) -> str:
    """A process's command line (argv joined), or ``[name]`` when it has none (kernel
    threads, as ps shows them)."""
    argv = p.get("cmdline") or []
    return " ".join(argv) if argv else f"[{p.get('name', '')}]"


def render_processes(r: Result, width: int | None = None) -> str:
    """``sys.processes``: one row per process, the command line last, cut to ``width``
    columns (None: whole lines)."""
    return table([[p["pid"], p["username"], human_percent(p["cpu_percent"]),
                   human_percent(p["memory_percent"]), human_bytes(p["memory_rss_bytes"]),
                   p["status"], command_line(p)] for p in r["processes"]],
                 ["PID", "USER", "CPU%", "MEM%", "RSS", "STATUS", "COMMAND"],
                 right=(0, 2, 3, 4), fit=width)


def render_process(r: Result) -> str:
    """``sys.process``: its scalar fields as lines (formatted by their unit: bytes, %,
    times), the command line last."""
    items: list[tuple[str, Any]] = [(k, field_cell(k, v)) for k, v in r.items()
                                    if not isinstance(v, dict) and k != "cmdline"]
    for key in ("memory_info", "io_counters", "cpu_times_s"):
        sub = r.get(key)
        if isinstance(sub, dict):
            suffix = "_s" if key == "cpu_times_s" else ""
            items.append((key, ", ".join(f"{k} {field_cell(k + suffix, v)}"
                                         for k, v in sub.items())))
    items.append(("cmdline", command_line(r)))
    return pairs(items)


def render_sensors(r: Result) -> str:
    """``sys.sensors``: temperatures, fans and battery, each when present."""
    if not (r["temperatures"] or r["fans"] or r["battery"]):
        return "no sensors on this machine"
    parts = []
    if r["temperatures"]:
        parts.append(table([[t["chip"], t["label"], t["current_celsius"], t["high_celsius"],
                             t["critical_celsius"]] for t in r["temperatures"]],
                           ["CHIP", "LABEL", "°C", "HIGH", "CRIT"], right=(2, 3, 4)))
    if r["fans"]:
        parts.append(table([[f["chip"], f["label"], f["current_rpm"]] for f in r["fans"]],
                           ["CHIP", "LABEL", "RPM"], right=(2,)))
    if r["battery"]:
        b = r["battery"]
        parts.append(pairs([("battery", f"{b['percent']:.0f}%"),
                            ("plugged in", b["power_plugged"])]))
    return "\n".join(parts)


def render_users(r: Result) -> str:
    """``sys.users``: one row per login session."""
    return table([[u["name"], u["terminal"], u["host"], human_time(u["started_at"])]
                  for u in r["users"]],
                 ["USER", "TTY", "HOST", "SINCE"])


def render_ports(r: Result) -> str:
    """``sys.ports``: one row per listening socket."""
    return table([[p["proto"], p["address"], p["port"], p["pid"], p["process"]]
                  for p in r["ports"]], ["PROTO", "ADDRESS", "PORT", "PID", "PROCESS"],
                 right=(2, 3))


def render_kill(r: Result) -> str:
    """``sys.kill``: what was sent to whom."""
    return f"sent {r['signal']} to {r['pid']}"


# -------------------------------------------------------------------------- commands


@method_command(sys_group, "info", "sys.info", render_info)
def info() -> None:
    """Host identity, CPU, memory, disks, network and load at a glance."""


@method_command(sys_group, "cpu", "sys.cpu", render_cpu)
def cpu() -> None:
    """CPU use overall and per core over the last sampling interval."""


@method_command(sys_group, "memory", "sys.memory", render_memory)
def memory() -> None:
    """Virtual memory and swap."""


@method_command(sys_group, "disks", "sys.disks", render_disks)
@click.option("--all", is_flag=True,
              help="Include loop devices, pseudo filesystems and duplicate mounts.")
def disks(**params: Any) -> None:
    """Mounted filesystems with usage (loop devices hidden unless --all)."""


@method_command(sys_group, "disk-io", "sys.disk_io", render_disk_io, notes=disk_io_notes)
@click.option("--all", "show_all", is_flag=True, help="Include loop and RAM devices.")
def disk_io(show_all: bool) -> Call:
    """Disk I/O counters and rates per disk (loop devices hidden unless --all)."""
    return Call("sys.disk_io", {}, partial(render_disk_io, show_all=show_all))


@method_command(sys_group, "network", "sys.network", render_network)
def network() -> None:
    """Network interfaces: addresses, state, traffic."""


@method_command(sys_group, "load", "sys.load", render_load)
def load() -> None:
    """Load averages, absolute and per CPU."""


@method_command(sys_group, "processes", "sys.processes", render_processes)
@click.option("--sort", type=click.Choice(["cpu", "memory", "pid", "name"]), default="cpu",
              show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--name", default=None, help="Glob on the process name.")
@click.option("--user", default=None, help="Only this user's processes.")
@click.option("--full", is_flag=True, help="Whole command lines (default: cut to the terminal).")
def processes(full: bool, **params: Any) -> Call:
    """Processes, busiest first, with their command lines."""
    width = None if full else terminal_columns()
    return Call("sys.processes", params, partial(render_processes, width=width))


@method_command(sys_group, "process", "sys.process", render_process)
@click.argument("pid", type=click.IntRange(min=0))
def process(**params: Any) -> None:
    """One process in detail."""


@method_command(sys_group, "sensors", "sys.sensors", render_sensors)
def sensors() -> None:
    """Temperatures, fans and battery (where the machine has them)."""


@method_command(sys_group, "users", "sys.users", render_users)
def users() -> None:
    """Logged-in users."""


@method_command(sys_group, "ports", "sys.ports", render_ports)
def ports() -> None:
    """Listening TCP and bound UDP sockets with their processes."""


@method_command(sys_group, "kill", "sys.kill", render_kill)
@click.argument("pid", type=click.IntRange(min=0))
@click.option("--signal", default="TERM", show_default=True)
def kill(**params: Any) -> None:
    """Signal one of your processes (needs sys.allow_kill in the daemon's config)."""
