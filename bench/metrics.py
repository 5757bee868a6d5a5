"""App metrics benchmark (issue 9): ``metrics.inc`` one by one next to ``rpc.ping``,
``metrics.push`` ingest in batches of 100, and the ``/metrics`` scrape with 10,000 app
series, beside node_exporter's own scrape when Debian's ``prometheus-node-exporter`` is
installed (skipped with the reason otherwise).

One daemon (``python -m xsys serve``, HTTP gateway on a free loopback port) serves every
measurement of the run:

- latency: a minimal blocking client (pre-encoded frames, one request at a time on one
  connection) alternates rounds of ``rpc.ping`` and ``metrics.inc`` (same counter series)
  so both see the same machine state; p50/p99 per call and the ratio of the p50s
  (goal: inc within 1.5x of ping);
- ingest: one connection keeps ``--depth`` ``metrics.push`` frames of 100 samples each in
  flight (a mix of inc, set, add and observe over 1,000 series); samples/s (goal >=
  200,000);
- scrape: 10,000 app series (4,000 counter, 4,000 gauge, 2,000 histogram series with the
  default buckets) on top of the daemon's own metrics; ``GET /metrics`` ``--scrapes``
  times, p50/p99 ms (goal p50 < 50 ms); node_exporter (started on a free port with its
  defaults) scraped the same way.

Prints a table and writes ``bench/results/metrics.json`` (``--json-out``).

    .venv/bin/python bench/metrics.py [--seconds 3] [--rounds 5] [--scrapes 30]
"""

# ruff: noqa: E402
from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import socket
import struct
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _daemon import NODE_EXPORTER, free_port, node_exporter, spawned_daemon
from _stats import percentile

from xsys.client import Client
from xsys.protocol import encode_request

HEADER = struct.Struct(">I")
RECV_BUF = 1 << 20
BATCH = 100
SERIES_FOR_PUSH = 1000
GOAL_INC_RATIO = 1.5
GOAL_PUSH_SAMPLES_S = 200_000
GOAL_SCRAPE_P50_MS = 50.0



def _read_frame(sock: socket.socket, buf: bytearray, mv: memoryview) -> None:
    n = sock.recv_into(buf)
    while True:
        if n >= 4 and n >= 4 + HEADER.unpack_from(buf)[0]:
            return
        got = sock.recv_into(mv[n:])
        if not got:
            raise ConnectionError("server closed the connection")
        n += got


def latency_rounds(path: str, seconds: float, rounds: int) -> dict[str, list[int]]:
    """Alternating rounds of ``rpc.ping`` and ``metrics.inc``; latencies in ns by method."""
    frames = {
        "rpc.ping": encode_request(1, "rpc.ping"),
        "metrics.inc": encode_request(1, "metrics.inc", {
            "name": "bench_calls_total", "value": 1, "labels": {"job": "bench"}}),
    }
    out: dict[str, list[int]] = {m: [] for m in frames}
    buf = bytearray(RECV_BUF)
    mv = memoryview(buf)
    clock = time.perf_counter_ns
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        for frame in frames.values():  # warm-up
            for _ in range(2000):
                sock.sendall(frame)
                _read_frame(sock, buf, mv)
        per_round = int(seconds / rounds / len(frames) * 1e9)
        for _ in range(rounds):
            for method, frame in frames.items():
                lat = out[method]
                start = t = clock()
                while t - start < per_round:
                    sock.sendall(frame)
                    _read_frame(sock, buf, mv)
                    t2 = clock()
                    lat.append(t2 - t)
                    t = t2
    return out


def push_frames(count: int) -> list[bytes]:
    """``count`` distinct-id ``metrics.push`` frames of ``BATCH`` samples each."""
    frames = []
    for i in range(count):
        samples: list[dict[str, Any]] = []
        for j in range(BATCH):
            k = (i * BATCH + j) % SERIES_FOR_PUSH
            lab = {"instance": f"i{k % 250}"}
            op = ("inc", "set", "add", "observe")[k % 4]
            name = {"inc": "bench_push_total", "set": "bench_push_gauge",
                    "add": "bench_push_level", "observe": "bench_push_seconds"}[op]
            samples.append({"op": op, "name": name, "value": 0.001 * (j + 1),
                            "labels": lab})
        frames.append(encode_request(i + 1, "metrics.push", {"samples": samples}))
    return frames


