#!/usr/bin/env python3
"""watch benchmark: xsys ``watch.add`` against ``inotifywait`` (inotify-tools) and
watchfiles, all three watching the same tree at the same time.

Setup: a real daemon (``python -m xsys serve`` on a temporary socket) and a tree on tmpfs
(``/dev/shm`` when present). Three watcher processes watch the tree recursively:

* xsys: a ``xsys.client.Client`` subscribed with ``watch.add(recursive=True,
  debounce_ms=0)``;
* inotifywait: ``inotifywait -m -r -q -e create,modify,moved_to --format '%e %w%f'``;
* watchfiles: ``watchfiles.watch(debounce=1, step=1)`` (its defaults, 1600/50 ms, would
  batch on purpose), with its default filter off.

Each watcher timestamps events with ``time.monotonic()`` (one clock for every process on
Linux) as they reach it.

1. Latency: the benchmark creates ``--latency-files`` files one at a time (a pause
   between them) and measures, per watcher, the time from the write to the first event
   naming that file: p50/p99 in ms. Target (issue): xsys p50 under 20 ms.
2. Bursts: for each size in ``--sizes`` (default 1k and 10k) a separate process creates
   that many empty files as fast as it can in a pre-made directory; per watcher, the
   distinct files reported, and whether it signalled an overflow (xsys ``watch.overflow``,
   inotifywait ``Q_OVERFLOW``). Target: no event missing without an overflow notice.

Prints a table and writes JSON to ``--json-out`` (default ``bench/results/watch.json``).
``inotifywait`` and watchfiles come from ``make bench-deps``; a missing one is skipped.

    .venv/bin/python bench/watch.py [--latency-files 200] [--sizes 1000,10000]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _daemon import spawned_daemon  # noqa: E402
from _stats import percentile  # noqa: E402

from xsys.client import Client  # noqa: E402

LATENCY_TARGET_MS = 20.0
SETTLE_S = 3.0  # a burst is over for a watcher once it has been quiet this long
MP = mp.get_context("spawn")

Event = tuple[float, str, str]  # (monotonic seconds, kind, path)


# =========================================================================== watchers


def xsys_watcher(sock: str, root: str, out: Any, ready: Any, stop: Any) -> None:
    """Process: stream xsys events to ``out`` as lists of (t, kind, path)."""
    with Client(sock, timeout=None) as c:
        sub = c.subscribe("watch.add", paths=[root], recursive=True, debounce_ms=0)
        ready.set()
        while not stop.is_set():
            note = sub.next(0.2)
            if note is None:
                continue
            t = time.monotonic()
            if note["method"] == "watch.overflow":
                out.put([(t, "overflow", f"{note.get('reason')}:{note.get('dropped')}")])
                continue
            out.put([(t, e["type"], e["path"]) for e in note.get("events", [])])


def watchfiles_watcher(root: str, out: Any, ready: Any, stop: Any) -> None:
    """Process: stream watchfiles changes to ``out``."""
    import watchfiles

    ready.set()
    for changes in watchfiles.watch(root, watch_filter=None, debounce=1, step=1,
                                    stop_event=stop, rust_timeout=200,
                                    yield_on_timeout=True, raise_interrupt=False):
        t = time.monotonic()
        if changes:
            out.put([(t, change.name, path) for change, path in changes])


class Watcher:
    """One watcher's collected events (filled by a thread reading its queue or pipe)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.events: list[Event] = []
        self.lock = threading.Lock()
        self.available = True
        self.note = ""

    def add(self, batch: list[Event]) -> None:
        with self.lock:
            self.events.extend(batch)

    def snapshot(self) -> list[Event]:
        with self.lock:
            return list(self.events)


