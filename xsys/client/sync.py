"""The blocking client: ``Client`` (one plain Unix socket, or on Windows the daemon's
named pipe through ``_stream.PipeStream``, one call at a time) and
``Subscription``. Only the I/O lives here; ids, routing and event queues are
``_core.CallState``'s, the typed namespaces (``client.sys.memory()``) the generated
``_methods.Namespaces``."""

from __future__ import annotations

import array
import collections
import contextlib
import io
import math
import os
import select
import socket
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO

from xsys.client._core import (
    USE_CLIENT_DEFAULT,
    CallState,
    DynamicNamespace,
    EventQueue,
    NotificationHandler,
    ProgressCallback,
    Timeout,
    effective_timeout,
    merge_params,
    not_running,
    result_of,
)
from xsys.client._methods import UNSUBSCRIBE, Namespaces
from xsys.client._stream import PipeStream, open_pipe
from xsys.client._trust import (
    UntrustedServer,
    check_peer,
    check_pipe_server,
    check_socket_owner,
    trusted_server_sids,
    trusted_server_uids,
)
from xsys.protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    LARGE_FRAME_BYTES,
    ConnectionClosed,
    XsysError,
    default_socket_path,
    error_from_wire,
    unpackb,
)

_HAVE_POLL = hasattr(select, "poll")
_READ_SIZE = 256 * 1024


def _readable(sock: socket.socket | PipeStream, timeout: float) -> bool:
    """Wait up to ``timeout`` s (at most ~24 days) for ``sock`` to have data, EOF or an
    error; False when the wait ran out."""
    if isinstance(sock, PipeStream):
        return sock.wait_readable(timeout)
    if _HAVE_POLL:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(min(math.ceil(timeout * 1000), 2**31 - 1)))
    return bool(select.select([sock], [], [], timeout)[0])