def push_rate(path: str, seconds: float, depth: int) -> dict[str, float]:
    """Samples/s of ``metrics.push`` with ``depth`` frames in flight on one connection."""
    frames = push_frames(depth * 4)
    buf = bytearray(RECV_BUF)
    mv = memoryview(buf)
    unpack = HEADER.unpack_from
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        sock.sendall(b"".join(frames[:depth]))
        nxt, outstanding, done, have = depth, depth, 0, 0
        errors = 0
        t0 = time.perf_counter()
        warm_end = t0 + min(1.0, seconds / 3)
        end_at = warm_end + seconds
        start, base = 0.0, 0
        measuring, sending, rate = False, True, 0.0
        while outstanding:
            got = sock.recv_into(mv[have:])
            if not got:
                raise ConnectionError("server closed the connection")
            have += got
            pos = k = 0
            while have - pos >= 4:
                need = 4 + unpack(buf, pos)[0]
                if have - pos < need:
                    break
                if b"error" in bytes(buf[pos + 4: pos + min(need, 64)]):
                    errors += 1
                pos += need
                k += 1
            if pos:
                buf[: have - pos] = buf[pos:have]
                have -= pos
            done += k
            outstanding -= k
            now = time.perf_counter()
            if not measuring and now >= warm_end:
                measuring, start, base = True, now, done
            if sending and measuring and now >= end_at:
                sending = False
                rate = (done - base) * BATCH / (now - start)
            if sending and k:
                sock.sendall(b"".join(frames[(nxt + n) % len(frames)] for n in range(k)))
                nxt += k
                outstanding += k
    return {"samples_per_s": rate, "batches": done, "error_answers": errors}


def fill_series(path: str) -> int:
    """10,000 app series: 4,000 counter, 4,000 gauge, 2,000 histogram (default buckets)."""
    with Client(path) as c:
        for fam in range(10):
            c.metrics.push(samples=[
                {"op": "inc", "name": f"bench_app{fam}_requests_total", "value": 1,
                 "labels": {"route": f"/r{i}", "code": "200"}} for i in range(400)])
            c.metrics.push(samples=[
                {"op": "set", "name": f"bench_app{fam}_queue_depth", "value": i,
                 "labels": {"queue": f"q{i}"}} for i in range(400)])
            c.metrics.push(samples=[
                {"op": "observe", "name": f"bench_app{fam}_latency_seconds",
                 "value": 0.01 * (i % 50), "labels": {"route": f"/r{i}"}}
                for i in range(200)])
        series: int = c.metrics.list()["series"]
        return series


