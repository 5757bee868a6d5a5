#!/usr/bin/env python3
"""Supervised workers benchmark (issue 14, "Performance"): the time from a worker's crash
to its replacement being up (target: backoff + under 50 ms), and the daemon's CPU while
it supervises 32 workers (target: under 1 % of one core for the supervision).

Respawn: a daemon (``python -m xsys serve``) runs one group whose worker (``python -I -S``,
stdlib only) sends a UDP datagram ``up <time>`` to this process as its first act, lives
``--life`` seconds, sends ``crash <time>`` and exits with code 1; the group restarts it
after ``backoff.initial_s`` (``--backoff``). For each crash: crash -> ``started`` (the
daemon's ``proc.event``, the new process exists) and crash -> ``up`` (the new worker runs
its first line). The reference, measured in the same run (one after each respawn): the same
worker started by this process directly (``subprocess.Popen`` -> ``up``), i.e. what the
interpreter's start costs whoever starts it. The supervision's share = crash -> up -
backoff - reference.

Overhead: the daemon's CPU (psutil ``cpu_times`` of its process, all threads) over
``--duration`` s after a warm-up, with 32 sleeping workers (its sampler reads each
worker's CPU and RSS every ``proc.sample_interval_s`` = 1 s) and without (the baseline).

Prints a table and writes ``bench/results/proc.json`` (``--json-out``).

    .venv/bin/python bench/proc.py [--crashes 30] [--backoff 0.1] [--workers 32]
                                   [--duration 30]
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _daemon import spawned_daemon  # noqa: E402
from _stats import percentile, report  # noqa: E402

from xsys.client import Client  # noqa: E402

RESPAWN_TARGET_MS = 50.0  # past the backoff
OVERHEAD_TARGET = 1.0  # percent of one core

WORKER = """
import os, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
addr = ("127.0.0.1", int(sys.argv[1]))
s.sendto(b"up %f %d" % (time.time(), os.getpid()), addr)
if len(sys.argv) > 2:
    time.sleep(float(sys.argv[2]))
    s.sendto(b"crash %f %d" % (time.time(), os.getpid()), addr)
    os._exit(1)
