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

import os
import threading
import time
from collections.abc import Callable
from typing import Any

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


#: Smallest chunk of a streamed read (fewer, larger frames run faster).
MIN_STREAM_CHUNK_BYTES = 8 * 1024 * 1024


def stream_chunk(chunk_bytes: int, window: int) -> int:
    """The chunk size of a streamed read: ``fs.chunk_bytes``, at least 4 MiB, at most half
    the window (so two chunks are always in flight)."""
    return max(64 * 1024, min(max(chunk_bytes, MIN_STREAM_CHUNK_BYTES), window // 2))


def chunk_frame(request: int, offset: int, data: bytes) -> list[bytes]:
    """The frame of ``fs.chunk {request, offset, data}`` as ``[header, data]``: the same
    bytes ``FrameEncoder`` would give, without copying ``data`` into a packer (the map is
    packed with an empty ``data`` whose ``bin`` marker is then replaced by a bin32
    header)."""
    from xsys.protocol import packb

    head = packb({"method": "fs.chunk",
                  "params": {"request": request, "offset": offset, "data": b""}})
    assert head.endswith(b"\xc4\x00")
    head = head[:-2] + b"\xc6" + len(data).to_bytes(4, "big")
    return [(len(head) + len(data)).to_bytes(4, "big") + head, data]


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
                job: Job) -> ReadResult:
    """Send ``[offset, offset+length)`` of ``fd`` as chunks (``send(offset, data)``), each
    after waiting for credit; returns the result with ``data`` empty and ``length`` the
    bytes streamed."""
    end = size if length is None else min(size, offset + length)
    pos = offset
    while pos < end:
        check_cancelled(job)
        stream.wait_credit(job)
        data = pread(fd, min(chunk, end - pos), pos)
        if not data:
            break
        with stream.cond:  # counted before it leaves, so its ack is never clamped away
            stream.sent += len(data)
        send(pos, data)
        pos += len(data)
    return ReadResult(path=path, data=b"", offset=offset, length=pos - offset, size=size,
                      eof=pos >= size)


def finish_upload(upload: Upload, job: Job) -> WriteResult:
    """Wait for the whole upload, then commit it like ``fs.write`` overwrite (fsync, old
    mode and owner, atomic rename); ``sha256`` is None (the temp file is write-only)."""
    size = upload.wait_done(job)
    os.ftruncate(upload.handle.fd, size)
    result = upload.handle.commit()
    return WriteResult(path=result.path, mode="overwrite", written_bytes=size,
                       size=result.size, created=result.created, sha256=None)
