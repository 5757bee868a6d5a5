"""One launcher for ``python -m xsys serve`` in a subprocess, shared by the test fixtures
(``tests/conftest.py``: ``DaemonHandle`` builds on ``DaemonProcess``) and the benchmarks
(``bench/_daemon.py``, ``bench/ipc.py``, ``bench/monitor.py``; they put the repository root
on ``sys.path`` and import ``tests.launcher``). It imports nothing from pytest.

    proc = DaemonProcess(socket, ["--config", str(path)], log_path=workdir / "daemon.log",
                         env=daemon_env(home=workdir))
    proc.start()            # launch, then wait until it answers rpc.ping
    ...
    proc.stop()             # SIGTERM, wait, SIGKILL if needed; returns the exit code

The daemon's stdout and stderr go to ``log_path`` (appended); ``log()`` reads it back and
every start failure carries it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

from xsys.client import AsyncClient, Client
from xsys.protocol import DaemonNotRunning

REPO = Path(__file__).resolve().parent.parent
_P = TypeVar("_P", bound="DaemonProcess")
#: Seconds between two readiness probes.
POLL_INTERVAL_S = 0.05


def daemon_env(*, source_root: Path | None = None, home: Path | None = None,
               base: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment for a daemon: ``base`` (default this process's ``os.environ``)
    without any ``XSYS_*`` variable (the daemon reads its settings from its config and
    arguments only); ``source_root`` prepended to ``PYTHONPATH`` (so that another
    checkout's ``xsys`` package runs); ``HOME`` set to ``home`` when given."""
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if not k.startswith("XSYS_")}
    if source_root is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source_root),
                                                          env.get("PYTHONPATH")]))
    if home is not None:
        env["HOME"] = str(home)
    return env


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (bound, then released for the caller to take)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen[Any], timeout_s: float = 10.0,
                 kill_timeout_s: float = 5.0) -> int | None:
    """Stop ``proc`` if it still runs: SIGTERM, wait ``timeout_s`` s, then SIGKILL and wait
    ``kill_timeout_s`` s. Returns its exit code (negative: the signal that ended it).
    Raises ``subprocess.TimeoutExpired`` if it survives SIGKILL that long."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(kill_timeout_s)
    return proc.returncode


class DaemonProcess:
    """One daemon subprocess: ``python -m xsys serve *serve_args`` run by ``python`` with
    the working directory ``source_root`` (default this repository) and the environment
    ``env`` (default ``daemon_env(source_root=source_root)``), answering on ``socket``
    (the Unix socket path ``serve_args`` or its config names). Its stdout and stderr are
    appended to ``log_path``.

    Attributes: ``socket``, ``serve_args``, ``log_path``, ``env``, ``source_root``,
    ``proc`` (the ``subprocess.Popen``, None before ``launch``). Code that starts the
    process its own way may set ``proc`` and ``_log`` (the open log file, closed by
    ``stop``) itself and still use ``wait_ready``/``log``/``signal``/``stop``.
    """

    def __init__(self, socket: str, serve_args: Sequence[str], *, log_path: Path,
                 env: Mapping[str, str] | None = None, source_root: Path = REPO,
                 python: str = sys.executable) -> None:
        self.socket = socket
        self.serve_args = list(serve_args)
        self.log_path = log_path
        self.source_root = source_root
        self.env = dict(env) if env is not None else daemon_env(source_root=source_root)
        self.python = python
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def command(self) -> list[str]:
        """The command line (``[python, "-m", "xsys", "serve", *serve_args]``)."""
        return [self.python, "-m", "xsys", "serve", *self.serve_args]

    def launch(self) -> None:
        """Start the process without waiting for it to answer (``wait_ready`` does)."""
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log, env=self.env,
                                     cwd=str(self.source_root))

    @property
    def pid(self) -> int:
        """The process id; raises RuntimeError before ``launch``."""
        if self.proc is None:
            raise RuntimeError("the daemon has not been launched")
        return self.proc.pid

    def check_alive(self) -> None:
        """Raise RuntimeError (with the log) if the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.log()}")

    def wait_ready(self, timeout_s: float = 20.0) -> None:
        """Wait until the daemon answers ``rpc.ping`` on ``socket`` (a probe every
        ``POLL_INTERVAL_S``). Raises RuntimeError with the log if it exits first or does
        not answer within ``timeout_s`` s."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with Client(self.socket, timeout=2.0) as c:
                    c.call("rpc.ping")
                return
            except (DaemonNotRunning, OSError):
                time.sleep(POLL_INTERVAL_S)
        raise RuntimeError(f"daemon did not become ready:\n{self.log()}")

    def start(self: _P, timeout_s: float = 20.0) -> _P:
        """``launch`` then ``wait_ready(timeout_s)``; returns self. On RuntimeError the
        process may still run: call ``stop``."""
        self.launch()
        self.wait_ready(timeout_s)
        return self

    def log(self) -> str:
        """The daemon's output so far ("" when there is none)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def client(self, **kwargs: Any) -> Client:
        """A connected blocking client (``kwargs`` as for ``Client``)."""
        return Client(self.socket, **kwargs)

    def async_client(self, **kwargs: Any) -> AsyncClient:
        """An (unconnected) asyncio client; use ``async with``."""
        return AsyncClient(self.socket, **kwargs)

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the daemon process; raises AssertionError before ``launch``."""
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM, wait ``timeout_s`` s, SIGKILL if needed, close the log; returns the
        exit code (None if never launched)."""
        if self.proc is None:
            return None
        code = stop_process(self.proc, timeout_s)
        if self._log is not None:
            self._log.close()
        return code
