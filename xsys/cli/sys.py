"""``xsys sys ...``: system metrics from the daemon, as tables or ``--json``."""

from __future__ import annotations

from typing import Any

import click

from xsys.cli.common import (
    call,
    human_bytes,
    human_rate,
    human_seconds,
    json_option,
    pairs,
    print_json,
    table,
)


@click.group("sys")
def sys_group() -> None:
    """System metrics: CPU, memory, disks, network, processes..."""


@sys_group.command("info")
@json_option
@click.pass_context
def info(ctx: click.Context, as_json: bool) -> None:
    """Host identity, CPU, memory, disks, network and load at a glance."""
    r = call(ctx, "sys.info")
    if as_json:
        return print_json(r)
    click.echo(pairs([
        ("hostname", r["hostname"]), ("os", r["os"]), ("kernel", r["kernel"]),
        ("arch", r["arch"]), ("uptime", human_seconds(r["uptime_s"])),
        ("cpu", f"{r['cpu_model']} ({r['cpu_count_logical']} logical, "
                f"{r['cpu_count_physical']} physical) {r['cpu_percent']:.1f}% used"),
        ("memory", f"{human_bytes(r['memory_total'] - r['memory_available'])} used of "
                   f"{human_bytes(r['memory_total'])} ({r['memory_percent']:.1f}%)"),
        ("swap", f"{human_bytes(r['swap_total'])} ({r['swap_percent']:.1f}% used)"),
        ("load", " ".join(f"{x:.2f}" for x in r["load"])),
    ]))
    click.echo("\ndisks")
    click.echo(table([[d["mountpoint"], d["device"], d["fstype"], human_bytes(d["total"]),
                       human_bytes(d["used"]), human_bytes(d["free"]), d["percent"]]
                      for d in r["disks"]],
                     ["MOUNT", "DEVICE", "FS", "SIZE", "USED", "FREE", "USE%"], right=(3, 4, 5, 6)))
    click.echo("\nnetwork")
    click.echo(table([[n["name"], n["isup"], n["addresses"], human_rate(n["bytes_recv_per_s"]),
                       human_rate(n["bytes_sent_per_s"])] for n in r["network"]],
                     ["IFACE", "UP", "ADDRESSES", "RX", "TX"], right=(3, 4)))
    return None


@sys_group.command("cpu")
@json_option
@click.pass_context
def cpu(ctx: click.Context, as_json: bool) -> None:
    """CPU use overall and per core over the last sampling interval."""
    r = call(ctx, "sys.cpu")
    if as_json:
        return print_json(r)
    tp = r["times_percent"]
    freq = r.get("freq_mhz") or {}
    click.echo(pairs([
        ("cpu", f"{r['percent']:.1f}%"),
        ("user/system/idle", f"{tp.get('user', 0):.1f}% / {tp.get('system', 0):.1f}% / "
                             f"{tp.get('idle', 0):.1f}%"),
        ("iowait", f"{tp.get('iowait', 0):.1f}%"),
        ("frequency", f"{freq.get('current', 0):.0f} MHz" if freq else "n/a"),
        ("cores", f"{r['count_logical']} logical, {r['count_physical']} physical"),
    ]))
    click.echo(table([[i, f"{p:.1f}%"] for i, p in enumerate(r.get("per_cpu_percent", []))],
                     ["CPU", "USE"], right=(1,)))
    return None


@sys_group.command("memory")
@json_option
@click.pass_context
def memory(ctx: click.Context, as_json: bool) -> None:
    """Virtual memory and swap."""
    r = call(ctx, "sys.memory")
    if as_json:
        return print_json(r)
    v, s = r["virtual"], r["swap"]
    click.echo(table([
        ["memory", human_bytes(v["total"]), human_bytes(v["used"]),
         human_bytes(v["available"]), f"{v['percent']:.1f}%"],
        ["swap", human_bytes(s["total"]), human_bytes(s["used"]), human_bytes(s["free"]),
         f"{s['percent']:.1f}%"],
    ], ["", "TOTAL", "USED", "AVAILABLE", "USE%"], right=(1, 2, 3, 4)))
    return None


@sys_group.command("disks")
@click.option("--all", "include_all", is_flag=True, help="Include pseudo filesystems.")
@json_option
@click.pass_context
def disks(ctx: click.Context, include_all: bool, as_json: bool) -> None:
    """Mounted filesystems with usage."""
    r = call(ctx, "sys.disks", all=include_all)
    if as_json:
        return print_json(r)
    click.echo(table([[d["mountpoint"], d["device"], d["fstype"], human_bytes(d.get("total")),
                       human_bytes(d.get("used")), human_bytes(d.get("free")),
                       d.get("percent"), d.get("inodes_percent")] for d in r["disks"]],
                     ["MOUNT", "DEVICE", "FS", "SIZE", "USED", "FREE", "USE%", "INODE%"],
                     right=(3, 4, 5, 6, 7)))
    return None


@sys_group.command("disk-io")
@json_option
@click.pass_context
def disk_io(ctx: click.Context, as_json: bool) -> None:
    """Disk I/O counters and rates per disk."""
    r = call(ctx, "sys.disk_io")
    if as_json:
        return print_json(r)
    rows = [[name, human_rate(d.get("read_bytes_per_s")), human_rate(d.get("write_bytes_per_s")),
             human_bytes(d.get("read_bytes")), human_bytes(d.get("write_bytes"))]
            for name, d in sorted(r.get("disks", {}).items())]
    t = r["total"]
    rows.append(["total", human_rate(t.get("read_bytes_per_s")),
                 human_rate(t.get("write_bytes_per_s")), human_bytes(t.get("read_bytes")),
                 human_bytes(t.get("write_bytes"))])
    click.echo(table(rows, ["DISK", "READ/S", "WRITE/S", "READ", "WRITTEN"], right=(1, 2, 3, 4)))
    return None


