"""What a handler sees of the request and the connection: ``Context`` (request id, peer
credentials, progress reporting, subscriptions) and ``Subscription`` (a stream of
notifications with a bounded queue that drops oldest and reports overflow)."""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from xsys.protocol import InvalidRequest, NotFound

if TYPE_CHECKING:
    from xsys.server.app import App

log = logging.getLogger(__name__)

_sub_ids = itertools.count(1)
_event_lock = threading.Lock()


@dataclass(frozen=True)
class Peer:
    """The connecting process's credentials (SO_PEERCRED on Linux); None where unknown
    (HTTP gateway, platforms without peer credentials). ``groups``: the peer's
    supplementary gids (SO_PEERGROUPS, Linux 4.13+), None where unknown.

    On Windows (named pipe) ``uid``/``gid`` stay None and the pipe gives ``pid``
    (GetNamedPipeClientProcessId), ``sid`` (the user SID of that process's token, None
    when it could not be read) and ``is_admin`` (an elevated Administrators member)."""

    pid: int | None = None
    uid: int | None = None
    gid: int | None = None
    groups: tuple[int, ...] | None = None
    sid: str | None = None
    is_admin: bool = False


class Session(Protocol):
    """The connection side a context talks to (implemented by ``server.connection``)."""

    loop: asyncio.AbstractEventLoop

    def send_notification(self, method: str, params: dict[str, Any]) -> None:
        """Queue one notification frame for the client (loop thread only)."""

    def enqueue_event(self, sub: Subscription, method: str, params: dict[str, Any],
                      weight: int = 1) -> None:
        """Queue a subscription's notification carrying ``weight`` events, dropping its
        oldest when its queue is full (counting their weights as dropped events)."""

    def add_subscription(self, sub: Subscription) -> None:
        """Track ``sub`` so it ends with the connection."""

    def remove_subscription(self, sub: Subscription) -> None:
        """Stop tracking ``sub``."""

    def find_subscription(self, sub_id: str) -> Subscription | None:
        """The live subscription ``sub_id`` of this connection, if any."""

    @property
    def outbound_queue(self) -> int:
        """Events a subscription may queue before the oldest are dropped."""


class Subscription:
    """A stream of notifications ``<namespace>.<event>`` to one connection.

    ``push(event, params, weight)`` (loop thread) or ``push_threadsafe`` (any thread)
    sends ``{"method": f"{namespace}.{event}", "params": {"subscription": id, **params}}``,
    a notification that carries ``weight`` events (a ``watch.event`` batch carries
    several). When the client reads slowly, notifications wait in ``queue`` as
    (encoded frame, weight) pairs, bounded by the server's ``outbound_queue``
    notifications and ``outbound_queue_bytes`` bytes (``queued_bytes``); past either
    the oldest are dropped, ``dropped`` grows by their weights, and the client later
    receives ``<namespace>.overflow`` with ``dropped``: the number of events lost.
    ``close()`` ends it and runs the ``on_close`` callbacks once (also when the
    connection closes).
    """

    def __init__(self, session: Session, namespace: str) -> None:
        self.id = f"{namespace}-{next(_sub_ids)}"
        self.namespace = namespace
        self.created_at = time.time()
        self.queue: collections.deque[tuple[bytes, int]] = collections.deque()
        self.queued_bytes = 0
        self.dropped = 0
        self.sent = 0
        self.closed = False
        self.info: dict[str, Any] = {}
        self._session = session
        self._on_close: list[Callable[[Subscription], None]] = []

    def on_close(self, callback: Callable[[Subscription], None]) -> None:
        """Run ``callback(sub)`` once when the subscription ends."""
        self._on_close.append(callback)

    def push(self, event: str, params: dict[str, Any], weight: int = 1) -> None:
        """Send ``<namespace>.<event>`` carrying ``weight`` events (what an overflow
        counts as lost if this notification is dropped) (loop thread only); no-op once
        closed."""
        if self.closed:
            return
        body = {"subscription": self.id}
        body.update(params)
        self._session.enqueue_event(self, f"{self.namespace}.{event}", body, weight)

    def push_threadsafe(self, event: str, params: dict[str, Any], weight: int = 1) -> None:
        """``push`` from any thread."""
        self._session.loop.call_soon_threadsafe(self.push, event, params, weight)

    def close(self) -> None:
        """End the subscription: stop sending and run the close callbacks once."""
        if self.closed:
            return
        self.closed = True
        self.queue.clear()
        self.queued_bytes = 0
        self._session.remove_subscription(self)
        for cb in self._on_close:
            try:
                cb(self)
            except Exception:
                log.exception("subscription %s close callback failed", self.id)


