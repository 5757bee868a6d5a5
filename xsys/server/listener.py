"""The listening side: admission (the transport's access check, connection limits per
user and in all, re-checked on reload), the daemon-wide budget of unsent result bytes, the
idle and partial-frame timeout sweep, and draining at shutdown.

Where it listens and who a peer is belong to the transport (``xsys.server.transport``: a
Unix socket, or a named pipe on Windows, ``platform_transport``); the Unix helpers are
re-exported here under their old names.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
from typing import TYPE_CHECKING

from xsys.protocol import Overloaded, Unauthorized, XsysError
from xsys.server.context import Peer
from xsys.server.memory import trim_malloc
from xsys.server.transport import (
    SO_PEERGROUPS,
    DaemonAlreadyRunning,
    Transport,
    UnixTransport,
    UnsafeSocketDirectory,
    check_socket_directory,
    peer_credentials,
    peer_groups,
    prepare_socket_path,
    resolve_group,
)

if TYPE_CHECKING:
    from xsys.config import Config, ServerConfig
    from xsys.server.app import App
    from xsys.server.connection import Connection
    from xsys.server.router import Router

log = logging.getLogger(__name__)

__all__ = ["SO_PEERGROUPS", "DaemonAlreadyRunning", "Server", "UnsafeSocketDirectory",
           "check_socket_directory", "peer_credentials", "peer_groups", "platform_transport",
           "prepare_socket_path", "resolve_group", "sweep_period_s"]


def platform_transport(group: str = "", inherited: socket.socket | None = None) -> Transport:
    """This platform's transport: a named pipe on Windows
    (``xsys.server.winpipe.NamedPipeTransport``), else a Unix socket
    (``UnixTransport(group, inherited)``). Raises ``ValueError`` for ``inherited`` on
    Windows (socket activation is a Unix thing)."""
    if sys.platform == "win32":
        if inherited is not None:
            raise ValueError("socket activation (an inherited socket) exists only on Unix")
        from xsys.server.winpipe import NamedPipeTransport

        return NamedPipeTransport()
    return UnixTransport(group, inherited)

class Server:
    """Accepts connections and tracks them (see module docstring).

    ``output_bytes``: the daemon's unsent result bytes, the sum of its connections'
    sampled ``output_bytes`` (``server.max_inflight_result_bytes`` is its budget).
    Admission (``admit``) and the periodic timeout sweep are documented on their methods
    and in docs/security.md.
    """

    def __init__(self, app: App, router: Router, transport: Transport | None = None) -> None:
        self.app = app
        self.router = router
        self.connections: set[Connection] = set()
        self.path: str = ""
        self.output_bytes = 0
        #: Open connections per user: a uid, or a SID on Windows.
        self._per_user: dict[int | str, int] = {}
        #: Where it listens (``platform_transport()`` unless given); ``start`` makes the
        #: platform's one with ``server.group`` and any inherited socket.
        self.transport: Transport = transport if transport is not None else platform_transport()
        self._given_transport = transport is not None
        self._sweeper: asyncio.Task[None] | None = None
        self._trim: asyncio.TimerHandle | None = None
        app.on_reload.append(self._reloaded)

    # ----------------------------------------------------------------- admission

    def peer_of(self, transport: asyncio.BaseTransport) -> Peer:
        """The credentials of the process behind ``transport`` (the transport's)."""
        return self.transport.peer_of(transport)

    def is_privileged(self, peer: Peer) -> bool:
        """Whether ``peer`` may use the ``server.reserved_connections`` that others may
        not: root and the daemon's own uid; on Windows its own SID, SYSTEM and elevated
        Administrators."""
        return self.transport.is_privileged(peer)

    def authorization_error(self, peer: Peer, cfg: ServerConfig) -> Unauthorized | None:
        """Why ``peer`` may not use the daemon under ``cfg`` (-32006), or None. Unix: its
        uid is in ``allowed_uids`` (default: the daemon's uid and root) or its gid in
        ``allowed_gids``; a peer without credentials (no ``SO_PEERCRED``) is let in.
        Windows: its SID is the daemon's own or SYSTEM, or it is an elevated
        Administrator; a pipe client whose token cannot be read is refused."""
        return self.transport.authorization_error(peer, cfg)

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
        user = _user_key(peer)
        if user is not None:
            count = self._per_user.get(user, 0)
            if count >= cfg.max_connections_per_uid:
                who = ("uid", peer.uid) if peer.uid is not None else ("sid", peer.sid)
                return Overloaded(
                    f"{who[0]} {who[1]} already has {count} connections "
                    "(server.max_connections_per_uid)",
                    {"limit": cfg.max_connections_per_uid, who[0]: who[1]})
            self._per_user[user] = count + 1
        self.connections.add(conn)
        return None

    def forget(self, conn: Connection) -> None:
        """Drop ``conn`` from the live set (on close)."""
        if conn not in self.connections:
            return
        self.connections.discard(conn)
        user = _user_key(conn.peer)
        if user is not None:
            left = self._per_user.get(user, 1) - 1
            if left > 0:
                self._per_user[user] = left
            else:
                self._per_user.pop(user, None)
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
        """Listen on ``path`` through the transport (a Unix socket of mode 0600, 0660 with
        ``server.group``, in a 0700 or 0750 directory; a named pipe on Windows) and start
        the timeout sweep.

        With ``inherited`` (a listening Unix socket passed by socket activation,
        ``xsys.server.systemd.listen_sockets``) the daemon serves on it and neither checks,
        binds, chmods nor (at stop) removes ``path``: the service manager owns the socket
        file. Raises ``ValueError`` when ``inherited`` is not a listening stream socket,
        and what the transport raises (``DaemonAlreadyRunning``, ``OSError``)."""
        from xsys.server.connection import Connection

        if not self._given_transport:
            self.transport = platform_transport(self.app.config.server.group, inherited)
        elif inherited is not None:
            raise ValueError("an inherited socket needs the platform transport")
        self.path = path
        loop = asyncio.get_running_loop()
        await self.transport.start(path, lambda: Connection(self))
        self.path = self.transport.path or path
        self._sweeper = loop.create_task(self._sweep(), name="xsys-connection-sweep")

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
        self.transport.close()
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
        await self.transport.wait_closed()


def _user_key(peer: Peer) -> int | str | None:
    """What connections are counted by for ``server.max_connections_per_uid``: the uid,
    else (Windows) the SID, else None (not counted)."""
    return peer.uid if peer.uid is not None else peer.sid


def sweep_period_s(idle_timeout_s: float, frame_timeout_s: float) -> float:
    """Seconds between timeout sweeps: a quarter of the shorter enabled timeout, within
    0.05..5 s (5 s when both are disabled)."""
    enabled = [t for t in (idle_timeout_s, frame_timeout_s) if t > 0]
    if not enabled:
        return 5.0
    return min(5.0, max(0.05, min(enabled) / 4))
