"""``xsys top``: a live view of the machine over ``sys.subscribe`` (docs/live.md).

On a terminal it draws a full-screen view with ``rich`` (``xsys.cli.topview``, imported
only here, so other commands start fast) and reads keys: ``c``/``m`` sort the processes
by cpu/memory, ``q`` quits. When stdout is not a terminal it prints one flushed line of
text per interval (``--json``: the snapshot as one JSON object per line) and reads no
keys.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any

import click

from xsys.cli.common import CliState, human_bytes, human_rate, json_option, pass_state
from xsys.cli.lazy import XsysCommand
from xsys.client import Subscription

#: The sections ``xsys top`` subscribes to.
TOP_SECTIONS = ["cpu", "memory", "swap", "load", "disks", "network", "monitor"]


def plain_line(snap: dict[str, Any], sort: str = "cpu") -> str:
    """One line of text for a snapshot: time, cpu, memory, swap, load, network rates,
    alerts firing and the top process by ``sort``."""
    cpu = snap.get("cpu", {})
    mem = snap.get("memory", {})
    swap = snap.get("swap", {})
    load = snap.get("load", {})
    net = snap.get("network", {}).get("total", {})
    parts = [time.strftime("%H:%M:%S", time.localtime(snap.get("ts", 0))),
             f"cpu {cpu.get('percent', 0.0):5.1f}%",
             f"mem {mem.get('percent', 0.0):5.1f}% "
             f"({human_bytes(mem.get('used_bytes'))}/{human_bytes(mem.get('total_bytes'))})",
             f"swap {swap.get('percent', 0.0):5.1f}%",
             f"load {load.get('load1', 0.0):.2f} {load.get('load5', 0.0):.2f} "
             f"{load.get('load15', 0.0):.2f}",
             f"net rx {human_rate(net.get('bytes_recv_per_s', 0.0))} "
             f"tx {human_rate(net.get('bytes_sent_per_s', 0.0))}"]
    firing = snap.get("monitor", {}).get("firing")
    if firing:
        parts.append(f"alerts {firing}")
    rows = snap.get("processes", {}).get("processes") or []
    if rows:
        key = "memory_percent" if sort == "memory" else "cpu_percent"
        first = rows[0]
        parts.append(f"top {first['name']}[{first['pid']}] "
                     f"{first.get(key) or 0.0:.1f}% {sort}")
    if snap.get("dropped"):
        parts.append(f"dropped {snap['dropped']}")
    return "  ".join(parts)


@click.command("top", cls=XsysCommand)
@click.option("--interval", "-i", type=click.FloatRange(min=0, min_open=True),
              default=1.0, show_default=True, help="Seconds between updates.")
@click.option("--processes", "-n", "top_n", type=click.IntRange(1, 100), default=20,
              show_default=True, help="Processes listed.")
@click.option("--sort", type=click.Choice(["cpu", "memory"]), default="cpu",
              show_default=True, help="Initial process order (keys c and m change it).")
@json_option
@pass_state
def top_command(state: CliState, interval: float, top_n: int, sort: str) -> None:
    """A live view: CPU per core, memory and swap, load, disks, network rates, active
    alerts and the top processes with their command lines.

    Keys: c sort by cpu, m sort by memory, q quit. Not on a terminal (or with --json):
    one line per interval, no keys read.
    """
    interactive = sys.stdout.isatty() and not state.as_json
    with state.connected(timeout=None) as client:
        host: dict[str, Any] = dict(client.sys.info()) if interactive else {}

        def subscribe(order: str) -> Subscription:
            return client.subscribe("sys.subscribe", interval_s=interval,
                                    sections=TOP_SECTIONS, per_cpu=True,
                                    top_processes=top_n, process_sort=order)

        if interactive:
            from xsys.cli.topview import run

            with contextlib.suppress(KeyboardInterrupt):
                run(subscribe, host, sort)
            return
        sub = subscribe(sort)
        try:
            for snap in sub:
                if snap.get("method") != "sys.snapshot":
                    continue
                state.emit_line(snap, lambda s: plain_line(s, sort))
                sys.stdout.flush()
        except KeyboardInterrupt:
            pass
        except BrokenPipeError:  # `xsys top | head`
            sys.stderr.close()
        finally:
            sub.close()
