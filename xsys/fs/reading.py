"""Reading files: ranged reads, streamed hashes and tails. Every function here blocks and
runs in the daemon's thread pool; long loops check the job for cancellation."""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from collections.abc import Iterator

from xsys.fs.model import HashResult, Job, ReadResult, TailResult, check_cancelled, entry_type
from xsys.fs.sandbox import Located
from xsys.protocol import Conflict, InvalidParams, TooLarge, error_from_oserror

#: Algorithms ``fs.hash`` accepts (``hashlib`` names).
ALGORITHMS: tuple[str, ...] = ("sha256", "sha1", "md5", "blake2b")


def pread(fd: int, size: int, offset: int) -> bytes:
    """``os.pread`` where the platform has it, else seek and read (Windows)."""
    if hasattr(os, "pread"):
        return os.pread(fd, size, offset)
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, size)


#: Flags for reading a file: never follow a final symlink, never block on a FIFO.
READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)


def check_regular(fd: int, path: str) -> os.stat_result:
    """``fstat`` of ``fd``, which must be a regular file: -32007 (``EISDIR`` for a
    directory, ``reason: "not_regular_file"`` and the ``type`` for a FIFO, socket or
    device), so no worker ever blocks on a special file."""
    return check_regular_mode(os.fstat(fd), path)


def check_regular_mode(st: os.stat_result, path: str) -> os.stat_result:
    """``st`` when it describes a regular file, else the -32007 of ``check_regular``."""
    if stat.S_ISREG(st.st_mode):
        return st
    if stat.S_ISDIR(st.st_mode):
        raise Conflict(f"is a directory: {path}", {"errno": "EISDIR", "path": path})
    kind = entry_type(st.st_mode)
    raise Conflict(f"not a regular file ({kind}): {path}",
                   {"path": path, "type": kind, "reason": "not_regular_file"})


@contextlib.contextmanager
def open_regular(loc: Located) -> Iterator[tuple[int, os.stat_result]]:
    """Open the located entry for reading without following a symlink swapped in and
    without blocking on a FIFO; yield ``(fd, fstat)`` of a regular file (see
    ``check_regular``)."""
    fd = loc.open(READ_FLAGS)
    try:
        yield fd, check_regular(fd, loc.path)
    finally:
        os.close(fd)


def read_file(loc: Located, offset: int, length: int | None,
              encoding: str | None, limit: int, chunk: int, job: Job) -> ReadResult:
    """Read ``length`` bytes (None: to the end) from ``offset``.

    Raises -32004 when the bytes to return exceed ``limit`` (``data``: ``limit``,
    ``requested``), -32602 when ``encoding`` is unknown or cannot decode the bytes.
    """
    if encoding is not None:
        _check_encoding(encoding)
    with open_regular(loc) as (fd, st):
        size = st.st_size
        remaining = max(0, size - offset)
        want = remaining if length is None else min(length, remaining)
        if want > limit:
            raise TooLarge(
                f"read of {want} bytes exceeds the limit of {limit} bytes; "
                "read in pieces with offset/length",
                {"limit": limit, "requested": want, "size": size, "path": loc.path})
        pieces: list[bytes] = []
        got = 0
        while got < want:  # one pread (bounded by ``limit``): the kernel fills the bytes
            check_cancelled(job)
            try:
                piece = pread(fd, want - got, offset + got)
            except OSError as exc:
                raise error_from_oserror(exc, loc.path) from None
            if not piece:
                break
            pieces.append(piece)
            got += len(piece)
    raw = pieces[0] if len(pieces) == 1 else b"".join(pieces)
    data: bytes | str
    if encoding is None:
        data = raw
    else:
        try:
            data = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise InvalidParams(f"the file is not valid {encoding}: {exc.reason} at byte "
                                f"{offset + exc.start}",
                                {"param": "encoding", "offset": offset + exc.start}) from None
    return ReadResult(path=loc.path, data=data, offset=offset, length=got, size=size,
                      eof=offset + got >= size)


def _check_encoding(encoding: str) -> None:
    import codecs

    try:
        codecs.lookup(encoding)
    except LookupError:
        raise InvalidParams(f"unknown encoding {encoding!r}",
                            {"param": "encoding", "got": encoding}) from None


def hash_file(loc: Located, algorithm: str, chunk: int, job: Job) -> HashResult:
    """Stream the file through ``algorithm`` in ``chunk``-byte pieces, reporting progress
    in bytes against the file size."""
    h = hashlib.new(algorithm)
    with open_regular(loc) as (fd, st):
        size = st.st_size
        buf = bytearray(chunk)
        view = memoryview(buf)
        done = 0
        job.progress(0, size, "bytes", force=True)
        with os.fdopen(os.dup(fd), "rb", buffering=0) as f:
            while True:
                check_cancelled(job)
                n = f.readinto(view)
                if not n:
                    break
                h.update(view[:n])
                done += n
                job.progress(done, size, "bytes")
        job.progress(done, size, "bytes", force=True)
    return HashResult(path=loc.path, algorithm=algorithm, digest=h.hexdigest(), size=done)


def tail_file(loc: Located, lines: int, limit: int, chunk: int, job: Job) -> TailResult:
    """The last ``lines`` lines (a final newline does not start an empty line), reading
    backwards in ``chunk`` pieces and never more than ``limit`` bytes."""
    with open_regular(loc) as (fd, st):
        size = st.st_size
        if lines == 0 or size == 0:
            return TailResult(path=loc.path, lines=[], size=size)
        pos = size
        data = b""
        step = min(chunk, 64 * 1024)
        while pos > 0 and data.count(b"\n") <= lines and len(data) < limit:
            check_cancelled(job)
            n = min(step, pos, limit - len(data))
            pos -= n
            data = pread(fd, n, pos) + data
    if data.endswith(b"\n"):
        data = data[:-1]
    parts = data.split(b"\n")
    if pos > 0:
        parts = parts[1:]  # it may start mid-line
    text = [p.decode("utf-8", errors="replace").rstrip("\r") for p in parts[-lines:]]
    return TailResult(path=loc.path, lines=text, size=size)
