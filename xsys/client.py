"""Python clients for the xsys daemon: ``Client`` (blocking, plain sockets) and
``AsyncClient`` (asyncio, pipelined). Both need only msgpack and the standard library.

    from xsys.client import Client
    with Client() as c:                       # socket from XSYS_SOCKET or the defaults
        print(c.sys.memory()["virtual"]["percent"])
        print(c.call("sys.processes", sort="memory", limit=5))
        with c.subscribe("watch.add", paths=["/tmp"]) as sub:
            for event in sub:                 # notification params, until closed
                print(event)

    async with AsyncClient() as c:
        results = await asyncio.gather(*(c.call("rpc.ping") for _ in range(100)))

Errors arrive as the typed exceptions of ``xsys.protocol`` (``NotFound``,
``InvalidParams``...); a missing daemon raises ``DaemonNotRunning`` naming the socket, and
a connection lost mid-call raises ``ConnectionClosed``. Timeouts raise ``TimeoutError``.

Trust: before a request is sent, both clients check that the socket file is owned by a
trusted uid (root and the client's own uid; or root and ``expected_uid`` /
``$XSYS_SERVER_UID``) and, on Linux, that the process that accepted the connection runs as
one (``SO_PEERCRED``). Otherwise they raise ``UntrustedServer`` (-32006, a subclass of
``Unauthorized``) and nothing is sent.

Paths: parameters may be ``str``, ``bytes`` or ``os.PathLike``; ``bytes`` (and a ``str``
that is not valid UTF-8, such as ``os.fsdecode`` gives for a non-UTF-8 name) travel as
msgpack bin. File names in results come back as ``bytes`` where they are not UTF-8.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import math
import os
import select
import socket
import struct
import threading
import time
import typing
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from xsys.protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    LARGE_FRAME_BYTES,
    ConnectionClosed,
    DaemonNotRunning,
    FrameDecoder,
    Unauthorized,
    XsysError,
    default_socket_path,
    encode_request,
    error_from_wire,
    unpackb,
)

ProgressCallback = Callable[[dict[str, Any]], None]

#: The method that ends a subscription opened by each streaming method.
UNSUBSCRIBE = {
    "watch.add": "watch.remove",
    "monitor.subscribe": "monitor.unsubscribe",
}


class UntrustedServer(Unauthorized):
    """Client side: the socket, or the process behind it, belongs to a uid this client
    does not trust as the daemon's (another user may be impersonating it); nothing was
    sent. ``code`` -32006 (unauthorized); ``data``: ``{"socket", "uid", "expected_uids",
    "check": "socket_owner" | "peer_credentials"}`` (and ``"pid"`` for the latter)."""

    name = "untrusted_server"


#: Environment variable naming the uid (or user name) the daemon runs as.
SERVER_UID_ENV = "XSYS_SERVER_UID"
_PEERCRED = struct.Struct("3i")


def trusted_server_uids(expected_uid: int | None = None,
                        environ: typing.Mapping[str, str] | None = None,
                        ) -> frozenset[int] | None:
    """The uids a client accepts as the daemon's: root and ``expected_uid`` when given,
    else root and ``$XSYS_SERVER_UID`` (a uid or a user name) when set, else root and
    the client's own effective uid. None where the platform has no uids (Windows: no
    check). Raises ``ValueError`` for an unknown user name."""
    if not hasattr(os, "geteuid"):
        return None
    if expected_uid is None:
        env = os.environ if environ is None else environ
        named = env.get(SERVER_UID_ENV, "").strip()
        if named.isdigit():
            expected_uid = int(named)
        elif named:
            import pwd

            try:
                expected_uid = pwd.getpwnam(named).pw_uid
            except KeyError:
                raise ValueError(f"{SERVER_UID_ENV}={named!r} is neither a uid nor a known "
                                 "user name") from None
    return frozenset({0, os.geteuid() if expected_uid is None else expected_uid})


def _untrusted(path: str, uid: int, trusted: frozenset[int], check: str,
               pid: int | None = None) -> UntrustedServer:
    what = "the socket file is owned by" if check == "socket_owner" else \
        f"the process answering on it (pid {pid}) runs as"
    data: dict[str, Any] = {"socket": path, "uid": uid, "expected_uids": sorted(trusted),
                            "check": check}
    if pid is not None:
        data["pid"] = pid
    return UntrustedServer(
        f"refusing to talk to {path}: {what} uid {uid}, not a trusted uid "
        f"({', '.join(map(str, sorted(trusted)))}); another user may be impersonating the "
        f"xsys daemon (if it runs as another user, pass expected_uid or set "
        f"{SERVER_UID_ENV})", data)


def _check_socket_owner(path: str, trusted: frozenset[int] | None) -> None:
    """Refuse ``path`` before connecting when its socket file (symlinks followed, as
    ``connect`` does) belongs to an untrusted uid. A missing or unreadable path is left
    to ``connect`` to report. Raises ``UntrustedServer``."""
    if trusted is None or path.startswith("\0"):  # no uids, or an abstract socket
        return
    try:
        uid = os.stat(path).st_uid
    except OSError:
        return
    if uid not in trusted:
        raise _untrusted(path, uid, trusted, "socket_owner")


def _check_peer(sock: Any, path: str, trusted: frozenset[int] | None) -> None:
    """Refuse a connected socket whose peer (``SO_PEERCRED``, Linux) runs as an untrusted
    uid: unlike the file owner, this cannot be raced. Raises ``UntrustedServer``."""
    if trusted is None or not hasattr(socket, "SO_PEERCRED"):
        return
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    pid, uid, _gid = _PEERCRED.unpack(raw)
    if uid not in trusted:
        raise _untrusted(path, uid, trusted, "peer_credentials", pid)


def _wire_value(value: Any) -> Any:
    """``value`` with paths made packable: ``os.PathLike`` -> ``os.fspath``, a ``str``
    that is not valid UTF-8 (surrogate escapes) -> ``os.fsencode`` bytes (msgpack bin),
    through lists, tuples and maps."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return os.fsencode(value)
        return value
    if isinstance(value, os.PathLike):
        return _wire_value(os.fspath(value))
    if isinstance(value, dict):
        return {key: _wire_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_wire_value(item) for item in value]
    return value


