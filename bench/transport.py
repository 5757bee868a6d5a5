#!/usr/bin/env python3
"""Transport benchmark: what putting the listener behind ``Transport`` costs per connection.

The transport is involved once per connection (accept, ``peer_of``, the access check,
close), never per request, so this measures connection setup: a blocking client that
connects, checks the server (``SO_PEERCRED``), calls ``rpc.ping`` and closes, over and
over, against this tree's daemon and, side by side in the same run, a reference daemon
from another source tree (``--baseline-root``, e.g. ``git archive`` of the commit before
the change). Each measurement is split into ``--rounds`` slices taken in turn, so both
daemons see the same background load. Reports connections/second and p50/p99 latency
(µs) per daemon and the ratio this/reference; writes ``--json-out`` (default
``bench/results/transport.json``).

    .venv/bin/python bench/transport.py --baseline-root DIR [--duration 2] [--rounds 4]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._daemon import ROOT, spawned_daemon
from bench._stats import percentile
from xsys.client import Client


def _slice(path: str, duration_s: float) -> list[float]:
    """Connect + ping + close for ``duration_s`` s; each cycle's seconds."""
    samples: list[float] = []
    end = time.perf_counter() + duration_s
    while True:
        start = time.perf_counter()
        if start >= end:
            return samples
        with Client(path, timeout=5.0) as client:
            client.call("rpc.ping")
        samples.append(time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-root", type=Path, required=True,
                        help="the reference source tree")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per daemon")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--json-out", type=Path,
                        default=ROOT / "bench" / "results" / "transport.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="xsys-bt-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        sockets: dict[str, str] = {}
        for name, root in (("this tree", ROOT), ("reference", args.baseline_root.resolve())):
            config = {"server": {"socket": str(work / name.replace(" ", "-") / "x.sock"),
                                 "log_level": "WARNING"}}
            sockets[name] = stack.enter_context(spawned_daemon(
                config, work, source_root=root, config_name=f"{name.replace(' ', '-')}.json"))
        samples: dict[str, list[float]] = {name: [] for name in sockets}
        for path in sockets.values():  # warm-up
            _slice(path, 0.2)
        order = list(sockets.items())
        for _ in range(args.rounds):
            for name, path in order:
                samples[name] += _slice(path, args.duration / args.rounds)
            order.reverse()  # neither daemon always goes first

    rows: dict[str, dict[str, float]] = {}
    for name, values in samples.items():
        total = sum(values)
        rows[name] = {"connections": len(values),
                      "connections_per_s": len(values) / total if total else 0.0,
                      "p50_us": percentile(values, 0.5) * 1e6,
                      "p99_us": percentile(values, 0.99) * 1e6}
    ratio = rows["this tree"]["connections_per_s"] / rows["reference"]["connections_per_s"]
    print(f"{'daemon':<10} {'conn/s':>9} {'p50 µs':>9} {'p99 µs':>9} {'n':>7}")
    for name, row in rows.items():
        print(f"{name:<10} {row['connections_per_s']:9.0f} {row['p50_us']:9.0f} "
              f"{row['p99_us']:9.0f} {row['connections']:7d}")
    print(f"this tree / reference, connections per second: {ratio:.3f}")
    result: dict[str, Any] = {
        "benchmark": "connect + rpc.ping + close, blocking Python client, Unix socket",
        "duration_s": args.duration, "rounds": args.rounds, "rows": rows,
        "ratio_connections_per_s": ratio, "python": platform.python_version(),
        "machine": platform.machine(), "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
