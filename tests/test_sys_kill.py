"""``sys.kill`` against real daemons (issue 8): never pid 1, the daemon, its ancestors or
its descendants, whoever asks (root included); a non-root peer signals only its own
processes; what is allowed is really signalled."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from tests.conftest import REPO, DaemonHandle
from tests.throwaway_user import User, throwaway_user
from xsys.protocol import DaemonNotRunning, NotFound, PermissionDenied

Factory = Callable[..., DaemonHandle]
ALLOW = {"sys": {"allow_kill": True}}

# The daemon's parent in the wrapper test: starts argv[1:] as its child, reports the
# signals it receives, one name per line, and passes SIGTERM on to the child.
WRAPPER = textwrap.dedent("""
    import signal, subprocess, sys
    child = subprocess.Popen(sys.argv[1:])
    def note(signum, frame):
        print(signal.Signals(signum).name, flush=True)
    signal.signal(signal.SIGUSR1, note)
    signal.signal(signal.SIGUSR2, note)
    signal.signal(signal.SIGTERM, lambda signum, frame: child.terminate())
    print(f"child {child.pid}", flush=True)
    sys.exit(child.wait())
""")


ORPHAN = textwrap.dedent("""
    import os, time
    pid = os.fork()
    if pid == 0:
        os.close(1)
        time.sleep(600)
        os._exit(0)
    print(pid)