class Subscription:
    """A stream opened by a streaming method (``client.watch.add(...)``,
    ``client.monitor.subscribe(...)`` or ``client.subscribe(method, ...)``).

    Iterating yields each notification's ``params`` (with ``"method"`` added); the
    iterator ends when the subscription is closed. ``next(timeout)`` returns one or None.
    ``close()`` calls the matching remove/unsubscribe method. ``result`` is the streaming
    method's answer (``{"subscription": id, ...}``); ``dropped`` counts events lost
    because more than the client's ``max_queued_events`` waited unread.
    """

    def __init__(self, client: Client, method: str, sub_id: str,
                 result: dict[str, Any] | None = None) -> None:
        self.client = client
        self.method = method
        self.id = sub_id
        self.result: dict[str, Any] = result if result is not None else {"subscription": sub_id}
        self.closed = False
        self._queue = client._state.open(sub_id)

    @property
    def dropped(self) -> int:
        """Events dropped from this subscription's full queue so far."""
        return self._queue.dropped

    def next(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next notification of this subscription, or None after ``timeout`` s."""
        return self.client._next_event(self._queue, timeout)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while not self.closed:
            event = self.next(None)
            if event is not None:
                yield event
            elif self._queue.closed:
                return

    def close(self) -> None:
        """Unsubscribe (ignored when the connection is already gone)."""
        if self.closed:
            return
        self.closed = True
        unsub = UNSUBSCRIBE.get(self.method)
        if unsub and self.client.connected:
            with contextlib.suppress(XsysError, OSError):
                self.client.call(unsub, subscription=self.id)
        self.client._state.drop(self.id)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: How an ``fs.chunk`` notification's payload starts (``xsys.fs.streams.chunk_frame``).
_CHUNK_HEAD = b"\x82\xa6method\xa8fs.chunk\xa6params\x83\xa7request"
_CHUNK_DATA = b"\xa4data\xc6"


def _chunk_without_copy(frame: bytearray) -> dict[str, Any] | None:
    """An ``fs.chunk`` notification decoded with ``data`` as a memoryview into ``frame``
    (a 4 MiB chunk is not copied again); None for any other frame."""
    if not frame.startswith(_CHUNK_HEAD):
        return None
    at = frame.find(_CHUNK_DATA, len(_CHUNK_HEAD), len(_CHUNK_HEAD) + 40)
    if at < 0:
        return None
    start = at + len(_CHUNK_DATA) + 4
    if int.from_bytes(frame[start - 4:start], "big") != len(frame) - start:
        return None
    msg: dict[str, Any] = unpackb(bytes(frame[:at + len(_CHUNK_DATA) - 1]) + b"\xc4\x00")
    msg["params"]["data"] = memoryview(frame)[start:]
    return msg


#: ``sys.getrefcount`` where it exists (CPython), what it says of a spare buffer nothing
#: else refers to, and how many spares a client keeps (``Client._frame_buffer``).
_getrefcount = getattr(sys, "getrefcount", None)
_SPARE_REFS = 3
_SPARES = 3

#: Most descriptors one read accepts.
_MAX_FDS = 16
_CMSG_FLAGS = getattr(socket, "MSG_CMSG_CLOEXEC", 0)


class _CommitFile(io.BufferedWriter):
    """The writer ``Client.open_file`` returns for ``wb``: closing it commits the file
    (``fs.close {handle, commit: true}``); leaving a ``with`` block by an exception
    discards it (``commit: false``)."""

    def __init__(self, fd: int, client: Client, handle: int, path: str) -> None:
        super().__init__(io.FileIO(fd, "wb"), buffer_size=1024 * 1024)
        self._client = client
        self.handle = handle
        self.path = path
        self.result: dict[str, Any] | None = None
        self.owns_client = False  # close the client after the commit (AsyncClient's)
        self._commit = True

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is not None:
            self._commit = False
        self.close()

    def close(self) -> None:
        """Flush, close the descriptor and commit (or discard) through the daemon."""
        if self.closed:
            return
        try:
            super().close()
        finally:
            try:
                self.result = self._client.call("fs.close", handle=self.handle,
                                                commit=self._commit)
            finally:
                if self.owns_client:
                    self._client.close()


class Client(Namespaces):
    """A blocking client over one Unix socket (not thread-safe; one per thread).

    ``socket_path``: default ``default_socket_path()``; ``connect_timeout`` and
    ``timeout`` (per call) in seconds (None = wait forever). Subscription events that
    arrive while waiting for a response are kept (at most ``max_queued_events`` per
    subscription, oldest dropped) until read. ``expected_uid``: the uid the daemon runs
    as, when neither root nor this process's (default ``$XSYS_SERVER_UID``); see
    ``trusted_server_uids``. Raises ``UntrustedServer`` on connect when the socket or its
    server belongs to another uid. On Windows ``socket_path`` is the pipe name (default
    ``\\\\.\\pipe\\xsys``) and ``expected_sid`` (default ``$XSYS_SERVER_SID``, else this
    process's account) the account the daemon runs as; SYSTEM and elevated
    Administrators are trusted too (``trusted_server_sids``).

    Every method has a typed wrapper by namespace (``client.sys.memory()``,
    ``client.fs.read(path=...)``: keyword arguments, see ``xsys.client._methods``);
    ``client.call("sys.memory")`` calls any method by name.
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
        expected_sid: str | None = None,
    ) -> None:
        self.socket_path = socket_path or default_socket_path()
        self.trusted_uids = trusted_server_uids(expected_uid)
        self.trusted_sids = trusted_server_sids(expected_sid)
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.max_frame_bytes = max_frame_bytes
        self.max_queued_events = max_queued_events
        self._state = CallState(max_frame_bytes, max_queued_events, keep_unclaimed=True)
        #: Called with ``(method, params)`` of every notification read (not progress).
        self.notification_handlers: list[NotificationHandler] = (
            self._state.notification_handlers)
        self._sock: socket.socket | PipeStream | None = None
        # Reads go into one buffer: recv(256 KiB) would mmap, shrink and unmap a fresh
        # block on every read (three syscalls and a page fault per answer).
        self._rbuf = bytearray(_READ_SIZE)
        self._rview = memoryview(self._rbuf)
        # The last chunks' buffers, reused while a streamed read runs (``_streaming``).
        self._spares: list[bytearray] = []
        self._streaming = False
        self._ready: collections.deque[Any] = collections.deque()
        self._lock = threading.RLock()
        # fs.open: while one is in flight reads use recvmsg, and descriptors received
        # (SCM_RIGHTS) wait here for the response that announces them ("fd": true).
        self._want_fds = 0
        self._fds: collections.deque[int] = collections.deque()
        if connect:
            self.connect()

    # ------------------------------------------------------------------ connection

    @property
    def connected(self) -> bool:
        """True while the socket is open."""
        return self._sock is not None

    def connect(self) -> Client:
        """Open the socket; raises ``DaemonNotRunning`` when nothing listens there and
        ``UntrustedServer`` when the socket or the process behind it is another uid's."""
        if self._sock is not None:
            return self
        if sys.platform == "win32":
            return self._connect_pipe()
        check_socket_owner(self.socket_path, self.trusted_uids)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.connect_timeout)
        try:
            sock.connect(self.socket_path)
            check_peer(sock, self.socket_path, self.trusted_uids)
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError) as exc:
            sock.close()
            raise not_running(self.socket_path, exc) from None
        except (OSError, UntrustedServer):
            sock.close()
            raise
        # Blocking from now on: sends never time out, and a read with a deadline waits
        # for readability first (poll), so no call switches the socket's mode (a syscall
        # each way) or takes the EAGAIN-poll-retry path of a socket with a timeout.
        sock.settimeout(None)
        self._state.reset()  # nothing of a previous connection is read as this one's
        self._ready.clear()
        self._sock = sock
        return self

    def _connect_pipe(self) -> Client:
        """Windows: open the named pipe and check who serves it before a byte is sent."""
        try:
            handle = open_pipe(self.socket_path, self.connect_timeout)
        except FileNotFoundError as exc:
            raise not_running(self.socket_path, exc) from None
        stream = PipeStream(handle, self.socket_path)
        try:
            check_pipe_server(handle, self.socket_path, self.trusted_sids)
        except UntrustedServer:
            stream.close()
            raise
        self._state.reset()
        self._ready.clear()
        self._sock = stream
        return self

    def close(self) -> None:
        """Close the socket (subscriptions end with it)."""
        while self._fds:
            with contextlib.suppress(OSError):
                os.close(self._fds.popleft())
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None

    def __enter__(self) -> Client:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    if not TYPE_CHECKING:

        def __getattr__(self, name: str) -> DynamicNamespace:
            # a namespace the generated wrappers do not know (a newer daemon)
            if name.startswith("_"):
                raise AttributeError(name)
            return DynamicNamespace(self.call, name)

    # ------------------------------------------------------------------ calls

    def call(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: Timeout = USE_CLIENT_DEFAULT,
        on_progress: ProgressCallback | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call ``method`` with ``params`` (a map, and/or keyword arguments) and return
        its result. ``timeout``: seconds (None: no limit; default the client's).
        ``on_progress`` asks for progress (``progress: true``) and receives each
        ``<ns>.progress`` params. Raises the protocol's typed errors, ``TimeoutError``
        and ``ConnectionClosed``."""
        return self._call(method, merge_params(params, kwargs, on_progress), timeout,
                          on_progress, subscribing=False)

    def subscribe(self, method: str, params: Mapping[str, Any] | None = None, *,
                  timeout: Timeout = USE_CLIENT_DEFAULT, **kwargs: Any) -> Subscription:
        """Call a streaming method and return its ``Subscription``; raises ``ValueError``
        when the method's answer holds no subscription id."""
        result = self._call(method, merge_params(params, kwargs, None), timeout, None,
                            subscribing=True)
        sub_id = result.get("subscription") if isinstance(result, dict) else None
        if not isinstance(sub_id, str):
            raise ValueError(f"{method} did not open a subscription (answer: {result!r})")
        return Subscription(self, method, sub_id, result)

    def notifications(self, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Every notification not claimed by a subscription (as ``{"method", **params}``),
        until none arrives for ``timeout`` s."""
        unclaimed = self._state.unclaimed
        assert unclaimed is not None
        while True:
            if unclaimed:
                yield unclaimed.popleft()
                continue
            msg = self._read_one(timeout)
            if msg is None:
                return
            self._state.route(msg)

    # ------------------------------------------------------------------ internals

    def _call(self, method: str, params: dict[str, Any] | None, timeout: Timeout,
              on_progress: ProgressCallback | None, *, subscribing: bool) -> Any:
        state = self._state
        with self._lock:
            req_id, frame = state.request(method, params, on_progress=on_progress,
                                          subscribing=subscribing)
            try:
                self._send(frame)
                return self._wait_response(req_id, effective_timeout(timeout, self.timeout))
            finally:
                state.finish(req_id)

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
                self._ready.extend(self._state.feed(data))
        except (OSError, XsysError):
            pass
        for msg in self._ready:
            if isinstance(msg, dict) and msg.get("id") is None and "error" in msg:
                return error_from_wire(msg["error"])
        return None

    def _read_one(self, timeout: float | None) -> Any:
        """One decoded message, or None on timeout."""
        ready = self._ready
        if ready:
            return ready.popleft()
        if self._sock is None:
            raise ConnectionClosed(f"not connected to {self.socket_path}")
        sock = self._sock
        decoder = self._state.decoder
        deadline = None if timeout is None else time.monotonic() + timeout
        while not ready:
            try:
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    if not _readable(sock, remaining):
                        continue
                n = (self._recv_with_fds(sock)
                     if self._want_fds and isinstance(sock, socket.socket)
                     else sock.recv_into(self._rbuf))
            except OSError as exc:
                self.close()
                raise ConnectionClosed(f"connection to {self.socket_path} lost: {exc}") \
                    from None
            if not n:
                self.close()
                raise ConnectionClosed(f"the daemon at {self.socket_path} closed the "
                                       "connection")
            for payload in decoder.feed(self._rview[:n].tobytes()):
                ready.append(unpackb(payload))
            if not ready:
                self._read_large_frame(sock)
        return ready.popleft()

    def _recv_with_fds(self, sock: socket.socket) -> int:
        """``recvmsg_into`` the read buffer, keeping any descriptors that came along."""
        n, anc, _flags, _addr = sock.recvmsg_into(
            [self._rbuf], socket.CMSG_SPACE(_MAX_FDS * 4), _CMSG_FLAGS)
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
                self._fds.extend(fds)
        return n

    def open_file(self, params: Mapping[str, Any], *,
                  timeout: Timeout = USE_CLIENT_DEFAULT) -> BinaryIO:
        """``fs.open``: the file object of the descriptor the daemon passes over the socket
        (``c.fs.open(path=..., mode="rb")``). ``rb``: a plain buffered reader (in-process
        speed). ``wb``: a writer whose ``close()`` (or the end of a ``with`` block without
        an exception) commits it with ``fs.close``, replacing the target atomically; an
        exception in the block discards it. Raises the protocol's typed errors."""
        with self._lock:
            self._want_fds += 1
            try:
                result = self._call("fs.open", dict(params), timeout, None, subscribing=False)
            finally:
                self._want_fds -= 1
            if not (isinstance(result, dict) and result.get("fd")):
                raise ConnectionClosed("fs.open answered without a descriptor")
            if not self._fds:
                raise ConnectionClosed("fs.open: the descriptor did not arrive (is this a "
                                       "Unix socket?)")
            fd = self._fds.popleft()
        if result.get("handle") is None:
            return os.fdopen(fd, "rb")
        return _CommitFile(fd, self, int(result["handle"]), str(result["path"]))

    def read_stream(self, path: str | bytes, *, offset: int = 0, length: int | None = None,
                    window_bytes: int | None = None,
                    timeout: Timeout = USE_CLIENT_DEFAULT) -> Iterator[bytes]:
        """A streamed ``fs.read``: an iterator of the file's chunks (bytes), with flow
        control (each half window consumed is acknowledged with ``fs.ack``, so the daemon
        never runs more than ``window_bytes`` ahead). Leaving the loop early closes the
        connection (the next call reconnects), which ends the stream on the daemon.
        ``timeout``: seconds to wait for each chunk. Raises the protocol's typed errors."""
        window = window_bytes or 32 * 1024 * 1024
        wait = effective_timeout(timeout, self.timeout)
        params: dict[str, Any] = {"path": path, "offset": offset, "stream": True}
        if length is not None:
            params["length"] = length
        if window_bytes is not None:
            params["window_bytes"] = window_bytes
        state = self._state
        with self._lock:
            req_id, frame = state.request("fs.read", params)
            self._send(frame)
            sock = self._sock
            if isinstance(sock, socket.socket):  # room for a chunk in the kernel (best effort)
                with contextlib.suppress(OSError):
                    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < window // 4:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, window // 4)
            consumed = acked = 0
            acks: set[int] = set()
            done = False
            self._streaming = True
            try:
                while True:
                    msg = self._read_one(wait)
                    if msg is None:
                        raise TimeoutError(f"no chunk of the streamed read within {wait}s")
                    if type(msg) is dict and msg.get("method") == "fs.chunk":
                        p = msg.get("params") or {}
                        if p.get("request") == req_id:
                            data = p["data"]
                            consumed += len(data)
                            if consumed - acked >= window // 2:
                                ack_id, ack = state.request(
                                    "fs.ack", {"request": req_id, "offset": consumed})
                                acks.add(ack_id)
                                self._send(ack)
                                acked = consumed
                            yield data
                            # nothing here keeps the chunk: its buffer may be reused
                            del data, p, msg
                            continue
                    if type(msg) is dict and msg.get("id") in acks:
                        acks.discard(msg["id"])
                        continue  # a late ack after the end is harmless
                    answer = state.route(msg)
                    if answer is None:
                        continue
                    if answer["id"] == req_id:
                        done = True
                        result_of(answer)
                        return
                    if answer["id"] is None and "error" in answer:
                        raise error_from_wire(answer["error"])
            finally:
                self._streaming = False
                self._spares.clear()
                state.finish(req_id)
                if not done:
                    self.close()

    def write_stream(self, path: str | bytes, chunks: Iterable[bytes], *,
                     max_inflight: int = 4,
                     timeout: Timeout = USE_CLIENT_DEFAULT) -> dict[str, Any]:
        """A streamed ``fs.write`` (chunked upload bound to one request): sends ``chunks``
        as pipelined ``fs.write_chunk`` requests (at most ``max_inflight`` unanswered) and
        returns the ``fs.write`` result once the daemon renamed the file into place
        (atomic, as an overwrite). Raises the protocol's typed errors."""
        wait = effective_timeout(timeout, self.timeout)
        state = self._state
        with self._lock:
            req_id, frame = state.request("fs.write", {"path": path, "stream": True})
            self._send(frame)
            pending: set[int] = set()
            final: list[dict[str, Any]] = []

            def settle(limit: int) -> None:
                while len(pending) > limit:
                    msg = self._read_one(wait)
                    if msg is None:
                        raise TimeoutError(f"no answer within {wait}s")
                    answer = state.route(msg)
                    if answer is None:
                        continue
                    if answer["id"] in pending:
                        pending.discard(answer["id"])
                        result_of(answer)
                    elif answer["id"] == req_id:
                        final.append(answer)
                        result_of(answer)  # an error ends the upload now
                    elif answer["id"] is None and "error" in answer:
                        raise error_from_wire(answer["error"])

            try:
                offset = 0
                it = iter(chunks)
                piece: bytes | None = next(it, b"")
                while piece is not None:
                    after = next(it, None)
                    chunk_id, f = state.request("fs.write_chunk", {
                        "request": req_id, "offset": offset, "data": bytes(piece),
                        "eof": after is None})
                    self._send(f)
                    pending.add(chunk_id)
                    offset += len(piece)
                    settle(max_inflight - 1)
                    piece = after
                settle(0)
                while not final:
                    msg = self._read_one(wait)
                    if msg is None:
                        raise TimeoutError(f"no answer within {wait}s")
                    answer = state.route(msg)
                    if answer is not None and answer["id"] == req_id:
                        final.append(answer)
                out: dict[str, Any] = result_of(final[0])
                return out
            except BaseException:
                if not final:
                    self.close()  # the daemon drops the temp file
                raise
            finally:
                state.finish(req_id)

    def _read_large_frame(self, sock: socket.socket | PipeStream) -> None:
        """When a large frame is arriving, receive the rest of its payload straight into
        one buffer of its size (file contents: no growing buffer, no extra copies)."""
        decoder = self._state.decoder
        pending = decoder.pending_frame()
        if pending is None or pending[0] < LARGE_FRAME_BYTES:
            return
        length, _ = pending
        frame = self._frame_buffer(length)
        view = memoryview(frame)
        pos = decoder.take_partial(view)
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
        self._ready.append(_chunk_without_copy(frame) or unpackb(frame))
        if self._streaming:  # kept for the next chunks (dropped when the stream ends)
            spares = self._spares
            spares.append(frame)
            if len(spares) > _SPARES:
                del spares[0]

    def _frame_buffer(self, length: int) -> bytearray:
        """A buffer of ``length`` bytes for a large frame: one of the last ones again when
        it has that size and nothing else refers to it any more (the chunk views a
        streamed read yielded were dropped: ``sys.getrefcount``, CPython), else a new
        one. Reusing them saves zeroing and faulting in 8 MiB per chunk; the last few
        are kept because a consumer's loop variable still holds the previous chunk while
        the next one is read."""
        spares = self._spares
        if _getrefcount is not None:
            for i in range(len(spares)):  # (enumerate's tuple would hold one more ref)
                spare = spares[i]
                # referred to by the list, ``spare`` and the call's argument only
                if len(spare) == length and _getrefcount(spare) == _SPARE_REFS:
                    del spares[i]
                    return spare
        return bytearray(length)

    def _wait_response(self, req_id: int, timeout: float | None) -> Any:
        state = self._state
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            msg = self._read_one(remaining)
            if msg is None:
                # the answer may still come: this connection cannot be trusted any more
                self.close()
                raise TimeoutError(f"no answer to request {req_id} within {timeout}s")
            answer = state.route(msg)
            if answer is None:
                continue
            if answer["id"] == req_id:
                return result_of(answer)
            if answer["id"] is None and "error" in answer:
                raise error_from_wire(answer["error"])

    def _next_event(self, queue: EventQueue, timeout: float | None) -> dict[str, Any] | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while not len(queue):
                if queue.closed:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                msg = self._read_one(remaining)
                if msg is None:
                    return None
                self._state.route(msg)
            return queue.pop()