@sys_group.command("network")
@json_option
@click.pass_context
def network(ctx: click.Context, as_json: bool) -> None:
    """Network interfaces: addresses, state, traffic."""
    r = call(ctx, "sys.network")
    if as_json:
        return print_json(r)
    click.echo(table([[n["name"], n["isup"], n.get("mac") or "",
                       [a["address"] for a in n["addresses"]], n["mtu"], n["speed_mbps"],
                       human_rate(n.get("bytes_recv_per_s")),
                       human_rate(n.get("bytes_sent_per_s"))] for n in r["interfaces"]],
                     ["IFACE", "UP", "MAC", "ADDRESSES", "MTU", "MBPS", "RX", "TX"],
                     right=(4, 5, 6, 7)))
    return None


@sys_group.command("load")
@json_option
@click.pass_context
def load(ctx: click.Context, as_json: bool) -> None:
    """Load averages, absolute and per CPU."""
    r = call(ctx, "sys.load")
    if as_json:
        return print_json(r)
    pc = r["per_cpu"]
    click.echo(table([["load", r["load1"], r["load5"], r["load15"]],
                      ["per cpu", pc["load1"], pc["load5"], pc["load15"]]],
                     ["", "1m", "5m", "15m"], right=(1, 2, 3)))
    return None


@sys_group.command("processes")
@click.option("--sort", type=click.Choice(["cpu", "memory", "pid", "name"]), default="cpu",
              show_default=True)
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--name", default=None, help="Glob on the process name.")
@click.option("--user", default=None, help="Only this user's processes.")
@json_option
@click.pass_context
def processes(ctx: click.Context, sort: str, limit: int, name: str | None, user: str | None,
              as_json: bool) -> None:
    """Processes, busiest first."""
    r = call(ctx, "sys.processes", sort=sort, limit=limit, name=name, user=user)
    if as_json:
        return print_json(r)
    click.echo(table([[p["pid"], p["username"], f"{p['cpu_percent']:.1f}",
                       f"{p['memory_percent']:.1f}", human_bytes(p["memory_rss_bytes"]),
                       p["status"], p["name"]] for p in r["processes"]],
                     ["PID", "USER", "CPU%", "MEM%", "RSS", "STATUS", "NAME"],
                     right=(0, 2, 3, 4)))
    return None


@sys_group.command("process")
@click.argument("pid", type=int)
@json_option
@click.pass_context
def process(ctx: click.Context, pid: int, as_json: bool) -> None:
    """One process in detail."""
    r = call(ctx, "sys.process", pid=pid)
    if as_json:
        return print_json(r)
    items: list[tuple[str, Any]] = [(k, v) for k, v in r.items()
                                    if not isinstance(v, dict) and k != "cmdline"]
    items.append(("cmdline", " ".join(r.get("cmdline") or [])))
    click.echo(pairs(items))
    return None


@sys_group.command("sensors")
@json_option
@click.pass_context
def sensors(ctx: click.Context, as_json: bool) -> None:
    """Temperatures, fans and battery (where the machine has them)."""
    r = call(ctx, "sys.sensors")
    if as_json:
        return print_json(r)
    if not (r["temperatures"] or r["fans"] or r["battery"]):
        click.echo("no sensors on this machine")
        return None
    if r["temperatures"]:
        click.echo(table([[t["chip"], t["label"], t["current_celsius"], t["high_celsius"],
                           t["critical_celsius"]] for t in r["temperatures"]],
                         ["CHIP", "LABEL", "°C", "HIGH", "CRIT"], right=(2, 3, 4)))
    if r["fans"]:
        click.echo(table([[f["chip"], f["label"], f["current_rpm"]] for f in r["fans"]],
                         ["CHIP", "LABEL", "RPM"], right=(2,)))
    if r["battery"]:
        b = r["battery"]
        click.echo(pairs([("battery", f"{b['percent']:.0f}%"),
                          ("plugged in", b["power_plugged"])]))
    return None


@sys_group.command("users")
@json_option
@click.pass_context
def users(ctx: click.Context, as_json: bool) -> None:
    """Logged-in users."""
    r = call(ctx, "sys.users")
    if as_json:
        return print_json(r)
    click.echo(table([[u["name"], u["terminal"], u["host"], u["started"]] for u in r["users"]],
                     ["USER", "TTY", "HOST", "SINCE"]))
    return None


@sys_group.command("ports")
@json_option
@click.pass_context
def ports(ctx: click.Context, as_json: bool) -> None:
    """Listening TCP and bound UDP sockets with their processes."""
    r = call(ctx, "sys.ports")
    if as_json:
        return print_json(r)
    click.echo(table([[p["proto"], p["address"], p["port"], p["pid"], p["process"]]
                      for p in r["ports"]], ["PROTO", "ADDRESS", "PORT", "PID", "PROCESS"],
                     right=(2, 3)))
    return None


@sys_group.command("kill")
@click.argument("pid", type=int)
@click.option("--signal", "signal_name", default="TERM", show_default=True)
@json_option
@click.pass_context
def kill(ctx: click.Context, pid: int, signal_name: str, as_json: bool) -> None:
    """Signal one of your processes (needs sys.allow_kill in the daemon's config)."""
    r = call(ctx, "sys.kill", pid=pid, signal=signal_name)
    if as_json:
        return print_json(r)
    click.echo(f"sent {r['signal']} to {r['pid']}")
    return None