def scrape_times(url: str, count: int) -> dict[str, float]:
    """``count`` GETs of ``url`` after 3 warm-ups: p50/p99/min ms and the body size."""
    times: list[float] = []
    size = 0
    for i in range(count + 3):
        t = time.perf_counter()
        with urllib.request.urlopen(url, timeout=60) as r:
            body = r.read()
        if i >= 3:
            times.append((time.perf_counter() - t) * 1000)
        size = len(body)
    return {"p50_ms": percentile(times, 0.5), "p99_ms": percentile(times, 0.99),
            "min_ms": min(times), "bytes": size,
            "lines": body.count(b"\n") - body.count(b"\n#")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    ap.add_argument("--rounds", type=int, default=6, help="ping/inc alternations")
    ap.add_argument("--depth", type=int, default=8, help="push frames in flight")
    ap.add_argument("--scrapes", type=int, default=30)
    ap.add_argument("--json-out", default=str(ROOT / "bench" / "results" / "metrics.json"))
    args = ap.parse_args()

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="xsys-bm-") as tmp:
        cfg = {"server": {"socket": f"{tmp}/xsys.sock", "log_level": "WARNING"},
               "http": {"enabled": True, "port": port},
               "metrics": {"max_series": 100_000}}
        with spawned_daemon(cfg, Path(tmp)) as sock:
            print("latency: rpc.ping vs metrics.inc ...", file=sys.stderr)
            lat = latency_rounds(sock, args.seconds * 2, args.rounds)
            print("ingest: metrics.push ...", file=sys.stderr)
            push = push_rate(sock, args.seconds, args.depth)
            print("scrape: 10,000 app series ...", file=sys.stderr)
            base_series = fill_series(sock)
            xsys_scrape = scrape_times(f"http://127.0.0.1:{port}/metrics", args.scrapes)
            xsys_scrape["app_series"] = base_series
        with node_exporter() as url:
            node: dict[str, Any]
            if url is None:
                node = {"skipped": f"{NODE_EXPORTER} is not installed (Debian package "
                                   f"{NODE_EXPORTER}; `make test-deps`)"}
            else:
                node = scrape_times(url, args.scrapes)

    stats = {m: {"p50_us": percentile(v, 0.5) / 1000, "p99_us": percentile(v, 0.99) / 1000,
                 "calls": len(v)} for m, v in lat.items()}
    ratio = stats["metrics.inc"]["p50_us"] / stats["rpc.ping"]["p50_us"]
    rows = [
        ("rpc.ping p50/p99 (us)", f"{stats['rpc.ping']['p50_us']:.1f} / "
                                  f"{stats['rpc.ping']['p99_us']:.1f}", "", ""),
        ("metrics.inc p50/p99 (us)", f"{stats['metrics.inc']['p50_us']:.1f} / "
                                     f"{stats['metrics.inc']['p99_us']:.1f}", "", ""),
        ("inc/ping p50 ratio", f"{ratio:.2f}", f"<= {GOAL_INC_RATIO}",
         "ok" if ratio <= GOAL_INC_RATIO else "MISSED"),
        (f"metrics.push samples/s (batches of {BATCH})", f"{push['samples_per_s']:,.0f}",
         f">= {GOAL_PUSH_SAMPLES_S:,}",
         "ok" if push["samples_per_s"] >= GOAL_PUSH_SAMPLES_S else "MISSED"),
        (f"xsys /metrics p50/p99 (ms), {base_series} app series",
         f"{xsys_scrape['p50_ms']:.1f} / {xsys_scrape['p99_ms']:.1f}",
         f"p50 < {GOAL_SCRAPE_P50_MS:g}",
         "ok" if xsys_scrape["p50_ms"] < GOAL_SCRAPE_P50_MS else "MISSED"),
        ("node_exporter /metrics p50/p99 (ms)",
         node.get("skipped") or f"{node['p50_ms']:.1f} / {node['p99_ms']:.1f}", "", ""),
    ]
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    print(f"{'measurement':<{width}}  {'value':>{vwidth}}  goal")
    for name, value, goal, verdict in rows:
        print(f"{name:<{width}}  {value:>{vwidth}}  {goal} {verdict}".rstrip())
    if "p50_ms" in node:
        print(f"(xsys body {xsys_scrape['bytes']:,} B / {xsys_scrape['lines']:,} samples; "
              f"node_exporter {node['bytes']:,} B / {node['lines']:,} samples)")

    result = {
        "benchmark": "metrics",
        "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": __import__("os").cpu_count()},
        "latency": stats, "inc_ping_ratio": ratio, "push": push | {"batch": BATCH,
                                                                 "depth": args.depth},
        "scrape_xsys": xsys_scrape, "scrape_node_exporter": node,
        "goals": {"inc_ping_ratio_max": GOAL_INC_RATIO,
                  "push_samples_per_s_min": GOAL_PUSH_SAMPLES_S,
                  "scrape_p50_ms_max": GOAL_SCRAPE_P50_MS},
        "met": {"inc_ping_ratio": ratio <= GOAL_INC_RATIO,
                "push_samples_per_s": push["samples_per_s"] >= GOAL_PUSH_SAMPLES_S,
                "scrape_p50_ms": xsys_scrape["p50_ms"] < GOAL_SCRAPE_P50_MS},
    }
    out = Path(args.json_out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