def _encode(req_id: int, method: str, params: dict[str, Any] | None) -> bytes:
    """The request frame; params holding ``os.PathLike`` or non-UTF-8 ``str`` values are
    converted (``_wire_value``) only when plain packing fails, so the common case pays
    nothing. Raises ``TypeError`` for values msgpack cannot carry."""
    try:
        return encode_request(req_id, method, params)
    except (TypeError, UnicodeEncodeError):
        if params is None:
            raise
        return encode_request(req_id, method, _wire_value(params))


def _params(params: dict[str, Any] | None, kwargs: dict[str, Any],
            on_progress: ProgressCallback | None) -> dict[str, Any] | None:
    """The request's params: ``params`` and keyword arguments merged, plus
    ``progress: true`` when a progress callback was given."""
    merged = (kwargs or None) if params is None else ({**params, **kwargs} if kwargs else params)
    if on_progress is not None:
        merged = {**(merged or {}), "progress": True}
    return merged


def _readable(sock: socket.socket, timeout: float) -> bool:
    """Wait up to ``timeout`` s (at most ~24 days) for ``sock`` to have data, EOF or an
    error; False when the wait ran out."""
    if _HAVE_POLL:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(min(math.ceil(timeout * 1000), 2**31 - 1)))
    return bool(select.select([sock], [], [], timeout)[0])


_HAVE_POLL = hasattr(select, "poll")
_READ_SIZE = 256 * 1024


def _expire(fut: asyncio.Future[Any], method: str, wait: float) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError(f"no answer to {method} within {wait}s"))


def _not_running(path: str, exc: OSError) -> DaemonNotRunning:
    return DaemonNotRunning(
        f"cannot connect to the xsys daemon at {path} ({exc.strerror or exc}); "
        "start it with `xsys serve`",
        {"socket": path},
    )


class _Namespace:
    """``client.sys.info(**params)`` -> ``client.call("sys.info", **params)``."""

    def __init__(self, call: Callable[..., Any], name: str) -> None:
        self._call = call
        self._name = name

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_"):
            raise AttributeError(method)
        full = f"{self._name}.{method}"
        return lambda params=None, **kw: self._call(full, params, **kw)


# =========================================================================== blocking