class Context:
    """One request as a handler sees it.

    Attributes: ``request_id`` (int or None outside the socket protocol), ``method``,
    ``peer`` (``Peer``), ``app`` (the daemon's ``App``: config, services, thread pool),
    ``want_progress`` (the request carried ``progress: true``), ``cancelled`` (a
    ``threading.Event`` set when the client went away; long blocking work should check it).
    """

    __slots__ = ("_cancelled", "_last_progress", "app", "method", "peer", "request_id",
                 "session", "want_progress")

    def __init__(
        self,
        app: App,
        method: str,
        request_id: int | None = None,
        peer: Peer | None = None,
        session: Session | None = None,
        want_progress: bool = False,
    ) -> None:
        self.app = app
        self.method = method
        self.request_id = request_id
        self.peer = peer or Peer()
        self.session = session
        self.want_progress = want_progress
        self._cancelled: threading.Event | None = None
        self._last_progress = 0.0

    @property
    def cancelled(self) -> threading.Event:
        """Set when the client went away. Made on first use (a ``threading.Event`` costs
        more to build than a whole inline request), under a lock because the loop and a
        worker thread may both ask first."""
        event = self._cancelled
        if event is None:
            with _event_lock:
                event = self._cancelled
                if event is None:
                    event = self._cancelled = threading.Event()
        return event

    # ---------------------------------------------------------------- progress

    def progress(self, done: int, total: int | None = None, unit: str = "bytes",
                 force: bool = False) -> None:
        """Report progress of this request (docs/protocol.md "Progress"), from any thread.

        Sends ``<namespace>.progress {request, done, total, unit}`` when the client asked
        for it; rate-limited to one every 100 ms unless ``force`` (use it for the last).
        """
        if not self.want_progress or self.session is None or self.request_id is None:
            return
        now = time.monotonic()
        if not force and now - self._last_progress < 0.1:
            return
        self._last_progress = now
        ns = self.method.partition(".")[0]
        params = {"request": self.request_id, "done": done, "total": total, "unit": unit}
        session = self.session
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is session.loop:
            session.send_notification(f"{ns}.progress", params)
        else:
            session.loop.call_soon_threadsafe(session.send_notification, f"{ns}.progress",
                                              params)

    def check_cancelled(self) -> None:
        """Raise ``asyncio.CancelledError`` when the client has gone (for blocking loops)."""
        if self.cancelled.is_set():
            raise asyncio.CancelledError()

    # ----------------------------------------------------------- subscriptions

    def subscribe(self, namespace: str) -> Subscription:
        """Open a subscription on this connection (loop thread only); raises
        ``InvalidRequest`` where the transport cannot push (plain HTTP)."""
        if self.session is None:
            raise InvalidRequest(f"{self.method} needs a streaming connection (socket or /ws)")
        sub = Subscription(self.session, namespace)
        self.session.add_subscription(sub)
        return sub

    def subscription(self, sub_id: str, namespace: str | None = None) -> Subscription:
        """The caller's live subscription ``sub_id``; raises ``NotFound``."""
        sub = self.session.find_subscription(sub_id) if self.session is not None else None
        if sub is None or (namespace is not None and sub.namespace != namespace):
            raise NotFound(f"no subscription {sub_id!r} on this connection",
                           {"subscription": sub_id})
        return sub