""")


def refusal(call: Callable[[], Any]) -> dict[str, Any]:
    """The ``data`` of the PermissionDenied that ``call`` raises."""
    with pytest.raises(PermissionDenied) as info:
        call()
    assert isinstance(info.value.data, dict)
    return info.value.data


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A child process of the test, killed at the end if still running."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield proc
    proc.kill()
    proc.wait(10)


def test_never_pid_1(daemon_factory: Factory) -> None:
    d = daemon_factory(ALLOW)
    with d.client() as c:
        data = refusal(lambda: c.call("sys.kill", pid=1, signal="CONT"))
    assert data["reason"] == "init" and data["pid"] == 1


def test_never_the_daemon_itself_nor_one_of_its_threads(daemon_factory: Factory) -> None:
    d = daemon_factory(ALLOW)
    assert d.proc is not None
    pid = d.proc.pid
    tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")] if os.path.isdir(
        f"/proc/{pid}/task") else []
    with d.client() as c:
        data = refusal(lambda: c.call("sys.kill", pid=pid, signal="KILL"))
        assert data["reason"] == "daemon"
        for tid in [t for t in tids if t != pid][:3]:
            data = refusal(lambda tid=tid: c.call("sys.kill", pid=tid, signal="KILL"))
            assert data["reason"] == "daemon", tid
        # had SIGKILL been sent, the daemon would be gone before answering this
        assert c.call("rpc.ping")["pong"]
    assert d.proc.poll() is None


def test_descendants_and_ancestors_are_protected(sleeper: subprocess.Popen[bytes]) -> None:
    """The rule itself, in this process standing for the daemon: its child (as a worker
    process of the daemon would be) and its parent are refused; an unrelated pid is not."""
    from xsys.host import protected_reason

    assert protected_reason(sleeper.pid) == "daemon_descendant"
    assert protected_reason(os.getppid()) == "daemon_ancestor"
    assert protected_reason(os.getpid()) == "daemon"
    assert protected_reason(1) == "init"
    # a grandchild whose parent exits: reparented away from us, it is no descendant
    unrelated = subprocess.Popen([sys.executable, "-c", ORPHAN], stdout=subprocess.PIPE,
                                 text=True)
    orphan = int(unrelated.communicate(timeout=30)[0])
    try:
        assert unrelated.returncode == 0
        assert protected_reason(orphan) is None
        assert Path(f"/proc/{orphan}").exists() or not sys.platform.startswith("linux")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(orphan, signal.SIGKILL)


class WrappedDaemon(DaemonHandle):
    """A daemon started under ``WRAPPER``: ``proc`` is the wrapper (the daemon's parent),
    ``daemon_pid`` the daemon."""

    daemon_pid = 0

    def start(self, timeout: float = 20.0) -> WrappedDaemon:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WRAPPER, sys.executable, "-m", "xsys", "serve",
             "--config", str(self.config_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log,
            env=self.env, cwd=str(REPO))
        first = self.line()
        assert first.startswith("child "), first
        self.daemon_pid = int(first.split()[1])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with self.client(timeout=2.0) as c:
                    c.call("rpc.ping")
                return self
            except (DaemonNotRunning, OSError):
                time.sleep(0.05)
        raise RuntimeError(f"daemon did not become ready:\n{self.log()}")

    def line(self) -> str:
        assert self.proc is not None
        out: IO[bytes] | None = self.proc.stdout
        assert out is not None
        return out.readline().decode().strip()


def test_never_an_ancestor_of_the_daemon(daemon_factory: Factory) -> None:
    handle = daemon_factory(ALLOW, start=False)
    d = WrappedDaemon(handle.workdir, handle.config, handle.env)
    try:
        d.start()
        assert d.proc is not None
        wrapper = d.proc.pid
        with d.client() as c:
            data = refusal(lambda: c.call("sys.kill", pid=wrapper, signal="USR1"))
            assert data["reason"] == "daemon_ancestor" and data["pid"] == wrapper
            # the test process is the wrapper's parent: an ancestor as well
            assert refusal(lambda: c.call("sys.kill", pid=os.getpid(), signal="CONT"))[
                "reason"] == "daemon_ancestor"
        # Barrier: a USR1 sent by the daemon would have been handled before this USR2
        # (it was sent first, and Python runs pending handlers in signal-number order).
        os.kill(wrapper, signal.SIGUSR2)
        assert d.line() == "SIGUSR2"
    finally:
        d.stop()


def test_a_child_of_the_caller_is_signalled(daemon_factory: Factory,
                                            sleeper: subprocess.Popen[bytes]) -> None:
    d = daemon_factory(ALLOW)
    with d.client() as c:
        assert c.call("sys.kill", pid=sleeper.pid, signal="TERM") == {
            "pid": sleeper.pid, "signal": "SIGTERM", "sent": True}
    assert sleeper.wait(10) == -signal.SIGTERM


def test_disabled_and_missing(daemon_factory: Factory,
                              sleeper: subprocess.Popen[bytes]) -> None:
    off = daemon_factory()
    with off.client() as c:
        assert refusal(lambda: c.call("sys.kill", pid=sleeper.pid))["reason"] == "disabled"
    on = daemon_factory(ALLOW)
    with on.client() as c, pytest.raises(NotFound):
        c.call("sys.kill", pid=2**31 - 2)
    assert sleeper.poll() is None


# ------------------------------------------------------------------ a non-root peer


@pytest.fixture(scope="module")
def peer_user() -> Iterator[User]:
    """A second local user, deleted after the module."""
    with throwaway_user() as user:
        yield user


PEER_SCRIPT = textwrap.dedent("""
    import json, sys
    from xsys.client import Client
    from xsys.protocol import XsysError
    out = {}
    with Client(sys.argv[1]) as c:
        for pid in map(int, sys.argv[2:]):
            try:
                out[pid] = c.call("sys.kill", pid=pid, signal="TERM")
            except XsysError as exc:
                out[pid] = {"code": exc.code, "data": exc.data}
    print(json.dumps(out))
""")


def test_non_root_peer_signals_only_its_own_processes(
        peer_user: User, daemon_factory: Factory, short_tmp: Path,
        sleeper: subprocess.Popen[bytes]) -> None:
    os.chmod(short_tmp, 0o711)  # the peer must reach the socket's directory
    d = daemon_factory({**ALLOW, "server": {"group": str(peer_user.gid),
                                            "allowed_uids": [0, peer_user.uid]}})
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    own = subprocess.Popen([python, "-c", "import time; time.sleep(600)"], cwd="/",
                           **peer_user.popen_kwargs())  # type: ignore[call-overload]
    try:
        site = next(str(p) for p in (REPO / ".venv" / "lib").glob("python3*/site-packages"))
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": f"{REPO}:{site}"}
        proc = subprocess.run(
            [python, "-c", PEER_SCRIPT, d.socket, str(sleeper.pid), str(own.pid)],
            capture_output=True, text=True, timeout=60, env=env, cwd="/",
            **peer_user.popen_kwargs())  # type: ignore[call-overload]
        if proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr:
            pytest.skip(f"user {peer_user.name} cannot import the client: {proc.stderr}")
        assert proc.returncode == 0, proc.stderr
        out = {int(k): v for k, v in json.loads(proc.stdout).items()}
        assert out[sleeper.pid]["code"] == PermissionDenied.code
        assert out[sleeper.pid]["data"]["reason"] == "not_owner"
        assert out[own.pid] == {"pid": own.pid, "signal": "SIGTERM", "sent": True}
        assert own.wait(10) == -signal.SIGTERM
        assert sleeper.poll() is None  # the root-owned process was not signalled
    finally:
        own.kill()
        own.wait(10)
