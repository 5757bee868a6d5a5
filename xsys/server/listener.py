"""The listening side: the Unix socket (or Windows named pipe), its file modes, stale-socket
handling, peer credentials, admission (allow-lists, connection limits per uid and in all,
re-checked on reload), the daemon-wide budget of unsent result bytes, the idle and
partial-frame timeout sweep, and draining at shutdown.

Transports hand the connection layer bytes and nothing else; this module decides who may
connect and where.
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
from typing import TYPE_CHECKING, Any

from xsys.protocol import Overloaded, Unauthorized, XsysError
from xsys.server.context import Peer
from xsys.server.memory import trim_malloc

if TYPE_CHECKING:
    from xsys.config import Config, ServerConfig
    from xsys.server.app import App
    from xsys.server.connection import Connection
    from xsys.server.router import Router

log = logging.getLogger(__name__)

_PEERCRED = struct.Struct("3i")
#: ``SO_PEERGROUPS`` (Linux 4.13+; not every Python names it).
SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)


class DaemonAlreadyRunning(RuntimeError):
    """Another live daemon answers on the socket path."""


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


class Server:
    """Accepts connections and tracks them (see module docstring).

    ``output_bytes``: the daemon's unsent result bytes, the sum of its connections'
    sampled ``output_bytes`` (``server.max_inflight_result_bytes`` is its budget).
    Admission (``admit``) and the periodic timeout sweep are documented on their methods
    and in docs/security.md.
    """

    def __init__(self, app: App, router: Router) -> None:
        self.app = app
        self.router = router
        self.connections: set[Connection] = set()
        self.path: str = ""
        self.output_bytes = 0
        self._per_uid: dict[int, int] = {}
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._trim: asyncio.TimerHandle | None = None
        self._own_uid = os.getuid() if hasattr(os, "getuid") else -1
        self._inherited = False
        app.on_reload.append(self._reloaded)

    # ----------------------------------------------------------------- admission

    def peer_of(self, transport: asyncio.BaseTransport) -> Peer:
        """The credentials of the process behind ``transport``."""
        return peer_credentials(transport.get_extra_info("socket"))

    def is_privileged(self, peer: Peer) -> bool:
        """Root and the daemon's own uid: they may use the ``server.reserved_connections``
        that other uids may not."""
        return peer.uid is not None and peer.uid in (0, self._own_uid)

    def authorization_error(self, peer: Peer, cfg: ServerConfig) -> Unauthorized | None:
        """Why ``peer`` may not use the daemon under ``cfg`` (-32006), or None: its uid is
        in ``allowed_uids`` (default: the daemon's uid and root) or its gid in
        ``allowed_gids``. A peer without credentials (no ``SO_PEERCRED``) is let in."""
        if peer.uid is None:
            return None
        uids = set(cfg.allowed_uids) if cfg.allowed_uids is not None else {self._own_uid, 0}
        if peer.uid in uids or peer.gid in set(cfg.allowed_gids):
            return None
        return Unauthorized(f"uid {peer.uid} (gid {peer.gid}) is not allowed to use this daemon",
                            {"uid": peer.uid, "gid": peer.gid})

    def admit(self, conn: Connection) -> XsysError | None:
        """Register ``conn``, or return why it is refused: -32006 unauthorized for a uid/gid
        not allowed; -32005 overloaded when its uid already has
        ``server.max_connections_per_uid`` connections, when ``server.max_connections``
        are open, or, for a uid other than root and the daemon's own, when all but
        ``server.reserved_connections`` (at most half of them) are open."""
        cfg = self.app.config.server
        peer = conn.peer
        refusal = self.authorization_error(peer, cfg)
        if refusal is not None:
            return refusal
        total = len(self.connections)
        if total >= cfg.max_connections:
            return Overloaded(f"connection limit {cfg.max_connections} reached",
                              {"limit": cfg.max_connections})
        shared = cfg.max_connections - min(cfg.reserved_connections, cfg.max_connections // 2)
        if total >= shared and not self.is_privileged(peer):
            return Overloaded(f"connection limit {shared} for uids other than root and the "
                              "daemon's reached (server.reserved_connections)",
                              {"limit": shared})
        if peer.uid is not None:
            count = self._per_uid.get(peer.uid, 0)
            if count >= cfg.max_connections_per_uid:
                return Overloaded(
                    f"uid {peer.uid} already has {count} connections "
                    "(server.max_connections_per_uid)",
                    {"limit": cfg.max_connections_per_uid, "uid": peer.uid})
            self._per_uid[peer.uid] = count + 1
        self.connections.add(conn)
        return None

    def forget(self, conn: Connection) -> None:
        """Drop ``conn`` from the live set (on close)."""
        if conn not in self.connections:
            return
        self.connections.discard(conn)
        uid = conn.peer.uid
        if uid is not None:
            left = self._per_uid.get(uid, 1) - 1
            if left > 0:
                self._per_uid[uid] = left
            else:
                self._per_uid.pop(uid, None)
        if conn.wrote_large:
            self._schedule_trim()

    def _reloaded(self, old: Config, new: Config) -> None:
        """After a config reload, close the connections of peers the new allow-lists no
        longer admit (answered with -32006 first)."""
        for conn in list(self.connections):
            refusal = self.authorization_error(conn.peer, new.server)
            if refusal is not None:
                log.warning("closing connection of pid=%s uid=%s gid=%s: no longer allowed "
                            "after the config reload", conn.peer.pid, conn.peer.uid,
                            conn.peer.gid)
                conn.refuse(refusal)

    # ----------------------------------------------------------------- output budget

    def over_budget(self) -> bool:
        """Whether the daemon's unsent result bytes exceed
        ``server.max_inflight_result_bytes``."""
        budget: int = self.app.config.server.max_inflight_result_bytes
        return self.output_bytes > budget

    def shed_output(self) -> None:
        """Over the global budget, close the connections that are over their own
        ``max_output_bytes`` (clients that do not read), largest first, until back under
        it; their unsent output is discarded."""
        if not self.over_budget():
            return
        for conn in sorted(self.connections, key=lambda c: c.output_bytes, reverse=True):
            if not self.over_budget() or conn.output_bytes < conn.max_output_bytes:
                break
            log.warning("closing connection of pid=%s uid=%s: %d bytes of results unsent "
                        "(a client that does not read; the daemon holds %d, budget %d)",
                        conn.peer.pid, conn.peer.uid, conn.output_bytes, self.output_bytes,
                        self.app.config.server.max_inflight_result_bytes)
            conn.abort()

    def _schedule_trim(self) -> None:
        """Give freed heap memory back to the system after a connection that had large
        results closes: 1, 3 and 8 s later (coalesced), since worker jobs of a client that
        left may still finish and free their buffers after the first trim."""
        if self._trim is None:
            loop = asyncio.get_running_loop()
            delays = [1.0, 2.0, 5.0]

            def trim() -> None:
                self._trim = None
                trim_malloc()
                if delays:
                    self._trim = loop.call_later(delays.pop(0), trim)

            self._trim = loop.call_later(delays.pop(0), trim)

    # ----------------------------------------------------------------- timeouts

    async def _sweep(self) -> None:
        """Every fraction of the shorter of ``server.idle_timeout_s`` and
        ``server.frame_timeout_s`` (at most 5 s), let each connection check its timeouts."""
        loop = asyncio.get_running_loop()
        while True:
            cfg = self.app.config.server
            await asyncio.sleep(sweep_period_s(cfg.idle_timeout_s, cfg.frame_timeout_s))
            cfg = self.app.config.server
            if cfg.idle_timeout_s <= 0 and cfg.frame_timeout_s <= 0:
                continue
            now = loop.time()
            for conn in list(self.connections):
                conn.check_timeouts(now, cfg.idle_timeout_s, cfg.frame_timeout_s)

    # ----------------------------------------------------------------- lifecycle

    async def start(self, path: str, inherited: socket.socket | None = None) -> None:
        """Listen on ``path``: a Unix socket of mode 0600 (0660 with ``server.group``) in a
        0700 (0750) directory, or a named pipe on Windows; start the timeout sweep.

        With ``inherited`` (a listening Unix socket passed by socket activation,
        ``xsys.server.systemd.listen_sockets``) the daemon serves on it and neither checks,
        binds, chmods nor (at stop) removes ``path``: the service manager owns the socket
        file. Raises ``ValueError`` when ``inherited`` is not a listening stream socket."""
        from xsys.server.connection import Connection

        self.path = path
        loop = asyncio.get_running_loop()
        if inherited is not None:
            if inherited.type != socket.SOCK_STREAM or not inherited.getsockopt(
                    socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                raise ValueError("socket activation: the passed descriptor is not a "
                                 "listening stream socket")
            self._inherited = True
            bound = inherited.getsockname()
            self.path = bound if isinstance(bound, str) and bound else path
            self._sweeper = loop.create_task(self._sweep(), name="xsys-connection-sweep")
            # Python 3.13 unlinks a Unix server's socket file when it closes
            # (cleanup_socket): this file is the service manager's, keep it
            keep: dict[str, Any] = ({"cleanup_socket": False}
                                    if sys.version_info >= (3, 13) else {})
            try:
                self._server = await loop.create_unix_server(lambda: Connection(self),
                                                             sock=inherited, **keep)
            except TypeError:  # an event loop (uvloop < 0.21) without cleanup_socket
                self._server = await loop.create_unix_server(lambda: Connection(self),
                                                             sock=inherited)
            log.info("listening on %s (passed by the service manager)", self.path)
            return
        self._sweeper = loop.create_task(self._sweep(), name="xsys-connection-sweep")
        if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
            start_pipe = getattr(loop, "start_serving_pipe", None)
            if start_pipe is None:
                raise RuntimeError("named pipes need the Proactor event loop")
            await start_pipe(lambda: Connection(self), path)
            return
        gid = resolve_group(self.app.config.server.group)
        prepare_socket_path(path, gid)
        mode = 0o660 if gid is not None else 0o600
        old_umask = os.umask(0o777 & ~mode)
        try:
            self._server = await loop.create_unix_server(
                lambda: Connection(self), path, backlog=512)
        finally:
            os.umask(old_umask)
        os.chmod(path, mode)
        if gid is not None:
            os.chown(path, -1, gid)
        log.info("listening on %s (mode %o)", path, mode)

    async def stop(self, timeout_s: float) -> None:
        """Stop accepting, let in-flight requests finish within ``timeout_s``, close every
        connection (ending their subscriptions) and remove the socket file."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        if self._trim is not None:
            self._trim.cancel()
            self._trim = None
        if self._server is not None:
            self._server.close()
        pending = [task for conn in self.connections for task, _ in conn.inflight.values()]
        if pending:
            log.info("waiting up to %.1fs for %d requests in flight", timeout_s,
                     len(pending))
            _done, not_done = await asyncio.wait(pending, timeout=max(timeout_s, 0.001))
            if not_done:
                log.warning("%d requests did not finish before the deadline", len(not_done))
        await asyncio.sleep(0)  # let the done-callbacks write their responses
        for conn in list(self.connections):
            conn.close()
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
        if self.path and sys.platform != "win32" and not self._inherited:
            with contextlib.suppress(FileNotFoundError):
                st = os.lstat(self.path)
                if stat.S_ISSOCK(st.st_mode):
                    os.unlink(self.path)


def sweep_period_s(idle_timeout_s: float, frame_timeout_s: float) -> float:
    """Seconds between timeout sweeps: a quarter of the shorter enabled timeout, within
    0.05..5 s (5 s when both are disabled)."""
    enabled = [t for t in (idle_timeout_s, frame_timeout_s) if t > 0]
    if not enabled:
        return 5.0
    return min(5.0, max(0.05, min(enabled) / 4))
