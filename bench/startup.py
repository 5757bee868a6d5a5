"""Cold start to READY: how long from ``exec`` until the daemon tells the service manager
``READY=1`` (sd_notify over ``$NOTIFY_SOCKET``, as systemd sees it), next to
``python -c pass`` measured in the same run; and, when a one-file binary exists
(``make binary`` -> ``dist/xsys``, or ``--binary PATH``), its size and its own time to
READY.

    .venv/bin/python bench/startup.py [--runs 15] [--binary dist/xsys] [--baseline-root DIR]

Every process runs with ``.pyc`` files, as an installed package does:
``PYTHONDONTWRITEBYTECODE`` is dropped and the bytecode goes to a temporary
``PYTHONPYCACHEPREFIX``, written by a warm-up round that is not counted (the page cache
is warm too). ``--baseline-root DIR`` measures another source tree (e.g. ``git archive``
of an older commit) beside this one, the rounds interleaved, for a before/after table
under the same conditions.

Prints a table and writes ``bench/results/startup.json``. Target (issue 16): the venv
daemon under 300 ms to READY.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._stats import percentile  # noqa: E402


def base_env(pycache: Path) -> dict[str, str]:
    """The environment of every measured process: no ``XSYS_*`` settings, bytecode
    written to and read from ``pycache``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XSYS_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def time_pass(env: dict[str, str]) -> float:
    """Seconds for one ``python -c pass`` (the interpreter's own floor)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True, env=env)
    return time.perf_counter() - start


def time_ready(argv: list[str], env: dict[str, str], workdir: Path, n: int) -> float:
    """Seconds from ``Popen(argv + serve args)`` to the ``READY=1`` datagram (the
    daemon then gets SIGTERM and is waited for)."""
    notify_path = workdir / f"n{n}.sock"
    sock_path = workdir / f"s{n}" / "xsys.sock"
    notify_path.unlink(missing_ok=True)
    config = workdir / "config.json"
    config.write_text(json.dumps({"fs": {"roots": [str(workdir)]},
                                  "server": {"log_level": "WARNING"}}))
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(notify_path))
        notify.settimeout(30)
        env = dict(env, NOTIFY_SOCKET=str(notify_path))
        start = time.perf_counter()
        proc = subprocess.Popen([*argv, "serve", "--config", str(config), "--socket",
                                 str(sock_path)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, cwd=workdir)
        try:
            while b"READY=1" not in notify.recv(4096):
                pass
            return time.perf_counter() - start
        finally:
            proc.terminate()
            proc.wait(20)
            notify_path.unlink(missing_ok=True)


def row(name: str, values: list[float], floor: float) -> dict[str, float | str]:
    p50 = percentile(values, 0.5)
    return {"name": name, "p50_ms": p50 * 1000, "p95_ms": percentile(values, 0.95) * 1000,
            "min_ms": min(values) * 1000, "ratio_to_python_pass": p50 / floor,
            "runs": len(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--binary", type=Path, default=ROOT / "dist" / "xsys")
    parser.add_argument("--baseline-root", type=Path, default=None,
                        help="another source tree to measure beside this one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="xsys-start-") as d:
        workdir = Path(d)
        env = base_env(workdir / "pyc")
        cases: dict[str, tuple[list[str], dict[str, str]]] = {
            "venv: python -m xsys serve -> READY=1":
                ([sys.executable, "-m", "xsys"], dict(env, PYTHONPATH=str(ROOT)))}
        if args.baseline_root:
            cases["baseline: python -m xsys serve -> READY=1"] = (
                [sys.executable, "-m", "xsys"],
                dict(env, PYTHONPATH=str(args.baseline_root.resolve())))
        binary: dict[str, float | str] = {}
        if args.binary.exists():
            cases[f"binary: {args.binary.name} serve -> READY=1"] = ([str(args.binary)], env)
            binary = {"path": str(args.binary), "size_bytes": args.binary.stat().st_size}
        time_pass(env)  # warm-up: .pyc files written, page cache warm
        for argv, case_env in cases.values():
            time_ready(argv, case_env, workdir, 0)
        floor_runs: list[float] = []
        samples: dict[str, list[float]] = {name: [] for name in cases}
        for n in range(args.runs):
            floor_runs.append(time_pass(env))
            for name, (argv, case_env) in cases.items():
                samples[name].append(time_ready(argv, case_env, workdir, n + 1))
    floor = float(percentile(floor_runs, 0.5))
    rows = [row("python -c pass", floor_runs, floor)]
    rows += [row(name, values, floor) for name, values in samples.items()]
    print(f"{'what':44} {'p50 ms':>8} {'p95 ms':>8} {'min ms':>8} {'x pass':>7}")
    for r in rows:
        print(f"{r['name']:44} {r['p50_ms']:8.1f} {r['p95_ms']:8.1f} {r['min_ms']:8.1f} "
              f"{r['ratio_to_python_pass']:7.1f}")
    if binary:
        print(f"binary size: {int(binary['size_bytes']) / 2**20:.1f} MiB")
    load = os.getloadavg()
    print(f"load average during the run: {load[0]:.2f} (1 min) on {os.cpu_count()} CPUs")
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "startup.json").write_text(json.dumps(
        {"runs": args.runs, "rows": rows, "binary": binary, "python": sys.version,
         "load_average_1m": load[0], "target_ready_ms": 300}, indent=2))


if __name__ == "__main__":
    main()
