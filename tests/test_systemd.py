"""The daemon under a service manager: this test plays systemd's side.

- readiness: a datagram socket stands in for ``$NOTIFY_SOCKET``; the daemon must send
  ``READY=1`` (only once it answers), ``WATCHDOG=1`` at half of ``$WATCHDOG_USEC``,
  ``RELOADING=1`` with ``MONOTONIC_USEC`` on SIGHUP then ``READY=1`` again, ``STATUS=``
  lines and ``STOPPING=1`` at SIGTERM;
- socket activation: a listening socket bound here is passed as descriptor 3 with
  ``LISTEN_FDS=1`` and ``LISTEN_PID`` = the daemon's pid (set by ``sh -c 'exec ...'`` so
  the pid is the one that execs); the daemon serves on it and leaves the configured socket
  path alone (never bound, and a file there is not touched), and does not remove the
  activated socket file at exit (the service manager owns it).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.launcher import REPO, daemon_env, stop_process
from xsys.client import Client
from xsys.server import systemd

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="systemd's protocols are Linux's")


class NotifyListener:
    """A bound ``AF_UNIX`` datagram socket collecting sd_notify messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[dict[str, str]] = []

    def wait_for(self, key: str, value: str | None = None, timeout_s: float = 20.0,
                 after: int = 0) -> dict[str, str]:
        """The first message (index >= ``after``) holding ``key`` (= ``value``)."""
        deadline = time.monotonic() + timeout_s
        index = after
        while True:
            while index < len(self.messages):
                msg = self.messages[index]
                index += 1
                if key in msg and (value is None or msg[key] == value):
                    return msg
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {key}={value} in {self.messages}")
            self.sock.settimeout(left)
            try:
                raw = self.sock.recv(65536)
            except TimeoutError:
                continue
            fields = dict(line.split("=", 1) for line in raw.decode().splitlines() if line)
            self.messages.append(fields)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify(short_tmp: Path) -> Iterator[NotifyListener]:
    listener = NotifyListener(short_tmp / "notify.sock")
    yield listener
    listener.close()


def _config(workdir: Path, sock: Path) -> Path:
    path = workdir / "config.json"
    path.write_text(json.dumps({"server": {"socket": str(sock), "log_level": "DEBUG"},
                                "fs": {"roots": [str(workdir)]}}))
    return path


#: Plays the service manager's part between fork and exec: moves the passed listener to
#: descriptor 3 and sets ``LISTEN_PID`` to the pid that then execs the daemon.
_TRAMPOLINE = """
import os, sys
fd = int(sys.argv[1])
if fd >= 0:
    if fd != 3:
        os.dup2(fd, 3)
        os.close(fd)
    os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.executable, [sys.executable, "-m", "xsys", "serve", "--config", sys.argv[2]])
"""


def _spawn(workdir: Path, config: Path, env: dict[str, str],
           listener: socket.socket | None = None) -> subprocess.Popen[bytes]:
    """``python -m xsys serve --config config`` with ``env``; with ``listener``, passed as
    descriptor 3 with ``LISTEN_PID`` = the daemon's pid (as systemd does)."""
    fd = listener.fileno() if listener is not None else -1
    with open(workdir / "daemon.log", "ab") as log:
        return subprocess.Popen([sys.executable, "-c", _TRAMPOLINE, str(fd), str(config)],
                                env=env, stdout=log, stderr=log, cwd=workdir,
                                pass_fds=(fd,) if fd >= 0 else ())


