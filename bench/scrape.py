"""HTTP gateway benchmark (issue 11): ``GET /metrics`` of xsys (node_exporter's families
plus the daemon's own) side by side with Debian's ``prometheus-node-exporter`` scraped
the same way in the same run (skipped with the reason when it is not installed).

One daemon (``python -m xsys serve``, HTTP gateway on a free loopback port, no app
metrics) and one node_exporter (its default collectors, free loopback port):

- scrape: ``--rounds`` rounds, each ``--scrapes`` GETs of xsys then of node_exporter
  (alternating so both see the same machine state), after 3 warm-ups each; p50/p95/min
  ms, body size and sample lines, the ratio of the p50s (goal: xsys p50 < 20 ms);
- the collectors: xsys's per-collector time from the last scrape's
  ``node_scrape_collector_duration_seconds`` (median over the scrapes);
- the event loop: ``rpc.ping`` p50/p99 on the socket while idle and while a thread
  scrapes ``/metrics`` back to back (``2 x --scrapes`` of them; the scrape runs in the
  thread pool: pings should not wait for it, only share the GIL with it).

Prints a table and writes ``bench/results/scrape.json`` (``--json-out``).

    .venv/bin/python bench/scrape.py [--rounds 5] [--scrapes 20] [--pings 2000]
"""

# ruff: noqa: E402
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _daemon import NODE_EXPORTER, free_port, node_exporter, spawned_daemon
from _stats import percentile
from prometheus_client.parser import text_string_to_metric_families

from xsys.client import Client

GOAL_SCRAPE_P50_MS = 20.0



def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as r:
        body: bytes = r.read()
        return body


def timed_gets(url: str, count: int) -> tuple[list[float], bytes]:
    """``count`` GETs of ``url``: their times in ms and the last body."""
    times: list[float] = []
    body = b""
    for _ in range(count):
        t = time.perf_counter()
        body = get(url)
        times.append((time.perf_counter() - t) * 1000)
    return times, body


def summary(times: list[float], body: bytes) -> dict[str, float]:
    return {"p50_ms": percentile(times, 0.5), "p95_ms": percentile(times, 0.95),
            "min_ms": min(times), "scrapes": len(times), "bytes": len(body),
            "lines": body.count(b"\n") - body.count(b"\n#") - int(body.startswith(b"#")),
            "node_lines": sum(1 for line in body.splitlines()
                              if line.startswith(b"node_"))}


def collector_times(body: bytes) -> dict[str, float]:
    """``node_scrape_collector_duration_seconds`` of one scrape, in ms per collector."""
    for fam in text_string_to_metric_families(body.decode()):
        if fam.name == "node_scrape_collector_duration_seconds":
            return {s.labels["collector"]: s.value * 1000 for s in fam.samples}
    return {}


def ping_times(sock: str, count: int, until: Callable[[], bool] | None = None
               ) -> list[float]:
    """At least ``count`` ``rpc.ping`` round trips on one connection (more until
    ``until()`` is true, at most 60 s), in µs."""
    out: list[float] = []
    deadline = time.monotonic() + 60
    with Client(sock) as c:
        while len(out) < count or (until is not None and not until()
                                   and time.monotonic() < deadline):
            t = time.perf_counter()
            c.call("rpc.ping")
            out.append((time.perf_counter() - t) * 1e6)
    return out


