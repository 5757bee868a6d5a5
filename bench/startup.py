"""Cold start to READY: how long from ``exec`` until the daemon tells the service manager
``READY=1`` (sd_notify over ``$NOTIFY_SOCKET``, as systemd sees it), next to
``python -c pass`` measured in the same run; and, when a one-file binary exists
(``make binary`` -> ``dist/xsys``, or ``--binary PATH``), its size and its own time to
READY.

    .venv/bin/python bench/startup.py [--runs 15] [--binary dist/xsys]

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


def time_pass(runs: int) -> list[float]:
    """Seconds for ``python -c pass`` (the interpreter's own floor), ``runs`` times."""
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        out.append(time.perf_counter() - start)
    return out


def time_ready(argv: list[str], runs: int, workdir: Path) -> list[float]:
    """Seconds from ``Popen(argv + serve args)`` to the ``READY=1`` datagram."""
    out = []
    for n in range(runs):
        notify_path = workdir / f"n{n}.sock"
        sock_path = workdir / f"s{n}" / "xsys.sock"
        notify_path.unlink(missing_ok=True)
        config = workdir / "config.json"
        config.write_text(json.dumps({"fs": {"roots": [str(workdir)]},
                                      "server": {"log_level": "WARNING"}}))
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(str(notify_path))
            notify.settimeout(30)
            env = {k: v for k, v in os.environ.items() if not k.startswith("XSYS_")}
            env.update(NOTIFY_SOCKET=str(notify_path), PYTHONPATH=str(ROOT))
            start = time.perf_counter()
            proc = subprocess.Popen([*argv, "serve", "--config", str(config), "--socket",
                                     str(sock_path)], env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, cwd=workdir)
            try:
                while b"READY=1" not in notify.recv(4096):
                    pass
                out.append(time.perf_counter() - start)
            finally:
                proc.terminate()
                proc.wait(20)
    return out


def row(name: str, values: list[float], floor: float) -> dict[str, float | str]:
    p50 = percentile(values, 0.5)
    return {"name": name, "p50_ms": p50 * 1000, "p95_ms": percentile(values, 0.95) * 1000,
            "ratio_to_python_pass": p50 / floor}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--binary", type=Path, default=ROOT / "dist" / "xsys")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="xsys-start-") as d:
        workdir = Path(d)
        floor_runs = time_pass(args.runs)
        floor = float(percentile(floor_runs, 0.5))
        rows = [row("python -c pass", floor_runs, floor),
                row("venv: python -m xsys serve -> READY=1",
                    time_ready([sys.executable, "-m", "xsys"], args.runs, workdir), floor)]
        binary: dict[str, float | str] = {}
        if args.binary.exists():
            rows.append(row(f"binary: {args.binary.name} serve -> READY=1",
                            time_ready([str(args.binary)], args.runs, workdir), floor))
            binary = {"path": str(args.binary),
                      "size_bytes": args.binary.stat().st_size}
    print(f"{'what':44} {'p50 ms':>8} {'p95 ms':>8} {'x pass':>7}")
    for r in rows:
        print(f"{r['name']:44} {r['p50_ms']:8.1f} {r['p95_ms']:8.1f} "
              f"{r['ratio_to_python_pass']:7.1f}")
    if binary:
        print(f"binary size: {int(binary['size_bytes']) / 2**20:.1f} MiB")
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "startup.json").write_text(json.dumps(
        {"runs": args.runs, "rows": rows, "binary": binary, "python": sys.version,
         "target_ready_ms": 300}, indent=2))


if __name__ == "__main__":
    main()
