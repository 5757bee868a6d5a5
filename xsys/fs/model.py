"""The fs namespace's domain types: frozen dataclasses whose field names are the wire
names (sizes in bytes, timestamps as epoch float seconds ending in ``_at``), plus the
``Job`` a long operation reports progress to and checks for cancellation.

The dataclasses are the declared results of the fs methods (their ``rpc.methods``
schemas); ``to_wire`` makes the map that goes out. Path and name fields are
``WirePath``: ``str`` here, str or bin on the wire."""

from __future__ import annotations

import asyncio
import os
import stat
import threading
from dataclasses import dataclass, field
from typing import Annotated, Final, Literal, Protocol

from xsys.protocol import WireType, wire_value

#: A path or file name: ``str`` in Python (surrogate escapes where its bytes are not
#: UTF-8), str or bin on the wire (``wire_str``).
WirePath = Annotated[str, WireType("str|bin")]


#: ``wire_str``/``to_wire``: file names that are not UTF-8 go as bin (``xsys.protocol``).
to_wire = wire_value


#: Entry types as they appear on the wire.
EntryType = Literal["file", "dir", "symlink", "fifo", "socket", "char_device",
                    "block_device", "other"]
FILE: Final = "file"
DIR: Final = "dir"
SYMLINK: Final = "symlink"


def entry_type(mode: int) -> EntryType:
    """``st_mode`` -> ``file``, ``dir``, ``symlink``, ``fifo``, ``socket``, ``char_device``,
    ``block_device`` or ``other``."""
    if stat.S_ISREG(mode):
        return FILE
    if stat.S_ISDIR(mode):
        return DIR
    if stat.S_ISLNK(mode):
        return SYMLINK
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "char_device"
    if stat.S_ISBLK(mode):
        return "block_device"
    return "other"


class Job(Protocol):
    """What a long operation needs from its request: the request ``Context`` satisfies it.

    ``cancelled`` is set when the client went away; ``progress(done, total, unit, force)``
    reports ``fs.progress`` (rate-limited unless ``force``); ``want_progress`` tells
    whether anyone listens (so totals are only computed when useful).
    """

    @property
    def cancelled(self) -> threading.Event: ...

    want_progress: bool

    def progress(self, done: int, total: int | None = None, unit: str = "bytes",
                 force: bool = False) -> None:
        """Report progress (see ``Context.progress``)."""


@dataclass
class NullJob:
    """A ``Job`` for direct (non-request) use: never cancelled unless told, reports nothing
    except into ``reports`` (for tests)."""

    cancelled: threading.Event = field(default_factory=threading.Event)
    want_progress: bool = False
    reports: list[tuple[int, int | None, str]] = field(default_factory=list)

    def progress(self, done: int, total: int | None = None, unit: str = "bytes",
                 force: bool = False) -> None:
        """Record the report when ``want_progress``."""
        if self.want_progress:
            self.reports.append((done, total, unit))


def check_cancelled(job: Job) -> None:
    """Raise ``asyncio.CancelledError`` when the job's client has gone."""
    if job.cancelled.is_set():
        raise asyncio.CancelledError()


@dataclass(frozen=True)
class FileInfo:
    """``fs.stat``: one entry's metadata (of the link itself when ``path`` is a symlink;
    ``symlink_target`` then holds what it points to). ``mode`` is the permission bits
    (``0o644`` = 420), ``size`` bytes, times epoch seconds."""

    path: WirePath
    name: WirePath
    type: EntryType
    size: int
    mode: int
    uid: int
    gid: int
    nlink: int
    inode: int
    mtime_at: float
    atime_at: float
    ctime_at: float
    symlink_target: WirePath | None = None

    @classmethod
    def from_stat(cls, path: str, st: os.stat_result, target: str | None) -> FileInfo:
        """Build from an ``lstat``/``stat`` result."""
        return cls(path=path, name=os.path.basename(path) or path, type=entry_type(st.st_mode),
                   size=st.st_size, mode=stat.S_IMODE(st.st_mode), uid=st.st_uid,
                   gid=st.st_gid, nlink=st.st_nlink, inode=st.st_ino, mtime_at=st.st_mtime,
                   atime_at=st.st_atime, ctime_at=st.st_ctime, symlink_target=target)


