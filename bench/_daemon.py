"""A daemon subprocess for the benchmarks: ``with spawned_daemon(config, workdir) as
sock:`` starts ``python -m xsys serve`` on ``config`` (written to
``workdir/config.json``), waits until it answers ``rpc.ping`` and stops it afterwards."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from xsys.client import Client  # noqa: E402
from xsys.protocol import DaemonNotRunning  # noqa: E402


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM, wait ``timeout`` s, then SIGKILL."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@contextlib.contextmanager
def spawned_daemon(config: dict[str, Any], workdir: Path,
                   extra_args: tuple[str, ...] = (), source_root: Path = ROOT,
                   config_name: str = "config.json") -> Iterator[str]:
    """Run a daemon on ``config`` (its ``server.socket`` is the socket); yields the socket
    path. ``source_root``: the source tree whose ``xsys`` package runs (default this one;
    another checkout for before/after comparisons); ``config_name``: the config file's
    name in ``workdir`` (distinct names let several daemons share a workdir). Raises
    ``RuntimeError`` with the daemon's stderr when it does not start."""
    sock = str(config["server"]["socket"])
    path = workdir / config_name
    path.write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("XSYS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source_root),
                                                      env.get("PYTHONPATH")]))
    proc = subprocess.Popen([sys.executable, "-m", "xsys", "serve", "--config", str(path),
                             *extra_args], cwd=str(source_root), env=env,
                            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with Client(sock, timeout=2) as c:
                    c.call("rpc.ping")
                break
            except (DaemonNotRunning, OSError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    raise RuntimeError(f"daemon did not start:\n{err}") from None
                time.sleep(0.05)
        yield sock
    finally:
        stop_process(proc)
