"""The listening transport behind one interface (``Transport``), so that nothing above it
knows the platform: ``UnixTransport`` here (a Unix socket: its directory and file checks,
modes, stale-socket handling, ``SO_PEERCRED`` credentials and the uid/gid access check,
an inherited socket from socket activation) and ``xsys.server.winpipe.NamedPipeTransport``
on Windows (a named pipe with its own DACL, the caller's SID from its process token).

``xsys.server.listener.Server`` picks one (``platform_transport``), starts it with the
``Connection`` factory, asks it who a connection's peer is and whether that peer may use
the daemon, and closes it at shutdown. Transports hand the connection layer bytes and
nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import stat
import struct
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from xsys.protocol import Unauthorized
from xsys.server.context import Peer

if TYPE_CHECKING:
    from xsys.config import ServerConfig

#: The listener's logger: the same records as before the transport had its own module.
log = logging.getLogger("xsys.server.listener")

#: Makes the protocol (a ``Connection``) of each accepted connection.
ProtocolFactory = Callable[[], asyncio.Protocol]


class Transport(Protocol):
    """Where the daemon listens, and who connects.

    ``path``: what it listens on once started (a socket path or a pipe name).
    """

    path: str

    async def start(self, path: str, protocol_factory: ProtocolFactory) -> None:
        """Listen on ``path``; every accepted connection gets a protocol from
        ``protocol_factory``. Raises ``OSError`` (``DaemonAlreadyRunning``,
        ``PermissionError``...) or ``ValueError`` when it cannot."""

    def close(self) -> None:
        """Stop accepting (open connections are left to the caller)."""

    async def wait_closed(self) -> None:
        """Wait (about a second at most) until the listener is gone and remove what it
        left behind (the socket file it created)."""

    def peer_of(self, transport: asyncio.BaseTransport) -> Peer:
        """The credentials of the process behind the accepted ``transport``."""

    def authorization_error(self, peer: Peer, cfg: ServerConfig) -> Unauthorized | None:
        """Why ``peer`` may not use the daemon under ``cfg`` (-32006), or None."""

    def is_privileged(self, peer: Peer) -> bool:
        """Whether ``peer`` may use the ``server.reserved_connections``."""


class DaemonAlreadyRunning(RuntimeError):
    """Another live daemon answers on the socket path."""


_PEERCRED = struct.Struct("3i")
#: ``SO_PEERGROUPS`` (Linux 4.13+; not every Python names it).
SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)


def peer_credentials(sock: socket.socket | None) -> Peer:
    """(pid, uid, gid) of the process at the other end of a Unix socket, from
    ``SO_PEERCRED`` (Linux); an empty ``Peer`` where the platform has no such option."""
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return Peer()
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    except OSError:
        return Peer()
    pid, uid, gid = _PEERCRED.unpack(raw)
    return Peer(pid=pid, uid=uid, gid=gid, groups=peer_groups(sock))


def peer_groups(sock: socket.socket) -> tuple[int, ...] | None:
    """The supplementary gids of the peer of the Unix socket ``sock`` (``SO_PEERGROUPS``,
    Linux 4.13+), or None where the kernel cannot tell."""
    if not sys.platform.startswith("linux"):
        return None
    size = 4 * 64
    while size <= 4 * 65536:
        try:
            raw = sock.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, size)
        except OSError as exc:
            if exc.errno == errno.ERANGE:
                size *= 4
                continue
            return None
        return tuple(struct.unpack(f"{len(raw) // 4}I", raw[: len(raw) // 4 * 4]))
    return None


def resolve_group(group: str) -> int | None:
    """The gid of ``group`` (a name or a number); None when empty. Raises ``KeyError``."""
    if not group:
        return None
    if group.isdigit():
        return int(group)
    import grp  # POSIX only

    return grp.getgrnam(group).gr_gid


class UnsafeSocketDirectory(PermissionError):
    """The socket's directory could be controlled by someone other than the daemon's user
    (a symlink, not a directory, owned by another uid, or group/other-writable): the daemon
    refuses to listen there. ``str(exc)`` is one line naming the path and the fix."""


def check_socket_directory(directory: str, st: os.stat_result) -> None:
    """Refuse a socket directory that another user could control. ``st`` is the
    directory's ``lstat``; it must be a real directory (not a symlink), owned by the
    daemon's effective uid, with no group or other write bit (group read/search is fine,
    for ``server.group``). Raises ``UnsafeSocketDirectory`` otherwise."""
    own_uid = os.geteuid()
    mode = stat.S_IMODE(st.st_mode)
    problem = None
    if stat.S_ISLNK(st.st_mode):
        problem = "is a symlink"
    elif not stat.S_ISDIR(st.st_mode):
        problem = "is not a directory"
    elif st.st_uid != own_uid:
        problem = f"is owned by uid {st.st_uid}, not by the daemon's uid {own_uid}"
    elif mode & 0o022:
        who = {0o020: "its group", 0o002: "others"}.get(mode & 0o022, "its group and others")
        problem = f"is writable by {who} (mode {mode:04o})"
    if problem is not None:
        raise UnsafeSocketDirectory(
            f"socket directory {directory} {problem}; refusing to listen there (another "
            "user could replace the socket): remove it or set server.socket elsewhere")


def _make_socket_directory(directory: str, dir_mode: int, gid: int | None) -> None:
    """``mkdir`` the socket directory when missing (its missing ancestors first) and give
    it ``dir_mode`` and group ``gid`` through a descriptor opened without following
    symlinks. Leaves anything already at ``directory`` alone for the caller to verify."""
    parent = os.path.dirname(directory)
    if not os.path.isdir(parent):
        os.makedirs(parent, exist_ok=True)
    try:
        os.mkdir(directory, 0o700)  # never follows a symlink: EEXIST for one
    except FileExistsError:
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if gid is not None:
            os.fchown(fd, -1, gid)
        os.fchmod(fd, dir_mode)
    finally:
        os.close(fd)


def prepare_socket_path(path: str, gid: int | None) -> None:
    """Make ``path``'s directory safe to listen in and clear a stale socket file.

    A missing directory is created (0700, or 0750 and group ``gid`` with ``server.group``);
    an existing one must pass ``check_socket_directory`` (``lstat``: a real directory of
    the daemon's uid, not group/other-writable), and so must the one just created (checked
    again, in case another user raced the ``mkdir``). Raises ``UnsafeSocketDirectory``
    (a ``PermissionError``; the daemon exits 1 with its one-line message),
    ``DaemonAlreadyRunning`` when a live daemon answers at ``path`` and
    ``FileExistsError`` when ``path`` is something other than a socket."""
    directory = os.path.dirname(os.path.abspath(path))
    _make_socket_directory(directory, 0o750 if gid is not None else 0o700, gid)
    check_socket_directory(directory, os.lstat(directory))
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise FileExistsError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        log.info("removing stale socket %s", path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    except OSError as exc:
        log.warning("probing %s: %s; replacing it", path, exc)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    finally:
        probe.close()
    raise DaemonAlreadyRunning(f"another xsys daemon is already listening on {path}")


class UnixTransport:
    """A Unix stream socket: mode 0600 (0660 and group ``group`` with ``server.group``) in
    a 0700 (0750) directory that ``prepare_socket_path`` checks; peers identified by
    ``SO_PEERCRED``.

    With ``inherited`` (a listening Unix socket passed by socket activation,
    ``xsys.server.systemd.listen_sockets``) it serves on that socket and neither checks,
    binds, chmods nor (at close) removes ``path``: the service manager owns the socket
    file. ``start`` raises ``ValueError`` when ``inherited`` is not a listening stream
    socket."""

    def __init__(self, group: str = "", inherited: socket.socket | None = None) -> None:
        self.group = group
        self.inherited = inherited
        self.path = ""
        self._server: asyncio.AbstractServer | None = None
        self._own_uid = os.getuid() if hasattr(os, "getuid") else -1

    async def start(self, path: str, protocol_factory: ProtocolFactory) -> None:
        """Listen on ``path`` (see the class docstring)."""
        self.path = path
        loop = asyncio.get_running_loop()
        inherited = self.inherited
        if inherited is not None:
            if inherited.type != socket.SOCK_STREAM or not inherited.getsockopt(
                    socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                raise ValueError("socket activation: the passed descriptor is not a "
                                 "listening stream socket")
            bound = inherited.getsockname()
            self.path = bound if isinstance(bound, str) and bound else path
            # Python 3.13 unlinks a Unix server's socket file when it closes
            # (cleanup_socket): this file is the service manager's, keep it
            keep: dict[str, Any] = ({"cleanup_socket": False}
                                    if sys.version_info >= (3, 13) else {})
            try:
                self._server = await loop.create_unix_server(protocol_factory, sock=inherited,
                                                             **keep)
            except TypeError:  # an event loop (uvloop < 0.21) without cleanup_socket
                self._server = await loop.create_unix_server(protocol_factory, sock=inherited)
            log.info("listening on %s (passed by the service manager)", self.path)
            return
        gid = resolve_group(self.group)
        prepare_socket_path(path, gid)
        mode = 0o660 if gid is not None else 0o600
        old_umask = os.umask(0o777 & ~mode)
        try:
            self._server = await loop.create_unix_server(protocol_factory, path, backlog=512)
        finally:
            os.umask(old_umask)
        os.chmod(path, mode)
        if gid is not None:
            os.chown(path, -1, gid)
        log.info("listening on %s (mode %o)", path, mode)

    def close(self) -> None:
        """Stop accepting."""
        if self._server is not None:
            self._server.close()

    async def wait_closed(self) -> None:
        """Wait up to 1 s for the server to close, then remove the socket file (unless
        it was inherited: it belongs to the service manager)."""
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
        if self.path and sys.platform != "win32" and self.inherited is None:
            with contextlib.suppress(FileNotFoundError):
                st = os.lstat(self.path)
                if stat.S_ISSOCK(st.st_mode):
                    os.unlink(self.path)

    def peer_of(self, transport: asyncio.BaseTransport) -> Peer:
        """``SO_PEERCRED`` of the socket behind ``transport`` (an empty ``Peer`` for a
        transport without one)."""
        return peer_credentials(transport.get_extra_info("socket"))

    def is_privileged(self, peer: Peer) -> bool:
        """Root and the daemon's own uid."""
        return peer.uid is not None and peer.uid in (0, self._own_uid)

    def authorization_error(self, peer: Peer, cfg: ServerConfig) -> Unauthorized | None:
        """Its uid must be in ``allowed_uids`` (default: the daemon's uid and root) or its
        gid in ``allowed_gids``. A peer without credentials (no ``SO_PEERCRED``) is let
        in."""
        if peer.uid is None:
            return None
        uids = set(cfg.allowed_uids) if cfg.allowed_uids is not None else {self._own_uid, 0}
        if peer.uid in uids or peer.gid in set(cfg.allowed_gids):
            return None
        return Unauthorized(f"uid {peer.uid} (gid {peer.gid}) is not allowed to use this daemon",
                            {"uid": peer.uid, "gid": peer.gid})
