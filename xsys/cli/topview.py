"""The terminal side of ``xsys top``: a full-screen ``rich`` view of ``sys.snapshot``
notifications, with keys read from the terminal in cbreak mode (``c``/``m`` sort the
processes by cpu/memory, ``q`` quits). Imported only by ``xsys top`` on a terminal.

Laid out for 80x24 and up: a header line; per-core CPU bars beside memory, swap, load,
network and the fullest filesystems; the active alerts; then as many processes as the
remaining rows hold, with their command lines cut to the width.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import sys
import termios
import time
import tty
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from xsys.cli.common import human_bytes, human_rate, human_seconds
from xsys.client import Subscription

#: Seconds between key polls while no snapshot arrives.
POLL_S = 0.1
#: Alert lines shown at most.
MAX_ALERTS = 3


class Keys:
    """Keys typed on ``fd`` (a terminal put in cbreak mode for the duration; none read
    from anything else): ``read()`` returns what was typed since, without waiting."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd

    def read(self) -> str:
        """The keys typed so far ('' when none or not a terminal)."""
        if self.fd is None:
            return ""
        out = ""
        while select.select([self.fd], [], [], 0)[0]:
            chunk = os.read(self.fd, 64)
            if not chunk:
                self.fd = None
                break
            out += chunk.decode("utf-8", "replace")
        return out


@contextlib.contextmanager
def cbreak_keys() -> Iterator[Keys]:
    """``Keys`` on stdin when it is a terminal (restored afterwards), else no keys."""
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):
        fd = -1
    if fd < 0 or not os.isatty(fd):
        yield Keys(None)
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield Keys(fd)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _bar(label: str, percent: float, width: int, detail: str = "", label_w: int = 5,
         short: bool = False) -> Table:
    """``label [bar] 12.3% detail`` on one line (``short``: ``12%``)."""
    row = Table.grid(padding=(0, 1))
    row.add_column(width=label_w, no_wrap=True)
    row.add_column(width=max(4, width))
    row.add_column(width=4 if short else 6, justify="right", no_wrap=True)
    cells: list[RenderableType] = [
        Text(label, style="bold cyan"),
        ProgressBar(total=100.0, completed=min(max(percent, 0.0), 100.0), width=max(4, width),
                    complete_style=_style(percent), finished_style=_style(percent)),
        f"{percent:3.0f}%" if short else f"{percent:5.1f}%"]
    if detail:
        row.add_column(no_wrap=True, overflow="ellipsis")
        cells.append(Text(detail, style="dim"))
    row.add_row(*cells)
    return row


#: Blocks of the compact per-core view, by eighths of 100 %.
BLOCKS = "▁▂▃▄▅▆▇█"


def _style(percent: float) -> str:
    return "red" if percent >= 90 else "yellow" if percent >= 70 else "green"


def _cpu_strip(per: list[float], width: int) -> list[RenderableType]:
    """Many CPUs: one block per CPU, its height the CPU's use, lines of ``width``."""
    per_line = max(8, width - 9)
    lines: list[RenderableType] = []
    for start in range(0, len(per), per_line):
        chunk = per[start:start + per_line]
        text = Text(f"{start:>3}-{start + len(chunk) - 1:<3} ", style="bold cyan",
                    no_wrap=True, overflow="crop")
        for p in chunk:
            text.append(BLOCKS[min(7, max(0, int(p / 12.5)))], style=_style(p))
        lines.append(text)
    return lines