time.sleep(3600)
"""


def receive(sock: socket.socket, kind: bytes, timeout_s: float = 10.0) -> float:
    """The time carried by the next datagram of ``kind``."""
    sock.settimeout(timeout_s)
    while True:
        data, _ = sock.recvfrom(256)
        word, ts, _pid = data.split()
        if word == kind:
            return float(ts)


def reference_ms(script: Path, port: int, sock: socket.socket, n: int) -> list[float]:
    """Popen -> ``up`` of the worker started by this process, ``n`` times (ms)."""
    out = []
    for _ in range(n):
        t0 = time.time()
        proc = subprocess.Popen([sys.executable, "-I", "-S", str(script), str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        up = receive(sock, b"up")
        out.append((up - t0) * 1000)
        proc.kill()
        proc.wait()
    return out


def respawn(workdir: Path, script: Path, port: int, sock: socket.socket, crashes: int,
            backoff: float, life: float) -> dict[str, Any]:
    """Crash -> started / up times (ms) over ``crashes`` crashes, and after each up one
    reference start (its own UDP socket), under the same load."""
    ref_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ref_sock.bind(("127.0.0.1", 0))
    ref_port = ref_sock.getsockname()[1]
    reference: list[float] = []
    group = {"name": "crashy", "command": [sys.executable, "-I", "-S", str(script),
                                           str(port), str(life)],
             "restart": "always", "backoff": {"initial_s": backoff, "max_s": backoff},
             "max_restarts": 100_000, "restart_window_s": 1.0}
    config = {"server": {"socket": str(workdir / "xsys.sock"), "log_level": "WARNING"},
              "monitor": {"enabled": False}, "proc": {"groups": [group]}}
    to_started: list[float] = []
    to_up: list[float] = []
    with spawned_daemon(config, workdir) as path, Client(path, timeout=30) as c:
        sub = c.subscribe("proc.subscribe", {"name": "crashy"})
        receive(sock, b"up")
        for _ in range(crashes):
            crash = receive(sock, b"crash")
            for event in sub:
                if event.get("event") == "started":
                    to_started.append((float(event["at"]) - crash) * 1000)
                    break
            to_up.append((receive(sock, b"up") - crash) * 1000)
            reference += reference_ms(script, ref_port, ref_sock, 1)
        sub.close()
    ref_sock.close()
    return {"crash_to_started_ms": to_started, "crash_to_up_ms": to_up,
            "reference_ms": reference}


def overhead(workdir: Path, script: Path, port: int, workers: int, duration: float,
             warmup: float) -> dict[str, Any]:
    """The daemon's CPU over ``duration`` s supervising ``workers`` sleeping workers."""
    groups = [{"name": "idle", "command": [sys.executable, "-I", "-S", str(script),
                                           str(port)], "instances": workers}] \
        if workers else []
    config = {"server": {"socket": str(workdir / "xsys.sock"), "log_level": "WARNING"},
              "monitor": {"enabled": False},
              "proc": {"groups": groups, "sample_interval_s": 1.0}}
    with spawned_daemon(config, workdir) as path, Client(path, timeout=30) as c:
        pid = c.call("rpc.hello")["pid"]
        proc = psutil.Process(pid)
        time.sleep(warmup)
        t0, w0 = proc.cpu_times(), time.monotonic()
        time.sleep(duration)
        t1, elapsed = proc.cpu_times(), time.monotonic() - w0
        running = sum(g["running"] for g in c.call("proc.list")["groups"])
        rss = proc.memory_info().rss
    cpu_s = (t1.user - t0.user) + (t1.system - t0.system)
    return {"workers": running, "seconds": elapsed, "cpu_s": cpu_s,
            "cpu_percent_of_one_core": 100.0 * cpu_s / elapsed, "rss_bytes": rss}


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": percentile(values, 0.5),
            "p90": percentile(values, 0.9), "max": max(values) if values else 0.0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--crashes", type=int, default=30)
    ap.add_argument("--backoff", type=float, default=0.1, help="backoff.initial_s")
    ap.add_argument("--life", type=float, default=0.2, help="seconds a worker lives")
    ap.add_argument("--workers", type=int, default=32)
    ap.add_argument("--duration", type=float, default=30.0, help="CPU window, seconds")
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--json-out", default=str(ROOT / "bench" / "results" / "proc.json"))
    args = ap.parse_args()
    results: dict[str, Any] = {
        "benchmark": "proc",
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": psutil.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "settings": vars(args) | {"json_out": None},
        "targets": {"respawn_ms_past_backoff": RESPAWN_TARGET_MS,
                    "overhead_percent_of_one_core": OVERHEAD_TARGET},
    }
    with tempfile.TemporaryDirectory(prefix="xsys-bench-") as tmp, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        base = Path(tmp)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        script = base / "worker.py"
        script.write_text(WORKER)
        print(f"respawn: {args.crashes} crashes, backoff {args.backoff:g}s, each followed by "
              "a reference start ...", flush=True)
        (base / "respawn").mkdir()
        times = respawn(base / "respawn", script, port, sock, args.crashes, args.backoff,
                        args.life)
        ref = times.pop("reference_ms")
        for name in ("with", "without"):
            (base / name).mkdir()
        print(f"daemon CPU with {args.workers} workers over {args.duration:g}s ...",
              flush=True)
        on = overhead(base / "with", script, port, args.workers, args.duration, args.warmup)
        print(f"daemon CPU without workers over {args.duration:g}s ...", flush=True)
        off = overhead(base / "without", script, port, 0, args.duration, args.warmup)
    backoff_ms = args.backoff * 1000
    started = summary(times["crash_to_started_ms"])
    up = summary(times["crash_to_up_ms"])
    reference = summary(ref)
    share = [u - backoff_ms - reference["p50"] for u in times["crash_to_up_ms"]]
    past_backoff = summary([s - backoff_ms for s in times["crash_to_started_ms"]])
    added = on["cpu_percent_of_one_core"] - off["cpu_percent_of_one_core"]
    results.update(reference_start_ms=reference, crash_to_started_ms=started,
                   crash_to_up_ms=up, started_past_backoff_ms=past_backoff,
                   supervision_share_ms=summary(share), with_workers=on,
                   without_workers=off, supervision_cpu_percent_of_one_core=added,
                   raw={"reference_ms": ref, **times})
    respawn_ok = past_backoff["p90"] < RESPAWN_TARGET_MS
    cpu_ok = added < OVERHEAD_TARGET
    rows = [
        ("crash -> replacement started (daemon's event)",
         f"p50 {started['p50']:.1f} ms  p90 {started['p90']:.1f} ms",
         f"backoff {backoff_ms:g} ms"),
        ("  of which past the backoff", f"p50 {past_backoff['p50']:.1f} ms  "
         f"p90 {past_backoff['p90']:.1f} ms",
         f"target < {RESPAWN_TARGET_MS:g} ms  " + ("OK" if respawn_ok else "MISSED")),
        ("crash -> replacement running its first line",
         f"p50 {up['p50']:.1f} ms  p90 {up['p90']:.1f} ms", ""),
        ("reference: interpreter start, Popen -> first line",
         f"p50 {reference['p50']:.1f} ms  p90 {reference['p90']:.1f} ms", "same run"),
        ("supervision's share (up - backoff - reference p50)",
         f"p50 {percentile(share, 0.5):.1f} ms  p90 {percentile(share, 0.9):.1f} ms", ""),
        (f"daemon CPU, {on['workers']} workers",
         f"{on['cpu_percent_of_one_core']:.2f} % of a core", ""),
        ("daemon CPU, no workers (baseline)",
         f"{off['cpu_percent_of_one_core']:.2f} % of a core", ""),
        ("supervision's CPU share", f"{added:.2f} % of a core",
         f"target < {OVERHEAD_TARGET:g} %  " + ("OK" if cpu_ok else "MISSED")),
        (f"daemon RSS, {on['workers']} workers", f"{on['rss_bytes'] / 2**20:.1f} MiB", ""),
    ]
    report(rows, results, args.json_out)
    return 0 if respawn_ok and cpu_ok else 1


if __name__ == "__main__":
    sys.exit(main())
