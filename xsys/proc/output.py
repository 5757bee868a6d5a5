"""A worker's output: the bounded ring of its last lines (``Ring``) and the optional
rotated log files (``LogFile``).

The ring is bounded in lines and bytes; a chunk of a child writing fast is split once and
only its last lines that can fit are kept, so a child writing 100 MB costs the daemon a
split per 64 KiB chunk, not a deque operation per line. Every line that leaves the ring
or never enters it is counted (``dropped``)."""

from __future__ import annotations

import collections
import itertools
import os
import time
from collections.abc import Iterator
from typing import Literal

Stream = Literal["stdout", "stderr"]

#: The longest line kept (bytes); longer lines are cut into pieces of this size.
MAX_LINE_BYTES = 16 * 1024


class Ring:
    """The last lines of one instance's stdout and stderr: at most ``max_lines`` lines
    and ``max_bytes`` bytes (line bytes plus 64 each for the bookkeeping). Lines get a
    sequence number from ``seq`` (shared by the group, so ``after_seq`` follows it)."""

    OVERHEAD_BYTES = 64

    def __init__(self, max_lines: int, max_bytes: int, seq: Iterator[int]) -> None:
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self.lines: collections.deque[tuple[int, float, Stream, bytes]] = collections.deque()
        self.nbytes = 0
        self.dropped = 0
        self._seq = seq
        self._partial: dict[Stream, bytes] = {"stdout": b"", "stderr": b""}

    def feed(self, stream: Stream, chunk: bytes) -> None:
        """Add a chunk of output read from ``stream``; complete lines enter the ring, the
        unfinished tail waits for the next chunk (at most ``MAX_LINE_BYTES``)."""
        data = self._partial[stream] + chunk if self._partial[stream] else chunk
        parts = data.split(b"\n")
        tail = parts.pop()
        while len(tail) > MAX_LINE_BYTES:
            parts.append(tail[:MAX_LINE_BYTES])
            tail = tail[MAX_LINE_BYTES:]
        self._partial[stream] = tail
        self._add(stream, parts)

    def flush(self, stream: Stream) -> None:
        """The stream ended: its unfinished last line enters the ring."""
        tail = self._partial[stream]
        self._partial[stream] = b""
        if tail:
            self._add(stream, [tail])

    def _add(self, stream: Stream, parts: list[bytes]) -> None:
        if not parts:
            return
        if len(parts) > self.max_lines:  # those could never stay: count, skip
            skipped = len(parts) - self.max_lines
            self.dropped += skipped
            for _ in range(skipped):
                next(self._seq)
            parts = parts[skipped:]
        now = time.time()
        for part in parts:
            if len(part) > MAX_LINE_BYTES:
                pieces = [part[i:i + MAX_LINE_BYTES]
                          for i in range(0, len(part), MAX_LINE_BYTES)]
            else:
                pieces = [part]
            for piece in pieces:
                self.lines.append((next(self._seq), now, stream, piece))
                self.nbytes += len(piece) + self.OVERHEAD_BYTES
        while self.lines and (len(self.lines) > self.max_lines
                              or self.nbytes > self.max_bytes):
            _, _, _, old = self.lines.popleft()
            self.nbytes -= len(old) + self.OVERHEAD_BYTES
            self.dropped += 1

    def tail(self, n: int, stream: Stream | None = None,
             after_seq: int = -1) -> list[tuple[int, float, Stream, bytes]]:
        """The last ``n`` lines (of ``stream`` when given, with a seq above ``after_seq``),
        oldest first."""
        out: list[tuple[int, float, Stream, bytes]] = []
        for item in reversed(self.lines):
            if item[0] <= after_seq or len(out) >= n:
                break
            if stream is None or item[2] == stream:
                out.append(item)
        out.reverse()
        return out


def new_seq() -> Iterator[int]:
    """A group's line sequence, from 1."""
    return itertools.count(1)


class LogFile:
    """One stream of one instance appended to ``path``, rotated when it would pass
    ``max_bytes``: ``path`` -> ``path.1`` -> ... ``path.<backups>`` (the oldest removed;
    ``backups`` 0: truncated instead). Blocking: call it from a worker thread. The
    caller opens it with the owner's file credentials (``xsys.fs.creds.as_peer``)."""

    def __init__(self, path: str, max_bytes: int, backups: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self.fd = -1
        self.size = 0

    def open(self) -> None:
        """Open (create, 0640) for appending, not following a symlink."""
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
                          | os.O_CLOEXEC, 0o640)
        self.size = os.fstat(self.fd).st_size

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``, rotating first when the file would pass ``max_bytes``."""
        if self.fd < 0:
            self.open()
        if self.size and self.size + len(chunk) > self.max_bytes:
            self.rotate()
        view = memoryview(chunk)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
            self.size += n

    def rotate(self) -> None:
        """Shift the backups by one and start an empty file."""
        os.close(self.fd)
        self.fd = -1
        if self.backups > 0:
            for i in range(self.backups - 1, 0, -1):
                src = f"{self.path}.{i}"
                if os.path.lexists(src):
                    os.replace(src, f"{self.path}.{i + 1}")
            os.replace(self.path, f"{self.path}.1")
        else:
            os.unlink(self.path)
        self.open()

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
