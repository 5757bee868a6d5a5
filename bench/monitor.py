#!/usr/bin/env python3
"""Monitor benchmark (issue 4, "Performance"):

1. Cost of one engine tick with every collector on (cpu, memory, swap, load, io, network,
   filesystem, inodes, reboot, boot): wall ms (p50/p95) and CPU ms per tick (process CPU,
   all threads), measured in-process on the real ``MonitorService``; once with its own
   psutil pass per tick (no daemon sampler: the worst case) and once reading the sys
   sampler's snapshot, as the daemon does.
2. The daemon's CPU use with ``monitor.refresh: 1`` and every check on, over
   ``--duration`` seconds (default 60): psutil ``cpu_times`` of the real daemon process
   (which also runs the sys sampler every second), in percent of one core. Target: < 1 %.
3. Latency from a threshold crossing to the webhook receiving the alert: the real daemon
   with ``refresh: 1`` watches a reboot-required flag file; the bench creates the file
   (the crossing) and times the webhook request on a local aiohttp server, ``--crossings``
   times (removing the file in between, waiting for the resolved alert). Target: under
   ``refresh`` + 100 ms.

Prints a table and writes ``bench/results/monitor.json`` (``--json-out``).

    .venv/bin/python bench/monitor.py [--duration 60] [--ticks 50] [--crossings 5]
"""

# ruff: noqa: E402
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _stats import percentile, report

from tests.launcher import DaemonProcess, daemon_env
from xsys.client import Client
from xsys.config import Config, from_dict
from xsys.host import Sampler
from xsys.monitor.service import MonitorService
from xsys.server.app import App

ALL_CHECKS: dict[str, Any] = {
    "cpu": {"enabled": True}, "memory": {"enabled": True}, "swap": {"enabled": True},
    "load": {"enabled": True}, "io": {"enabled": True, "warning": "500MB"},
    "network": {"enabled": True, "warning": "100MB", "exclude": []},
    "filesystem": {"enabled": True}, "inodes": {"enabled": True},
}


# =========================================================================== 1. tick cost


async def _tick_cost(ticks: int, with_sampler: bool, state_dir: Path) -> dict[str, Any]:
    monitor = {**ALL_CHECKS, "enabled": False,
               "reboot": {"state_file": str(state_dir / "boot_time")},
               "alerts": {"console": {"enabled": False}}}
    app = App(from_dict(Config, {"monitor": monitor}))
    sampler = None
    if with_sampler:
        sampler = Sampler(1.0)
        sampler.prime()
        await asyncio.sleep(0.2)
        sampler.sample_now()
    service = MonitorService(app, sampler=sampler)
    await service.start()
    await service.tick()  # warm-up: builds the collectors, primes psutil
    walls: list[float] = []
    cpu_start = time.process_time()
    for _ in range(ticks):
        start = time.perf_counter()
        await service.tick()
        walls.append((time.perf_counter() - start) * 1000)
        await asyncio.sleep(0.02)
    cpu_ms = (time.process_time() - cpu_start) * 1000 / ticks
    samples = len(service.engine.status_rows())
    await service.stop(1.0)
    await app.stop(2.0)
    return {"ticks": ticks, "components": samples, "wall_ms_p50": statistics.median(walls),
            "wall_ms_p95": percentile(walls, 0.95), "cpu_ms_per_tick": cpu_ms}


# =========================================================================== daemon helpers


class Daemon:
    """``python -m xsys serve`` on a temporary socket with the given config (launched by
    ``tests.launcher.DaemonProcess``, ``HOME`` = ``workdir``); started and ready once
    constructed (RuntimeError with its log otherwise)."""

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        self.socket = str(workdir / "xsys.sock")
        config = {"server": {"socket": self.socket, "log_level": "WARNING"}, **config}
        self.config_path = workdir / "config.json"
        self.config_path.write_text(json.dumps(config))
        self.process = DaemonProcess(self.socket, ["--config", str(self.config_path)],
                                     log_path=workdir / "daemon.log",
                                     env=daemon_env(home=workdir))
        try:
            self.process.start(30.0)
        except RuntimeError:
            self.process.stop()
            raise

    @property
    def pid(self) -> int:
        """The daemon's process id."""
        return self.process.pid

    def call(self, method: str, **params: Any) -> Any:
        with Client(self.socket, timeout=10.0) as c:
            return c.call(method, params or None)

    def stop(self) -> None:
        self.process.stop(15)


# =========================================================================== 2. daemon CPU


def _daemon_cpu(duration: float, workdir: Path, monitor_enabled: bool) -> dict[str, Any]:
    monitor = {**ALL_CHECKS, "enabled": monitor_enabled, "refresh": 1,
               "reboot": {"state_file": str(workdir / "boot_time")}}
    d = Daemon(workdir, {"monitor": monitor, "sys": {"sample_interval_s": 1.0}})
    try:
        proc = psutil.Process(d.pid)
        time.sleep(2.0)  # past the startup work
        t0 = proc.cpu_times()
        w0 = time.monotonic()
        time.sleep(duration)
        t1 = proc.cpu_times()
        elapsed = time.monotonic() - w0
        status = d.call("monitor.status")
        rss = proc.memory_info().rss
    finally:
        d.stop()
    cpu_s = (t1.user - t0.user) + (t1.system - t0.system)
    return {"monitor_enabled": monitor_enabled, "seconds": elapsed, "cpu_s": cpu_s,
            "cpu_percent_of_one_core": 100.0 * cpu_s / elapsed, "rss_bytes": rss,
            "ticks": status["ticks"], "components": len(status["checks"])}


