#!/usr/bin/env python3
"""Service checks benchmark (issue 9, "Performance"): the daemon's CPU with 100 service
checks at 5 s intervals, target under 2 % of one core.

The bench process serves the targets (TCP listeners and an aiohttp server: their CPU is
not the daemon's); the daemon (``python -m xsys serve``, its own sampler at 1 s) runs
``--checks`` checks of the ``--mix`` kinds every ``--interval`` seconds. The daemon's CPU
(psutil ``cpu_times`` of its process, all threads) is measured over ``--duration``
seconds after a warm-up, once with the checks and once without them (the baseline), and
``checks.status`` confirms every check ran and is up.

Prints a table and writes ``bench/results/checks.json`` (``--json-out``).

    .venv/bin/python bench/checks.py [--duration 60] [--checks 100] [--interval 5]
                                     [--mix tcp=60,http=30,process=5,command=5]
"""

# ruff: noqa: E402
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _daemon import spawned_daemon
from _stats import report

from xsys.client import Client

TARGET = 2.0  # percent of one core


class Targets:
    """TCP listeners and an HTTP server on 127.0.0.1 in a thread of their own."""

    def __init__(self, tcp: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.tcp_ports: list[int] = []
        self.http_port = 0
        self._ready = threading.Event()
        self._tcp = tcp
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(30)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self._ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        async def close(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.close()

        for _ in range(self._tcp):
            server = await asyncio.start_server(close, "127.0.0.1", 0)
            self.tcp_ports.append(server.sockets[0].getsockname()[1])

        async def health(_: web.Request) -> web.Response:
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_get("/health", health)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.http_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


def parse_mix(text: str, total: int) -> dict[str, int]:
    """``tcp=60,http=30,...`` (weights) -> counts summing to ``total``."""
    weights = {k: float(v) for k, v in (p.split("=") for p in text.split(","))}
    unknown = set(weights) - {"tcp", "http", "process", "command"}
    if unknown:
        raise SystemExit(f"unknown kinds in --mix: {', '.join(sorted(unknown))}")
    whole = sum(weights.values())
    counts = {k: int(total * w / whole) for k, w in weights.items()}
    first = next(iter(counts))
    counts[first] += total - sum(counts.values())
    return counts


def checks_config(mix: dict[str, int], targets: Targets, interval: float) -> list[Any]:
    """The ``checks`` list: ``mix`` counts of each kind against ``targets``."""
    out: list[dict[str, Any]] = []
    for kind, count in mix.items():
        for i in range(count):
            check: dict[str, Any] = {"name": f"{kind}-{i}", "interval_s": interval,
                                     "timeout_s": 2}
            if kind == "tcp":
                check["tcp"] = f"127.0.0.1:{targets.tcp_ports[i % len(targets.tcp_ports)]}"
            elif kind == "http":
                check["http"] = {"url": f"http://127.0.0.1:{targets.http_port}/health",
                                 "status": [200, 299], "body_contains": "ok"}
            elif kind == "process":
                check["process"] = {"pidfile": str(targets_pidfile())}
            else:
                check["command"] = {"argv": ["true"]}
            out.append(check)
    return out


def targets_pidfile() -> Path:
    """A pidfile naming this bench process (the process checks' target)."""
    path = Path(tempfile.gettempdir()) / f"xsys-bench-checks-{os.getpid()}.pid"
    path.write_text(str(os.getpid()))
    return path


def measure(checks: list[Any], workdir: Path, duration: float,
            warmup: float) -> dict[str, Any]:
    """The daemon's CPU over ``duration`` s with ``checks``."""
    config = {"server": {"socket": str(workdir / "xsys.sock"), "log_level": "WARNING"},
              "sys": {"sample_interval_s": 1.0}, "monitor": {"enabled": False},
              "checks": checks}
    with spawned_daemon(config, workdir) as sock, Client(sock, timeout=30) as c:
        pid = c.call("rpc.hello")["pid"]
        proc = psutil.Process(pid)
        time.sleep(warmup)
        t0, w0 = proc.cpu_times(), time.monotonic()
        time.sleep(duration)
        t1, elapsed = proc.cpu_times(), time.monotonic() - w0
        rows = c.call("checks.status")["checks"]
        rss = proc.memory_info().rss
    cpu_s = (t1.user - t0.user) + (t1.system - t0.system)
    states: dict[str, int] = {}
    for r in rows:
        states[r["state"]] = states.get(r["state"], 0) + 1
    latencies = sorted(r["latency_ms"] for r in rows if r["latency_ms"] is not None)
    return {"checks": len(rows), "seconds": elapsed, "cpu_s": cpu_s,
            "cpu_percent_of_one_core": 100.0 * cpu_s / elapsed, "rss_bytes": rss,
            "states": states,
            "latency_ms_max": latencies[-1] if latencies else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=60.0,
                    help="seconds of CPU measurement per run (default 60)")
    ap.add_argument("--warmup", type=float, default=6.0, help="seconds before measuring")
    ap.add_argument("--checks", type=int, default=100)
    ap.add_argument("--interval", type=float, default=5.0, help="interval_s of each check")
    ap.add_argument("--mix", default="tcp=60,http=30,process=5,command=5",
                    help="kinds and their weights (tcp, http, process, command)")
    ap.add_argument("--json-out", default=str(ROOT / "bench" / "results" / "checks.json"))
    args = ap.parse_args()

    mix = parse_mix(args.mix, args.checks)
    targets = Targets(tcp=min(mix.get("tcp", 0), 20) or 1)
    results: dict[str, Any] = {
        "benchmark": "checks",
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": psutil.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "settings": {"checks": args.checks, "interval_s": args.interval, "mix": mix,
                     "duration_s": args.duration, "warmup_s": args.warmup},
        "target_percent_of_one_core": TARGET,
    }
    try:
        with tempfile.TemporaryDirectory(prefix="xsys-bench-") as tmp:
            base = Path(tmp)
            (base / "with").mkdir()
            (base / "without").mkdir()
            print(f"daemon CPU with {args.checks} checks every {args.interval:g}s "
                  f"({', '.join(f'{k} {v}' for k, v in mix.items())}) over "
                  f"{args.duration:g}s ...", flush=True)
            results["with_checks"] = measure(
                checks_config(mix, targets, args.interval), base / "with", args.duration,
                args.warmup)
            print(f"daemon CPU without checks over {args.duration:g}s ...", flush=True)
            results["without_checks"] = measure([], base / "without", args.duration,
                                                args.warmup)
    finally:
        targets.stop()
    on, off = results["with_checks"], results["without_checks"]
    added = on["cpu_percent_of_one_core"] - off["cpu_percent_of_one_core"]
    results["checks_cpu_percent_of_one_core"] = added
    ok = on["cpu_percent_of_one_core"] < TARGET
    rows = [
        (f"daemon CPU, {on['checks']} checks every {args.interval:g}s",
         f"{on['cpu_percent_of_one_core']:.2f} % of a core",
         f"target < {TARGET:g} %  " + ("OK" if ok else "MISSED")),
        ("daemon CPU, no checks (baseline)",
         f"{off['cpu_percent_of_one_core']:.2f} % of a core", ""),
        ("the checks' share", f"{added:.2f} % of a core", ""),
        ("check states at the end", ", ".join(f"{k} {v}" for k, v in on["states"].items()),
         ""),
        ("slowest last probe", f"{on['latency_ms_max'] or 0:.1f} ms", ""),
        ("daemon RSS with checks", f"{on['rss_bytes'] / 2**20:.1f} MiB", ""),
    ]
    report(rows, results, args.json_out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