def drain_queue(q: Any, watcher: Watcher, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            watcher.add(q.get(timeout=0.2))
        except queue.Empty:
            continue
        except (EOFError, OSError):
            return


def drain_inotifywait(proc: subprocess.Popen[bytes], watcher: Watcher) -> None:
    assert proc.stdout is not None
    for raw in proc.stdout:
        t = time.monotonic()
        line = raw.decode(errors="replace").rstrip("\n")
        kind, _, path = line.partition(" ")
        watcher.add([(t, "overflow" if "Q_OVERFLOW" in kind else kind, path)])


# =========================================================================== daemon


@contextlib.contextmanager
def daemon(workdir: Path, tree: Path) -> Iterator[str]:
    sock = str(workdir / "xsys.sock")
    config = {"server": {"socket": sock, "log_level": "WARNING"},
              "fs": {"roots": [str(workdir), str(tree)]},
              "monitor": {"enabled": False}}
    with spawned_daemon(config, workdir) as path:
        yield path


# =========================================================================== phases


def first_seen(events: list[Event], prefix: str) -> dict[str, float]:
    seen: dict[str, float] = {}
    for t, kind, path in events:
        if kind != "overflow" and path.startswith(prefix) and path not in seen:
            seen[path] = t
    return seen


def latency_phase(lat_dir: Path, n: int, gap_s: float,
                  watchers: list[Watcher]) -> dict[str, dict[str, Any]]:
    written: dict[str, float] = {}
    for i in range(n):
        path = lat_dir / f"l{i:05}.txt"
        t0 = time.monotonic()
        with open(path, "w") as f:
            f.write("x")
        written[str(path)] = t0
        time.sleep(gap_s)
    time.sleep(1.0)
    out = {}
    for w in watchers:
        if not w.available:
            continue
        seen = first_seen(w.snapshot(), str(lat_dir) + os.sep)
        lat = [(seen[p] - t0) * 1000 for p, t0 in written.items() if p in seen]
        out[w.name] = {"samples": len(lat), "missing": n - len(lat),
                       "p50_ms": round(percentile(lat, 0.5), 3),
                       "p99_ms": round(percentile(lat, 0.99), 3),
                       "mean_ms": round(statistics.fmean(lat), 3) if lat else None}
    return out


def burst_phase(burst_dir: Path, n: int, watchers: list[Watcher],
                timeout_s: float) -> dict[str, dict[str, Any]]:
    before = {w.name: len(w.snapshot()) for w in watchers}
    code = ("import os,sys\nd=sys.argv[1]\nfor i in range(int(sys.argv[2])):\n"
            "    os.close(os.open(os.path.join(d, f'f{i:06}'), os.O_CREAT|os.O_WRONLY, 0o644))")
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", code, str(burst_dir), str(n)], check=True)
    create_s = time.monotonic() - t0
    prefix = str(burst_dir) + os.sep
    deadline = time.monotonic() + timeout_s
    results: dict[str, dict[str, Any]] = {}
    pending = [w for w in watchers if w.available]
    last_count = {w.name: -1 for w in pending}
    quiet_since = {w.name: time.monotonic() for w in pending}
    while pending and time.monotonic() < deadline:
        time.sleep(0.25)
        for w in list(pending):
            events = w.snapshot()[before[w.name]:]
            count = len(first_seen(events, prefix))
            if count != last_count[w.name]:
                last_count[w.name] = count
                quiet_since[w.name] = time.monotonic()
            if count >= n or time.monotonic() - quiet_since[w.name] > SETTLE_S:
                pending.remove(w)
    for w in watchers:
        if not w.available:
            continue
        events = w.snapshot()[before[w.name]:]
        seen = first_seen(events, prefix)
        overflows = [p for _, kind, p in events if kind == "overflow"]
        last = max(seen.values()) if seen else None
        delivered = len(seen)
        results[w.name] = {
            "created": n, "delivered": delivered, "missing": n - delivered,
            "overflow_notices": len(overflows), "overflow_detail": overflows[:5],
            "silent_loss": delivered < n and not overflows,
            "last_event_after_s": round(last - t0, 3) if last else None,
        }
    results["_creator"] = {"seconds": round(create_s, 3),
                           "files_per_s": round(n / create_s) if create_s else None}
    return results


# =========================================================================== main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--latency-files", type=int, default=200)
    ap.add_argument("--gap-ms", type=float, default=20.0, help="pause between latency writes")
    ap.add_argument("--sizes", default="1000,10000", help="burst sizes, comma-separated")
    ap.add_argument("--burst-timeout", type=float, default=120.0)
    ap.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    ap.add_argument("--json-out", default=str(ROOT / "bench" / "results" / "watch.json"))
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    with tempfile.TemporaryDirectory(prefix="xsys-bench-watch-") as work_s, \
            tempfile.TemporaryDirectory(prefix="xsys-bench-tree-", dir=args.dir) as tree_s:
        work, tree = Path(work_s), Path(tree_s)
        (tree / "lat").mkdir()
        for n in sizes:
            (tree / f"burst{n}").mkdir()
        watchers = {name: Watcher(name) for name in ("xsys", "inotifywait", "watchfiles")}
        stop_threads = threading.Event()
        procs: list[Any] = []
        with daemon(work, tree) as sock:
            stop = MP.Event()
            # xsys
            q_x = MP.Queue()
            ready_x = MP.Event()
            px = MP.Process(target=xsys_watcher, args=(sock, str(tree), q_x, ready_x, stop))
            px.start()
            procs.append(px)
            threading.Thread(target=drain_queue, args=(q_x, watchers["xsys"], stop_threads),
                             daemon=True).start()
            # inotifywait
            inw = None
            if shutil.which("inotifywait"):
                inw = subprocess.Popen(["inotifywait", "-m", "-r", "-q", "-e",
                                        "create,modify,moved_to", "--format", "%e %w%f",
                                        str(tree)], stdout=subprocess.PIPE,
                                       stderr=subprocess.DEVNULL)
                threading.Thread(target=drain_inotifywait, args=(inw, watchers["inotifywait"]),
                                 daemon=True).start()
            else:
                watchers["inotifywait"].available = False
                watchers["inotifywait"].note = "not installed (make bench-deps)"
            # watchfiles
            try:
                import watchfiles  # noqa: F401

                q_w = MP.Queue()
                ready_w = MP.Event()
                pw = MP.Process(target=watchfiles_watcher, args=(str(tree), q_w, ready_w, stop))
                pw.start()
                procs.append(pw)
                threading.Thread(target=drain_queue,
                                 args=(q_w, watchers["watchfiles"], stop_threads),
                                 daemon=True).start()
                ready_w.wait(30)
            except ImportError:
                watchers["watchfiles"].available = False
                watchers["watchfiles"].note = "not installed (make bench-deps)"
            ready_x.wait(30)
            time.sleep(2.0)  # every watcher has its watches in place

            all_w = list(watchers.values())
            print(f"latency: {args.latency_files} files, one every {args.gap_ms:.0f} ms ...",
                  file=sys.stderr)
            latency = latency_phase(tree / "lat", args.latency_files, args.gap_ms / 1000,
                                    all_w)
            bursts = {}
            for n in sizes:
                print(f"burst: {n} files ...", file=sys.stderr)
                bursts[str(n)] = burst_phase(tree / f"burst{n}", n, all_w, args.burst_timeout)
            stop.set()
            for p in procs:
                p.join(10)
                if p.is_alive():
                    p.terminate()
            if inw is not None:
                inw.terminate()
                inw.wait(5)
            stop_threads.set()

    report(latency, bursts, watchers, sizes)
    out = {
        "benchmark": "watch", "at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "host": {"python": platform.python_version(), "platform": platform.platform(),
                 "cpus": os.cpu_count(), "tree_fs": args.dir or tempfile.gettempdir(),
                 "max_queued_events": _read_int("/proc/sys/fs/inotify/max_queued_events")},
        "settings": {"xsys": "watch.add recursive, debounce_ms=0",
                     "inotifywait": "-m -r -q -e create,modify,moved_to",
                     "watchfiles": "watch(debounce=1, step=1, watch_filter=None)",
                     "latency_files": args.latency_files, "gap_ms": args.gap_ms},
        "unavailable": {w.name: w.note for w in watchers.values() if not w.available},
        "latency": latency, "bursts": bursts,
        "targets": {"xsys_p50_ms_below": LATENCY_TARGET_MS,
                    "xsys_p50_ok": latency.get("xsys", {}).get("p50_ms", 1e9)
                    < LATENCY_TARGET_MS,
                    "xsys_no_silent_loss": not any(b.get("xsys", {}).get("silent_loss")
                                                   for b in bursts.values())},
    }
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_out).write_text(json.dumps(out, indent=2))
    print(f"\nwrote {args.json_out}")
    return 0


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