@dataclass(frozen=True)
class Entry:
    """One row of ``fs.list``/``fs.find``: ``name`` (relative to the listed directory),
    absolute ``path``, ``type``, ``size`` bytes, permission ``mode``, ``mtime_at`` and, for
    symlinks, ``symlink_target``."""

    name: WirePath
    path: WirePath
    type: EntryType
    size: int
    mode: int
    mtime_at: float
    symlink_target: WirePath | None = None

    @classmethod
    def from_stat(cls, name: str, path: str, st: os.stat_result,
                  target: str | None = None) -> Entry:
        """Build from an ``lstat`` result; ``target``: the link's target for symlinks (read
        by the caller with ``readlinkat``)."""
        return cls(name=name, path=path, type=entry_type(st.st_mode), size=st.st_size,
                   mode=stat.S_IMODE(st.st_mode), mtime_at=st.st_mtime,
                   symlink_target=target if stat.S_ISLNK(st.st_mode) else None)


@dataclass(frozen=True)
class Existence:
    """``fs.exists``: whether ``path`` exists (following symlinks) and its ``type``."""

    path: WirePath
    exists: bool
    type: EntryType | None


@dataclass(frozen=True)
class Listing:
    """``fs.list`` and ``fs.find``: ``entries``, ``truncated`` when the limit cut the
    result short, ``scanned`` entries examined."""

    path: WirePath
    entries: list[Entry]
    truncated: bool
    scanned: int


@dataclass(frozen=True)
class ReadResult:
    """``fs.read``: ``data`` (bytes, or str when an encoding was given) starting at
    ``offset``; ``length`` bytes read; ``size`` of the whole file; ``eof`` when the read
    reached the end."""

    path: WirePath
    data: bytes | str
    offset: int
    length: int
    size: int
    eof: bool


@dataclass(frozen=True)
class WriteResult:
    """``fs.write``: ``written_bytes`` from this call, the file's ``size`` afterwards,
    ``created`` when the file did not exist, and the ``sha256`` of the new content (create
    and overwrite only; None after an append)."""

    path: WirePath
    mode: str
    written_bytes: int
    size: int
    created: bool
    sha256: str | None


@dataclass(frozen=True)
class MkdirResult:
    """``fs.mkdir``: ``created`` is False when it already existed (``parents``)."""

    path: WirePath
    created: bool


@dataclass(frozen=True)
class RemoveResult:
    """``fs.remove``: counts of what went (``files`` includes symlinks and other
    non-directories)."""

    path: WirePath
    removed: bool
    files: int
    dirs: int


@dataclass(frozen=True)
class TransferResult:
    """``fs.copy`` / ``fs.move``: ``files``/``dirs``/``symlinks`` written at ``dst``,
    ``copied_bytes`` of file content copied (0 for a rename), ``skipped`` special files
    (fifos, sockets, devices) left out, ``renamed`` when a move was a single rename."""

    src: WirePath
    dst: WirePath
    files: int
    dirs: int
    symlinks: int
    copied_bytes: int
    skipped: int
    renamed: bool


@dataclass(frozen=True)
class HashResult:
    """``fs.hash``: hex ``digest`` of ``size`` bytes with ``algorithm``."""

    path: WirePath
    algorithm: str
    digest: str
    size: int


@dataclass(frozen=True)
class DiskUsage:
    """``fs.du``: ``size`` (apparent bytes of regular files, hard links counted once),
    ``disk_bytes`` (allocated blocks of everything), ``files`` (regular files), ``dirs``
    (directories below ``path``, itself excluded), ``symlinks``, ``others`` (fifos,
    sockets, devices), ``errors`` (entries that could not be read)."""

    path: WirePath
    size: int
    disk_bytes: int
    files: int
    dirs: int
    symlinks: int
    others: int
    errors: int


@dataclass(frozen=True)
class TailResult:
    """``fs.tail``: the last ``lines`` (without their newline, UTF-8 decoded with
    replacement) of a file of ``size`` bytes."""

    path: WirePath
    lines: list[str]
    size: int


@dataclass(frozen=True)
class ChmodResult:
    """``fs.chmod``: the permission ``mode`` now set."""

    path: WirePath
    mode: int


