"""Shared fixtures: a real daemon in a subprocess on a temp socket.

``daemon_factory(config: dict | None = None, **kw) -> DaemonHandle`` starts
``python -m xsys serve --config <tmp>/config.json`` (the given config deep-merged over a
test default: socket in a temp dir, ``fs.roots`` = [the test's tmp_path]) and waits until
it answers ``rpc.ping``. ``daemon`` is one started with defaults. Every daemon is stopped
(SIGTERM, then SIGKILL) at the end of the test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.alerts_support import Recorder
from xsys.alerts.providers import HttpClient
from xsys.client import AsyncClient, Client
from xsys.protocol import DaemonNotRunning

REPO = Path(__file__).resolve().parent.parent


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` merged into a copy of ``base`` (maps merge, other values replace)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


class DaemonHandle:
    """A running daemon: ``socket`` path, ``proc`` (Popen), ``log_path`` (its stderr),
    ``config_path``; ``client()``/``async_client()`` connect to it."""

    def __init__(self, workdir: Path, config: dict[str, Any], env: dict[str, str]) -> None:
        self.workdir = workdir
        self.config = config
        self.socket = config["server"]["socket"]
        self.config_path = workdir / "config.json"
        self.config_path.write_text(json.dumps(config))
        self.log_path = workdir / "daemon.log"
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> DaemonHandle:
        """Start the process and wait until it answers; raises RuntimeError with its log."""
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "xsys", "serve", "--config", str(self.config_path)],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, env=self.env,
            cwd=str(REPO),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with Client(self.socket, timeout=2.0) as c:
                    c.call("rpc.ping")
                return self
            except (DaemonNotRunning, OSError):
                time.sleep(0.05)
        raise RuntimeError(f"daemon did not become ready:\n{self.log()}")

    def log(self) -> str:
        """The daemon's stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def client(self, **kwargs: Any) -> Client:
        """A connected blocking client."""
        return Client(self.socket, **kwargs)

    def async_client(self, **kwargs: Any) -> AsyncClient:
        """An (unconnected) asyncio client; use ``async with``."""
        return AsyncClient(self.socket, **kwargs)

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the daemon process."""
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait, SIGKILL if needed; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short temp dir (Unix socket paths are limited to ~107 bytes)."""
    with tempfile.TemporaryDirectory(prefix="xsys-t-") as d:
        yield Path(d)


@pytest.fixture
def daemon_factory(tmp_path: Path, short_tmp: Path) -> Iterator[Callable[..., DaemonHandle]]:
    """Start real daemons; see the module docstring."""
    handles: list[DaemonHandle] = []
    counter = iter(range(1000))

    def start(config: dict[str, Any] | None = None, *, start: bool = True,
              env: dict[str, str] | None = None) -> DaemonHandle:
        n = next(counter)
        workdir = tmp_path / f"daemon{n}"
        workdir.mkdir()
        home = tmp_path / "home"
        home.mkdir(exist_ok=True)
        base = {
            "server": {"socket": str(short_tmp / f"d{n}" / "xsys.sock"),
                       "log_level": "DEBUG"},
            "fs": {"roots": [str(tmp_path)]},
            "sys": {"sample_interval_s": 0.5},
        }
        cfg = deep_merge(base, config or {})
        penv = {k: v for k, v in os.environ.items() if not k.startswith("XSYS_")}
        penv["HOME"] = str(home)
        penv.pop("XDG_RUNTIME_DIR", None)
        penv.update(env or {})
        handle = DaemonHandle(workdir, cfg, penv)
        handles.append(handle)
        return handle.start() if start else handle

    yield start
    for h in handles:
        h.stop()


@pytest.fixture
async def server() -> AsyncIterator[Recorder]:
    """A local HTTP server recording requests, standing in for ntfy/Gotify/webhooks."""
    rec = await Recorder().start()
    yield rec
    await rec.stop()


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    """The alert providers' shared HTTP client, closed afterwards."""
    client = HttpClient()
    yield client
    await client.close()


@pytest.fixture
def daemon(daemon_factory: Callable[..., DaemonHandle]) -> DaemonHandle:
    """A daemon with the test defaults."""
    return daemon_factory()