class Subscription:
    """A stream opened by a streaming method (``watch.add``, ``monitor.subscribe``).

    Iterating yields each notification's ``params`` (with ``"method"`` added); the
    iterator ends when the subscription is closed. ``next(timeout)`` returns one or None.
    ``close()`` calls the matching remove/unsubscribe method.
    """

    def __init__(self, client: Client, method: str, sub_id: str) -> None:
        self.client = client
        self.method = method
        self.id = sub_id
        self.closed = False

    def next(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next notification of this subscription, or None after ``timeout`` s."""
        return self.client._next_event(self.id, timeout)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while not self.closed:
            event = self.next(None)
            if event is not None:
                yield event

    def close(self) -> None:
        """Unsubscribe (ignored when the connection is already gone)."""
        if self.closed:
            return
        self.closed = True
        unsub = UNSUBSCRIBE.get(self.method)
        if unsub:
            with contextlib.suppress(XsysError, OSError):
                self.client.call(unsub, subscription=self.id)
        self.client._events.pop(self.id, None)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Client:
    """A blocking client over one Unix socket (not thread-safe; one per thread).

    ``socket_path``: default ``default_socket_path()``; ``connect_timeout`` and
    ``timeout`` (per call) in seconds (None = wait forever). Subscription events that
    arrive while waiting for a response are kept (at most ``max_queued_events`` per
    subscription, oldest dropped) until read. ``expected_uid``: the uid the daemon runs
    as, when neither root nor this process's (default ``$XSYS_SERVER_UID``); see
    ``trusted_server_uids``. Raises ``UntrustedServer`` on connect when the socket or its
    server belongs to another uid.
    """

    def __init__(
        self,
        socket_path: str | None = None,
        *,
        connect_timeout: float = 5.0,
        timeout: float | None = 30.0,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        max_queued_events: int = 10_000,
        connect: bool = True,
        expected_uid: int | None = None,
    ) -> None:
        self.socket_path = socket_path or default_socket_path()
        self.trusted_uids = trusted_server_uids(expected_uid)
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.max_frame_bytes = max_frame_bytes
        self.max_queued_events = max_queued_events
        self._sock: socket.socket | None = None
        # Reads go into one buffer: recv(256 KiB) would mmap, shrink and unmap a fresh
        # block on every read (three syscalls and a page fault per answer).
        self._rbuf = bytearray(_READ_SIZE)
        self._rview = memoryview(self._rbuf)
        self._decoder = FrameDecoder(max_frame_bytes)
        self._ids = itertools.count(1)
        self._ready: collections.deque[Any] = collections.deque()
        self._events: dict[str, collections.deque[dict[str, Any]]] = {}
        self._other: collections.deque[dict[str, Any]] = collections.deque(maxlen=1000)
        self._lock = threading.RLock()
        if connect:
            self.connect()

    # ------------------------------------------------------------------ connection

    def connect(self) -> Client:
        """Open the socket; raises ``DaemonNotRunning`` when nothing listens there and
        ``UntrustedServer`` when the socket or the process behind it is another uid's."""
        if self._sock is not None:
            return self
        _check_socket_owner(self.socket_path, self.trusted_uids)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.connect_timeout)
        try:
            sock.connect(self.socket_path)
            _check_peer(sock, self.socket_path, self.trusted_uids)
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError) as exc:
            sock.close()
            raise _not_running(self.socket_path, exc) from None
        except (OSError, UntrustedServer):
            sock.close()
            raise
        # Blocking from now on: sends never time out, and a read with a deadline waits
        # for readability first (poll), so no call switches the socket's mode (a syscall
        # each way) or takes the EAGAIN-poll-retry path of a socket with a timeout.
        sock.settimeout(None)
        self._sock = sock
        return self

    def close(self) -> None:
        """Close the socket (subscriptions end with it)."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None

    def __enter__(self) -> Client:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> _Namespace:
        if name.startswith("_"):
            raise AttributeError(name)
        return _Namespace(self.call, name)

    # ------------------------------------------------------------------ calls

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float | None = -1.0,
        on_progress: ProgressCallback | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call ``method`` with ``params`` (a map, and/or keyword arguments) and return
        its result. ``on_progress`` asks for progress (``progress: true``) and receives
        each ``<ns>.progress`` params. Raises the protocol's typed errors, ``TimeoutError``
        and ``ConnectionClosed``."""
        merged = _params(params, kwargs, on_progress)
        with self._lock:
            req_id = next(self._ids)
            self._send(_encode(req_id, method, merged))
            return self._wait_response(req_id, self.timeout if timeout == -1.0 else timeout,
                                       on_progress)

    def subscribe(self, method: str, params: dict[str, Any] | None = None,
                  **kwargs: Any) -> Subscription:
        """Call a streaming method and return its ``Subscription``."""
        result = self.call(method, params, **kwargs)
        sub_id = result["subscription"]
        self._events.setdefault(sub_id, collections.deque())
        return Subscription(self, method, sub_id)

    def notifications(self, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Every notification not claimed by a subscription (as ``{"method", **params}``),
        until none arrives for ``timeout`` s."""
        while True:
            if self._other:
                yield self._other.popleft()
                continue
            msg = self._read_one(timeout)
            if msg is None:
                return
            self._route(msg)

    # ------------------------------------------------------------------ internals

    def _send(self, frame: bytes) -> None:
        if self._sock is None:
            self.connect()
        assert self._sock is not None
        try:
            self._sock.sendall(frame)
        except OSError as exc:
            refusal = self._refusal()
            self.close()
            if refusal is not None:  # e.g. unauthorized: the daemon said why, then closed
                raise refusal from None
            raise ConnectionClosed(f"connection to {self.socket_path} lost: {exc}") from None

    def _refusal(self) -> XsysError | None:
        """A connection-level error frame (id nil) the daemon sent before closing, if one
        is still readable."""
        sock = self._sock
        if sock is None:
            return None
        try:
            sock.setblocking(False)
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                for payload in self._decoder.feed(data):
                    self._ready.append(unpackb(payload))
        except (OSError, XsysError):
            pass
        for msg in self._ready:
            if isinstance(msg, dict) and msg.get("id") is None and "error" in msg:
                return error_from_wire(msg["error"])
        return None

    def _read_one(self, timeout: float | None) -> dict[str, Any] | None:
        """One decoded message, or None on timeout."""
        if self._ready:
            msg: dict[str, Any] = self._ready.popleft()
            return msg
        if self._sock is None:
            raise ConnectionClosed(f"not connected to {self.socket_path}")
        sock = self._sock
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ready:
            try:
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    if not _readable(sock, remaining):
                        continue
                n = sock.recv_into(self._rbuf)
            except OSError as exc:
                self.close()
                raise ConnectionClosed(f"connection to {self.socket_path} lost: {exc}") \
                    from None
            if not n:
                self.close()
                raise ConnectionClosed(f"the daemon at {self.socket_path} closed the "
                                       "connection")
            for payload in self._decoder.feed(self._rview[:n].tobytes()):
                self._ready.append(unpackb(payload))
            if not self._ready:
                self._read_large_frame(sock)
        msg = self._ready.popleft()
        return msg

    def _read_large_frame(self, sock: socket.socket) -> None:
        """When a large frame is arriving, receive the rest of its payload straight into
        one buffer of its size (file contents: no growing buffer, no extra copies)."""
        pending = self._decoder.pending_frame()
        if pending is None or pending[0] < LARGE_FRAME_BYTES:
            return
        length, _ = pending
        frame = bytearray(length)
        view = memoryview(frame)
        pos = self._decoder.take_partial(view)
        try:
            while pos < length:
                n = sock.recv_into(view[pos:])
                if not n:
                    raise ConnectionClosed(f"the daemon at {self.socket_path} closed the "
                                           "connection mid-frame")
                pos += n
        except OSError as exc:
            self.close()
            raise ConnectionClosed(f"connection to {self.socket_path} lost: {exc}") from None
        self._ready.append(unpackb(frame))

    def _route(self, msg: dict[str, Any]) -> None:
        """File a notification under its subscription (or the unclaimed queue)."""
        params = msg.get("params") or {}
        event = {"method": msg.get("method"), **params}
        queue = self._events.get(params.get("subscription", ""))
        if queue is None:
            self._other.append(event)
            return
        queue.append(event)
        if len(queue) > self.max_queued_events:
            queue.popleft()

    def _wait_response(self, req_id: int, timeout: float | None,
                       on_progress: ProgressCallback | None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            msg = self._read_one(remaining)
            if msg is None:
                # the answer may still come: this connection cannot be trusted any more
                self.close()
                raise TimeoutError(f"no answer to request {req_id} within {timeout}s")
            if "id" not in msg:
                if (on_progress is not None and str(msg.get("method", "")).endswith(
                        ".progress") and (msg.get("params") or {}).get("request") == req_id):
                    on_progress(msg["params"])
                else:
                    self._route(msg)
                continue
            if msg["id"] == req_id:
                if "error" in msg:
                    raise error_from_wire(msg["error"])
                return msg.get("result")
            if msg["id"] is None and "error" in msg:
                raise error_from_wire(msg["error"])

    def _next_event(self, sub_id: str, timeout: float | None) -> dict[str, Any] | None:
        queue = self._events.setdefault(sub_id, collections.deque())
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while not queue:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                msg = self._read_one(remaining)
                if msg is None:
                    return None
                if "id" not in msg:
                    self._route(msg)
            return queue.popleft()


# =========================================================================== asyncio


class AsyncSubscription:
    """The asyncio form of ``Subscription``: ``async for event in sub`` yields each
    notification's params (with ``"method"``); ``await sub.aclose()`` unsubscribes.
    Events wait in a queue of ``maxsize`` (oldest dropped, counted in ``dropped``)."""

    def __init__(self, client: AsyncClient, method: str, sub_id: str,
                 maxsize: int = 10_000) -> None:
        self.client = client
        self.method = method
        self.id = sub_id
        self.queue: collections.deque[dict[str, Any] | None] = collections.deque()
        self.maxsize = maxsize
        self.dropped = 0
        self._wakeup = asyncio.Event()
        self.closed = False

    def _put(self, event: dict[str, Any] | None) -> None:
        self.queue.append(event)
        if len(self.queue) > self.maxsize:
            self.queue.popleft()
            self.dropped += 1
        self._wakeup.set()

    async def next(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next event, or None on timeout or when closed."""
        while not self.queue:
            if self.closed:
                return None
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            except asyncio.TimeoutError:
                return None
        return self.queue.popleft()

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            event = await self.next()
            if event is None:
                return
            yield event

    async def aclose(self) -> None:
        """Unsubscribe and end the iteration."""
        if self.closed:
            return
        self.closed = True
        self._put(None)
        self.client._subs.pop(self.id, None)
        unsub = UNSUBSCRIBE.get(self.method)
        if unsub and self.client.connected:
            with contextlib.suppress(XsysError, OSError):
                await self.client.call(unsub, subscription=self.id)

    async def __aenter__(self) -> AsyncSubscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class _AsyncProtocol(asyncio.Protocol):
    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        #: Until the server is verified, what it sends waits (reading paused) in
        #: ``_early``; a refused connection is detached and everything is dropped.
        self.state: typing.Literal["pending", "attached", "detached"] = "pending"
        self._early: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)

    def attach(self) -> None:
        """The server is trusted: deliver what it sent so far and read on."""
        self.state = "attached"
        early, self._early = self._early, []
        for data in early:
            self.data_received(data)
        if early and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.state != "attached":
            if self.state == "pending" and self.transport is not None:
                self._early.append(data)
                self.transport.pause_reading()
            return
        client = self.client
        try:
            payloads = client._decoder.feed(data)
        except XsysError as exc:
            client._fail(exc)
            if self.transport is not None:
                self.transport.close()
            return
        for payload in payloads:
            client._dispatch(unpackb(payload))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.state == "detached":
            return
        self.client._fail(ConnectionClosed(
            f"connection to {self.client.socket_path} lost" + (f": {exc}" if exc else "")))