def _cpu_bars(cpu: dict[str, Any], width: int, max_rows: int
              ) -> tuple[list[RenderableType], int]:
    """One bar per logical CPU (the overall one first when there is room), in two
    columns when one does not hold them, else one block per CPU; and the rows taken."""
    per = [float(p) for p in cpu.get("per_cpu_percent") or [cpu.get("percent", 0.0)]]
    overall = _bar("cpu", cpu.get("percent", 0.0), width - 20)
    if len(per) <= max_rows:
        bars: list[RenderableType] = [_bar(f"cpu{i}", p, width - 20)
                                      for i, p in enumerate(per)]
        if 1 < len(per) < max_rows:
            bars.insert(0, overall)
        return bars, len(bars)
    if len(per) <= 2 * max_rows and width >= 40:
        grid = Table.grid(padding=(0, 1))
        grid.add_column()
        grid.add_column()
        rows = math.ceil(len(per) / 2)
        label_w = len(str(len(per) - 1))
        cells = [_bar(f"{i}", p, width // 2 - label_w - 7, label_w=label_w, short=True)
                 for i, p in enumerate(per)]
        for r in range(rows):
            grid.add_row(cells[r], cells[r + rows] if r + rows < len(cells) else "")
        return [grid], rows
    strip = _cpu_strip(per, width)
    return [overall, *strip], 1 + len(strip)


def _side(snap: dict[str, Any], width: int) -> list[RenderableType]:
    """Memory, swap, load, network and the fullest filesystems."""
    mem, swap = snap.get("memory", {}), snap.get("swap", {})
    load, net = snap.get("load", {}), snap.get("network", {}).get("total", {})
    lines: list[RenderableType] = [
        _bar("mem", mem.get("percent", 0.0), width - 30,
             f"{human_bytes(mem.get('used_bytes'))}/{human_bytes(mem.get('total_bytes'))}"),
        _bar("swap", swap.get("percent", 0.0), width - 30,
             f"{human_bytes(swap.get('used_bytes'))}/{human_bytes(swap.get('total_bytes'))}"),
        Text.assemble(("load ", "bold cyan"),
                      f"{load.get('load1', 0.0):.2f} {load.get('load5', 0.0):.2f} "
                      f"{load.get('load15', 0.0):.2f}", no_wrap=True),
        Text.assemble(("net  ", "bold cyan"),
                      f"rx {human_rate(net.get('bytes_recv_per_s', 0.0))}  "
                      f"tx {human_rate(net.get('bytes_sent_per_s', 0.0))}", no_wrap=True),
    ]
    disks = sorted(snap.get("disks", {}).get("disks", []),
                   key=lambda d: -(d.get("percent") or 0.0))
    for disk in disks[:2]:
        lines.append(_bar("disk", disk.get("percent") or 0.0, width - 30,
                          f"{disk.get('mountpoint', '')} {human_bytes(disk.get('free_bytes'))}"
                          " free"))
    return lines


def _alerts(snap: dict[str, Any]) -> list[RenderableType]:
    """The monitor's components not ok, most severe first."""
    rows = [r for r in snap.get("monitor", {}).get("checks", []) if r.get("state") != "ok"]
    rows.sort(key=lambda r: r.get("state") != "critical")
    out: list[RenderableType] = []
    for r in rows[:MAX_ALERTS]:
        style = "bold red" if r.get("state") == "critical" else "bold yellow"
        value = r.get("value")
        shown = f"{value:.1f}" if isinstance(value, float) else str(value)
        out.append(Text.assemble((f"ALERT {r.get('state', '')} ", style),
                                 f"{r.get('component', r.get('check', ''))} = {shown} "
                                 f"{r.get('unit') or ''}", no_wrap=True,
                                 overflow="ellipsis"))
    if len(rows) > MAX_ALERTS:
        out[-1] = Text(f"... and {len(rows) - MAX_ALERTS + 1} more alerts", style="yellow")
    return out


def _printable(text: str) -> str:
    """``text`` on one line: control characters (newlines in a command line, escape
    sequences) shown as spaces, so a process cannot break or restyle the screen."""
    return "".join(ch if ch.isprintable() else " " for ch in text)


def _processes(snap: dict[str, Any], sort: str, rows: int) -> Table:
    """The top processes by ``sort`` with their command lines."""
    key = "memory_percent" if sort == "memory" else "cpu_percent"
    procs = sorted(snap.get("processes", {}).get("processes", []),
                   key=lambda r: (-(r.get(key) or 0.0), r.get("pid", 0)))
    table = Table(box=None, expand=True, padding=(0, 1), header_style="bold reverse")
    table.add_column("PID", justify="right", no_wrap=True, width=7)
    table.add_column("USER", no_wrap=True, overflow="ellipsis", max_width=9)
    table.add_column("CPU%" + ("▼" if sort == "cpu" else ""), justify="right",
                     no_wrap=True, width=6)
    table.add_column("MEM%" + ("▼" if sort == "memory" else ""), justify="right",
                     no_wrap=True, width=6)
    table.add_column("RSS", justify="right", no_wrap=True, width=9)
    table.add_column("COMMAND", no_wrap=True, overflow="ellipsis", ratio=1)
    for r in procs[:max(rows, 0)]:
        command = " ".join(r.get("cmdline") or []) or f"[{r.get('name', '')}]"
        table.add_row(str(r.get("pid")), Text(_printable(r.get("username") or "")),
                      f"{r.get('cpu_percent') or 0.0:.1f}",
                      f"{r.get('memory_percent') or 0.0:.1f}",
                      human_bytes(r.get("memory_rss_bytes")),
                      Text(_printable(command), no_wrap=True, overflow="ellipsis"))
    return table


def render(snap: dict[str, Any], host: dict[str, Any], sort: str, width: int,
           height: int) -> RenderableType:
    """The whole screen for ``snap`` at ``width`` x ``height``."""
    uptime = time.time() - host["booted_at"] if "booted_at" in host else None
    procs = snap.get("processes", {})
    header = Text.assemble(
        ("xsys top ", "bold reverse"), f" {host.get('hostname', '')}",
        f"  up {human_seconds(uptime)}" if uptime is not None else "",
        f"  {procs.get('total', 0)} procs", f"  sort:{sort}",
        ("  [c]pu [m]em [q]uit", "dim"), f"  #{snap.get('seq', 0)}",
        no_wrap=True, overflow="ellipsis")
    left_w = width // 2
    side = _side(snap, width - left_w)
    cpu, cpu_rows = _cpu_bars(snap.get("cpu", {}), left_w, max(len(side), 4))
    top = Table.grid(padding=(0, 1), expand=True)
    top.add_column(ratio=1)
    top.add_column(ratio=1)
    top.add_row(Group(*cpu), Group(*side))
    used = 1 + max(len(side), cpu_rows)
    alerts = _alerts(snap)
    used += len(alerts) + 1  # the table's header
    return Group(header, top, *alerts, _processes(snap, sort, height - used - 1))


def run(subscribe: Callable[[str], Subscription], host: dict[str, Any], sort: str) -> None:
    """Draw the snapshots of ``subscribe(sort)`` full-screen until ``q`` (Ctrl-C raises
    KeyboardInterrupt); ``c``/``m`` re-subscribe with the processes by cpu/memory (the
    rows on screen are re-sorted at once, the new top list follows at once too)."""
    console = Console()
    latest: dict[str, Any] | None = None
    size = console.size
    sub = subscribe(sort)
    try:
        with cbreak_keys() as keys, Live(console=console, screen=True, auto_refresh=False,
                                         redirect_stdout=False,
                                         redirect_stderr=False) as live:
            live.update(Text("xsys top: waiting for the first snapshot..."), refresh=True)
            while True:
                dirty = False
                for key in keys.read().lower():
                    if key == "q":
                        return
                    wanted = {"c": "cpu", "m": "memory"}.get(key)
                    if wanted and wanted != sort:
                        sort, dirty = wanted, True
                        sub.close()
                        sub = subscribe(sort)
                note = sub.next(POLL_S)
                if note is not None and note.get("method") == "sys.snapshot":
                    latest, dirty = note, True
                elif note is None and sub.closed:
                    return
                if console.size != size:
                    size, dirty = console.size, True
                if dirty and latest is not None:
                    live.update(render(latest, host, sort, size.width, size.height),
                                refresh=True)
    finally:
        sub.close()