@dataclass(frozen=True)
class TouchResult:
    """``fs.touch``: ``created`` when the file did not exist; the ``mtime_at`` and
    ``atime_at`` now set (epoch seconds)."""

    path: WirePath
    created: bool
    mtime_at: float
    atime_at: float


@dataclass(frozen=True)
class LinkResult:
    """``fs.link``: the link made at ``path`` to ``target`` (as given for a symlink, the
    real path of the linked file for a hard link), ``symbolic`` or hard."""

    path: WirePath
    target: WirePath
    symbolic: bool


@dataclass(frozen=True)
class ReadlinkResult:
    """``fs.readlink``: the symlink at ``path`` and its ``target`` as stored."""

    path: WirePath
    target: WirePath


@dataclass(frozen=True)
class RealpathResult:
    """``fs.realpath``: ``path`` with every symlink, ``.`` and ``..`` resolved (inside the
    roots), and the ``requested`` spelling."""

    path: WirePath
    requested: WirePath
    type: EntryType


@dataclass(frozen=True)
class GrepMatch:
    """One ``fs.grep`` hit: the file ``path``, 1-based ``line_number``, the ``line``
    (without its newline, UTF-8 decoded with replacement characters, at most
    ``MAX_LINE_CHARS``), and up to ``context`` lines ``before`` and ``after`` it."""

    path: WirePath
    line_number: int
    line: str
    before: list[str]
    after: list[str]


@dataclass(frozen=True)
class GrepResult:
    """``fs.grep``: ``matches`` in walk order; ``truncated`` when ``limit`` cut them short;
    ``files_scanned`` files searched, ``files_matched`` with at least one hit,
    ``skipped_binary`` (NUL in the first block), ``skipped_large`` (above
    ``max_filesize``), ``timed_out`` files whose search hit the per-file time bound,
    ``errors`` entries that could not be read."""

    path: WirePath
    matches: list[GrepMatch]
    truncated: bool
    files_scanned: int
    files_matched: int
    skipped_binary: int
    skipped_large: int
    timed_out: list[WirePath]
    errors: int


@dataclass(frozen=True)
class ArchiveResult:
    """``fs.archive``: the archive written at ``dst`` in ``format``, with ``files``,
    ``dirs`` and ``symlinks`` members, ``input_bytes`` of file content read and
    ``size`` of the archive (bytes); ``skipped`` special files left out."""

    dst: WirePath
    format: str
    files: int
    dirs: int
    symlinks: int
    input_bytes: int
    size: int
    skipped: int


@dataclass(frozen=True)
class ExtractResult:
    """``fs.extract``: ``src`` unpacked into ``dst`` (``created`` when ``dst`` did not
    exist): ``members`` in the archive, ``files``, ``dirs``, ``symlinks`` and ``hardlinks``
    written, ``output_bytes`` of file content, ``format`` detected."""

    src: WirePath
    dst: WirePath
    format: str
    created: bool
    members: int
    files: int
    dirs: int
    symlinks: int
    hardlinks: int
    output_bytes: int


@dataclass(frozen=True)
class OpenResult:
    """``fs.open``: the file at ``path`` opened in ``mode`` (``rb``, ``wb``); ``size`` and
    ``inode`` of the file opened (``wb``: the temp file, 0 bytes); ``fd`` is true: the
    descriptor rides with the response frame (docs/protocol.md, "Descriptors");
    ``handle`` (``wb`` only) is what ``fs.close`` takes."""

    path: WirePath
    mode: str
    size: int
    fd: bool
    handle: int | None
    inode: int


@dataclass(frozen=True)
class CloseResult:
    """``fs.close``: ``committed`` when the written file replaced ``path`` (``size``
    bytes; ``created`` when it did not exist), False when it was discarded."""

    path: WirePath
    committed: bool
    size: int
    created: bool


@dataclass(frozen=True)
class StreamAck:
    """``fs.ack`` / ``fs.write_chunk``: the stream's ``request`` and the bytes ``done``
    (acknowledged by the client, or received by the daemon)."""

    request: int
    done: int


#: The archive formats of ``fs.archive`` (stdlib tarfile and zipfile).
FORMATS: tuple[str, ...] = ("tar", "tar.gz", "tar.xz", "zip")
