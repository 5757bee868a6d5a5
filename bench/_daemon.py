"""A daemon subprocess for the benchmarks: ``with spawned_daemon(config, workdir) as
sock:`` starts ``python -m xsys serve`` on ``config`` (written to
``workdir/config.json``), waits until it answers ``rpc.ping`` and stops it afterwards.
The launching is ``tests/launcher.py``'s ``DaemonProcess``, the same one the test fixtures
use."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.launcher import DaemonProcess, daemon_env, free_port  # noqa: E402

#: Seconds a benchmark daemon may take to answer its first ``rpc.ping``.
START_TIMEOUT_S = 30.0


@contextlib.contextmanager
def spawned_daemon(config: dict[str, Any], workdir: Path,
                   extra_args: tuple[str, ...] = (), source_root: Path = ROOT,
                   config_name: str = "config.json") -> Iterator[str]:
    """Run a daemon on ``config`` (its ``server.socket`` is the socket); yields the socket
    path. ``source_root``: the source tree whose ``xsys`` package runs (default this one;
    another checkout for before/after comparisons); ``config_name``: the config file's
    name in ``workdir`` (distinct names let several daemons share a workdir); the
    daemon's output goes beside it (``<config stem>.log``). Raises ``RuntimeError`` with
    the daemon's output when it does not start."""
    sock = str(config["server"]["socket"])
    path = workdir / config_name
    path.write_text(json.dumps(config))
    proc = DaemonProcess(sock, ["--config", str(path), *extra_args],
                         log_path=path.with_suffix(".log"),
                         env=daemon_env(source_root=source_root), source_root=source_root)
    try:
        proc.start(START_TIMEOUT_S)
        yield sock
    finally:
        proc.stop()


def cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads), seconds (fields 14 and 15 of
    ``/proc/<pid>/stat``)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


#: Debian's node_exporter binary (``make test-deps`` installs it).
NODE_EXPORTER = "prometheus-node-exporter"



@contextlib.contextmanager
def node_exporter() -> Iterator[str | None]:
    """node_exporter on a free loopback port (its default collectors); yields its
    /metrics URL, or None when it is not installed."""
    exe = shutil.which(NODE_EXPORTER) or shutil.which("node_exporter")
    if exe is None:
        yield None
        return
    port = free_port()
    proc = subprocess.Popen([exe, f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"{exe} did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