def report(latency: dict[str, Any], bursts: dict[str, Any], watchers: dict[str, Watcher],
           sizes: list[int]) -> None:
    print("\nwatch benchmark (same tree, watched at the same time)\n")
    head = f"{'watcher':<12} {'p50 ms':>8} {'p99 ms':>8}"
    for n in sizes:
        head += f" {f'{n} delivered':>16} {'overflow':>9}"
    print(head)
    for name, w in watchers.items():
        if not w.available:
            print(f"{name:<12} {w.note}")
            continue
        lat = latency.get(name, {})
        row = f"{name:<12} {lat.get('p50_ms', float('nan')):>8.2f} " \
              f"{lat.get('p99_ms', float('nan')):>8.2f}"
        for n in sizes:
            b = bursts[str(n)].get(name, {})
            row += f" {b.get('delivered', 0):>10}/{n:<5} {b.get('overflow_notices', 0):>9}"
        print(row)
    for n in sizes:
        c = bursts[str(n)]["_creator"]
        print(f"burst {n}: created in {c['seconds']} s ({c['files_per_s']} files/s)")
    x = latency.get("xsys", {})
    print(f"\ntarget: xsys p50 < {LATENCY_TARGET_MS:.0f} ms: "
          f"{'ok' if x.get('p50_ms', 1e9) < LATENCY_TARGET_MS else 'MISS'}; "
          "no silent loss: " + ("ok" if not any(bursts[str(n)].get("xsys", {}).get(
              "silent_loss") for n in sizes) else "MISS"))


if __name__ == "__main__":
    sys.exit(main())
