"""The socket path cannot be squatted (issue 8): the daemon refuses a socket directory
another user could control, and the Python clients refuse a socket, or a server behind it,
that belongs to an untrusted uid, before sending a byte.

Tests about a second user create one with ``useradd`` (see ``tests/throwaway_user.py``)
and skip with the reason when not root.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from tests.conftest import REPO, DaemonHandle
from tests.throwaway_user import User, throwaway_user
from xsys.client import AsyncClient, Client, UntrustedServer, trusted_server_uids
from xsys.protocol import UNAUTHORIZED, Unauthorized
from xsys.server.listener import (
    UnsafeSocketDirectory,
    check_socket_directory,
    prepare_socket_path,
)

Factory = Callable[..., DaemonHandle]

# Run as the attacker: listen on argv[1]; for every connection, print how many bytes it
# sent before closing ("connection <n>"). Plain stdlib: the attacker cannot read the venv.
ATTACKER_SERVER = """
import socket, sys
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(sys.argv[1])
srv.listen()
print("listening", flush=True)
while True:
    conn, _ = srv.accept()
    total = 0
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        total += len(chunk)
    print(f"connection {total}", flush=True)
    conn.close()
"""


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def attacker() -> Iterator[User]:
    """A second local user, deleted after the module."""
    with throwaway_user() as user:
        yield user


def python_for(user: User) -> str:
    """A Python interpreter ``user`` may run (the venv's may live under /root)."""
    for candidate in (sys.executable, "/usr/bin/python3", "/bin/python3"):
        if not os.path.exists(candidate):
            continue
        try:
            probe = subprocess.run([candidate, "-c", "pass"], cwd="/", capture_output=True,
                                   timeout=30, **user.popen_kwargs())  # type: ignore[call-overload]
        except PermissionError:
            continue
        if probe.returncode == 0:
            return str(candidate)
    pytest.skip(f"no Python interpreter that user {user.name} may run")


@pytest.fixture
def shared_base() -> Iterator[Path]:
    """A short temp dir other users may traverse (0711) but not list or write."""
    with tempfile.TemporaryDirectory(prefix="xsys-s-") as d:
        os.chmod(d, 0o711)
        yield Path(d)


class AttackerServer:
    """``ATTACKER_SERVER`` running as ``user`` on ``path``; ``lines()`` reads its report."""

    def __init__(self, user: User, path: Path) -> None:
        self.path = path
        self.proc = subprocess.Popen(
            [python_for(user), "-c", ATTACKER_SERVER, str(path)], cwd="/",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            **user.popen_kwargs())  # type: ignore[call-overload]
        assert self.readline() == "listening", self.proc.stderr.read() if \
            self.proc.stderr else ""

    def readline(self) -> str:
        out: IO[str] | None = self.proc.stdout
        assert out is not None
        return out.readline().strip()

    def received_after_barrier(self) -> list[str]:
        """Connect once more ourselves (the barrier: 7 bytes), then return every report
        line up to and including the barrier's. The attacker serves connections one at a
        time, so any connection a client made earlier is reported before it."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(str(self.path))
            s.sendall(b"barrier")
        lines = []
        while True:
            line = self.readline()
            assert line, "attacker server ended"
            lines.append(line)
            if line == "connection 7":
                return lines

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def run_daemon(config: dict[str, Any], workdir: Path,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``xsys serve`` on ``config`` to completion (it must refuse to start)."""
    cfg = workdir / "config.json"
    cfg.write_text(json.dumps(config))
    penv = {k: v for k, v in os.environ.items() if not k.startswith("XSYS_")}
    penv.pop("XDG_RUNTIME_DIR", None)
    penv["HOME"] = str(workdir)
    penv.update(env or {})
    return subprocess.run([sys.executable, "-m", "xsys", "serve", "--config", str(cfg)],
                          capture_output=True, text=True, timeout=60, env=penv,
                          stdin=subprocess.DEVNULL, cwd=str(REPO))


def assert_refused_with_one_line(proc: subprocess.CompletedProcess[str], *needles: str,
                                 ) -> None:
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


# ------------------------------------------------------------ the daemon's directory


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777, 0o702])
def test_group_or_other_writable_directory_is_refused(tmp_path: Path, mode: int) -> None:
    d = tmp_path / "sock"
    d.mkdir()
    os.chmod(d, mode)
    with pytest.raises(UnsafeSocketDirectory, match=r"writable by (its group|others)"):
        prepare_socket_path(str(d / "xsys.sock"), None)
    assert not (d / "xsys.sock").exists()


