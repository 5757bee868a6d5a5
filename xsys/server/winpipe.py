"""The Windows transport: the protocol's byte stream over a named pipe (default
``\\\\.\\pipe\\xsys``, ``server.socket``), served by asyncio's Proactor loop.

Every pipe instance is created with pywin32's ``CreateNamedPipe``: duplex and
overlapped, ``FILE_FLAG_FIRST_PIPE_INSTANCE`` on the first (a name another process
already serves is refused, not shared), byte mode, ``PIPE_REJECT_REMOTE_CLIENTS``, and a
security descriptor whose protected DACL grants access to the daemon's account, SYSTEM
and Administrators only (``xsys.namedpipe.pipe_sddl``; the default one grants read to
Everyone). The accept loop is asyncio's own (``windows_events.PipeServer`` and
``loop_accept_pipe`` in ``BaseProactorEventLoop.start_serving_pipe``): one free instance
always waits in ``ConnectNamedPipe`` (``loop._proactor.accept_pipe``); when a client
connects, a new instance takes its place and the connected one becomes a duplex pipe
transport (``loop._make_duplex_pipe_transport``). asyncio's ``start_serving_pipe``
itself cannot be used: it creates its instances with no security attributes.

The caller's identity: ``GetNamedPipeClientProcessId`` on the connected instance, then
that process's token (``xsys.namedpipe.process_identity``): ``Peer(pid, sid,
is_admin)``. The access check admits the daemon's own SID, SYSTEM and elevated
Administrators, and refuses a client whose token cannot be read.

The module imports on every platform (pywin32 and ``asyncio.windows_utils`` are loaded
when a transport is made) but works only on Windows; ``xsys.server.listener`` uses it
only there.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from typing import TYPE_CHECKING, Any

from xsys.namedpipe import (
    ERROR_ACCESS_DENIED,
    ERROR_PIPE_BUSY,
    PIPE_BUFFER_BYTES,
    PIPE_UNLIMITED_INSTANCES,
    SID_SYSTEM,
    Identity,
    check_pipe_name,
    current_identity,
    pipe_authorization_error,
    pipe_sddl,
    process_identity,
    pywin32,
    server_open_mode,
    server_pipe_mode,
    win_error,
)
from xsys.protocol import Unauthorized
from xsys.server.context import Peer

if TYPE_CHECKING:
    from xsys.config import ServerConfig
    from xsys.server.transport import ProtocolFactory

log = logging.getLogger("xsys.server.listener")

#: Seconds before accepting again after creating or accepting an instance failed.
RETRY_ACCEPT_S = 0.1


class PipeNameTaken(PermissionError):
    """Another process already serves the pipe name (another daemon, or a squatter): the
    first instance, created with ``FILE_FLAG_FIRST_PIPE_INSTANCE``, was refused."""


class NamedPipeTransport:
    """The daemon's named pipe (see the module docstring). Making one is cheap and works
    everywhere; ``start`` loads pywin32 and reads the daemon's own SID."""

    def __init__(self) -> None:
        self._w: Any = None
        self._utils: Any = None
        self._identity: Identity | None = None
        self.path = ""
        self.sddl = ""
        self._security: Any = None
        self._loop: Any = None
        self._factory: ProtocolFactory | None = None
        self._next: Any = None  # the instance that waits for the next client
        self._free: set[Any] = set()  # instances not handed to a transport yet
        self._accepting: asyncio.Future[Any] | None = None
        self._waiting: Any = None  # the instance in ConnectNamedPipe (``_accepting``)
        self._retry: asyncio.TimerHandle | None = None
        self._closed = False

    # ------------------------------------------------------------------ instances

    def _load(self) -> tuple[Any, Any, Identity]:
        """pywin32, ``asyncio.windows_utils`` and the daemon's own identity (a seam for
        the Linux tests of the accept loop, which pass stand-ins)."""
        return pywin32(), importlib.import_module("asyncio.windows_utils"), current_identity()

    def _process_identity(self, pid: int) -> Identity | None:
        """``xsys.namedpipe.process_identity`` (the same seam)."""
        return process_identity(pid)

    def _security_attributes(self) -> Any:
        sec = self._w.win32security
        descriptor = sec.ConvertStringSecurityDescriptorToSecurityDescriptor(
            self.sddl, sec.SDDL_REVISION_1)
        attributes = sec.SECURITY_ATTRIBUTES()
        attributes.SECURITY_DESCRIPTOR = descriptor
        attributes.bInheritHandle = False
        return attributes

    def _new_instance(self, first: bool) -> Any:
        """A new pipe instance as asyncio's ``PipeHandle``. Raises ``PipeNameTaken`` when
        the first one is refused (ERROR_ACCESS_DENIED: the name exists; ERROR_PIPE_BUSY:
        it exists with all its instances taken), ``OSError`` otherwise."""
        w = self._w
        try:
            handle = w.win32pipe.CreateNamedPipe(
                self.path, server_open_mode(first), server_pipe_mode(),
                PIPE_UNLIMITED_INSTANCES, PIPE_BUFFER_BYTES, PIPE_BUFFER_BYTES, 0,
                self._security)
        except w.pywintypes.error as exc:
            if first and exc.winerror in (ERROR_ACCESS_DENIED, ERROR_PIPE_BUSY):
                raise PipeNameTaken(
                    f"cannot create the named pipe {self.path}: another process already "
                    "serves that name (another xsys daemon, or a process squatting on it); "
                    "refusing to share it: stop it or set server.socket to another "
                    "name") from None
            raise win_error(exc, self.path) from None
        pipe = self._utils.PipeHandle(handle.Detach())
        self._free.add(pipe)
        return pipe

    # ------------------------------------------------------------------ serving

    async def start(self, path: str, protocol_factory: ProtocolFactory) -> None:
        """Create the first instance of ``path`` and start accepting. Raises
        ``ValueError`` for a name that is not ``\\\\.\\pipe\\...``, ``PipeNameTaken``
        and ``OSError`` (also off the Proactor loop or without pywin32)."""
        self.path = check_pipe_name(path)
        loop = asyncio.get_running_loop()
        if getattr(loop, "_proactor", None) is None or not hasattr(
                loop, "_make_duplex_pipe_transport"):
            raise OSError("named pipes need asyncio's Proactor event loop (the default on "
                          "Windows)")
        try:
            self._w, self._utils, self._identity = self._load()
        except (RuntimeError, ImportError) as exc:
            raise OSError(f"cannot serve {self.path}: {exc}") from None
        self.sddl = pipe_sddl(self._identity.sid)
        self._loop = loop
        self._factory = protocol_factory
        self._security = self._security_attributes()
        self._next = self._new_instance(first=True)
        self._accept()
        log.info("listening on %s (named pipe, DACL %s)", self.path, self.sddl)

    def _accept(self, done: asyncio.Future[Any] | None = None) -> None:
        """asyncio's ``loop_accept_pipe``: hand the instance a client connected to
        (``done``) to a new transport, then wait for the next client on the instance
        created beforehand, and create the one after it, so that a free instance of the
        name exists at all times (clients wait, ERROR_PIPE_BUSY, rather than find no
        pipe, and the name is never free for someone else to take)."""
        loop = self._loop
        self._retry = None
        if done is not None:
            waiting, self._waiting = self._waiting, None
            self._accepting = None
            self._free.discard(waiting)
            try:
                done.result()
            except asyncio.CancelledError:
                waiting.close()
                return
            except OSError as exc:  # BrokenPipeError: the client left before the accept
                waiting.close()
                if not isinstance(exc, BrokenPipeError):
                    log.warning("accepting a client on %s failed: %s", self.path, exc)
            else:
                if self._closed:
                    waiting.close()
                    return
                assert self._factory is not None
                loop._make_duplex_pipe_transport(waiting, self._factory(),
                                                 extra={"addr": self.path})
        if self._closed:
            return
        pipe = self._next
        self._next = None
        try:
            if pipe is None:
                pipe = self._new_instance(first=False)
            accepting: asyncio.Future[Any] = loop._proactor.accept_pipe(pipe)
        except OSError as exc:
            if pipe is not None:
                self._free.discard(pipe)
                pipe.close()
            if isinstance(exc, BrokenPipeError):  # connected and gone before the accept
                loop.call_soon(self._accept)
            else:
                log.warning("accepting clients on %s failed (retrying): %s", self.path, exc)
                self._retry = loop.call_later(RETRY_ACCEPT_S, self._accept)
            return
        self._waiting = pipe
        self._accepting = accepting
        accepting.add_done_callback(self._accept)
        try:
            self._next = self._new_instance(first=False)
        except OSError as exc:  # the next _accept tries again
            log.warning("creating a spare instance of %s failed: %s", self.path, exc)

    def close(self) -> None:
        """Stop accepting: cancel the pending ``ConnectNamedPipe`` and close the free
        instances (connected ones belong to their connections)."""
        self._closed = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._accepting is not None:
            self._accepting.cancel()
            self._accepting = None
        for pipe in list(self._free):
            pipe.close()
        self._free.clear()
        self._next = None  # (``_waiting`` is closed too: its callback sees the cancel)

    async def wait_closed(self) -> None:
        """Nothing to wait for or remove: a pipe name disappears with its last
        instance."""
        await asyncio.sleep(0)

    # ------------------------------------------------------------------ peers

    def peer_of(self, transport: asyncio.BaseTransport) -> Peer:
        """``Peer(pid, sid, is_admin)`` of the client behind the pipe ``transport``
        (``GetNamedPipeClientProcessId`` and its token); ``sid`` None when the token
        cannot be read; ``pid`` 0 when the pipe gives no process id. A transport that is
        not a pipe (tests' in-memory ones) gives an empty ``Peer``."""
        pipe = transport.get_extra_info("pipe")
        handle = getattr(pipe, "handle", None)
        if handle is None or self._w is None:
            return Peer()
        w = self._w
        try:
            pid = int(w.win32pipe.GetNamedPipeClientProcessId(handle))
        except w.pywintypes.error:
            return Peer(pid=0)
        identity = self._process_identity(pid)
        if identity is None:
            return Peer(pid=pid)
        return Peer(pid=pid, sid=identity.sid, is_admin=identity.is_admin)

    def is_privileged(self, peer: Peer) -> bool:
        """The daemon's own SID, SYSTEM and elevated Administrators."""
        own = self._identity.sid if self._identity is not None else SID_SYSTEM
        return peer.is_admin or (peer.sid is not None and peer.sid in (own, SID_SYSTEM))

    def authorization_error(self, peer: Peer, cfg: ServerConfig) -> Unauthorized | None:
        """``xsys.namedpipe.pipe_authorization_error`` for a pipe client (``allowed_uids``
        and ``allowed_gids`` do not apply on Windows); a peer of no pipe at all (an
        empty ``Peer``) is let in, as on Unix."""
        if peer.pid is None and peer.sid is None:
            return None
        own = self._identity.sid if self._identity is not None else SID_SYSTEM
        return pipe_authorization_error(peer.pid, peer.sid, peer.is_admin, own)
