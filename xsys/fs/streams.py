"""Streaming file transfer for clients that cannot receive descriptors (Node): a streamed
``fs.read`` sends the file as ``fs.chunk`` notifications under a credit window the client
acknowledges (``fs.ack``), and a streamed ``fs.write`` receives ``fs.write_chunk``
requests bound to it. Both run in one worker thread each and keep memory bounded: a read
never has more than ``window_bytes`` unacknowledged, an upload never more than the
connection's in-flight requests.

``ReadStream`` / ``Upload`` are the per-request state, kept in the connection's
``resources`` (``Streams``) so the loop-thread handlers (``fs.ack``) and the worker find
them by request id. A stream stalls out after ``STALL_TIMEOUT_S`` without progress
(-32007 ``reason: "stream_stalled"``) and ends when the client goes away.
"""

from __future__ import annotations

import asyncio
import os
import select
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from xsys.fs.model import Job, ReadResult, WriteResult, check_cancelled
from xsys.fs.opening import WriteHandle
from xsys.fs.reading import pread
from xsys.protocol import Conflict, InvalidParams, NotFound, TooLarge

#: Seconds a stream waits for the client (an ack, a chunk) before giving up.
STALL_TIMEOUT_S = 60.0
#: Default and largest unacknowledged bytes of a streamed read.
DEFAULT_WINDOW_BYTES = 32 * 1024 * 1024
MAX_WINDOW_BYTES = 64 * 1024 * 1024
#: Most streams (reads and uploads) open on one connection.
MAX_STREAMS = 16


def _stalled(what: str) -> Conflict:
    return Conflict(f"{what}: the client sent nothing for {STALL_TIMEOUT_S:.0f}s",
                    {"reason": "stream_stalled", "timeout_s": STALL_TIMEOUT_S})


class ReadStream:
    """Credit of one streamed read: ``sent`` bytes so far, ``acked`` by the client."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.sent = 0
        self.acked = 0
        self.cond = threading.Condition()

    def ack(self, offset: int) -> None:
        """The client has consumed every byte before ``offset`` (relative to the start of
        the stream), at most what was sent: an ack beyond that opens no credit (a client
        acknowledging a terabyte up front made the daemon buffer the whole file). Any
        thread."""
        with self.cond:
            offset = min(offset, self.sent)
            if offset > self.acked:
                self.acked = offset
                self.cond.notify_all()

    def wait_credit(self, job: Job) -> None:
        """Block until the unacknowledged bytes are below the window (or cancel/stall)."""
        deadline = time.monotonic() + STALL_TIMEOUT_S
        with self.cond:
            while self.sent - self.acked >= self.window:
                check_cancelled(job)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _stalled("streamed fs.read")
                self.cond.wait(min(left, 0.25))


class Upload:
    """One streamed ``fs.write``: the temp file's handle, bytes received, the total size
    announced by the last chunk (``eof``)."""

    def __init__(self, handle: WriteHandle, limit: int) -> None:
        self.handle = handle
        self.limit = limit
        self.received = 0
        self.max_end = 0
        self.total: int | None = None
        self.cond = threading.Condition()
        self.failed: BaseException | None = None

    def write(self, offset: int, data: bytes, eof: bool) -> int:
        """``pwrite`` one chunk at ``offset``; returns the bytes received so far.
        -32004 past ``limit`` bytes; -32602 for a chunk past the size the ``eof`` chunk
        announced (or an ``eof`` that would cut bytes already received)."""
        end = offset + len(data)
        if end > self.limit:
            raise TooLarge(f"a streamed upload is at most {self.limit} bytes",
                           {"limit": self.limit})
        with self.cond:
            if self.total is not None and end > self.total:
                raise InvalidParams(f"chunk [{offset}, {end}) is past the end of the upload "
                                    f"({self.total} bytes, announced by its eof chunk)",
                                    {"param": "offset", "size": self.total})
            if eof and end < self.max_end:
                raise InvalidParams(f"eof at {end} bytes, but bytes up to {self.max_end} "
                                    "were already sent", {"param": "eof",
                                                          "received_end": self.max_end})
            self.max_end = max(self.max_end, end)
            if eof:
                self.total = end
        view = memoryview(data)
        pos = offset
        while view:
            n = os.pwrite(self.handle.fd, view, pos)
            view = view[n:]
            pos += n
        with self.cond:
            self.received += len(data)
            self.cond.notify_all()
            return self.received

    def wait_done(self, job: Job) -> int:
        """Block until every byte up to the announced total arrived; returns the size."""
        deadline = time.monotonic() + STALL_TIMEOUT_S
        with self.cond:
            last = self.received
            while self.total is None or self.received < self.total:
                check_cancelled(job)
                if self.received != last:
                    last = self.received
                    deadline = time.monotonic() + STALL_TIMEOUT_S
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _stalled("streamed fs.write")
                self.cond.wait(min(left, 0.25))
            return self.total


class Streams:
    """The streams of one connection by request id (a connection resource)."""

    def __init__(self) -> None:
        self.reads: dict[int, ReadStream] = {}
        self.uploads: dict[int, Upload] = {}
        self._lock = threading.Condition()

    def add(self, table: dict[int, Any], request: int, item: Any) -> None:
        """Register ``item`` under ``request``; -32004 beyond ``MAX_STREAMS``."""
        with self._lock:
            if len(self.reads) + len(self.uploads) >= MAX_STREAMS:
                raise TooLarge(f"at most {MAX_STREAMS} streams per connection",
                               {"limit": MAX_STREAMS})
            table[request] = item
            self._lock.notify_all()

    def remove(self, table: dict[int, Any], request: int) -> None:
        """Forget ``request``'s stream."""
        with self._lock:
            table.pop(request, None)

    def read(self, request: int) -> ReadStream:
        """The streamed read ``request`` (-32001 when unknown)."""
        stream = self.reads.get(request)
        if stream is None:
            raise NotFound(f"no streamed fs.read {request} on this connection",
                           {"request": request})
        return stream

    def upload(self, request: int, wait_s: float = 10.0) -> Upload:
        """The streamed write ``request``, waiting up to ``wait_s`` for its ``fs.write`` to
        start (its chunks may overtake it); -32001 when it does not appear."""
        deadline = time.monotonic() + wait_s
        with self._lock:
            while (upload := self.uploads.get(request)) is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(left)
        if upload is None:
            raise NotFound(f"no streamed fs.write {request} on this connection",
                           {"request": request})
        return upload

    def close(self) -> None:
        """The connection is gone (the workers notice through their jobs)."""