def test_symlinked_directory_is_refused_even_to_a_safe_target(tmp_path: Path) -> None:
    safe = tmp_path / "safe"
    safe.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(safe)
    with pytest.raises(UnsafeSocketDirectory, match="is a symlink"):
        prepare_socket_path(str(tmp_path / "link" / "xsys.sock"), None)


def test_missing_directory_is_created_private(tmp_path: Path) -> None:
    sock = tmp_path / "a" / "b" / "xsys.sock"
    old = os.umask(0)  # the directory's mode must not depend on the umask
    try:
        prepare_socket_path(str(sock), None)
    finally:
        os.umask(old)
    st = os.lstat(sock.parent)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700
    assert st.st_uid == os.geteuid()


def test_missing_directory_with_a_group_is_0750_of_that_group(tmp_path: Path) -> None:
    gid = os.getgid()
    old = os.umask(0o077)  # group bits are set even under a strict umask
    try:
        prepare_socket_path(str(tmp_path / "g" / "xsys.sock"), gid)
    finally:
        os.umask(old)
    st = os.lstat(tmp_path / "g")
    assert stat.S_IMODE(st.st_mode) == 0o750 and st.st_gid == gid


def test_existing_private_directory_is_accepted(tmp_path: Path) -> None:
    for mode in (0o700, 0o750, 0o755):
        d = tmp_path / f"ok{mode:o}"
        d.mkdir()
        os.chmod(d, mode)
        check_socket_directory(str(d), os.lstat(d))  # no exception
        prepare_socket_path(str(d / "xsys.sock"), None)


