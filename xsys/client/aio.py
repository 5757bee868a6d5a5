"""The asyncio client: ``AsyncClient`` (calls pipelined freely over one Unix socket, or on
Windows the daemon's named pipe on the Proactor loop) and
``AsyncSubscription``. Only the I/O lives here; ids, routing and event queues are
``_core.CallState``'s, the typed namespaces (``await client.sys.memory()``) the generated
``_methods.AsyncNamespaces``."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import sys
import typing
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO

from xsys.client._core import (
    USE_CLIENT_DEFAULT,
    CallState,
    DynamicNamespace,
    NotificationHandler,
    ProgressCallback,
    Timeout,
    effective_timeout,
    merge_params,
    not_running,
)
from xsys.client._methods import UNSUBSCRIBE, AsyncNamespaces
from xsys.client._stream import try_open_pipe
from xsys.client._trust import (
    UntrustedServer,
    check_peer,
    check_pipe_server,
    check_socket_owner,
    trusted_server_sids,
    trusted_server_uids,
)
from xsys.namedpipe import pywin32
from xsys.protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    ConnectionClosed,
    XsysError,
    default_socket_path,
    error_from_wire,
    unpackb,
)


def _expire(fut: asyncio.Future[Any], method: str, wait: float) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError(f"no answer to {method} within {wait}s"))


class AsyncSubscription:
    """The asyncio form of ``Subscription``: ``async for event in sub`` yields each
    notification's params (with ``"method"``); ``await sub.aclose()`` unsubscribes.
    Events wait in the client's queue for this subscription (at most ``maxsize``, oldest
    dropped, counted in ``dropped``); ``result`` is the streaming method's answer."""

    def __init__(self, client: AsyncClient, method: str, sub_id: str,
                 result: dict[str, Any] | None = None) -> None:
        self.client = client
        self.method = method
        self.id = sub_id
        self.result: dict[str, Any] = result if result is not None else {"subscription": sub_id}
        self.queue = client._state.open(sub_id)
        self._wakeup = asyncio.Event()
        self.queue.on_put = self._wakeup.set

    @property
    def closed(self) -> bool:
        """True once unsubscribed or the connection ended."""
        return self.queue.closed

    @property
    def maxsize(self) -> int:
        """Events kept unread at most."""
        return self.queue.maxsize

    @property
    def dropped(self) -> int:
        """Events dropped from the full queue so far."""
        return self.queue.dropped

    async def next(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next event, or None on timeout or when closed."""
        while not len(self.queue):
            if self.queue.closed:
                return None
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            except asyncio.TimeoutError:
                return None
        return self.queue.pop()

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
        if self.queue.closed:  # already unsubscribed, or the connection is gone
            return
        self.client._state.drop(self.id)
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
            payloads = client._state.decoder.feed(data)
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


class AsyncClient(AsyncNamespaces):
    """An asyncio client over one Unix socket; calls may be pipelined freely
    (``asyncio.gather``), each matched to its answer by id.

    Use ``async with AsyncClient(path) as c`` or ``await c.connect()``/``await c.close()``.
    ``expected_uid``, ``expected_sid`` (Windows): as for ``Client``. Every method has a
    typed wrapper by namespace
    (``await c.sys.memory()``); ``await c.call("sys.memory")`` calls any method by name.
    ``notification_handlers``: called with ``(method, params)`` of every notification
    (not progress).
    """

    def __init__(
        self,
        socket_path: str | None = None,
        *,
        connect_timeout: float = 5.0,
        timeout: float | None = 30.0,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        max_queued_events: int = 10_000,
        expected_uid: int | None = None,
        expected_sid: str | None = None,
    ) -> None:
        self.socket_path = socket_path or default_socket_path()
        self.trusted_uids = trusted_server_uids(expected_uid)
        self.trusted_sids = trusted_server_sids(expected_sid)
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self._state = CallState(max_frame_bytes, max_queued_events)
        self.notification_handlers: list[NotificationHandler] = (
            self._state.notification_handlers)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._transport: asyncio.Transport | None = None
        self._corked: list[bytes] | None = None

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
        self._state.reset()
        if sys.platform == "win32":
            transport, protocol = await self._connect_pipe(loop)
            self._transport = transport
            protocol.attach()
            self._corked = None
            return self
        # A stat of the path blocks no longer than the connect's own path lookup.
        check_socket_owner(self.socket_path, self.trusted_uids)
        try:
            transport, protocol = await asyncio.wait_for(
                loop.create_unix_connection(lambda: _AsyncProtocol(self), self.socket_path),
                self.connect_timeout)
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError) as exc:
            raise not_running(self.socket_path, exc) from None
        try:
            check_peer(transport.get_extra_info("socket"), self.socket_path,
                       self.trusted_uids)
        except UntrustedServer:
            protocol.state = "detached"
            transport.abort()
            raise
        self._transport = transport
        protocol.attach()
        self._corked = None  # frames held for a previous connection died with it
        return self

    async def _connect_pipe(self, loop: asyncio.AbstractEventLoop,
                            ) -> tuple[asyncio.Transport, _AsyncProtocol]:
        """Windows: open the named pipe (CreateFile with the identification-only
        impersonation level, retried while every instance is busy, up to
        ``connect_timeout``), check who serves it before anything is read or sent, then
        hand the handle to the Proactor loop as a duplex pipe transport (what
        ``loop.create_pipe_connection`` does, minus its CreateFile flags)."""
        proactor: Any = loop
        if not hasattr(proactor, "_make_duplex_pipe_transport"):
            raise RuntimeError("named pipes need asyncio's Proactor event loop (the "
                               "default on Windows)")
        deadline = loop.time() + self.connect_timeout
        delay = 0.001
        while True:
            try:
                handle = try_open_pipe(self.socket_path)
            except FileNotFoundError as exc:
                raise not_running(self.socket_path, exc) from None
            if handle is not None:
                break
            if loop.time() >= deadline:
                raise TimeoutError(f"every instance of {self.socket_path} stayed busy for "
                                   f"{self.connect_timeout}s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
        try:
            check_pipe_server(handle, self.socket_path, self.trusted_sids)
        except UntrustedServer:
            pywin32().win32file.CloseHandle(handle)
            raise
        pipe = importlib.import_module("asyncio.windows_utils").PipeHandle(handle)
        protocol = _AsyncProtocol(self)
        waiter = loop.create_future()
        transport = proactor._make_duplex_pipe_transport(
            pipe, protocol, waiter, extra={"addr": self.socket_path})
        await waiter
        return typing.cast(asyncio.Transport, transport), protocol

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

    if not TYPE_CHECKING:

        def __getattr__(self, name: str) -> DynamicNamespace:
            # a namespace the generated wrappers do not know (a newer daemon)
            if name.startswith("_"):
                raise AttributeError(name)
            return DynamicNamespace(self.call, name)

    async def open_file(self, params: Mapping[str, Any], *,
                        timeout: Timeout = USE_CLIENT_DEFAULT) -> BinaryIO:
        """``fs.open`` (see ``Client.open_file``): the descriptor is received on a separate
        blocking connection in a worker thread (asyncio transports cannot receive
        descriptors); a ``wb`` file's ``close()`` then commits over that connection and
        closes it."""
        from xsys.client.sync import Client

        wait = self.timeout if timeout is USE_CLIENT_DEFAULT else timeout

        def work() -> BinaryIO:
            c = Client(self.socket_path, timeout=wait, connect=False)
            c.trusted_uids = self.trusted_uids
            c.connect()
            try:
                f = c.open_file(params)
            except BaseException:
                c.close()
                raise
            if getattr(f, "handle", None) is None:
                c.close()
            else:
                f.owns_client = True  # type: ignore[attr-defined]
            return f

        return await asyncio.to_thread(work)

    async def call(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: Timeout = USE_CLIENT_DEFAULT,
        on_progress: ProgressCallback | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call ``method`` and await its result (see ``Client.call``)."""
        # the body of _call, repeated: one coroutine per call rather than two
        if not self.connected:
            await self.connect()
        state = self._state
        req_id, frame = state.request(method, merge_params(params, kwargs, on_progress),
                                      on_progress=on_progress)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending[req_id] = fut
        wait = (self.timeout if timeout is USE_CLIENT_DEFAULT
                else effective_timeout(timeout, self.timeout))
        timer = None if wait is None else loop.call_later(wait, _expire, fut, method, wait)
        try:
            self._send(frame)
            return await fut
        finally:
            if timer is not None:
                timer.cancel()
            self._pending.pop(req_id, None)
            state.finish(req_id)

    async def subscribe(self, method: str, params: Mapping[str, Any] | None = None, *,
                        timeout: Timeout = USE_CLIENT_DEFAULT,
                        **kwargs: Any) -> AsyncSubscription:
        """Call a streaming method and return its ``AsyncSubscription``; raises
        ``ValueError`` when the method's answer holds no subscription id."""
        result = await self._call(method, merge_params(params, kwargs, None), timeout, None,
                                  subscribing=True)
        sub_id = result.get("subscription") if isinstance(result, dict) else None
        if not isinstance(sub_id, str):
            raise ValueError(f"{method} did not open a subscription (answer: {result!r})")
        return AsyncSubscription(self, method, sub_id, result)

    async def _call(self, method: str, params: dict[str, Any] | None, timeout: Timeout,
                    on_progress: ProgressCallback | None, *, subscribing: bool) -> Any:
        if not self.connected:
            await self.connect()
        state = self._state
        req_id, frame = state.request(method, params, on_progress=on_progress,
                                      subscribing=subscribing)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending[req_id] = fut
        wait = (self.timeout if timeout is USE_CLIENT_DEFAULT
                else effective_timeout(timeout, self.timeout))
        # A timer on the future itself rather than asyncio.wait_for, which costs a second
        # future and its callbacks on every call.
        timer = None if wait is None else loop.call_later(wait, _expire, fut, method, wait)
        try:
            self._send(frame)
            return await fut
        finally:
            if timer is not None:
                timer.cancel()
            self._pending.pop(req_id, None)
            state.finish(req_id)

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

    def _dispatch(self, msg: Any) -> None:
        answer = self._state.route(msg)
        if answer is None:
            return
        req_id = answer["id"]
        if req_id is not None:
            fut = self._pending.get(req_id) if isinstance(req_id, int) else None
            if fut is None or fut.done():
                return
            if "error" in answer:
                fut.set_exception(error_from_wire(answer["error"]))
            else:
                fut.set_result(answer.get("result"))
            return
        if "error" in answer and len(self._pending) == 1:  # connection-level error (id nil)
            fut = next(iter(self._pending.values()))
            if not fut.done():
                fut.set_exception(error_from_wire(answer["error"]))

    def _fail(self, exc: XsysError) -> None:
        self._transport = None
        self._corked = None
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(exc)
        self._pending.clear()
        self._state.close_all()