def test_ready_watchdog_reloading_stopping(tmp_path: Path, short_tmp: Path,
                                           notify: NotifyListener) -> None:
    sock = short_tmp / "run" / "xsys.sock"
    env = daemon_env(source_root=REPO, home=tmp_path)
    env.update(NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC="400000")
    proc = _spawn(tmp_path, _config(tmp_path, sock), env)
    try:
        ready = notify.wait_for("READY", "1")
        # READY means serving: the socket answers now, without waiting
        with Client(str(sock), timeout=5) as c:
            assert c.call("rpc.ping") is not None
        assert ready.get("MAINPID") == str(proc.pid)
        assert "serving on" in ready.get("STATUS", "")
        # the watchdog pings keep coming (0.4 s interval: a ping every 0.2 s)
        first = notify.wait_for("WATCHDOG", "1")
        assert first is not None
        index = len(notify.messages)
        notify.wait_for("WATCHDOG", "1", after=index)
        # SIGHUP: RELOADING=1 with the monotonic clock, then READY=1 again
        before = systemd.monotonic_usec()
        index = len(notify.messages)
        proc.send_signal(signal.SIGHUP)
        reloading = notify.wait_for("RELOADING", "1", after=index)
        assert int(reloading["MONOTONIC_USEC"]) >= before
        notify.wait_for("READY", "1", after=notify.messages.index(reloading))
        index = len(notify.messages)
        proc.send_signal(signal.SIGTERM)
        stopping = notify.wait_for("STOPPING", "1", after=index)
        assert "shutting down" in stopping.get("STATUS", "")
        assert proc.wait(20) == 0
    finally:
        stop_process(proc)


def test_no_watchdog_for_another_pid(tmp_path: Path, short_tmp: Path,
                                     notify: NotifyListener) -> None:
    """``WATCHDOG_PID`` naming another process: no pings (they are not ours to send)."""
    sock = short_tmp / "run" / "xsys.sock"
    env = daemon_env(source_root=REPO, home=tmp_path)
    env.update(NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC="200000", WATCHDOG_PID="1")
    proc = _spawn(tmp_path, _config(tmp_path, sock), env)
    try:
        notify.wait_for("READY", "1")
        # a marker: after a round trip and a reload cycle (many 0.1 s periods), still none
        for _ in range(3):
            index = len(notify.messages)
            proc.send_signal(signal.SIGHUP)
            notify.wait_for("READY", "1", after=index)
            with Client(str(sock), timeout=5) as c:
                c.call("rpc.ping")
        proc.send_signal(signal.SIGTERM)
        notify.wait_for("STOPPING", "1")
        proc.wait(20)
        assert not any("WATCHDOG" in m for m in notify.messages)
    finally:
        stop_process(proc)


def test_socket_activation_serves_the_passed_socket(tmp_path: Path,
                                                    short_tmp: Path) -> None:
    activated = short_tmp / "activated.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(activated))
    listener.listen(16)
    # the configured path holds a plain file: a daemon that checked or bound it would fail
    configured = short_tmp / "conf" / "xsys.sock"
    configured.parent.mkdir(mode=0o700)
    configured.write_text("not a socket")
    env = daemon_env(source_root=REPO, home=tmp_path)
    env["LISTEN_FDS"] = "1"
    env["LISTEN_FDNAMES"] = "xsys.socket"
    proc = _spawn(tmp_path, _config(tmp_path, configured), env, listener)
    listener.close()  # only the daemon holds it now
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with Client(str(activated), timeout=5) as c:
                    info = c.call("rpc.hello")
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError((tmp_path / "daemon.log").read_text()) from None
                time.sleep(0.05)
        assert info is not None
        assert configured.read_text() == "not a socket"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert activated.exists(), "the activated socket belongs to the service manager"
        assert configured.read_text() == "not a socket"
        assert "passed by the service manager" in (tmp_path / "daemon.log").read_text()
    finally:
        stop_process(proc)


def test_listen_pid_of_another_process_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LISTEN_FDS", "1")
    monkeypatch.setenv("LISTEN_PID", str(os.getpid() + 1))
    assert systemd.listen_sockets() == []
    assert "LISTEN_FDS" not in os.environ and "LISTEN_PID" not in os.environ


def test_notify_without_socket_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False


def test_notify_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"xsys-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd.notify("READY=1", "STATUS=x")
        assert sock.recv(100) == b"READY=1\nSTATUS=x"