class AsyncClient:
    """An asyncio client over one Unix socket; calls may be pipelined freely
    (``asyncio.gather``), each matched to its answer by id.

    Use ``async with AsyncClient(path) as c`` or ``await c.connect()``/``await c.close()``.
    ``expected_uid``: as for ``Client``.
    """

    def __init__(
        self,
        socket_path: str | None = None,
        *,
        connect_timeout: float = 5.0,
        timeout: float | None = 30.0,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        expected_uid: int | None = None,
    ) -> None:
        self.socket_path = socket_path or default_socket_path()
        self.trusted_uids = trusted_server_uids(expected_uid)
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self._decoder = FrameDecoder(max_frame_bytes)
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._progress: dict[int, ProgressCallback] = {}
        self._subs: dict[str, AsyncSubscription] = {}
        self._transport: asyncio.Transport | None = None
        self._corked: list[bytes] | None = None
        self.notification_handlers: list[Callable[[str, dict[str, Any]], None]] = []

    @property
    def connected(self) -> bool:
        """True while the socket is open."""
        return self._transport is not None and not self._transport.is_closing()

    async def connect(self) -> AsyncClient:
        """Open the socket; raises ``DaemonNotRunning`` when nothing listens there and
        ``UntrustedServer`` when the socket or the process behind it is another uid's."""
        if self.connected:
            return self
        loop = asyncio.get_running_loop()
        self._decoder = FrameDecoder(self._decoder.max_frame_bytes)
        # A stat of the path blocks no longer than the connect's own path lookup.
        _check_socket_owner(self.socket_path, self.trusted_uids)
        try:
            transport, protocol = await asyncio.wait_for(
                loop.create_unix_connection(lambda: _AsyncProtocol(self), self.socket_path),
                self.connect_timeout)
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError) as exc:
            raise _not_running(self.socket_path, exc) from None
        try:
            _check_peer(transport.get_extra_info("socket"), self.socket_path,
                        self.trusted_uids)
        except UntrustedServer:
            protocol.state = "detached"
            transport.abort()
            raise
        self._transport = transport
        protocol.attach()
        self._corked = None  # frames held for a previous connection died with it
        return self

    async def close(self) -> None:
        """Close the socket; pending calls fail with ``ConnectionClosed``."""
        if self._transport is not None:
            self._uncork()  # requests already made still go out, as before corking
            self._transport.close()
            self._transport = None
        await asyncio.sleep(0)

    async def __aenter__(self) -> AsyncClient:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __getattr__(self, name: str) -> _Namespace:
        if name.startswith("_"):
            raise AttributeError(name)
        return _Namespace(self.call, name)

    async def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float | None = -1.0,
        on_progress: ProgressCallback | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call ``method`` and await its result (see ``Client.call``)."""
        if not self.connected:
            await self.connect()
        assert self._transport is not None
        merged = _params(params, kwargs, on_progress)
        req_id = next(self._ids)
        frame = _encode(req_id, method, merged)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending[req_id] = fut
        if on_progress is not None:
            self._progress[req_id] = on_progress
        self._send(frame)
        wait = self.timeout if timeout == -1.0 else timeout
        # A timer on the future itself rather than asyncio.wait_for, which costs a second
        # future and its callbacks on every call.
        timer = None if wait is None else loop.call_later(wait, _expire, fut, method, wait)
        try:
            return await fut
        finally:
            if timer is not None:
                timer.cancel()
            self._pending.pop(req_id, None)
            self._progress.pop(req_id, None)

    def _send(self, frame: bytes) -> None:
        """Write ``frame``: the first of a loop iteration at once, the ones that follow in
        the same iteration (``asyncio.gather`` of many calls) together, in one write."""
        assert self._transport is not None
        if self._corked is not None:
            self._corked.append(frame)
            return
        self._transport.write(frame)
        self._corked = []
        asyncio.get_running_loop().call_soon(self._uncork)

    def _uncork(self) -> None:
        frames, self._corked = self._corked, None
        if frames and self._transport is not None and not self._transport.is_closing():
            self._transport.write(b"".join(frames))

    async def subscribe(self, method: str, params: dict[str, Any] | None = None,
                        **kwargs: Any) -> AsyncSubscription:
        """Call a streaming method and return its ``AsyncSubscription``."""
        result = await self.call(method, params, **kwargs)
        sub = AsyncSubscription(self, method, result["subscription"])
        self._subs[sub.id] = sub
        return sub

    def _dispatch(self, msg: Any) -> None:
        if not isinstance(msg, dict):
            return
        if "id" in msg and msg["id"] is not None:
            fut = self._pending.get(msg["id"])
            if fut is None or fut.done():
                return
            if "error" in msg:
                fut.set_exception(error_from_wire(msg["error"]))
            else:
                fut.set_result(msg.get("result"))
            return
        if "error" in msg:  # connection-level error (id nil)
            err = error_from_wire(msg["error"])
            if len(self._pending) == 1:
                fut = next(iter(self._pending.values()))
                if not fut.done():
                    fut.set_exception(err)
            return
        method = str(msg.get("method", ""))
        params = msg.get("params") or {}
        if method.endswith(".progress"):
            request = params.get("request")
            cb = self._progress.get(request) if isinstance(request, int) else None
            if cb is not None:
                cb(params)
            return
        sub = self._subs.get(params.get("subscription", ""))
        if sub is not None:
            sub._put({"method": method, **params})
        for handler in self.notification_handlers:
            handler(method, params)

    def _fail(self, exc: XsysError) -> None:
        self._transport = None
        self._corked = None
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(exc)
        self._pending.clear()
        for sub in list(self._subs.values()):
            sub.closed = True
            sub._put(None)