# =========================================================================== 3. latency


async def _latency(crossings: int, workdir: Path) -> dict[str, Any]:
    received: list[tuple[float, dict[str, Any]]] = []
    arrived = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        received.append((time.time(), await request.json()))
        arrived.set()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    flag = workdir / "reboot-required"
    refresh = 1.0
    monitor = {"refresh": refresh, "repeat_interval": -1,
               **{k: {"enabled": False} for k in ALL_CHECKS},
               "reboot": {"required_files": [str(flag)], "detect_boot": False,
                          "duration": 0},
               "alerts": {"console": {"enabled": False},
                          "webhook": {"enabled": True, "url": f"http://127.0.0.1:{port}/hook"}}}
    d = await asyncio.to_thread(Daemon, workdir, {"monitor": monitor})
    latencies: list[float] = []
    try:
        await asyncio.sleep(1.5)
        for i in range(crossings):
            # cross at a random phase of the tick grid
            await asyncio.sleep(0.137 * (i + 1) % refresh)
            received.clear()
            arrived.clear()
            crossed = time.time()
            flag.write_text("*** System restart required ***\n")
            await asyncio.wait_for(arrived.wait(), 10 * refresh)
            at, doc = received[0]
            assert doc["alert"]["level"] == "WARNING", doc
            latencies.append((at - crossed) * 1000)
            arrived.clear()
            flag.unlink()
            await asyncio.wait_for(arrived.wait(), 10 * refresh)  # resolved
    finally:
        await asyncio.to_thread(d.stop)
        await runner.cleanup()
    return {"refresh_s": refresh, "crossings": crossings,
            "latency_ms_p50": statistics.median(latencies), "latency_ms_max": max(latencies),
            "latency_ms_all": latencies, "target_ms": refresh * 1000 + 100}


# =========================================================================== main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=60.0,
                    help="seconds of daemon CPU measurement (default 60)")
    ap.add_argument("--ticks", type=int, default=50, help="ticks timed in-process")
    ap.add_argument("--crossings", type=int, default=5, help="threshold crossings timed")
    ap.add_argument("--baseline", action="store_true",
                    help="also measure the daemon's CPU with the monitor disabled")
    ap.add_argument("--json-out", default=str(ROOT / "bench" / "results" / "monitor.json"))
    args = ap.parse_args()

    results: dict[str, Any] = {
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": psutil.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
    }
    with tempfile.TemporaryDirectory(prefix="xsys-bench-") as tmp:
        base = Path(tmp)
        for sub in ("tick", "cpu", "cpu0", "lat"):
            (base / sub).mkdir()
        print(f"tick cost: {args.ticks} ticks with every collector ...", flush=True)
        results["tick_own_sampler"] = asyncio.run(_tick_cost(args.ticks, False, base / "tick"))
        results["tick_daemon_sampler"] = asyncio.run(
            _tick_cost(args.ticks, True, base / "tick"))
        print(f"daemon CPU with refresh 1 over {args.duration:g} s ...", flush=True)
        results["daemon_cpu"] = _daemon_cpu(args.duration, base / "cpu", True)
        if args.baseline:
            results["daemon_cpu_monitor_off"] = _daemon_cpu(args.duration, base / "cpu0", False)
        print(f"crossing -> webhook latency, {args.crossings} crossings ...", flush=True)
        results["latency"] = asyncio.run(_latency(args.crossings, base / "lat"))

    t_own, t_smp = results["tick_own_sampler"], results["tick_daemon_sampler"]
    cpu, lat = results["daemon_cpu"], results["latency"]
    rows = [
        ("tick, own psutil pass (wall p50 / p95)",
         f"{t_own['wall_ms_p50']:.2f} / {t_own['wall_ms_p95']:.2f} ms",
         f"{t_own['components']} components"),
        ("tick, own psutil pass (CPU)", f"{t_own['cpu_ms_per_tick']:.2f} ms", ""),
        ("tick, sampler snapshot (wall p50 / p95)",
         f"{t_smp['wall_ms_p50']:.2f} / {t_smp['wall_ms_p95']:.2f} ms", "as in the daemon"),
        ("tick, sampler snapshot (CPU)", f"{t_smp['cpu_ms_per_tick']:.2f} ms", ""),
        (f"daemon CPU, refresh 1, {cpu['seconds']:.0f} s",
         f"{cpu['cpu_percent_of_one_core']:.2f} % of a core",
         "target < 1 %  " + ("OK" if cpu["cpu_percent_of_one_core"] < 1 else "MISSED")),
    ]
    if "daemon_cpu_monitor_off" in results:
        off = results["daemon_cpu_monitor_off"]
        rows.append(("daemon CPU, monitor off (baseline)",
                     f"{off['cpu_percent_of_one_core']:.2f} % of a core", ""))
    rows.append((f"crossing -> webhook (p50 / max of {lat['crossings']})",
                 f"{lat['latency_ms_p50']:.0f} / {lat['latency_ms_max']:.0f} ms",
                 f"target < {lat['target_ms']:.0f} ms  "
                 + ("OK" if lat["latency_ms_max"] < lat["target_ms"] else "MISSED")))
    report(rows, results, args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