def test_check_refuses_a_file_in_place_of_the_directory(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(UnsafeSocketDirectory, match="is not a directory"):
        check_socket_directory(str(f), os.lstat(f))


def test_daemon_exits_with_one_line_on_a_writable_directory(tmp_path: Path,
                                                           short_tmp: Path) -> None:
    d = short_tmp / "open"
    d.mkdir()
    os.chmod(d, 0o777)
    proc = run_daemon({"server": {"socket": str(d / "xsys.sock")},
                       "fs": {"roots": [str(tmp_path)]}}, tmp_path)
    assert_refused_with_one_line(proc, str(d), "writable by its group and others",
                                 "server.socket")
    assert list(d.iterdir()) == []


def test_daemon_refuses_a_directory_another_user_created(
        attacker: User, tmp_path: Path, shared_base: Path) -> None:
    squat = shared_base / "squat"
    squat.mkdir()
    os.chown(squat, attacker.uid, attacker.gid)
    os.chmod(squat, 0o777)
    proc = run_daemon({"server": {"socket": str(squat / "xsys.sock")},
                       "fs": {"roots": [str(tmp_path)]}}, tmp_path)
    assert_refused_with_one_line(proc, str(squat), f"owned by uid {attacker.uid}")
    assert list(squat.iterdir()) == []


def test_daemon_refuses_a_squatted_default_path(
        attacker: User, tmp_path: Path, shared_base: Path) -> None:
    """The default path ($XDG_RUNTIME_DIR/xsys/xsys.sock here): another user made
    ``xsys`` a symlink to a directory of theirs."""
    theirs = shared_base / "theirs"
    theirs.mkdir()
    os.chown(theirs, attacker.uid, attacker.gid)
    link = shared_base / "xsys"
    link.symlink_to(theirs)
    os.lchown(link, attacker.uid, attacker.gid)
    proc = run_daemon({"fs": {"roots": [str(tmp_path)]}}, tmp_path,
                      env={"XDG_RUNTIME_DIR": str(shared_base)})
    assert_refused_with_one_line(proc, str(link), "is a symlink")
    assert list(theirs.iterdir()) == []


def test_daemon_with_a_group_listens_in_a_0750_directory(daemon_factory: Factory) -> None:
    d = daemon_factory({"server": {"group": str(os.getgid())}})
    st = os.lstat(os.path.dirname(d.socket))
    assert stat.S_IMODE(st.st_mode) == 0o750 and st.st_gid == os.getgid()
    assert stat.S_IMODE(os.lstat(d.socket).st_mode) == 0o660


# ------------------------------------------------------------------- the clients


def test_trusted_uids_default_expected_and_env() -> None:
    me = os.geteuid()
    assert trusted_server_uids(environ={}) == {0, me}
    assert trusted_server_uids(4242, environ={}) == {0, 4242}
    assert trusted_server_uids(environ={"XSYS_SERVER_UID": "4243"}) == {0, 4243}
    assert trusted_server_uids(4242, environ={"XSYS_SERVER_UID": "4243"}) == {0, 4242}
    import pwd

    name = pwd.getpwuid(me).pw_name
    assert trusted_server_uids(environ={"XSYS_SERVER_UID": name}) == {0, me}
    with pytest.raises(ValueError, match="XSYS_SERVER_UID"):
        trusted_server_uids(environ={"XSYS_SERVER_UID": "no-such-user-xsys"})


def test_untrusted_server_is_an_exported_unauthorized() -> None:
    import xsys

    assert xsys.UntrustedServer is UntrustedServer
    assert issubclass(UntrustedServer, Unauthorized) and UntrustedServer.code == UNAUTHORIZED


@pytest.fixture
def attacker_socket(attacker: User, shared_base: Path) -> Iterator[AttackerServer]:
    """An attacker's server listening in a directory of the attacker's."""
    squat = shared_base / "squat"
    squat.mkdir()
    os.chown(squat, attacker.uid, attacker.gid)
    os.chmod(squat, 0o777)
    server = AttackerServer(attacker, squat / "xsys.sock")
    yield server
    server.stop()


def test_clients_refuse_a_socket_owned_by_another_user(
        attacker: User, attacker_socket: AttackerServer) -> None:
    path = str(attacker_socket.path)
    assert os.stat(path).st_uid == attacker.uid
    with pytest.raises(UntrustedServer) as info:
        Client(path).call("fs.write", path="/tmp/token", data=b"secret")
    assert info.value.data["check"] == "socket_owner"
    assert info.value.data["uid"] == attacker.uid
    assert "impersonating" in info.value.message

    async def async_attempt() -> None:
        async with AsyncClient(path) as c:
            await c.call("fs.write", path="/tmp/token", data=b"secret")

    import asyncio

    with pytest.raises(UntrustedServer):
        asyncio.run(async_attempt())
    # not even a connection reached the attacker: the barrier is the first one
    assert attacker_socket.received_after_barrier() == ["connection 7"]


def test_clients_refuse_a_server_running_as_another_user(
        attacker: User, attacker_socket: AttackerServer) -> None:
    """The socket file is root's (chowned after bind), but the process that accepts runs
    as the attacker: SO_PEERCRED catches it before any request byte is sent."""
    if not hasattr(socket, "SO_PEERCRED"):
        pytest.skip("SO_PEERCRED is Linux-only")
    path = str(attacker_socket.path)
    os.chown(path, 0, 0)
    with pytest.raises(UntrustedServer) as info:
        Client(path).call("fs.write", path="/tmp/token", data=b"secret")
    assert info.value.data["check"] == "peer_credentials"
    assert info.value.data["uid"] == attacker.uid
    assert info.value.data["pid"] == attacker_socket.proc.pid

    async def async_attempt() -> None:
        c = AsyncClient(path)
        try:
            await c.call("fs.write", path="/tmp/token", data=b"secret")
        finally:
            await c.close()

    import asyncio

    with pytest.raises(UntrustedServer):
        asyncio.run(async_attempt())
    assert attacker_socket.received_after_barrier() == [
        "connection 0", "connection 0", "connection 7"]


def test_expected_uid_trusts_a_daemon_of_that_user(
        attacker: User, attacker_socket: AttackerServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The same server is accepted when its uid is the one configured: the checks refuse
    uids, not everything."""
    path = str(attacker_socket.path)
    c = Client(path, expected_uid=attacker.uid, timeout=0.5)
    with pytest.raises(TimeoutError):  # it never answers, but it got the request
        c.call("rpc.ping")
    monkeypatch.setenv("XSYS_SERVER_UID", attacker.name)
    c2 = Client(path, timeout=0.5)
    with pytest.raises(TimeoutError):
        c2.call("rpc.ping")
    lines = attacker_socket.received_after_barrier()
    assert len(lines) == 3 and all(line != "connection 0" for line in lines[:2]), lines


def test_cli_refuses_an_untrusted_socket(attacker_socket: AttackerServer,
                                        tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XSYS_")}
    env["HOME"] = str(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "xsys", "--socket", str(attacker_socket.path), "sys", "info"],
        capture_output=True, text=True, timeout=60, env=env, cwd=str(REPO))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("xsys: refusing to talk to"), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert attacker_socket.received_after_barrier() == ["connection 7"]