#: Chunk size of a streamed read (fewer, larger frames run faster; a chunk's frame stays
#: well below the clients' default ``max_frame_bytes``, 16 MiB).
STREAM_CHUNK_BYTES = 8 * 1024 * 1024


def stream_chunk(chunk_bytes: int, window: int) -> int:
    """The chunk size of a streamed read: ``STREAM_CHUNK_BYTES`` (8 MiB, whatever
    ``fs.chunk_bytes`` says: a larger frame would exceed the clients' frame limit), at
    most half the window (so two chunks are always in flight), at least 64 KiB."""
    del chunk_bytes
    return max(64 * 1024, min(STREAM_CHUNK_BYTES, window // 2))


def chunk_header(request: int, offset: int, size: int) -> bytes:
    """The length prefix and msgpack head of ``fs.chunk {request, offset, data}`` whose
    ``data`` (``size`` bytes, a bin32) follows: what ``FrameEncoder`` would give for the
    whole frame, minus the data (the map is packed with an empty ``data`` whose ``bin``
    marker is then replaced by a bin32 header)."""
    from xsys.protocol import packb

    head = packb({"method": "fs.chunk",
                  "params": {"request": request, "offset": offset, "data": b""}})
    assert head.endswith(b"\xc4\x00")
    head = head[:-2] + b"\xc6" + size.to_bytes(4, "big")
    return (len(head) + size).to_bytes(4, "big") + head


def chunk_frame(request: int, offset: int, data: bytes) -> list[bytes]:
    """The frame of ``fs.chunk {request, offset, data}`` as ``[header, data]``
    (``chunk_header``), without copying ``data`` into a packer."""
    return [chunk_header(request, offset, len(data)), data]


class SocketLease(Protocol):
    """The connection's socket lent to a stream's worker thread, so that chunks go from
    the file to the socket with ``sendfile`` (no copy through Python). ``acquire()``
    blocks until the connection has no output of its own pending and returns a
    descriptor of the (non-blocking) socket that stays valid until ``release()``; while
    lent, the connection holds its own output back. None: the connection is gone.
    ``abort()`` closes the connection (a frame could not be finished)."""

    def acquire(self, job: Job) -> int | None: ...

    def release(self) -> None: ...

    def abort(self) -> None: ...


def _wait_writable(sock: int, job: Job, deadline: float) -> None:
    """Block until ``sock`` takes more bytes; raises on cancel or past ``deadline``."""
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    while not poller.poll(100):
        check_cancelled(job)
        if time.monotonic() > deadline:
            raise _stalled("streamed fs.read")


def send_chunk(sock: int, fd: int, request: int, pos: int, size: int, job: Job) -> int:
    """Write one whole ``fs.chunk`` frame of ``fd``'s ``[pos, pos+size)`` to the
    non-blocking socket ``sock``: the header with ``write``, the data with
    ``os.sendfile`` (file pages to the socket, no copy in this process). Returns the
    bytes that came from the file: fewer than ``size`` when it turned out shorter (it
    shrank meanwhile), the frame then completed with zeros. Raises on cancel and stall
    (-32007 ``stream_stalled``), the frame then unfinished: the caller must close the
    connection."""
    deadline = time.monotonic() + STALL_TIMEOUT_S
    head = memoryview(chunk_header(request, pos, size))
    while head:
        try:
            head = head[os.write(sock, head):]
        except BlockingIOError:
            _wait_writable(sock, job, deadline)
    sent = 0
    while sent < size:
        try:
            n = os.sendfile(sock, fd, pos + sent, size - sent)
        except BlockingIOError:
            _wait_writable(sock, job, deadline)
            continue
        if n == 0:  # end of file before size: finish the frame with zeros
            from_file = sent
            pad = memoryview(bytes(min(size - sent, 1 << 20)))
            while sent < size:
                try:
                    sent += os.write(sock, pad[:size - sent])
                except BlockingIOError:
                    _wait_writable(sock, job, deadline)
            return from_file
        sent += n
        deadline = time.monotonic() + STALL_TIMEOUT_S
    return sent


def check_window(window: int | None) -> int:
    """The window to use: -32602 outside 64 KiB..``MAX_WINDOW_BYTES``."""
    if window is None:
        return DEFAULT_WINDOW_BYTES
    if not 64 * 1024 <= window <= MAX_WINDOW_BYTES:
        raise InvalidParams(f"parameter 'window_bytes': 65536..{MAX_WINDOW_BYTES}",
                            {"param": "window_bytes"})
    return window


def stream_file(fd: int, path: str, size: int, offset: int, length: int | None, chunk: int,
                stream: ReadStream, send: Callable[[int, bytes], None],
                job: Job, lease: SocketLease | None = None,
                request: int = 0) -> ReadResult:
    """Send ``[offset, offset+length)`` of ``fd`` as chunks, each after waiting for
    credit: with ``lease`` (a Unix socket) straight from the file with ``send_chunk``
    (``request``: the stream's id), else ``send(offset, data)`` of each ``pread``.
    Returns the result with ``data`` empty and ``length`` the bytes streamed."""
    end = size if length is None else min(size, offset + length)
    pos = offset
    while pos < end:
        check_cancelled(job)
        stream.wait_credit(job)
        if lease is not None:
            pos = _send_leased(lease, fd, request, pos, end, chunk, stream, job)
            continue
        data = pread(fd, min(chunk, end - pos), pos)
        if not data:
            break
        with stream.cond:  # counted before it leaves, so its ack is never clamped away
            stream.sent += len(data)
        send(pos, data)
        pos += len(data)
    return ReadResult(path=path, data=b"", offset=offset, length=pos - offset, size=size,
                      eof=pos >= size)


def _send_leased(lease: SocketLease, fd: int, request: int, pos: int, end: int, chunk: int,
                 stream: ReadStream, job: Job) -> int:
    """Send chunks from ``pos`` with ``send_chunk`` on the lent socket while the window
    has credit (one lend for several chunks); returns the position reached. A frame left
    unfinished closes the connection."""
    sock = lease.acquire(job)
    if sock is None:
        check_cancelled(job)
        raise asyncio.CancelledError()
    short_at = None
    try:
        while True:
            n = min(chunk, end - pos)
            if send_chunk(sock, fd, request, pos, n, job) < n:
                short_at = pos
                break
            with stream.cond:
                stream.sent += n
                credit = stream.sent - stream.acked < stream.window
            pos += n
            if pos >= end or not credit or job.cancelled.is_set():
                return pos
    except BaseException:  # a frame left unfinished: the stream cannot go on
        lease.abort()
        raise
    finally:
        lease.release()
    raise Conflict("the file shrank during a streamed fs.read",
                   {"reason": "file_changed", "offset": short_at})


def finish_upload(upload: Upload, job: Job) -> WriteResult:
    """Wait for the whole upload, then commit it like ``fs.write`` overwrite (fsync, old
    mode and owner, atomic rename); ``sha256`` is None (the temp file is write-only)."""
    size = upload.wait_done(job)
    os.ftruncate(upload.handle.fd, size)
    result = upload.handle.commit()
    return WriteResult(path=result.path, mode="overwrite", written_bytes=size,
                       size=result.size, created=result.created, sha256=None)
