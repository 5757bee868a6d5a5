"""One client connection: bytes in -> frames -> messages -> router, and results,
errors and notifications back out (PROTOCOL.md).

It is an ``asyncio.Protocol`` (leaner than streams on the hot path). Inline handlers are
answered inside ``data_received``; the others run as tasks, so responses may come back out
of order. At ``server.max_inflight`` running requests, or while the transport's write
buffer is above its high-water mark, the connection stops reading (backpressure).
Subscription events wait in a per-subscription queue bounded by ``server.outbound_queue``
while the client reads slowly; the oldest are dropped and ``<ns>.overflow`` follows.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import typing
from typing import TYPE_CHECKING, Any

from xsys.protocol import (
    FrameDecoder,
    FrameEncoder,
    FrameTooLarge,
    InternalError,
    InvalidRequest,
    ParseError,
    TooLarge,
    XsysError,
    encode_error,
    frame_parts,
    unpackb,
)
from xsys.server.context import Context, Peer, Subscription
from xsys.server.dispatch import prepare, run_spec

if TYPE_CHECKING:
    from xsys.server.listener import Server

log = logging.getLogger(__name__)

#: Bytes per read on the stdlib loop (its default, 256 KiB, is above glibc's mmap
#: threshold: every read then maps, shrinks and unmaps a fresh block).
_READ_SIZE = 64 * 1024


class Connection(asyncio.Protocol):
    """The protocol instance of one accepted socket (see module docstring)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.app = server.app
        self.router = server.router
        self.loop = asyncio.get_running_loop()
        cfg = server.app.config.server
        self.decoder = FrameDecoder(cfg.max_frame_bytes)
        self._encode = FrameEncoder().frame
        self.max_frame = cfg.max_frame_bytes
        self.max_inflight = cfg.max_inflight
        self._outbound_queue = cfg.outbound_queue
        self.transport: asyncio.Transport | None = None
        self.peer = Peer()
        self.inflight: dict[int, tuple[asyncio.Task[Any], Context]] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self._pending_subs: dict[str, Subscription] = {}
        self._write_paused = False
        self._read_paused = False
        self._batch: list[bytes] | None = None  # responses of one read, written at its end
        self.closed = False
        self._logged_bad_input = False

    # ------------------------------------------------------------------ lifecycle

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tr = typing.cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.transport = tr
        if hasattr(tr, "max_size"):  # the stdlib selector transport reads recv(max_size)
            typing.cast(Any, tr).max_size = _READ_SIZE
        self.peer = self.server.peer_of(tr)
        refusal = self.server.admit(self)
        if refusal is not None:
            log.warning("refused connection from %s: %s", self.peer, refusal.message)
            tr.write(encode_error(None, refusal))
            tr.close()
            self.closed = True
            return
        log.debug("connection from pid=%s uid=%s", self.peer.pid, self.peer.uid)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.forget(self)
        for task, ctx in list(self.inflight.values()):
            ctx.cancelled.set()
            task.cancel()
        for sub in list(self.subscriptions.values()):
            sub.close()
        if self.inflight:
            log.debug("client went away with %d requests in flight", len(self.inflight))

    def close(self) -> None:
        """Close the connection (its subscriptions end in ``connection_lost``)."""
        if self._batch is not None:
            self._flush_batch(self._batch)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    # ------------------------------------------------------------------ input

    def data_received(self, data: bytes) -> None:
        try:
            payloads = self.decoder.feed(data)
        except FrameTooLarge as exc:
            log.warning("closing connection (pid=%s): %s", self.peer.pid, exc.message)
            self._write(encode_error(None, exc))
            self.closed = True
            if self.transport is not None:
                self.transport.close()
            return
        if len(payloads) == 1:
            if not self.closed:
                self._handle(payloads[0])
            return
        # Several requests in one read (a pipelining client): answer the inline ones with
        # one write rather than one send per response.
        batch: list[bytes] = []
        self._batch = batch
        try:
            for payload in payloads:
                if self.closed:
                    return
                self._handle(payload)
        finally:
            self._flush_batch(batch)

    def _flush_batch(self, batch: list[bytes]) -> None:
        if self._batch is batch:
            self._batch = None
            if batch:
                self._write(b"".join(batch) if len(batch) > 1 else batch[0])

    def _reject(self, req_id: int | None, exc: XsysError) -> None:
        """Answer a malformed message; log the first of this connection as a warning (a
        client speaking garbage is logged once, not once per frame)."""
        if not self._logged_bad_input:
            self._logged_bad_input = True
            log.warning("malformed message from pid=%s uid=%s: %s (further ones on this "
                        "connection are logged at debug)", self.peer.pid, self.peer.uid,
                        exc.message)
        else:
            log.debug("malformed message from pid=%s: %s", self.peer.pid, exc.message)
        self._write(encode_error(req_id, exc))

    def _handle(self, payload: bytes) -> None:
        try:
            msg = unpackb(payload)
        except ParseError as exc:
            self._reject(None, exc)
            return
        if not isinstance(msg, dict):
            self._reject(None, InvalidRequest(
                f"a request must be a map, got {type(msg).__name__}"))
            return
        req_id = msg.get("id")
        if type(req_id) is not int or req_id < 0:
            self._reject(None, InvalidRequest(
                "request 'id' must be an unsigned integer", {"field": "id"}))
            return
        method = msg.get("method")
        if type(method) is not str:
            self._reject(req_id, InvalidRequest(
                "request 'method' must be a string", {"field": "method"}))
            return
        params = msg.get("params")
        if params is None:
            params = {}
        elif type(params) is not dict:
            self._reject(req_id, InvalidRequest(
                "request 'params' must be a map", {"field": "params"}))
            return
        if req_id in self.inflight:
            self._reject(req_id, InvalidRequest(
                f"id {req_id} is already in flight on this connection", {"field": "id"}))
            return
        try:
            spec, kwargs, want_progress = prepare(self.router, method, params)
        except XsysError as exc:
            self._write(encode_error(req_id, exc))
            return
        if spec.kind == "inline":
            ctx = Context(self.app, method, req_id, self.peer, self, want_progress)
            try:
                result = spec.handler(ctx, **kwargs)
            except XsysError as exc:
                self._write(encode_error(req_id, exc))
                return
            except Exception as exc:
                self._write(encode_error(req_id, self._internal(method, exc)))
                return
            self._respond(req_id, result)
            return
        ctx = Context(self.app, method, req_id, self.peer, self, want_progress)
        task = self.loop.create_task(run_spec(self.app, spec, ctx, kwargs))
        self.inflight[req_id] = (task, ctx)
        task.add_done_callback(functools.partial(self._finished, req_id, method))
        if len(self.inflight) >= self.max_inflight:
            self._pause_reading()

    def _finished(self, req_id: int, method: str, task: asyncio.Task[Any]) -> None:
        self.inflight.pop(req_id, None)
        if self._read_paused and len(self.inflight) < self.max_inflight:
            self._maybe_resume_reading()
        if task.cancelled() or self.closed:
            return
        exc = task.exception()
        if exc is None:
            self._respond_large(req_id, task.result())
        elif isinstance(exc, XsysError):
            self._write(encode_error(req_id, exc))
        else:
            self._write(encode_error(req_id, self._internal(method, exc)))

    def _internal(self, method: str, exc: BaseException) -> InternalError:
        log.error("%s failed", method, exc_info=exc)
        return InternalError(f"internal error in {method}: {type(exc).__name__}",
                             {"method": method})

    def _respond(self, req_id: int, result: Any) -> None:
        """Answer an inline request with the connection's reused packer."""
        try:
            frame = self._encode({"id": req_id, "result": result})
        except Exception as exc:
            self._write(encode_error(req_id, self._internal("encoding the result", exc)))
            return
        if len(frame) - 4 > self.max_frame:
            self._too_large(req_id, len(frame) - 4)
            return
        self._write(frame)

    def _respond_large(self, req_id: int, result: Any) -> None:
        """Answer a task's request; a large result (file contents) is written as header +
        the packer's own buffer, without copying the payload again."""
        try:
            size, parts = frame_parts({"id": req_id, "result": result})
        except Exception as exc:
            self._write(encode_error(req_id, self._internal("encoding the result", exc)))
            return
        if size > self.max_frame:
            self._too_large(req_id, size)
            return
        transport = self.transport
        if len(parts) == 1 or self._batch is not None:
            self._write(b"".join(parts))
        elif transport is not None and not transport.is_closing():
            for part in parts:
                transport.write(part)

    def _too_large(self, req_id: int, size: int) -> None:
        self._write(encode_error(req_id, TooLarge(
            f"result of {size} bytes exceeds max_frame {self.max_frame}",
            {"size": size, "max_frame": self.max_frame})))

    # ------------------------------------------------------------------ output

    def _write(self, frame: bytes) -> None:
        batch = self._batch
        if batch is not None:
            batch.append(frame)
            return
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(frame)

    def send_notification(self, method: str, params: dict[str, Any]) -> None:
        """Write one notification now (progress and other non-droppable messages)."""
        if not self.closed:
            self._write(self._encode({"method": method, "params": params}))

    @property
    def outbound_queue(self) -> int:
        """Events one subscription may queue while the client is slow."""
        return self._outbound_queue

    def enqueue_event(self, sub: Subscription, method: str, params: dict[str, Any]) -> None:
        """Send a subscription event, or queue it while the client is slow (drop oldest)."""
        if self.closed:
            return
        if not self._write_paused and not sub.queue:
            self._write(self._encode({"method": method, "params": params}))
            sub.sent += 1
            return
        sub.queue.append((method, params))
        if len(sub.queue) > self._outbound_queue:
            sub.queue.popleft()
            sub.dropped += 1
        self._pending_subs[sub.id] = sub
        if not self._write_paused:
            self._flush()

    def _flush(self) -> None:
        while self._pending_subs and not self._write_paused and not self.closed:
            for sub_id, sub in list(self._pending_subs.items()):
                if sub.dropped:
                    self._write(self._encode({
                        "method": f"{sub.namespace}.overflow",
                        "params": {"subscription": sub.id, "dropped": sub.dropped},
                    }))
                    log.info("subscription %s dropped %d events (slow client)", sub.id,
                             sub.dropped)
                    sub.dropped = 0
                while sub.queue and not self._write_paused:
                    method, params = sub.queue.popleft()
                    self._write(self._encode({"method": method, "params": params}))
                    sub.sent += 1
                if not sub.queue:
                    self._pending_subs.pop(sub_id, None)
                if self._write_paused:
                    return

    def pause_writing(self) -> None:
        self._write_paused = True
        self._pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._flush()
        self._maybe_resume_reading()

    def _pause_reading(self) -> None:
        if not self._read_paused and self.transport is not None and not self.closed:
            self._read_paused = True
            self.transport.pause_reading()

    def _maybe_resume_reading(self) -> None:
        if (self._read_paused and not self._write_paused
                and len(self.inflight) < self.max_inflight
                and self.transport is not None and not self.closed):
            self._read_paused = False
            self.transport.resume_reading()

    # ------------------------------------------------------------------ subscriptions

    def add_subscription(self, sub: Subscription) -> None:
        """Track ``sub``; it ends when this connection closes."""
        self.subscriptions[sub.id] = sub

    def remove_subscription(self, sub: Subscription) -> None:
        """Stop tracking ``sub`` (called by ``Subscription.close``)."""
        self.subscriptions.pop(sub.id, None)
        self._pending_subs.pop(sub.id, None)

    def find_subscription(self, sub_id: str) -> Subscription | None:
        """This connection's live subscription ``sub_id``, or None."""
        return self.subscriptions.get(sub_id)
