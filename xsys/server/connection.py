"""One client connection: bytes in -> frames -> messages -> router, and results,
errors and notifications back out (docs/protocol.md).

It is an ``asyncio.Protocol`` (leaner than streams on the hot path). Inline handlers are
answered inside ``data_received``; the others run as tasks, so responses may come back out
of order. Bounds that keep one client from stalling or starving the daemon
(docs/security.md):

- input: a frame above ``server.max_frame_bytes`` closes the connection; a payload that
  decodes to more than ``server.max_request_objects`` objects is answered with -32004
  (``protocol.unpack_request``); a partial frame older than ``server.frame_timeout_s``
  closes it (``Server``'s sweep calls ``check_timeouts``), and so does
  ``server.idle_timeout_s`` without requests in flight, subscriptions or traffic.
- requests: at ``server.max_inflight`` requests read and not answered the connection stops
  reading; of those, at most ``server.workers`` run at once, and none starts while the
  client has ``server.max_output_bytes`` or more of output unsent (the transport's write
  buffer: it stops reading at the transport's high-water mark through ``pause_writing``,
  and starts queued requests again on ``resume_writing``), nor, while the daemon's unsent
  result bytes are over ``server.max_inflight_result_bytes``, while it has any unsent
  output at all. Over that global budget the connections above their own
  ``max_output_bytes`` are closed, largest first (``Server.shed_output``).
- events: subscription notifications wait in a per-subscription queue bounded by
  ``server.outbound_queue`` notifications and ``server.outbound_queue_bytes`` encoded
  bytes while the client reads slowly; the oldest are dropped and ``<ns>.overflow``
  follows with the number of events lost (a notification carries ``weight`` events).

Every answered request is counted with its latency (``App.request_stats``, from the read
of its frame to the write of its answer; one ``perf_counter`` pair and a list update).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import os
import time
import typing
from bisect import bisect_left
from typing import TYPE_CHECKING, Any

from xsys.protocol import (
    LARGE_FRAME_BYTES,
    FrameDecoder,
    FrameEncoder,
    FrameTooLarge,
    InternalError,
    InvalidRequest,
    ParseError,
    TooLarge,
    TooManyObjects,
    XsysError,
    encode_error,
    frame_parts,
    unpack_request,
    unpackb,
)
from xsys.server.context import Context, Peer, Subscription
from xsys.server.dispatch import prepare, run_spec
from xsys.server.stats import BUCKETS_S, INVALID_MESSAGE, UNKNOWN_METHOD

if TYPE_CHECKING:
    from xsys.server.listener import Server
    from xsys.server.router import MethodSpec

log = logging.getLogger(__name__)

#: Bytes per read on the stdlib loop (its default, 256 KiB, is above glibc's mmap
#: threshold: every read then maps, shrinks and unmaps a fresh block).
_READ_SIZE = 64 * 1024
_clock = time.perf_counter
#: Most inline answers take less than the first bucket's bound: no bisect for them.
_FIRST_BOUND_S = BUCKETS_S[0]


def _close_fds(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


class Connection(asyncio.Protocol):
    """The protocol instance of one accepted socket (see module docstring).

    ``output_bytes`` is this connection's share of ``Server.output_bytes``: its unsent
    output in bytes as last sampled (after a large result is written, when the transport
    drains, 0 once closed).
    """

    # Slots: attribute access stays specialised (an instance dict of more than 30 keys
    # would not share its keys, and every attribute lookup on the hot path slows down).
    __slots__ = ("__weakref__", "_answered", "_batch", "_close_on_return", "_drains",
                 "_encode", "_fd_tasks", "_fds", "_held", "_held_bytes", "_holding",
                 "_idle_key", "_idle_since", "_lent_fd", "_lent_to", "_logged_bad_input", "_ok",
                 "_outbound_queue", "_outbound_queue_bytes", "_partial_key", "_partial_since",
                 "_pending_subs", "_read_paused", "_record", "_running", "_stats", "_waiters",
                 "_write_paused", "app", "closed", "decoder", "inflight", "loop", "max_frame",
                 "max_inflight", "max_objects", "max_output_bytes", "max_running",
                 "output_bytes", "peer", "resources", "router", "server", "subscriptions",
                 "transport", "wrote_large")

    def __init__(self, server: Server) -> None:
        self.server = server
        self.app = server.app
        self.router = server.router
        self.loop = asyncio.get_running_loop()
        cfg = server.app.config.server
        self.decoder = FrameDecoder(cfg.max_frame_bytes)
        self._encode = FrameEncoder().frame
        self._stats = server.app.request_stats
        self._record = self._stats.record
        self._ok = self._stats.ok  # the rows of results by method (the inline fast path)
        self._answered: list[str] | None = None  # methods answered inline in this read
        self.max_frame = cfg.max_frame_bytes
        self.max_inflight = cfg.max_inflight
        self.max_objects = cfg.max_request_objects
        self.max_output_bytes = cfg.max_output_bytes
        self.max_running = max(1, cfg.workers)
        self._outbound_queue = cfg.outbound_queue
        self._outbound_queue_bytes = cfg.outbound_queue_bytes
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
        # Requests past the start gate, and the ones waiting at it (FIFO).
        self._running = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._holding = False  # the gate is closed for unsent output (logged once)
        self.output_bytes = 0
        self.wrote_large = False
        # Timeout bookkeeping, read by check_timeouts (the server's periodic sweep).
        self._drains = 0
        self._idle_key: tuple[int, int, int] | None = None
        self._idle_since = 0.0
        self._partial_key: int | None = None
        self._partial_since = 0.0
        # Descriptors a request hands to the client with its response (SCM_RIGHTS), by
        # request id, and per-connection resources closed with it (fs.open handles).
        self._fds: dict[int, list[int]] = {}
        self.resources: dict[str, Any] = {}
        self._fd_tasks: set[asyncio.Task[None]] = set()
        # The socket lent to a stream's worker (``lend_socket``): its descriptor (a dup,
        # closed on return), the borrower's token, and the output held back meanwhile.
        self._lent_fd: int | None = None
        self._lent_to: object | None = None
        self._held: list[bytes] = []
        self._held_bytes = 0
        self._close_on_return = False

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
        self._idle_since = self.loop.time()
        log.debug("connection from pid=%s uid=%s", self.peer.pid, self.peer.uid)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._release_output()
        self.server.forget(self)
        for task, ctx in list(self.inflight.values()):
            ctx.cancelled.set()
            task.cancel()
        for sub in list(self.subscriptions.values()):
            sub.close()
        for fd_task in list(self._fd_tasks):
            fd_task.cancel()  # each closes its descriptors
        for fds in self._fds.values():
            _close_fds(fds)
        self._fds.clear()
        for res in list(self.resources.values()):
            res.close()
        self.resources.clear()
        if self.inflight:
            log.debug("client went away with %d requests in flight", len(self.inflight))

    def close(self) -> None:
        """Close the connection after writing what is buffered (its subscriptions end in
        ``connection_lost``)."""
        if self._batch is not None:
            self._flush_batch(self._batch)
        if self._lent_to is not None:  # a frame may be half written: close on return
            self._close_on_return = True
            return
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        """Close now, discarding unsent output (a client that does not read)."""
        self.closed = True
        self._release_output()
        if self.transport is not None:
            self.transport.abort()

    def refuse(self, error: XsysError) -> None:
        """Answer ``error`` (id nil) and close: the peer may no longer use the daemon."""
        self._write(encode_error(None, error))
        self._drop()

    def _drop(self) -> None:
        """Close; abort instead when output is stuck in the transport (the client is not
        reading, so a graceful close could wait for it forever)."""
        tr = self.transport
        if tr is not None and (tr.get_write_buffer_size() > 0 or self._held_bytes):
            self.abort()
        else:
            self.close()

    # ------------------------------------------------------------------ timeouts

    def check_timeouts(self, now: float, idle_timeout_s: float, frame_timeout_s: float) -> None:
        """Close the connection when a partial frame has not completed for
        ``frame_timeout_s`` (answered with -32600 first) or when it has been idle for
        ``idle_timeout_s``: nothing in flight, no subscription, no byte received and no
        output drained. 0 disables either. Called by the server every fraction of the
        shorter timeout, so both fire at most that fraction late."""
        if self.closed:
            return
        dec = self.decoder
        buffered = dec.buffered
        if frame_timeout_s > 0 and buffered and not self._read_paused:
            if self._partial_key != dec.frames:
                self._partial_key, self._partial_since = dec.frames, now
            elif now - self._partial_since >= frame_timeout_s:
                log.warning("closing connection (pid=%s uid=%s): a frame was not completed "
                            "within %gs", self.peer.pid, self.peer.uid, frame_timeout_s)
                self.refuse(InvalidRequest(
                    f"frame not completed within {frame_timeout_s:g}s "
                    "(server.frame_timeout_s)", {"frame_timeout_s": frame_timeout_s}))
                return
        else:
            self._partial_key = None
        if idle_timeout_s > 0:
            key = (dec.frames, buffered, self._drains)
            if self.inflight or self.subscriptions or key != self._idle_key:
                self._idle_key, self._idle_since = key, now
            elif now - self._idle_since >= idle_timeout_s:
                log.debug("closing idle connection (pid=%s uid=%s) after %gs", self.peer.pid,
                          self.peer.uid, idle_timeout_s)
                self._drop()

    # ------------------------------------------------------------------ input

    def data_received(self, data: bytes) -> None:
        try:
            payloads = self.decoder.feed(data)
        except FrameTooLarge as exc:
            log.warning("closing connection (pid=%s): %s", self.peer.pid, exc.message)
            self._record(INVALID_MESSAGE, exc.code, 0.0)
            self._write(encode_error(None, exc))
            self.closed = True
            if self.transport is not None:
                self.transport.close()
            return
        if len(payloads) == 1:
            if not self.closed:
                self._handle(payloads[0], _clock())
            return
        if not payloads:
            return
        # Several requests in one read (a pipelining client): answer the inline ones with
        # one write rather than one send per response, and count their results together
        # (read together, answered by that write).
        started = _clock()
        batch: list[bytes] = []
        self._batch = batch
        answered: list[str] = []
        self._answered = answered
        try:
            for payload in payloads:
                if self.closed:
                    return
                self._handle(payload, started)
        finally:
            self._answered = None
            self._flush_batch(batch)
            if answered:
                self._stats.record_results(answered, _clock() - started)

    def _flush_batch(self, batch: list[bytes]) -> None:
        if self._batch is batch:
            self._batch = None
            if batch:
                self._write(b"".join(batch) if len(batch) > 1 else batch[0])

    def _reject(self, req_id: int | None, exc: XsysError, started: float) -> None:
        """Answer a malformed message (read at ``started``, ``perf_counter`` seconds);
        log the first of this connection as a warning (a client speaking garbage is logged
        once, not once per frame)."""
        if not self._logged_bad_input:
            self._logged_bad_input = True
            log.warning("malformed message from pid=%s uid=%s: %s (further ones on this "
                        "connection are logged at debug)", self.peer.pid, self.peer.uid,
                        exc.message)
        else:
            log.debug("malformed message from pid=%s: %s", self.peer.pid, exc.message)
        self._record(INVALID_MESSAGE, exc.code, _clock() - started)
        self._write(encode_error(req_id, exc))

    def _handle(self, payload: bytes, started: float) -> None:
        """Answer or start one request read at ``started`` (``perf_counter`` seconds)."""
        try:
            if len(payload) <= self.max_objects:  # cannot hold more objects than bytes
                msg = unpackb(payload)
            else:
                msg = unpack_request(payload, self.max_objects)
        except TooManyObjects as exc:
            req_id = exc.request_id
            self._reject(None if req_id in self.inflight else req_id, exc, started)
            return
        except ParseError as exc:
            self._reject(None, exc, started)
            return
        if not isinstance(msg, dict):
            self._reject(None, InvalidRequest(
                f"a request must be a map, got {type(msg).__name__}"), started)
            return
        req_id = msg.get("id")
        if type(req_id) is not int or req_id < 0:
            self._reject(None, InvalidRequest(
                "request 'id' must be an unsigned integer", {"field": "id"}), started)
            return
        method = msg.get("method")
        if type(method) is not str:
            self._reject(req_id, InvalidRequest(
                "request 'method' must be a string", {"field": "method"}), started)
            return
        params = msg.get("params")
        if params is None:
            params = {}
        elif type(params) is not dict:
            self._reject(req_id, InvalidRequest(
                "request 'params' must be a map", {"field": "params"}), started)
            return
        if req_id in self.inflight:
            self._reject(req_id, InvalidRequest(
                f"id {req_id} is already in flight on this connection", {"field": "id"}),
                started)
            return
        try:
            spec, kwargs, want_progress = prepare(self.router, method, params)
        except XsysError as exc:
            self._record(UNKNOWN_METHOD if exc.code == -32601 else method, exc.code,
                         _clock() - started)
            self._write(encode_error(req_id, exc))
            return
        if spec.kind == "inline":
            ctx = Context(self.app, method, req_id, self.peer, self, want_progress)
            try:
                result = spec.handler(ctx, **kwargs)
            except XsysError as exc:
                code = exc.code
                self._write(encode_error(req_id, exc))
            except Exception as exc:
                code = InternalError.code
                self._write(encode_error(req_id, self._internal(method, exc)))
            else:
                code = self._respond(req_id, result)
                if code == 0:
                    answered = self._answered
                    if answered is not None:
                        answered.append(method)  # counted at the end of the read
                        return
                    row = self._ok.get(method)
                    if row is not None:  # RequestStats.record, inlined (the hot path)
                        elapsed = _clock() - started
                        row[0 if elapsed <= _FIRST_BOUND_S
                            else bisect_left(BUCKETS_S, elapsed)] += 1
                        row[-1] += elapsed
                        return
            self._record(method, code, _clock() - started)
            return
        ctx = Context(self.app, method, req_id, self.peer, self, want_progress)
        task = self.loop.create_task(self._run(spec, ctx, kwargs))
        self.inflight[req_id] = (task, ctx)
        task.add_done_callback(functools.partial(self._finished, req_id, method, started))
        if len(self.inflight) >= self.max_inflight:
            self._pause_reading()

    # ------------------------------------------------------------------ start gate

    async def _run(self, spec: MethodSpec, ctx: Context, kwargs: dict[str, Any]) -> Any:
        """Run one task request once the start gate lets it (``_may_start``)."""
        if self._waiters or not self._may_start():
            await self._wait_turn()
        else:
            self._running += 1
        try:
            return await run_spec(self.app, spec, ctx, kwargs)
        finally:
            self._running -= 1
            if self._waiters:
                self._wake()

    def _may_start(self) -> bool:
        """Whether one more request may start now: fewer than ``max_running`` run, the
        client's unsent output is under ``max_output_bytes``, and, while the daemon's
        unsent result bytes are over their budget, the client has none unsent (only
        checked while the transport is above its high-water mark: below it, what is
        unsent is a few KiB at most)."""
        if self._running >= self.max_running:
            return False
        if self._write_paused and self.transport is not None:
            unsent = self.transport.get_write_buffer_size()
            if unsent >= self.max_output_bytes or (unsent and self.server.over_budget()):
                if not self._holding:
                    self._holding = True
                    log.debug("pid=%s: holding requests until the client reads its %d "
                              "unsent bytes", self.peer.pid, unsent)
                return False
        return True

    async def _wait_turn(self) -> None:
        """Wait at the start gate; on return a running slot is held (``_wake`` took it)."""
        turn: asyncio.Future[None] = self.loop.create_future()
        self._waiters.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():  # given a slot, then cancelled
                self._running -= 1
                self._wake()
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(turn)
            raise

    def _wake(self) -> None:
        """Let waiting requests start, in arrival order, while the gate allows."""
        waiters = self._waiters
        while waiters and self._may_start():
            turn = waiters.popleft()
            if not turn.done():
                self._running += 1
                turn.set_result(None)

    # ------------------------------------------------------------------ responses

    def _finished(self, req_id: int, method: str, started: float,
                  task: asyncio.Task[Any]) -> None:
        self.inflight.pop(req_id, None)
        if self._read_paused and len(self.inflight) < self.max_inflight:
            self._maybe_resume_reading()
        fds = self._fds.pop(req_id, None)
        if task.cancelled() or self.closed:
            if fds:
                _close_fds(fds)
            return
        exc = task.exception()
        if exc is None and fds:
            code = self._respond_with_fds(req_id, task.result(), fds)
        elif exc is None:
            code = self._respond_large(req_id, task.result())
        elif isinstance(exc, XsysError):
            code = exc.code
            self._write(encode_error(req_id, exc))
        else:
            code = InternalError.code
            self._write(encode_error(req_id, self._internal(method, exc)))
        if exc is not None and fds:
            _close_fds(fds)
        self._record(method, code, _clock() - started)

    # ------------------------------------------------------------------ descriptors

    def attach_fds(self, request_id: int, fds: list[int]) -> None:
        """Send ``fds`` (owned from now on, closed once sent) with the response to
        ``request_id`` (docs/protocol.md, "Descriptors"). Any thread."""
        self._fds.setdefault(request_id, []).extend(fds)

    def _respond_with_fds(self, req_id: int, result: Any, fds: list[int]) -> int:
        """Write the response frame with ``fds`` in the ancillary data of its first
        ``sendmsg``: at once when nothing is buffered before it, else once the transport
        has drained (a task). Returns the code sent (0)."""
        try:
            frame = self._encode({"id": req_id, "result": result})
        except Exception as exc:
            _close_fds(fds)
            self._write(encode_error(req_id, self._internal("encoding the result", exc)))
            return InternalError.code
        task = self.loop.create_task(self._send_with_fds(frame, fds))
        self._fd_tasks.add(task)
        task.add_done_callback(self._fd_tasks.discard)
        return 0

    async def _send_with_fds(self, frame: bytes, fds: list[int]) -> None:
        import array
        import socket as socket_mod

        try:
            tr = self.transport
            if tr is None or tr.is_closing():
                return
            deadline = self.loop.time() + 30.0
            while (tr.get_write_buffer_size() > 0 or self._batch is not None
                   or self._lent_to is not None):
                if tr.is_closing() or self.loop.time() > deadline:
                    return
                await asyncio.sleep(0.001)
            raw = tr.get_extra_info("socket")
            if raw is None:
                return
            sock = socket_mod.socket(fileno=os.dup(raw.fileno()))
            try:
                anc = [(socket_mod.SOL_SOCKET, socket_mod.SCM_RIGHTS, array.array("i", fds))]
                while True:
                    try:
                        sent = sock.sendmsg([frame], anc)
                        break
                    except BlockingIOError:
                        ready = self.loop.create_future()
                        self.loop.add_writer(sock.fileno(), ready.set_result, None)
                        try:
                            await asyncio.wait_for(ready, 30.0)
                        finally:
                            self.loop.remove_writer(sock.fileno())
            finally:
                sock.close()
            if sent < len(frame) and not tr.is_closing():
                tr.write(frame[sent:])
        except (OSError, asyncio.TimeoutError) as exc:
            log.warning("could not pass a descriptor to pid=%s: %s", self.peer.pid, exc)
            self._drop()
        finally:
            _close_fds(fds)

    def _internal(self, method: str, exc: BaseException) -> InternalError:
        log.error("%s failed", method, exc_info=exc)
        return InternalError(f"internal error in {method}: {type(exc).__name__}",
                             {"method": method})

    def _respond(self, req_id: int, result: Any) -> int:
        """Answer an inline request with the connection's reused packer; returns the
        code sent (0 for the result)."""
        try:
            frame = self._encode({"id": req_id, "result": result})
        except Exception as exc:
            self._write(encode_error(req_id, self._internal("encoding the result", exc)))
            return InternalError.code
        if len(frame) - 4 > self.max_frame:
            return self._too_large(req_id, len(frame) - 4)
        self._write(frame)
        return 0

    def _respond_large(self, req_id: int, result: Any) -> int:
        """Answer a task's request; a large result (file contents) is written as header +
        the packer's own buffer, without copying the payload again, and counted in the
        daemon's unsent result bytes. Returns the code sent (0 for the result)."""
        try:
            size, parts = frame_parts({"id": req_id, "result": result})
        except Exception as exc:
            self._write(encode_error(req_id, self._internal("encoding the result", exc)))
            return InternalError.code
        if size > self.max_frame:
            return self._too_large(req_id, size)
        transport = self.transport
        if len(parts) == 1 or self._batch is not None or self._lent_to is not None:
            self._write(b"".join(parts))
        elif transport is not None and not transport.is_closing():
            for part in parts:
                transport.write(part)
        if size >= LARGE_FRAME_BYTES:
            self.wrote_large = True
            self._sample_output()
            self.server.shed_output()
        return 0

    def _too_large(self, req_id: int, size: int) -> int:
        self._write(encode_error(req_id, TooLarge(
            f"result of {size} bytes exceeds max_frame {self.max_frame}",
            {"size": size, "max_frame": self.max_frame})))
        return TooLarge.code

    # ------------------------------------------------------------------ output

    def _write(self, frame: bytes) -> None:
        batch = self._batch
        if batch is not None:
            batch.append(frame)
            return
        if self._lent_to is not None:
            self._hold(frame)
            return
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(frame)

    def _sample_output(self) -> None:
        """Refresh ``output_bytes`` (and the server's total) from the transport."""
        tr = self.transport
        unsent = 0 if self.closed or tr is None else tr.get_write_buffer_size()
        self.server.output_bytes += unsent - self.output_bytes
        self.output_bytes = unsent

    def _release_output(self) -> None:
        if self.output_bytes:
            self.server.output_bytes -= self.output_bytes
            self.output_bytes = 0

    def send_frame_parts(self, parts: list[bytes]) -> None:
        """Write one frame given as parts (``xsys.fs.streams.chunk_frame``: the chunk's
        bytes are not copied into a packer first). Loop thread."""
        transport = self.transport
        if self.closed or transport is None or transport.is_closing():
            return
        if self._batch is not None or self._lent_to is not None:
            self._write(b"".join(parts))
            return
        for part in parts:
            transport.write(part)

    # ------------------------------------------------------------------ lent socket

    async def lend_socket(self, token: object) -> int | None:
        """Lend the socket to ``token``'s worker thread (a streamed ``fs.read`` sending
        chunks with ``sendfile``): wait until none of this connection's output is
        pending, then return a duplicate of its descriptor, valid until
        ``return_socket(token)``. Meanwhile the connection's own output is held back
        (responses in ``_held``, subscription events in their bounded queues as while
        the client reads slowly; reading pauses past ``max_output_bytes`` held). None
        when the connection is closing. Loop thread."""
        pause = 0.0005
        while True:
            tr = self.transport
            if self.closed or tr is None or tr.is_closing():
                return None
            if (self._lent_to is None and self._batch is None
                    and tr.get_write_buffer_size() == 0):
                break
            await asyncio.sleep(pause)  # a client that does not read: back off to 50 ms
            pause = min(pause * 2, 0.05)
        raw = tr.get_extra_info("socket")
        if raw is None:
            return None
        self._lent_fd = os.dup(raw.fileno())
        self._lent_to = token
        self._write_paused = True
        return self._lent_fd

    def return_socket(self, token: object) -> None:
        """The worker is done with the lent socket (or gave up waiting for it): close the
        duplicate and write the output held meanwhile. Loop thread; ignored unless
        ``token`` holds the socket."""
        if self._lent_to is not token:
            return
        self._lent_to = None
        if self._lent_fd is not None:
            _close_fds([self._lent_fd])
            self._lent_fd = None
        held, self._held, self._held_bytes = self._held, [], 0
        tr = self.transport
        if self.closed or tr is None or tr.is_closing():
            return
        self._write_paused = False  # the write below may pause it again (high water)
        if held:
            tr.write(b"".join(held) if len(held) > 1 else held[0])
        if self._close_on_return:
            self._close_on_return = False
            self.close()
        elif not self._write_paused:
            self.resume_writing()

    def _hold(self, frame: bytes) -> None:
        """Keep ``frame`` until the lent socket returns; stop reading requests past
        ``max_output_bytes`` held."""
        self._held.append(frame)
        self._held_bytes += len(frame)
        if self._held_bytes >= self.max_output_bytes:
            self._pause_reading()

    def send_notification(self, method: str, params: dict[str, Any]) -> None:
        """Write one notification now (progress and other non-droppable messages)."""
        if not self.closed:
            self._write(self._encode({"method": method, "params": params}))

    @property
    def outbound_queue(self) -> int:
        """Notifications one subscription may queue while the client is slow."""
        return self._outbound_queue

    def enqueue_event(self, sub: Subscription, method: str, params: dict[str, Any],
                      weight: int = 1) -> None:
        """Send a subscription notification carrying ``weight`` events, or queue it while
        the client is slow. Past ``outbound_queue`` notifications or
        ``outbound_queue_bytes`` encoded bytes the oldest are dropped, and their weights
        added to the ``dropped`` count of the next ``<ns>.overflow``."""
        if self.closed:
            return
        frame = self._encode({"method": method, "params": params})
        if not self._write_paused and not sub.queue:
            self._write(frame)
            sub.sent += 1
            return
        sub.queue.append((frame, weight))
        sub.queued_bytes += len(frame)
        if (len(sub.queue) > self._outbound_queue
                or sub.queued_bytes > self._outbound_queue_bytes):
            if not sub.dropped:
                log.debug("subscription %s: the client reads slowly; dropping its oldest "
                          "notifications", sub.id)
            while sub.queue and (len(sub.queue) > self._outbound_queue
                                 or sub.queued_bytes > self._outbound_queue_bytes):
                old, old_weight = sub.queue.popleft()
                sub.queued_bytes -= len(old)
                sub.dropped += old_weight
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
                    frame, _weight = sub.queue.popleft()
                    sub.queued_bytes -= len(frame)
                    self._write(frame)
                    sub.sent += 1
                if not sub.queue:
                    self._pending_subs.pop(sub_id, None)
                if self._write_paused:
                    return

    def pause_writing(self) -> None:
        self._write_paused = True
        self._sample_output()
        self._pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._holding = False
        self._drains += 1
        if self.output_bytes:
            self._sample_output()
        self._flush()
        if self._waiters:
            self._wake()
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
