#!/usr/bin/env python3
"""fs benchmark: ``fs.read`` and ``fs.hash`` of a large file through the daemon, next to
doing the same in-process.

A real daemon (``python -m xsys serve`` in a subprocess on a temporary socket, fs.roots =
the benchmark's temp dir) serves a ``--size-mib`` file (default 256 MiB, random bytes,
page-cached by a first read so every row measures the same thing):

* in-process read: ``readinto`` of ``--chunk-mib`` pieces into one buffer;
* ``fs.read``: the blocking ``xsys.client.Client`` reading the file in ``--chunk-mib``
  pieces with ``offset``/``length`` (one request per piece, data as msgpack ``bin``);
* in-process sha256: ``hashlib`` over 1 MiB pieces;
* ``fs.hash``: one request, the daemon streams the file through sha256 in its pool.

Each figure is the median of ``--repeat`` runs, in MiB/s; the ratio to in-process speed
is checked against the issue's target (at least 50 %). Prints a table and writes JSON to
``--json-out`` (default ``bench/results/fs.json``).

    .venv/bin/python bench/fs.py [--size-mib 256] [--chunk-mib 8] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _daemon import spawned_daemon  # noqa: E402

from xsys.client import Client  # noqa: E402

MIB = 1024 * 1024
TARGET_RATIO = 0.5


@contextlib.contextmanager
def daemon(workdir: Path, chunk_bytes: int) -> Iterator[str]:
    """A daemon whose fs root is ``workdir``; yields its socket path."""
    sock = str(workdir / "xsys.sock")
    config = {"server": {"socket": sock, "log_level": "WARNING"},
              "fs": {"roots": [str(workdir)], "max_read_bytes": 64 * MIB,
                     "chunk_bytes": chunk_bytes}}
    with spawned_daemon(config, workdir) as path:
        yield path


def make_file(path: Path, size: int) -> None:
    """``size`` random bytes at ``path`` (written in 8 MiB pieces)."""
    piece = os.urandom(8 * MIB)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            f.write(piece[:min(left, len(piece))])
            left -= len(piece)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def read_in_process(path: Path, chunk: int) -> int:
    buf = bytearray(chunk)
    view = memoryview(buf)
    total = 0
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(view)
            if not n:
                return total
            total += n


def hash_in_process(path: Path) -> str:
    h = hashlib.sha256()
    buf = bytearray(MIB)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(view)
            if not n:
                return h.hexdigest()
            h.update(view[:n])


def read_via_daemon(client: Client, path: Path, chunk: int) -> int:
    offset = 0
    while True:
        r = client.call("fs.read", path=str(path), offset=offset, length=chunk)
        offset += r["length"]
        if r["eof"] or not r["length"]:
            return offset


def median_rate(size: int, runs: list[float]) -> float:
    return size / MIB / statistics.median(runs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--chunk-mib", type=float, default=8,
                    help="bytes per fs.read request (below server.max_frame_bytes)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where the file goes (default: temp dir)")
    ap.add_argument("--json-out", default=str(ROOT / "bench" / "results" / "fs.json"))
    args = ap.parse_args()
    size, chunk = args.size_mib * MIB, int(args.chunk_mib * MIB)
    with tempfile.TemporaryDirectory(prefix="xsys-bench-fs-", dir=args.dir) as tmp:
        work = Path(tmp)
        path = work / "big.bin"
        print(f"writing a {args.size_mib} MiB file in {work} ...", file=sys.stderr)
        make_file(path, size)
        read_in_process(path, chunk)  # warm the page cache
        runs: dict[str, list[float]] = {k: [] for k in ("read_local", "read_daemon",
                                                         "hash_local", "hash_daemon")}
        with daemon(work, MIB) as sock, Client(sock, timeout=600) as client:
            expected = hash_in_process(path)
            for _ in range(args.repeat):
                t, n = timed(lambda: read_in_process(path, chunk))
                assert n == size
                runs["read_local"].append(t)
                t, n = timed(lambda: read_via_daemon(client, path, chunk))
                assert n == size
                runs["read_daemon"].append(t)
                t, digest = timed(lambda: hash_in_process(path))
                runs["hash_local"].append(t)
                t, r = timed(lambda: client.call("fs.hash", path=str(path)))
                assert r["digest"] == digest == expected
                runs["hash_daemon"].append(t)
    rates = {k: median_rate(size, v) for k, v in runs.items()}
    rows = [
        ("read", rates["read_local"], rates["read_daemon"]),
        ("sha256", rates["hash_local"], rates["hash_daemon"]),
    ]
    print(f"\nfs benchmark: {args.size_mib} MiB file, fs.read in {args.chunk_mib} MiB "
          f"requests, median of {args.repeat}\n")
    print(f"{'operation':<10} {'in-process MiB/s':>17} {'daemon MiB/s':>13} {'ratio':>7} "
          f"{'target':>8}")
    results = []
    for name, local, remote in rows:
        ratio = remote / local
        ok = ratio >= TARGET_RATIO
        print(f"{name:<10} {local:>17.0f} {remote:>13.0f} {ratio:>6.0%} "
              f"{'>=50% ' + ('ok' if ok else 'MISS'):>8}")
        results.append({"operation": name, "in_process_mib_s": round(local, 1),
                        "daemon_mib_s": round(remote, 1), "ratio": round(ratio, 3),
                        "target_ratio": TARGET_RATIO, "meets_target": ok})
    out = {
        "benchmark": "fs", "at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "host": {"python": platform.python_version(), "platform": platform.platform(),
                 "cpus": os.cpu_count()},
        "size_mib": args.size_mib, "chunk_mib": args.chunk_mib, "repeat": args.repeat,
        "runs_s": runs, "results": results,
    }
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_out).write_text(json.dumps(out, indent=2))
    print(f"\nwrote {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