def pings_while_scraping(sock: str, url: str, count: int,
                         scrapes: int) -> tuple[list[float], int]:
    """``ping_times`` while another thread GETs ``url`` back to back, until it did
    ``scrapes``; (times, scrapes done)."""
    stop = threading.Event()
    done = [0]

    def scraper() -> None:
        while not stop.is_set():
            get(url)
            done[0] += 1

    worker = threading.Thread(target=scraper, daemon=True)
    worker.start()
    try:
        return ping_times(sock, count, lambda: done[0] >= scrapes), done[0]
    finally:
        stop.set()
        worker.join(60)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--scrapes", type=int, default=20, help="per round and target")
    ap.add_argument("--pings", type=int, default=2000)
    ap.add_argument("--json-out", default=str(ROOT / "bench" / "results" / "scrape.json"))
    args = ap.parse_args()

    port = free_port()
    xsys_url = f"http://127.0.0.1:{port}/metrics"
    xsys_times: list[float] = []
    node_times: list[float] = []
    per_collector: dict[str, list[float]] = {}
    xsys_body = node_body = b""
    node: dict[str, Any]
    with tempfile.TemporaryDirectory(prefix="xsys-bh-") as tmp:
        cfg = {"server": {"socket": f"{tmp}/xsys.sock", "log_level": "WARNING"},
               "http": {"enabled": True, "port": port}}
        with spawned_daemon(cfg, Path(tmp)) as sock, node_exporter() as node_url:
            timed_gets(xsys_url, 3)
            if node_url is not None:
                timed_gets(node_url, 3)
            for r in range(args.rounds):
                print(f"round {r + 1}/{args.rounds} ...", file=sys.stderr)
                for _ in range(args.scrapes):
                    t, xsys_body = timed_gets(xsys_url, 1)
                    xsys_times += t
                    for name, ms in collector_times(xsys_body).items():
                        per_collector.setdefault(name, []).append(ms)
                if node_url is not None:
                    t, node_body = timed_gets(node_url, args.scrapes)
                    node_times += t
            print("rpc.ping idle and while scraping ...", file=sys.stderr)
            idle = ping_times(sock, args.pings)
            busy, busy_scrapes = pings_while_scraping(sock, xsys_url, args.pings,
                                                       args.scrapes * 2)
        xsys = summary(xsys_times, xsys_body)
        if node_url is None:
            node = {"skipped": f"{NODE_EXPORTER} is not installed (Debian package "
                               f"{NODE_EXPORTER}; `make test-deps`)"}
        else:
            node = summary(node_times, node_body)

    ratio = xsys["p50_ms"] / node["p50_ms"] if "p50_ms" in node else None
    collectors = {name: percentile(v, 0.5) for name, v in sorted(per_collector.items())}
    pings = {"idle_p50_us": percentile(idle, 0.5), "idle_p99_us": percentile(idle, 0.99),
             "scraping_p50_us": percentile(busy, 0.5),
             "scraping_p99_us": percentile(busy, 0.99), "scrapes_meanwhile": busy_scrapes}
    met = xsys["p50_ms"] < GOAL_SCRAPE_P50_MS
    rows = [
        ("xsys /metrics p50/p95 (ms)", f"{xsys['p50_ms']:.2f} / {xsys['p95_ms']:.2f}",
         f"p50 < {GOAL_SCRAPE_P50_MS:g} {'ok' if met else 'MISSED'}"),
        ("node_exporter /metrics p50/p95 (ms)",
         node.get("skipped") or f"{node['p50_ms']:.2f} / {node['p95_ms']:.2f}", ""),
        ("xsys/node_exporter p50 ratio", "-" if ratio is None else f"{ratio:.2f}", ""),
        ("xsys sample lines (node_*)", f"{xsys['lines']:,} ({xsys['node_lines']:,})", ""),
        ("node_exporter sample lines (node_*)",
         "-" if "lines" not in node else f"{node['lines']:,} ({node['node_lines']:,})", ""),
        ("xsys NodeCollector, sum of collectors (ms)", f"{sum(collectors.values()):.2f}",
         ""),
        ("rpc.ping p50/p99 idle (us)",
         f"{pings['idle_p50_us']:.0f} / {pings['idle_p99_us']:.0f}", ""),
        (f"rpc.ping p50/p99 while scraping (us, {busy_scrapes} scrapes)",
         f"{pings['scraping_p50_us']:.0f} / {pings['scraping_p99_us']:.0f}", ""),
    ]
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    print(f"{'measurement':<{width}}  {'value':>{vwidth}}  goal")
    for name, value, goal in rows:
        print(f"{name:<{width}}  {value:>{vwidth}}  {goal}".rstrip())
    print("per collector p50 (ms): " + ", ".join(f"{k} {v:.2f}"
                                                 for k, v in collectors.items()))

    result = {
        "benchmark": "http",
        "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count()},
        "scrape_xsys": xsys, "scrape_node_exporter": node, "p50_ratio": ratio,
        "collectors_p50_ms": collectors, "ping": pings,
        "goals": {"scrape_p50_ms_max": GOAL_SCRAPE_P50_MS},
        "met": {"scrape_p50_ms": met},
    }
    out = Path(args.json_out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
