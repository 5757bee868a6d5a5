"""The listening transport behind one interface (issue 16, "Windows transport").

On Linux: the Server through ``Transport`` (the Unix socket transport, and a loopback TCP
transport written here to show that nothing above the interface knows the platform: its
peers carry SIDs and the Windows access rules and per-user limits apply to them); the
named pipe's flags, its SDDL and the SID access rules as pure functions; the Windows
parts refusing cleanly off Windows.

On Windows only (``windows`` mark; run by the CI workflow's windows job, never on this
project's Linux machine): a real daemon on a random pipe name answering the sync and the
async client, ``FILE_FLAG_FIRST_PIPE_INSTANCE`` refusing a second first instance (and a
daemon refusing a squatted name), and the DACL read back from the pipe granting
Everyone nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import DaemonHandle
from xsys import namedpipe
from xsys.client._stream import PipeStream, open_pipe, try_open_pipe
from xsys.client._trust import check_pipe_server, trusted_server_sids
from xsys.config import Config, ServerConfig
from xsys.daemon import compose
from xsys.namedpipe import (
    SID_ADMINISTRATORS,
    SID_EVERYONE,
    SID_SYSTEM,
    Identity,
    check_pipe_name,
    client_open_flags,
    identity_trusted,
    is_pipe_path,
    pipe_authorization_error,
    pipe_sddl,
    server_open_mode,
    server_pipe_mode,
    trusted_sids,
)
from xsys.protocol import (
    DEFAULT_PIPE_NAME,
    OVERLOADED,
    UNAUTHORIZED,
    FrameDecoder,
    Unauthorized,
    default_socket_path,
    encode_frame,
    encode_request,
    unpackb,
)
from xsys.server.context import Peer
from xsys.server.listener import Server, platform_transport
from xsys.server.transport import Transport, UnixTransport
from xsys.server.winpipe import NamedPipeTransport, PipeNameTaken

windows = pytest.mark.skipif(sys.platform != "win32",
                             reason="named pipes exist only on Windows (the CI workflow's "
                                    "windows job runs this)")
unix = pytest.mark.skipif(sys.platform == "win32", reason="the Unix socket transport")

ALICE = "S-1-5-21-1004336348-1177238915-682003330-1001"
BOB = "S-1-5-21-1004336348-1177238915-682003330-1002"
ACE_RE = re.compile(r"\(([^;()]*);([^;()]*);([^;()]*);([^;()]*);([^;()]*);([^;()]*)\)")


# --------------------------------------------------------------------------- pure parts


def test_server_pipe_flags_are_the_win32_values() -> None:
    """The daemon's CreateNamedPipe modes, as numbers (winbase.h): duplex + overlapped,
    FILE_FLAG_FIRST_PIPE_INSTANCE on the first instance only, byte mode, remote clients
    rejected."""
    assert server_open_mode(first=True) == 0x00000003 | 0x40000000 | 0x00080000
    assert server_open_mode(first=False) == 0x00000003 | 0x40000000
    mode = server_pipe_mode()
    assert mode & 0x00000008  # PIPE_REJECT_REMOTE_CLIENTS
    assert not mode & 0x00000004 and not mode & 0x00000002  # not PIPE_TYPE/READMODE_MESSAGE
    assert not mode & 0x00000001  # PIPE_WAIT, not PIPE_NOWAIT
    flags = client_open_flags()
    assert flags & 0x40000000 and flags & 0x00100000  # overlapped, SECURITY_SQOS_PRESENT
    assert flags & 0x00030000 == 0x00010000  # SecurityIdentification, not Impersonation


def test_the_sddl_grants_only_system_admins_and_the_daemon() -> None:
    sddl = pipe_sddl(ALICE)
    assert sddl.startswith("D:P")  # a protected DACL: nothing inherited
    aces = ACE_RE.findall(sddl)
    assert "".join(f"({';'.join(a)})" for a in aces) == sddl[3:]
    assert [(a[0], a[2], a[5]) for a in aces] == [("A", "GA", "SY"), ("A", "GA", "BA"),
                                                  ("A", "GA", ALICE)]
    # A daemon running as SYSTEM (a service) gets no second SYSTEM entry.
    assert pipe_sddl(SID_SYSTEM) == "D:P(A;;GA;;;SY)(A;;GA;;;BA)"


@given(st.text(max_size=80))
def test_nothing_but_a_sid_reaches_the_sddl(owner: str) -> None:
    """The owner SID is pasted into the SDDL: anything that is not a SID string is
    refused, so no text can add an ACE (e.g. one for Everyone, ``WD``)."""
    try:
        sddl = pipe_sddl(owner)
    except ValueError:
        return
    trustees = [a[5] for a in ACE_RE.findall(sddl)]
    assert set(trustees) <= {"SY", "BA", owner}
    assert re.fullmatch(r"S-1-\d+(-\d+)*", owner)


def test_an_sddl_injection_is_refused() -> None:
    with pytest.raises(ValueError, match="not a SID"):
        pipe_sddl(f"{ALICE})(A;;GA;;;WD")


@pytest.mark.parametrize(("path", "is_pipe", "ok"), [
    (DEFAULT_PIPE_NAME, True, True), ("\\\\.\\PIPE\\xsys-test", True, True),
    ("\\\\.\\pipe\\", True, False), ("\\\\.\\pipe\\" + "x" * 257, True, False),
    ("/run/xsys/xsys.sock", False, False), ("\\\\server\\pipe\\xsys", False, False)])
def test_pipe_names(path: str, is_pipe: bool, ok: bool) -> None:
    assert is_pipe_path(path) is is_pipe
    if ok:
        assert check_pipe_name(path) == path
    else:
        with pytest.raises(ValueError, match="named pipe"):
            check_pipe_name(path)


def test_the_default_is_the_pipe_on_windows_and_a_socket_elsewhere() -> None:
    assert DEFAULT_PIPE_NAME == "\\\\.\\pipe\\xsys"
    if sys.platform == "win32":
        assert default_socket_path({}) == DEFAULT_PIPE_NAME
    else:
        assert default_socket_path({"XDG_RUNTIME_DIR": "/run/user/7"}) == \
            "/run/user/7/xsys/xsys.sock"
    assert default_socket_path({"XSYS_SOCKET": "\\\\.\\pipe\\other"}) == "\\\\.\\pipe\\other"


@pytest.mark.parametrize(("sid", "admin", "allowed"), [
    (ALICE, False, True),          # the daemon's own account
    (SID_SYSTEM, False, True),     # SYSTEM
    (BOB, True, True),             # an elevated Administrator
    (BOB, False, False),           # anyone else (a non-elevated admin included)
    (None, False, False),          # a client whose token could not be read
])
def test_pipe_access_check(sid: str | None, admin: bool, allowed: bool) -> None:
    refusal = pipe_authorization_error(4242, sid, admin, own_sid=ALICE)
    if allowed:
        assert refusal is None
        return
    assert isinstance(refusal, Unauthorized) and refusal.code == UNAUTHORIZED == -32006
    assert refusal.data is not None and refusal.data["pid"] == 4242
    if sid is not None:
        assert refusal.data["sid"] == sid and ALICE in refusal.message


def test_which_servers_a_client_trusts() -> None:
    assert trusted_sids(None, ALICE, {}) == {SID_SYSTEM, ALICE}
    assert trusted_sids(BOB, ALICE, {}) == {SID_SYSTEM, BOB}
    assert trusted_sids(None, ALICE, {"XSYS_SERVER_SID": BOB}) == {SID_SYSTEM, BOB}
    assert identity_trusted(Identity(BOB, (SID_ADMINISTRATORS,), True), {ALICE})
    assert not identity_trusted(Identity(BOB), {ALICE, SID_SYSTEM})
    if sys.platform != "win32":
        with pytest.raises(ValueError, match="not a SID"):
            trusted_sids(None, ALICE, {"XSYS_SERVER_SID": "alice"})


@unix
def test_the_windows_parts_refuse_cleanly_elsewhere() -> None:
    """Off Windows: the client trusts uids, not SIDs; opening a pipe or reading a token
    says why it cannot; the pipe transport imports and is made, but does not start."""
    assert trusted_server_sids() is None
    check_pipe_server(0, DEFAULT_PIPE_NAME, None)  # no SIDs: no check
    for call in (lambda: try_open_pipe(DEFAULT_PIPE_NAME),
                 lambda: open_pipe(DEFAULT_PIPE_NAME, 1.0),
                 lambda: PipeStream(0, DEFAULT_PIPE_NAME),
                 namedpipe.current_identity, lambda: namedpipe.process_identity(1)):
        with pytest.raises(RuntimeError, match="only on Windows"):
            call()
    transport = NamedPipeTransport()
    assert transport.peer_of(_NoPipe()) == Peer()
    assert transport.authorization_error(Peer(), ServerConfig()) is None
    assert transport.authorization_error(Peer(pid=9), ServerConfig()) is not None

    async def start(path: str) -> None:
        await transport.start(path, asyncio.Protocol)

    with pytest.raises(ValueError, match="named pipe"):
        asyncio.run(start("/tmp/xsys.sock"))
    with pytest.raises(OSError, match="Proactor"):
        asyncio.run(start(DEFAULT_PIPE_NAME))


class _NoPipe(asyncio.BaseTransport):
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


# --------------------------------------------------------------------------- the pipe accept loop
# Its control flow, on Linux, with stand-ins for what only Windows has (pywin32's calls,
# asyncio's PipeHandle and the Proactor's accept_pipe): which instances it creates with
# which flags and descriptor, what it hands to transports, what it closes. Whether Windows
# behaves as these stand-ins do is for the Windows tests below.


class _WinError(Exception):
    def __init__(self, winerror: int) -> None:
        super().__init__(winerror)
        self.winerror = winerror
        self.strerror = f"winerror {winerror}"


class _FakeHandle:
    def __init__(self, n: int) -> None:
        self.n = n

    def Detach(self) -> int:
        return self.n


class _PipeHandle:
    def __init__(self, handle: int) -> None:
        self.handle: int | None = handle

    def fileno(self) -> int:
        return -1 if self.handle is None else self.handle

    def close(self) -> None:
        self.handle = None


class _FakeWin32:
    """pywin32 as far as NamedPipeTransport uses it; records CreateNamedPipe calls."""

    def __init__(self, refuse_first_with: int | None = None) -> None:
        self.created: list[tuple[str, int, int, Any]] = []
        self.refuse_first_with = refuse_first_with
        self.client_pid = 4242
        self.pywintypes = type("pywintypes", (), {"error": _WinError})
        self.win32pipe = self
        self.win32security = self
        self.SDDL_REVISION_1 = 1

    def ConvertStringSecurityDescriptorToSecurityDescriptor(
            self, sddl: str, revision: int) -> tuple[str, str]:
        return ("descriptor", sddl)

    def SECURITY_ATTRIBUTES(self) -> Any:
        return type("SA", (), {})()

    def CreateNamedPipe(self, name: str, open_mode: int, pipe_mode: int, *rest: Any,
                        ) -> _FakeHandle:
        if not self.created and self.refuse_first_with is not None:
            raise _WinError(self.refuse_first_with)
        self.created.append((name, open_mode, pipe_mode, rest[-1]))
        return _FakeHandle(100 + len(self.created))

    def GetNamedPipeClientProcessId(self, handle: int) -> int:
        return self.client_pid


class _FakeProactorLoop(asyncio.SelectorEventLoop):
    """A real loop with the two private hooks of asyncio's Proactor loop the transport
    uses: ``_proactor.accept_pipe`` (a future the test completes) and
    ``_make_duplex_pipe_transport`` (recorded)."""

    def __init__(self) -> None:
        super().__init__()
        self.accepts: list[tuple[_PipeHandle, asyncio.Future[Any]]] = []
        self.made: list[tuple[_PipeHandle, asyncio.Protocol]] = []
        self._proactor = self

    def accept_pipe(self, pipe: _PipeHandle) -> asyncio.Future[Any]:
        fut = self.create_future()
        self.accepts.append((pipe, fut))
        return fut

    def _make_duplex_pipe_transport(self, pipe: _PipeHandle, protocol: asyncio.Protocol,
                                    extra: dict[str, Any]) -> None:
        self.made.append((pipe, protocol))


class _StandInPipeTransport(NamedPipeTransport):
    def __init__(self, win32: _FakeWin32, identities: dict[int, Identity]) -> None:
        super().__init__()
        self.fake = win32
        self.identities = identities

    def _load(self) -> tuple[Any, Any, Identity]:
        utils = type("windows_utils", (), {"PipeHandle": _PipeHandle})
        return self.fake, utils, Identity(ALICE)

    def _process_identity(self, pid: int) -> Identity | None:
        return self.identities.get(pid)


class _PipeOf(asyncio.BaseTransport):
    def __init__(self, pipe: _PipeHandle) -> None:
        super().__init__()
        self.pipe = pipe

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.pipe if name == "pipe" else default


async def _the_accept_loop(loop: _FakeProactorLoop) -> None:
    name = "\\\\.\\pipe\\xsys-fake"
    win32 = _FakeWin32()
    transport = _StandInPipeTransport(win32, {4242: Identity(BOB)})
    await transport.start(name, asyncio.Protocol)
    # The first instance refuses squatting; both carry the SDDL; a spare exists at once.
    assert [(c[1], c[2]) for c in win32.created] == [
        (server_open_mode(first=True), server_pipe_mode()),
        (server_open_mode(first=False), server_pipe_mode())]
    assert {c[3].SECURITY_DESCRIPTOR for c in win32.created} == {("descriptor",
                                                                  pipe_sddl(ALICE))}
    assert all(c[3].bInheritHandle is False for c in win32.created)
    first, accepting = loop.accepts[0]
    assert first.handle == 101 and len(loop.accepts) == 1

    accepting.set_result(first)  # a client connected to instance 101
    await asyncio.sleep(0)
    assert [pipe.handle for pipe, _ in loop.made] == [101]
    assert [pipe.handle for pipe, _ in loop.accepts] == [101, 102]  # the spare waits now
    assert len(win32.created) == 3  # and the next spare exists

    # The connection's peer, from the pipe: BOB is not the daemon's account (ALICE).
    peer = transport.peer_of(_PipeOf(first))
    assert peer == Peer(pid=4242, sid=BOB)
    assert transport.authorization_error(peer, ServerConfig()) is not None
    transport.identities[4242] = Identity(ALICE)
    assert transport.authorization_error(transport.peer_of(_PipeOf(first)),
                                         ServerConfig()) is None
    win32.client_pid = 4343  # a process whose token cannot be read: refused
    unknown = transport.peer_of(_PipeOf(first))
    assert unknown == Peer(pid=4343) and transport.authorization_error(
        unknown, ServerConfig()) is not None

    # A client that left before the accept: that instance is closed, the loop goes on.
    second, accepting = loop.accepts[1]
    accepting.set_exception(BrokenPipeError())
    await asyncio.sleep(0)
    assert second.handle is None and len(loop.made) == 1
    assert [pipe.handle for pipe, _ in loop.accepts][2:] == [103]

    # close(): the pending accept is cancelled, every free instance closed, the connected
    # one (a transport's now) left open, and nothing is created afterwards.
    transport.close()
    await asyncio.sleep(0)
    await transport.wait_closed()
    third, accepting = loop.accepts[2]
    assert accepting.cancelled() and third.handle is None
    assert first.handle == 101
    assert len(win32.created) == 4 and len(loop.accepts) == 3

    # A name someone else already serves.
    for code in (namedpipe.ERROR_ACCESS_DENIED, namedpipe.ERROR_PIPE_BUSY):
        taken = _StandInPipeTransport(_FakeWin32(refuse_first_with=code), {})
        with pytest.raises(PipeNameTaken, match="another process already serves"):
            await taken.start(name, asyncio.Protocol)
    other = _StandInPipeTransport(_FakeWin32(refuse_first_with=2), {})
    with pytest.raises(OSError) as failed:
        await other.start(name, asyncio.Protocol)
    assert not isinstance(failed.value, PipeNameTaken)


def test_the_pipe_accept_loop_with_stand_ins() -> None:
    loop = _FakeProactorLoop()
    errors: list[dict[str, Any]] = []  # what its callbacks raised (asyncio only logs it)
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        loop.run_until_complete(_the_accept_loop(loop))
    finally:
        loop.close()
    assert errors == []


class _Event:
    def __init__(self) -> None:
        self.signalled = False
        self.closed = False

    def Close(self) -> None:
        self.closed = True


class _Overlapped:
    def __init__(self) -> None:
        self.hEvent: _Event | None = None
        self.pending: bytearray | None = None  # the buffer of a read in flight
        self.done: int | BaseException | None = None  # its outcome, not yet collected


class _FakePipeEnd:
    """The win32file/win32event/pywintypes calls PipeStream makes, over a simulated pipe:
    ``deliver(data)`` and ``hang_up()`` play the daemon; reads complete at once when
    bytes are there, else stay pending until delivered. Writes take at most 5 bytes."""

    def __init__(self) -> None:
        self.queued = bytearray()
        self.eof = False
        self.written = bytearray()
        self.calls: list[str] = []
        self.pywintypes = type("pywintypes", (), {"error": _WinError,
                                                   "OVERLAPPED": _Overlapped})
        self.win32file = self.win32event = self
        self.reading: _Overlapped | None = None

    # the daemon's side
    def deliver(self, data: bytes) -> None:
        self.queued += data
        self._complete()

    def hang_up(self) -> None:
        self.eof = True
        self._complete()

    def _complete(self) -> None:
        ov = self.reading
        if ov is None or ov.pending is None:
            return
        if self.queued:
            n = min(len(ov.pending), len(self.queued))
            ov.pending[:n] = self.queued[:n]
            del self.queued[:n]
            ov.done = n
        elif self.eof:
            ov.done = _WinError(namedpipe.ERROR_BROKEN_PIPE)
        else:
            return
        ov.pending = None
        assert ov.hEvent is not None
        ov.hEvent.signalled = True
        self.reading = None

    # pywin32
    def CreateEvent(self, *args: Any) -> _Event:
        return _Event()

    def AllocateReadBuffer(self, size: int) -> bytearray:
        return bytearray(size)

    def ReadFile(self, handle: int, buf: bytearray, ov: _Overlapped) -> tuple[int, None]:
        assert ov.pending is None and ov.done is None, "a second read while one is in flight"
        if not self.queued and self.eof:
            raise _WinError(namedpipe.ERROR_BROKEN_PIPE)
        assert ov.hEvent is not None
        ov.hEvent.signalled = False
        ov.pending, self.reading = buf, ov
        self._complete()
        return (namedpipe.ERROR_IO_PENDING if ov.pending is not None else 0, None)

    def WriteFile(self, handle: int, data: memoryview, ov: _Overlapped) -> tuple[int, int]:
        chunk = bytes(data[:5])
        self.written += chunk
        ov.done = len(chunk)
        return (0, len(chunk))

    def GetOverlappedResult(self, handle: int, ov: _Overlapped, wait: bool) -> int:
        if ov.done is None:
            assert not wait, "a blocking wait that would never end"
            raise _WinError(namedpipe.ERROR_IO_INCOMPLETE)
        done, ov.done = ov.done, None
        if isinstance(done, BaseException):
            raise done
        return done

    def WaitForSingleObject(self, event: _Event, ms: int) -> int:
        return 0 if event.signalled else 0x102

    def CancelIo(self, handle: int) -> None:
        self.calls.append("CancelIo")

    def CloseHandle(self, handle: int) -> None:
        self.calls.append(f"CloseHandle {handle}")


def test_the_pipe_stream_with_stand_ins(monkeypatch: pytest.MonkeyPatch) -> None:
    """PipeStream's reads, deadlines, writes and close over a simulated overlapped pipe:
    a read that outlives a deadline is kept (no byte lost), partial reads and writes
    add up, a non-blocking read says so, EOF reads as b"", close cancels and closes."""
    from xsys.client import _stream

    end = _FakePipeEnd()
    monkeypatch.setattr(_stream, "pywin32", lambda: end)
    stream = PipeStream(7, "\\\\.\\pipe\\fake")
    assert stream.wait_readable(0.01) is False  # a read is now pending
    assert stream.wait_readable(0.01) is False  # still the same one (no second ReadFile)
    end.deliver(b"hello")
    assert stream.wait_readable(0.01) is True
    assert stream.recv(3) == b"hel" and stream.recv(10) == b"lo"
    stream.setblocking(False)
    with pytest.raises(BlockingIOError):
        stream.recv(10)
    stream.setblocking(True)
    end.deliver(b"abc")
    buf = bytearray(2)
    assert stream.recv_into(buf) == 2 and buf == b"ab" and stream.recv(10) == b"c"
    end.deliver(b"xyz")  # already there when the read starts: completes at once
    assert stream.recv(10) == b"xyz"
    stream.sendall(b"0123456789abc")  # written 5 bytes at a time
    assert end.written == b"0123456789abc"
    assert stream.wait_readable(0.01) is False
    end.hang_up()
    assert stream.wait_readable(0.01) is True and stream.recv(10) == b""
    assert stream.recv(10) == b""  # and stays at EOF
    stream.close()
    stream.close()
    assert end.calls == ["CancelIo", "CloseHandle 7"]
    assert stream._read_ov.hEvent.closed and stream._write_ov.hEvent.closed


def test_the_clients_pipe_server_check_with_stand_ins(monkeypatch: pytest.MonkeyPatch) -> None:
    """check_pipe_server: the server process's account must be trusted (or an elevated
    Administrator); an unknown one, or none at all, is refused with what was found."""
    from xsys.client import _trust
    from xsys.client._trust import UntrustedServer

    class Pipe:
        def __init__(self) -> None:
            self.win32pipe = self
            self.pywintypes = type("pywintypes", (), {"error": _WinError})
            self.server_pid: int | None = 77

        def GetNamedPipeServerProcessId(self, handle: int) -> int:
            if self.server_pid is None:
                raise _WinError(namedpipe.ERROR_ACCESS_DENIED)
            return self.server_pid

    pipe = Pipe()
    identities: dict[int, Identity] = {}
    monkeypatch.setattr(_trust, "pywin32", lambda: pipe)
    monkeypatch.setattr(_trust, "process_identity", identities.get)
    trusted = frozenset({SID_SYSTEM, ALICE})
    for identity in (Identity(ALICE), Identity(SID_SYSTEM), Identity(BOB, (), True)):
        identities[77] = identity
        check_pipe_server(5, DEFAULT_PIPE_NAME, trusted)
    identities[77] = Identity(BOB)
    with pytest.raises(UntrustedServer) as refused:
        check_pipe_server(5, DEFAULT_PIPE_NAME, trusted)
    assert refused.value.code == UNAUTHORIZED
    assert refused.value.data == {"socket": DEFAULT_PIPE_NAME, "sid": BOB, "pid": 77,
                                  "expected_sids": sorted(trusted), "check": "pipe_server"}
    del identities[77]  # a server whose token this client cannot read
    with pytest.raises(UntrustedServer, match="could not be identified"):
        check_pipe_server(5, DEFAULT_PIPE_NAME, trusted)
    pipe.server_pid = None
    with pytest.raises(UntrustedServer) as refused:
        check_pipe_server(5, DEFAULT_PIPE_NAME, trusted)
    assert refused.value.data is not None and refused.value.data["pid"] is None


# --------------------------------------------------------------------------- Server over Transport


@unix
async def test_the_server_listens_through_the_unix_transport(short_tmp: Path) -> None:
    app, router = compose(Config())
    server = Server(app, router)
    assert isinstance(server.transport, UnixTransport)
    assert isinstance(platform_transport(), UnixTransport)
    path = str(short_tmp / "run" / "xsys.sock")
    await app.start()
    try:
        await server.start(path)
        assert server.path == path and os.stat(path).st_mode & 0o777 == 0o600
        reader, writer = await asyncio.open_unix_connection(path)
        answer = await _call(reader, writer, "rpc.ping")
        assert answer["result"]["pong"] is True
        (conn,) = server.connections
        assert (conn.peer.pid, conn.peer.uid, conn.peer.sid) == (os.getpid(), os.getuid(), None)
        writer.close()
        await server.stop(1.0)
        assert not os.path.exists(path)  # the transport removed the socket it made
    finally:
        await app.stop(1.0)


@unix
async def test_an_inherited_socket_is_left_to_its_owner(short_tmp: Path) -> None:
    path = str(short_tmp / "activated.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)
    app, router = compose(Config())
    server = Server(app, router)
    await app.start()
    try:
        await server.start(str(short_tmp / "configured.sock"), listener)
        assert server.path == path and isinstance(server.transport, UnixTransport)
        reader, writer = await asyncio.open_unix_connection(path)
        assert (await _call(reader, writer, "rpc.ping"))["result"]["pong"] is True
        writer.close()
        await server.stop(1.0)
        assert os.path.exists(path)  # the service manager's file stays
        assert not os.path.exists(short_tmp / "configured.sock")
    finally:
        await app.stop(1.0)
        listener.close()


class LoopbackTransport:
    """A ``Transport`` over TCP on 127.0.0.1 whose peers are Windows-like: every
    connection is the account ``peer_sid``, admitted by the pipe's rules for a daemon
    running as ``own_sid``. Written here to show that ``Server`` knows nothing of the
    platform below the interface."""

    def __init__(self, own_sid: str, peer_sid: str) -> None:
        self.own_sid = own_sid
        self.peer_sid = peer_sid
        self.path = ""
        self._server: asyncio.AbstractServer | None = None

    async def start(self, path: str, protocol_factory: Callable[[], asyncio.Protocol]) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(protocol_factory, "127.0.0.1", 0)
        self.path = f"tcp:{self._server.sockets[0].getsockname()[1]}"

    def close(self) -> None:
        assert self._server is not None
        self._server.close()

    async def wait_closed(self) -> None:
        assert self._server is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 1.0)

    def peer_of(self, transport: asyncio.BaseTransport) -> Peer:
        return Peer(pid=os.getpid(), sid=self.peer_sid)

    def authorization_error(self, peer: Peer, cfg: ServerConfig) -> Unauthorized | None:
        return pipe_authorization_error(peer.pid, peer.sid, peer.is_admin, self.own_sid)

    def is_privileged(self, peer: Peer) -> bool:
        return peer.sid in (self.own_sid, SID_SYSTEM)


async def _call(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str,
                req_id: int = 1) -> dict[str, Any]:
    writer.write(encode_request(req_id, method))
    decoder = FrameDecoder()
    while True:
        data = await asyncio.wait_for(reader.read(65536), 10)
        if not data:
            raise ConnectionError("closed before an answer")
        payloads = decoder.feed(data)
        if payloads:
            answer: dict[str, Any] = unpackb(payloads[0])
            return answer


@contextlib.asynccontextmanager
async def _serving(transport: Transport, **server: Any,
                   ) -> AsyncIterator[tuple[tuple[str, int], Server]]:
    app, router = compose(Config(server=ServerConfig(**server)))
    srv = Server(app, router, transport)
    await app.start()
    try:
        await srv.start("ignored by this transport")
        yield ("127.0.0.1", int(srv.path.split(":")[1])), srv
        await srv.stop(1.0)
    finally:
        await app.stop(1.0)


async def test_the_server_serves_any_transport_with_its_access_rules() -> None:
    async with _serving(LoopbackTransport(ALICE, ALICE)) as (addr, _srv):
        reader, writer = await asyncio.open_connection(*addr)
        assert (await _call(reader, writer, "rpc.ping"))["result"]["pong"] is True
        writer.close()
    async with _serving(LoopbackTransport(ALICE, BOB)) as (addr, _srv):
        reader, writer = await asyncio.open_connection(*addr)
        answer = await _call(reader, writer, "rpc.ping")
        assert answer["id"] is None and answer["error"]["code"] == UNAUTHORIZED
        assert answer["error"]["data"]["sid"] == BOB
        assert await asyncio.wait_for(reader.read(), 10) == b""  # then closed
        writer.close()


async def test_connections_per_user_are_counted_by_sid() -> None:
    """``server.max_connections_per_uid`` holds for a SID as for a uid."""
    async with _serving(LoopbackTransport(ALICE, ALICE), max_connections_per_uid=2,
                        ) as (addr, srv):
        held = [await asyncio.open_connection(*addr) for _ in range(2)]
        for reader, writer in held:
            assert (await _call(reader, writer, "rpc.ping"))["result"]["pong"] is True
        reader, writer = await asyncio.open_connection(*addr)
        answer = await _call(reader, writer, "rpc.ping")
        assert answer["error"]["code"] == OVERLOADED
        assert answer["error"]["data"] == {"limit": 2, "sid": ALICE}
        writer.close()
        held[0][1].close()
        while len(srv.connections) > 1:  # the daemon saw it go (forget() by SID)
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection(*addr)
        assert (await _call(reader, writer, "rpc.ping"))["result"]["pong"] is True
        writer.close()
        held[1][1].close()


# --------------------------------------------------------------------------- Windows only


def _pipe_name() -> str:
    return f"\\\\.\\pipe\\xsys-test-{os.getpid()}-{secrets.token_hex(4)}"


def test_our_win32_constants_are_pywin32s() -> None:
    """Windows: the numbers in xsys.namedpipe are the ones pywin32 exports."""
    if sys.platform != "win32":
        pytest.skip("pywin32 exists only on Windows")
    import win32file
    import win32pipe

    for name in ("PIPE_ACCESS_DUPLEX", "FILE_FLAG_FIRST_PIPE_INSTANCE", "PIPE_TYPE_BYTE",
                 "PIPE_READMODE_BYTE", "PIPE_WAIT", "PIPE_UNLIMITED_INSTANCES",
                 "PIPE_REJECT_REMOTE_CLIENTS"):
        if hasattr(win32pipe, name):
            assert getattr(win32pipe, name) == getattr(namedpipe, name), name
    for name in ("FILE_FLAG_OVERLAPPED", "GENERIC_READ", "GENERIC_WRITE", "OPEN_EXISTING",
                 "SECURITY_SQOS_PRESENT", "SECURITY_IDENTIFICATION"):
        if hasattr(win32file, name):
            assert getattr(win32file, name) == getattr(namedpipe, name), name


class _PingProtocol(asyncio.Protocol):
    """Answers every request with ``{"pong": true}`` and records its peer."""

    def __init__(self, owner: NamedPipeTransport, peers: list[Peer]) -> None:
        self.owner = owner
        self.peers = peers
        self.decoder = FrameDecoder()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peers.append(self.owner.peer_of(transport))

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        for payload in self.decoder.feed(data):
            msg = unpackb(payload)
            self.transport.write(encode_frame({"id": msg["id"],
                                               "result": {"pong": True, "ts": 0.0}}))


@windows
@pytest.mark.windows
async def test_the_pipe_transport_in_process() -> None:
    """NamedPipeTransport without the rest of the daemon: both Python clients get answers,
    each connection's peer is this process (pid and SID from the pipe) and is admitted,
    the DACL read back lets in no one else, a second first instance is refused, and after
    close the name is gone."""
    import pywintypes
    import win32file
    import win32pipe
    import win32security

    from xsys.client import AsyncClient, Client

    name = _pipe_name()
    peers: list[Peer] = []
    transport = NamedPipeTransport()
    await transport.start(name, lambda: _PingProtocol(transport, peers))
    try:
        async with AsyncClient(name) as client:
            answers = await asyncio.gather(*(client.call("rpc.ping") for _ in range(16)))
            assert all(answer["pong"] for answer in answers)

        def sync_ping() -> Any:
            with Client(name) as client:
                return client.call("rpc.ping")

        assert (await asyncio.to_thread(sync_ping))["pong"] is True
        me = namedpipe.current_identity()
        assert [(p.pid, p.sid) for p in peers] == [(os.getpid(), me.sid)] * 2
        assert all(transport.authorization_error(p, ServerConfig()) is None for p in peers)

        handle = win32file.CreateFile(name, namedpipe.GENERIC_READ | namedpipe.GENERIC_WRITE,
                                      0, None, namedpipe.OPEN_EXISTING, 0, None)
        try:
            sd = win32security.GetSecurityInfo(handle, win32security.SE_KERNEL_OBJECT,
                                               win32security.DACL_SECURITY_INFORMATION)
        finally:
            handle.Close()
        dacl = sd.GetSecurityDescriptorDacl()
        trustees = {win32security.ConvertSidToStringSid(dacl.GetAce(i)[2])
                    for i in range(dacl.GetAceCount())}
        assert trustees == {SID_SYSTEM, SID_ADMINISTRATORS, me.sid}

        with pytest.raises(pywintypes.error) as refused:
            win32pipe.CreateNamedPipe(name, server_open_mode(first=True), server_pipe_mode(),
                                      1, 4096, 4096, 0, None)
        assert refused.value.winerror == namedpipe.ERROR_ACCESS_DENIED
    finally:
        transport.close()
        await transport.wait_closed()
    for _ in range(100):  # the connected instances close as their transports finish
        try:
            handle = try_open_pipe(name)
        except FileNotFoundError:
            break
        if handle is not None:
            win32file.CloseHandle(handle)
        await asyncio.sleep(0.01)
    else:
        pytest.fail(f"{name} still exists after close")


@windows
@pytest.mark.windows
def test_a_daemon_on_a_pipe_serves_the_sync_and_async_clients(
        daemon_factory: Callable[..., DaemonHandle]) -> None:
    from xsys.client import AsyncClient, Client

    name = _pipe_name()
    daemon_factory({"server": {"socket": name}})
    with Client(name) as client:
        assert client.call("rpc.ping")["pong"] is True
        assert client.sys.memory()["virtual"]["total_bytes"] > 0
        big = client.call("rpc.methods")["methods"]  # a frame of many KiB
        assert len(big) > 20

    async def pipelined() -> list[Any]:
        async with AsyncClient(name) as client:
            return list(await asyncio.gather(*(client.call("rpc.ping") for _ in range(32))))

    assert all(answer["pong"] for answer in asyncio.run(pipelined()))


@windows
@pytest.mark.windows
def test_the_first_instance_flag_refuses_a_squatted_name(
        daemon_factory: Callable[..., DaemonHandle]) -> None:
    import pywintypes
    import win32pipe

    name = _pipe_name()
    daemon_factory({"server": {"socket": name}})
    # While the daemon serves the name, nobody's first instance is allowed.
    with pytest.raises(pywintypes.error) as refused:
        win32pipe.CreateNamedPipe(name, server_open_mode(first=True), server_pipe_mode(),
                                  1, 4096, 4096, 0, None)
    assert refused.value.winerror == namedpipe.ERROR_ACCESS_DENIED

    # A name someone else created first: the daemon's transport refuses to share it.
    squatted = _pipe_name()
    squat = win32pipe.CreateNamedPipe(squatted, server_open_mode(first=True),
                                      server_pipe_mode(), namedpipe.PIPE_UNLIMITED_INSTANCES,
                                      4096, 4096, 0, None)
    try:
        async def start() -> None:
            await NamedPipeTransport().start(squatted, asyncio.Protocol)

        with pytest.raises(PipeNameTaken, match="another process already serves"):
            asyncio.run(start())
    finally:
        squat.Close()


@windows
@pytest.mark.windows
def test_the_pipe_dacl_grants_everyone_nothing(
        daemon_factory: Callable[..., DaemonHandle]) -> None:
    import win32file
    import win32security

    name = _pipe_name()
    daemon_factory({"server": {"socket": name}})
    handle = win32file.CreateFile(name, namedpipe.GENERIC_READ | namedpipe.GENERIC_WRITE, 0,
                                  None, namedpipe.OPEN_EXISTING, 0, None)
    try:
        sd = win32security.GetSecurityInfo(handle, win32security.SE_KERNEL_OBJECT,
                                           win32security.DACL_SECURITY_INFORMATION)
        dacl = sd.GetSecurityDescriptorDacl()
        trustees = {win32security.ConvertSidToStringSid(dacl.GetAce(i)[2])
                    for i in range(dacl.GetAceCount())}
        control, _revision = sd.GetSecurityDescriptorControl()
    finally:
        handle.Close()
    own = namedpipe.current_identity().sid
    assert trustees <= {SID_SYSTEM, SID_ADMINISTRATORS, own}
    assert SID_EVERYONE not in trustees and "S-1-5-7" not in trustees  # Anonymous
    assert "S-1-5-11" not in trustees  # Authenticated Users
    assert control & win32security.SE_DACL_PROTECTED


@windows
@pytest.mark.windows
def test_the_clients_check_who_serves_the_pipe(
        daemon_factory: Callable[..., DaemonHandle]) -> None:
    """The daemon runs as this test's account: trusted by default; the server's pid is
    the daemon's."""
    import win32pipe

    name = _pipe_name()
    daemon = daemon_factory({"server": {"socket": name}})
    handle = open_pipe(name, 5.0)
    stream = PipeStream(handle, name)
    try:
        server_pid = win32pipe.GetNamedPipeServerProcessId(handle)
        # (a venv's python.exe on Windows runs the interpreter as its child)
        assert daemon.pid in (server_pid, psutil.Process(server_pid).ppid())
        check_pipe_server(handle, name, trusted_server_sids())
    finally:
        stream.close()
