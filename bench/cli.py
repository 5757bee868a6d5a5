#!/usr/bin/env python3
"""CLI start-up benchmark: what a script or runner pays to spawn ``xsys`` once per call.

Measures, in one run and side by side (rounds interleaved, so that every row sees the
same background load), the wall time of spawning and finishing:

* ``python -c pass``: the interpreter's own start-up, the reference;
* ``python -c "import xsys.cli"``: the CLI module alone;
* ``xsys --help``: the root listing (no command module imported);
* ``xsys sys memory --json``: a data command against a real daemon (``python -m xsys
  serve`` on a temporary socket, ``bench/_daemon.py``), connect + call + JSON out.

``xsys`` is spawned as the console script does (``from xsys.cli import main; main()``)
with this source tree first on the path, and with bytecode caching on as for an installed
package (``PYTHONDONTWRITEBYTECODE`` dropped; the ``.pyc`` files go to a temporary
``PYTHONPYCACHEPREFIX``, written by a warm-up round). Prints a table (p50, p90, min in ms
and the p50 minus the reference's p50) and the machine's load average (a busy machine
inflates every row: compare rows, and the minimums), and writes
``bench/results/cli.json`` (``--json-out``).
Target (issue 17): the data command under 80 ms p50.

    .venv/bin/python bench/cli.py [--runs 40] [--json-out F] [--baseline-root DIR] [--strict]

``--baseline-root DIR``: the same three xsys rows with another source tree's ``xsys``
first on the path (e.g. ``git archive <commit> | tar -x -C DIR``), against the same
daemon, interleaved with the others: before/after under the same load.

``--strict`` exits 1 when the data command misses the target.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from _daemon import spawned_daemon  # noqa: E402
from _stats import percentile  # noqa: E402

#: The target for a data command spawned per call (p50, ms).
TARGET_P50_MS = 80.0
XSYS = "import sys; from xsys.cli import main; sys.exit(main())"


def commands(sock: str, prefix: str = "") -> dict[str, list[str]]:
    """The rows: label -> argv (``prefix`` before the xsys rows' labels)."""
    py = sys.executable
    rows = {} if prefix else {"python -c pass": [py, "-c", "pass"]}
    rows.update({
        f"{prefix}import xsys.cli": [py, "-c", "import xsys.cli"],
        f"{prefix}xsys --help": [py, "-c", XSYS, "--help"],
        f"{prefix}xsys sys memory --json": [py, "-c", XSYS, "--socket", sock, "sys",
                                            "memory", "--json"],
    })
    return rows


def spawn_ms(argv: list[str], env: dict[str, str], cwd: str) -> float:
    """Wall time of one spawn to exit, in ms; raises ``RuntimeError`` on a failure.
    ``cwd``: a directory without an ``xsys`` package (``python -c`` puts the working
    directory first on the path)."""
    start = time.perf_counter()
    r = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, timeout=60, cwd=cwd)
    elapsed = (time.perf_counter() - start) * 1000
    if r.returncode != 0:
        raise RuntimeError(f"{argv[2:]} exited {r.returncode}: {r.stderr.decode()[-500:]}")
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=40, help="spawns per row")
    ap.add_argument("--json-out", default=str(ROOT / "bench" / "results" / "cli.json"))
    ap.add_argument("--baseline-root", default=None,
                    help="another source tree to measure beside this one")
    ap.add_argument("--strict", action="store_true",
                    help="exit 1 when the data command misses the target")
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("XSYS_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    base_env = dict(env)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if args.baseline_root:
        base_env["PYTHONPATH"] = (str(Path(args.baseline_root).resolve()) + os.pathsep
                                  + base_env.get("PYTHONPATH", ""))
    with tempfile.TemporaryDirectory(prefix="xsys-cli-") as tmp:
        env["PYTHONPYCACHEPREFIX"] = base_env["PYTHONPYCACHEPREFIX"] = f"{tmp}/pyc"
        cfg = {"server": {"socket": f"{tmp}/xsys.sock", "log_level": "WARNING"}}
        with spawned_daemon(cfg, Path(tmp)) as sock:
            rows = {label: (argv, env) for label, argv in commands(sock).items()}
            if args.baseline_root:
                rows.update({label: (argv, base_env)
                             for label, argv in commands(sock, "baseline: ").items()})
            for _ in range(2):  # write the .pyc files, warm the page cache
                for argv, e in rows.values():
                    spawn_ms(argv, e, tmp)
            samples: dict[str, list[float]] = {label: [] for label in rows}
            for _ in range(args.runs):
                for label, (argv, e) in rows.items():
                    samples[label].append(spawn_ms(argv, e, tmp))
    ref = percentile(samples["python -c pass"], 0.5)
    results = {}
    print(f"{'command':<36} {'p50 ms':>8} {'p90 ms':>8} {'min ms':>8} {'p50 - ref':>10}")
    for label, values in samples.items():
        p50, p90 = percentile(values, 0.5), percentile(values, 0.9)
        results[label] = {"p50_ms": round(p50, 2), "p90_ms": round(p90, 2),
                          "min_ms": round(min(values), 2), "over_reference_ms": round(p50 - ref, 2),
                          "runs": len(values)}
        print(f"{label:<36} {p50:8.1f} {p90:8.1f} {min(values):8.1f} {p50 - ref:10.1f}")
    load = os.getloadavg()
    print(f"\nload average during the run: {load[0]:.2f} (1 min) on {os.cpu_count()} CPUs")
    data_p50 = results["xsys sys memory --json"]["p50_ms"]
    ok = data_p50 < TARGET_P50_MS
    print(f"target: xsys sys memory --json under {TARGET_P50_MS:.0f} ms p50: "
          f"{'met' if ok else 'MISSED'} ({data_p50:.1f} ms)")
    out = Path(args.json_out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "cli", "at": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": platform.python_version(), "machine": platform.machine(),
        "cpus": os.cpu_count(), "load_average_1m": round(load[0], 2), "runs": args.runs,
        "baseline_root": args.baseline_root,
        "target_p50_ms": TARGET_P50_MS,
        "target_met": ok, "results": results}, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
