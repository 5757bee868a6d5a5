#!/usr/bin/env python3
"""Live snapshot benchmark (issue 10, "Performance"): the daemon's CPU added by
``sys.subscribe`` streams at 1 s with the default sections (cpu, memory, swap, load,
disks, network).

One real daemon (``sys.sample_interval_s`` 1, the default config otherwise); its CPU time
is read from ``/proc/<pid>/stat`` (utime + stime, all threads) over a ``--duration``
window (default 20 s) with 0 subscribers (the reference, measured in the same run), then
1, then 100 (``--many``), each subscriber its own connection from this process (an
``AsyncClient`` reading every snapshot). Added CPU = the window's CPU percent of one core
minus the reference's. Targets: 1 subscriber < 0.5 %, 100 < 3 %. The snapshots received
and the sampler passes (``sys.live_stats``) are reported too: 100 subscribers at 1 s
still cost one sampling per second.

Prints a table and writes ``bench/results/live.json`` (``--json-out``).

    .venv/bin/python bench/live.py [--duration 20] [--many 100] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _daemon import cpu_s, spawned_daemon  # noqa: E402

from xsys.client import AsyncClient, Client  # noqa: E402

TARGETS = {1: 0.5, 100: 3.0}


async def _reader(sub: Any, counts: list[int], i: int) -> None:
    async for note in sub:
        if note.get("method") == "sys.snapshot":
            counts[i] += 1


async def window(sock: str, pid: int, subscribers: int, seconds: float) -> dict[str, Any]:
    """The daemon's CPU over ``seconds`` with ``subscribers`` live at 1 s."""
    clients = [AsyncClient(sock, timeout=30) for _ in range(subscribers)]
    for c in clients:
        await c.connect()
    subs = [await c.sys.subscribe(interval_s=1.0) for c in clients]
    counts = [0] * subscribers
    readers = [asyncio.create_task(_reader(s, counts, i)) for i, s in enumerate(subs)]
    await asyncio.sleep(1.5)  # the first snapshots and the connections settle
    with Client(sock) as c:
        passes0 = c.sys.live_stats()["sampler_passes"]
    got0 = sum(counts)
    cpu0, t0 = cpu_s(pid), time.monotonic()
    await asyncio.sleep(seconds)
    cpu1, t1 = cpu_s(pid), time.monotonic()
    got = sum(counts) - got0
    with Client(sock) as c:
        stats = c.sys.live_stats()
    for r in readers:
        r.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    for s in subs:
        await s.aclose()
    for c in clients:
        await c.close()
    wall = t1 - t0
    return {"subscribers": subscribers, "seconds": round(wall, 3),
            "cpu_s": round(cpu1 - cpu0, 4),
            "cpu_percent_of_one_core": round((cpu1 - cpu0) / wall * 100, 3),
            "snapshots_received": got,
            "snapshots_per_subscriber_per_s": round(got / subscribers / wall, 3)
            if subscribers else 0.0,
            "sampler_passes": stats["sampler_passes"] - passes0,
            "dropped": stats["dropped"]}


async def run(sock: str, duration: float, many: int, rounds: int) -> list[dict[str, Any]]:
    with Client(sock) as c:
        pid = c.rpc.hello()["pid"]
    await asyncio.sleep(2.0)  # startup work (imports, first samples) out of the windows
    out = []
    for _ in range(rounds):
        for n in (0, 1, many):
            print(f"  {n} subscribers, {duration:g} s ...", flush=True)
            out.append(await window(sock, pid, n, duration))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per window")
    ap.add_argument("--many", type=int, default=100, help="subscribers of the last window")
    ap.add_argument("--rounds", type=int, default=1, help="repeat the three windows")
    ap.add_argument("--json-out", default=str(ROOT / "bench" / "results" / "live.json"))
    args = ap.parse_args()
    TARGETS.setdefault(args.many, 3.0)
    with tempfile.TemporaryDirectory(prefix="xsys-bench-") as tmp:
        config = {"server": {"socket": f"{tmp}/xsys.sock", "log_level": "WARNING"},
                  "sys": {"sample_interval_s": 1.0}}
        with spawned_daemon(config, Path(tmp)) as sock:
            windows = asyncio.run(run(sock, args.duration, args.many, args.rounds))

    rows = []
    by_n: dict[int, list[dict[str, Any]]] = {}
    for w in windows:
        by_n.setdefault(w["subscribers"], []).append(w)
    reference = sum(w["cpu_percent_of_one_core"] for w in by_n[0]) / len(by_n[0])
    summary: dict[str, Any] = {"reference_cpu_percent": round(reference, 3)}
    for n, ws in sorted(by_n.items()):
        pct = sum(w["cpu_percent_of_one_core"] for w in ws) / len(ws)
        added = pct - reference
        target = TARGETS.get(n)
        verdict = "" if target is None else (
            f"target < {target:g} %  " + ("OK" if added < target else "MISSED"))
        rate = sum(w["snapshots_per_subscriber_per_s"] for w in ws) / len(ws)
        passes = sum(w["sampler_passes"] for w in ws) / sum(w["seconds"] for w in ws)
        summary[str(n)] = {"cpu_percent": round(pct, 3), "added_percent": round(added, 3),
                           "snapshots_per_subscriber_per_s": round(rate, 3),
                           "sampler_passes_per_s": round(passes, 3)}
        rows.append((f"{n} subscribers at 1 s", f"{pct:.2f} %",
                     "reference" if n == 0 else f"{added:+.2f} %", f"{rate:.2f}/s",
                     f"{passes:.2f}/s", verdict))
    header = ("window", "daemon CPU", "added", "snaps/sub", "samples", "")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    print()
    for r in [header, *rows]:
        print("  ".join(f"{r[i]:<{widths[i]}}" if i == 0 else f"{r[i]:>{widths[i]}}"
                        for i in range(5)) + f"  {r[5]}")
    results = {"when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "platform": platform.platform(),
                           "loadavg": os.getloadavg()},
               "duration_s": args.duration, "summary": summary, "windows": windows}
    out = Path(args.json_out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
