"""The ``fs`` namespace: sandboxed file operations (issue 3, docs/protocol.md).

Every path is resolved against ``fs.roots`` on descriptors (``xsys.fs.sandbox``: ``..`` and
symlinks applied, nothing followed out of the roots); anything outside is refused with
-32002 and the resolved path in ``data``. Each request runs with the peer's file
credentials (``xsys.fs.creds``: a non-root peer can read, write, create and chmod exactly
what it could itself; files it creates are its own). Paths are str, or bin for a name
that is not valid UTF-8, in parameters and in results alike. OS errors map
to protocol codes with the errno name in ``data`` (``{"errno": "ENOENT", "path": ...}``).
Every method runs in the thread pool (``kind="blocking"``); long ones honour
``progress: true`` with ``fs.progress {request, done, total, unit}`` notifications.
Sizes are int bytes; timestamps are epoch float seconds (``*_at``). Each handler returns
its result dataclass (``xsys.fs.model``: the declared result in ``rpc.methods``), which
``as_caller`` turns into the wire map.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import os
import select as select_mod
import time
from collections.abc import Callable
from typing import Annotated, Any, Concatenate, Literal, ParamSpec

from xsys.fs.creds import as_peer
from xsys.fs.grep import DEFAULT_MAX_FILESIZE, MAX_CONTEXT_LINES, GrepQuery
from xsys.fs.model import (
    FORMATS,
    ArchiveResult,
    ChmodResult,
    CloseResult,
    DiskUsage,
    Existence,
    ExtractResult,
    FileInfo,
    GrepResult,
    HashResult,
    Job,
    LinkResult,
    Listing,
    MkdirResult,
    OpenResult,
    ReadlinkResult,
    ReadResult,
    RealpathResult,
    RemoveResult,
    StreamAck,
    TailResult,
    TouchResult,
    TransferResult,
    WriteResult,
    check_cancelled,
    to_wire,
)
from xsys.fs.opening import Handles, opened_write
from xsys.fs.reading import ALGORITHMS
from xsys.fs.service import FsService
from xsys.fs.streams import (
    STALL_TIMEOUT_S,
    ReadStream,
    Streams,
    Upload,
    check_window,
    chunk_frame,
    finish_upload,
)
from xsys.fs.tree import FindQuery
from xsys.protocol import Conflict
from xsys.server.app import App
from xsys.server.context import Context
from xsys.server.router import Doc, Range, Router

Path = Annotated[str | bytes, Doc("path (absolute, or relative to the first root); bin for a "
                                  "name that is not valid UTF-8")]
Count = Annotated[int | None, Range(1, None), Doc("most entries returned (default and "
                                                   "maximum: fs.max_list_entries)")]
Algorithm = Literal["sha256", "sha1", "md5", "blake2b"]
assert set(ALGORITHMS) == {"sha256", "sha1", "md5", "blake2b"}
assert set(FORMATS) == {"tar", "tar.gz", "tar.xz", "zip"}


P = ParamSpec("P")

#: Epoch seconds a file time may take: what fits the kernel's 64-bit nanoseconds (about
#: the years 1685..2255); beyond it utimensat overflowed into -32603.
TIME_RANGE = Range(-9_000_000_000, 9_000_000_000)


def wire(obj: Any) -> dict[str, Any]:
    """A result dataclass as its wire map (file names that are not UTF-8 as bin)."""
    out: dict[str, Any] = to_wire(dataclasses.asdict(obj))
    return out


def as_caller(fn: Callable[Concatenate[Context, P], Any],
              ) -> Callable[Concatenate[Context, P], dict[str, Any]]:
    """Run the handler ``fn(ctx, ...)`` with the peer's file credentials
    (``xsys.fs.creds.as_peer``; it runs in a worker thread, so only that thread changes)
    and return its result dataclass as the wire map (``wire``). The router reads the
    declared result from ``fn``'s return annotation (``functools.wraps`` keeps ``fn`` as
    ``__wrapped__``)."""

    @functools.wraps(fn)
    def wrapper(ctx: Context, /, *args: P.args, **kwargs: P.kwargs) -> dict[str, Any]:
        peer = ctx.peer
        with as_peer(peer.uid, peer.gid, peer.groups):
            return wire(fn(ctx, *args, **kwargs))

    return wrapper


def as_wire(fn: Callable[Concatenate[Context, P], Any],
            ) -> Callable[Concatenate[Context, P], dict[str, Any]]:
    """``as_caller`` without the credentials: for inline handlers that touch no file."""

    @functools.wraps(fn)
    def wrapper(ctx: Context, /, *args: P.args, **kwargs: P.kwargs) -> dict[str, Any]:
        return wire(fn(ctx, *args, **kwargs))

    return wrapper


def service(app: App) -> FsService:
    """The daemon's ``FsService`` (``Services.fs``, built by the composition root)."""
    svc: FsService = app.services.fs
    return svc


def register(router: Router, app: App) -> None:
    """Declare the fs methods."""
    app.capabilities.append("fs")
    _register_metadata(router, app)
    _register_reading(router, app)
    _register_writing(router, app)
    _register_trees(router, app)
    _register_links(router, app)
    _register_search(router, app)
    _register_descriptors(router, app)
    _register_streams(router, app)


def _register_metadata(router: Router, app: App) -> None:
    @router.method("fs.stat", kind="blocking", safe=True)
    @as_caller
    def stat(ctx: Context, path: Path) -> FileInfo:
        """Metadata of one entry (a symlink is described itself, with its target).

        Returns ``{path, name, type: file|dir|symlink|fifo|socket|char_device|
        block_device|other, size, mode (permission bits, int), uid, gid, nlink, inode,
        mtime_at, atime_at, ctime_at, symlink_target (str|nil)}``. Errors: -32001 missing,
        -32002 outside the roots.
        """
        return service(app).stat(path)

    @router.method("fs.exists", kind="blocking", safe=True)
    @as_caller
    def exists(ctx: Context, path: Path) -> Existence:
        """Whether a path exists (symlinks followed): ``{path, exists, type|nil}``.

        Paths outside the roots are refused (-32002) rather than answered.
        """
        return service(app).exists(path)

    @router.method("fs.chmod", kind="blocking")
    @as_caller
    def chmod(ctx: Context, path: Path,
              mode: Annotated[int | str, Doc("permission bits: int (0o755 = 493) or octal "
                                              "string '0755'")]) -> ChmodResult:
        """Set a file's permission bits (symlinks followed): ``{path, mode}``.

        Errors: -32602 malformed mode, -32001 missing, -32002 outside roots or refused.
        """
        return service(app).chmod(path, mode)


def _register_reading(router: Router, app: App) -> None:
    @router.method("fs.read", kind="blocking", safe=True)
    @as_caller
    def read(ctx: Context, path: Path,
             offset: Annotated[int, Range(0, None), Doc("first byte to read")] = 0,
             length: Annotated[int | None, Range(0, None),
                               Doc("bytes to read; nil: to the end")] = None,
             encoding: Annotated[str | None, Doc("decode as text (e.g. utf-8); nil: "
                                                 "bytes")] = None,
             stream: Annotated[bool, Doc("send the file as fs.chunk notifications under a "
                                         "window acknowledged with fs.ack (any size)")] = False,
             window_bytes: Annotated[int | None, Range(65536, None),
                                     Doc("stream: most unacknowledged bytes (default 32 "
                                         "MiB, at most 64 MiB)")] = None) -> ReadResult:
        """Read a file, or a range of it: ``{path, data, offset, length, size, eof}``.

        ``data`` is bin, or str when ``encoding`` is given; ``length`` is the bytes read,
        ``size`` the whole file's. More than ``fs.max_read_bytes`` (also capped by the
        frame limit) -> -32004: read in pieces with offset/length. Directories -> -32007.
        ``stream: true``: the content comes as ``fs.chunk {request, offset, data}``
        notifications (8 MiB each, at most half the window) before the answer, whose
        ``data`` is then empty and ``length`` the bytes streamed (a file that shrinks
        meanwhile: -32007 ``reason: "file_changed"``); the daemon sends at most
        ``window_bytes`` beyond what the client acknowledged with ``fs.ack {request,
        offset}`` (bytes consumed from the stream's start), so memory stays bounded when
        the client stops reading (it gives up after 60 s: -32007 ``stream_stalled``).
        """
        if not stream:
            return service(app).read(path, offset, length, encoding, ctx)
        streams, rid = _streams(ctx)
        rs = ReadStream(check_window(window_bytes))
        session: Any = ctx.session
        loop = session.loop

        write_parts = getattr(session, "send_frame_parts", None)
        _grow_send_buffer(session, rs.window // 2)
        lease = _SocketLease(session) if _can_lend(session) else None

        def send(pos: int, data: bytes) -> None:
            if write_parts is not None:  # encoded here, in the worker: no copy of data
                loop.call_soon_threadsafe(write_parts, chunk_frame(rid, pos, data))
            else:
                loop.call_soon_threadsafe(session.send_notification, "fs.chunk",
                                          {"request": rid, "offset": pos, "data": data})

        streams.add(streams.reads, rid, rs)
        try:
            return service(app).read_stream(path, offset, length, rs, send, ctx, lease,
                                              rid)
        finally:
            streams.remove(streams.reads, rid)

    @router.method("fs.hash", kind="blocking", progress=True, safe=True)
    @as_caller
    def hash_(ctx: Context, path: Path,
              algorithm: Annotated[Algorithm, Doc("hash function")] = "sha256",
              ) -> HashResult:
        """Hash a file, streamed in chunks: ``{path, algorithm, digest (hex), size}``.

        Progress (``progress: true``): bytes hashed against the file size.
        """
        return service(app).hash(path, algorithm, ctx)

    @router.method("fs.tail", kind="blocking", safe=True)
    @as_caller
    def tail(ctx: Context, path: Path,
             lines: Annotated[int, Range(0, None), Doc("lines wanted (at most "
                                                       "fs.max_tail_lines)")] = 10,
             ) -> TailResult:
        """The last lines of a text file: ``{path, lines: [str], size}``.

        Lines lose their newline and are UTF-8 decoded with replacement characters.
        """
        return service(app).tail(path, lines, ctx)


def _register_writing(router: Router, app: App) -> None:
    @router.method("fs.write", kind="blocking")
    @as_caller
    def write(ctx: Context, path: Path,
              data: Annotated[bytes | str | None, Doc("content: bin, or str encoded with "
                                                      "`encoding` (nil only with "
                                                      "stream)")] = None,
              mode: Annotated[Literal["create", "overwrite", "append"],
                              Doc("create fails if the file exists; overwrite replaces "
                                  "atomically; append adds at the end")] = "overwrite",
              make_parents: Annotated[bool, Doc("create missing parent directories")] = False,
              expected_sha256: Annotated[str | None, Doc("precondition: sha256 hex of the "
                                                         "current content")] = None,
              encoding: Annotated[str, Doc("encoding of str data")] = "utf-8",
              stream: Annotated[bool, Doc("chunked upload: the content comes in "
                                          "fs.write_chunk requests bound to this one")] = False,
              ) -> WriteResult:
        """Write a file: ``{path, mode, written_bytes, size, created, sha256|nil}``.

        create/overwrite are atomic (temp file in the same directory, fsync, rename, fsync
        of the directory): readers and crashes see the old or the new content, never a
        mix. ``stream: true``: a chunked upload of any size, bound to this request: send
        ``fs.write_chunk {request: this id, offset, data, eof}`` requests (the last with
        ``eof: true``); this request answers once every byte arrived and the file was
        renamed into place (``sha256`` nil). Errors: -32003 create over an existing file,
        -32007 ``expected_sha256``
        mismatch (``data.actual``), -32004 above ``fs.max_write_bytes`` (streamed: above
        1 TiB), -32001 missing parent (without ``make_parents``).
        """
        if stream:
            if mode != "overwrite" or make_parents or expected_sha256 is not None or data:
                from xsys.protocol import InvalidParams

                raise InvalidParams("a streamed fs.write is an overwrite without data, "
                                    "make_parents or expected_sha256", {"param": "stream"})
            streams, rid = _streams(ctx)
            upload = Upload(service(app).upload_handle(path), 1 << 40)
            streams.add(streams.uploads, rid, upload)
            try:
                return finish_upload(upload, ctx)
            finally:
                streams.remove(streams.uploads, rid)
                upload.handle.discard()
        if data is None:
            from xsys.protocol import InvalidParams

            raise InvalidParams("parameter 'data' is required (unless stream)",
                                {"param": "data"})
        raw = _encode(data, encoding)
        return service(app).write(path, raw, mode, make_parents, expected_sha256, ctx)

    @router.method("fs.mkdir", kind="blocking")
    @as_caller
    def mkdir(ctx: Context, path: Path,
              parents: Annotated[bool, Doc("create missing parents; no error if it "
                                           "exists")] = False) -> MkdirResult:
        """Create a directory: ``{path, created}``.

        Errors: -32003 exists (without ``parents``), -32001 missing parent.
        """
        return service(app).mkdir(path, parents)

    @router.method("fs.remove", kind="blocking", progress=True)
    @as_caller
    def remove(ctx: Context, path: Path,
               recursive: Annotated[bool, Doc("required for non-empty directories")] = False,
               ) -> RemoveResult:
        """Remove a file, symlink (itself, not its target) or directory:
        ``{path, removed, files, dirs}``.

        Errors: -32007 non-empty directory without ``recursive``, -32002 a root.
        """
        return service(app).remove(path, recursive, ctx)


def _encode(data: bytes | str, encoding: str) -> bytes:
    from xsys.protocol import InvalidParams

    if isinstance(data, bytes):
        return data
    try:
        return data.encode(encoding)
    except LookupError:
        raise InvalidParams(f"unknown encoding {encoding!r}",
                            {"param": "encoding", "got": encoding}) from None
    except UnicodeEncodeError as exc:
        raise InvalidParams(f"data cannot be encoded as {encoding}: {exc.reason}",
                            {"param": "data", "encoding": encoding}) from None


def _register_trees(router: Router, app: App) -> None:
    @router.method("fs.list", kind="blocking", safe=True)
    @as_caller
    def list_(ctx: Context, path: Path,
              recursive: Annotated[bool, Doc("descend into subdirectories")] = False,
              glob: Annotated[str | None, Doc("fnmatch pattern on the name (on the "
                                              "relative path if it has a /)")] = None,
              include_hidden: Annotated[bool, Doc("include dot files")] = False,
              limit: Count = None) -> Listing:
        """List a directory: ``{path, entries: [{name, path, type, size, mode, mtime_at,
        symlink_target}], truncated, scanned}``.

        Sorted by name (relative path when recursive); with ``limit``, the first
        ``limit`` entries by name, and ``truncated`` tells when more exist. Symlinks are
        listed, not followed.
        """
        return service(app).list(path, recursive, glob, include_hidden, limit, ctx)

    @router.method("fs.find", kind="blocking", progress=True, safe=True)
    @as_caller
    def find(ctx: Context, path: Path,
             name: Annotated[str | None, Doc("fnmatch glob on the base name")] = None,
             regex: Annotated[str | None, Doc("regular expression searched in the base "
                                              "name")] = None,
             type: Annotated[Literal["file", "dir", "symlink"] | None,
                             Doc("entry type")] = None,
             min_size: Annotated[int | None, Range(0, None), Doc("bytes, files only")] = None,
             max_size: Annotated[int | None, Range(0, None), Doc("bytes, files only")] = None,
             modified_since: Annotated[float | None, Doc("epoch seconds; mtime >= it")] = None,
             limit: Count = None) -> Listing:
        """Find entries below a directory: ``{path, entries, truncated, scanned}`` (entries
        as in fs.list, ``name`` relative to ``path``).

        Criteria combine with AND. Progress (``progress: true``): entries scanned.
        """
        query = FindQuery(name=name, regex=regex, type=type, min_size=min_size,
                          max_size=max_size, modified_since=modified_since)
        return service(app).find(path, query, limit, ctx)

    @router.method("fs.du", kind="blocking", progress=True, safe=True)
    @as_caller
    def du(ctx: Context, path: Path) -> DiskUsage:
        """Disk usage of a tree: ``{path, size, disk_bytes, files, dirs, symlinks, others,
        errors}``.

        ``size`` sums regular files' apparent sizes (hard links once), ``disk_bytes`` the
        allocated blocks; ``dirs`` excludes ``path`` itself. Progress: entries scanned.
        """
        return service(app).du(path, ctx)

    @router.method("fs.copy", kind="blocking", progress=True)
    @as_caller
    def copy(ctx: Context, src: Path, dst: Path,
             overwrite: Annotated[bool, Doc("replace files at dst / merge into a dst "
                                            "directory")] = False,
             preserve: Annotated[bool, Doc("copy timestamps too (mode is always "
                                           "copied)")] = False) -> TransferResult:
        """Copy a file or tree to exactly ``dst``: ``{src, dst, files, dirs, symlinks,
        copied_bytes, skipped, renamed}``.

        Symlinks inside a tree are copied as links; special files are skipped. Errors:
        -32003 dst exists without ``overwrite``, -32007 file/directory mismatch. Progress:
        bytes copied against the total.
        """
        return service(app).copy(src, dst, overwrite, preserve, ctx)

    @router.method("fs.move", kind="blocking", progress=True)
    @as_caller
    def move(ctx: Context, src: Path, dst: Path,
             overwrite: Annotated[bool, Doc("replace an existing dst")] = False,
             preserve: Annotated[bool, Doc("keep timestamps when the move has to copy "
                                           "across filesystems")] = True,
             ) -> TransferResult:
        """Move or rename to exactly ``dst``: ``{src, dst, files, dirs, symlinks,
        copied_bytes, skipped, renamed}``.

        A rename when possible (``renamed``), else copy then remove. Errors: -32003 dst
        exists without ``overwrite``, -32002 moving a root.
        """
        return service(app).move(src, dst, overwrite, preserve, ctx)


def _register_links(router: Router, app: App) -> None:
    @router.method("fs.touch", kind="blocking")
    @as_caller
    def touch(ctx: Context, path: Path,
              mtime_at: Annotated[float | None, TIME_RANGE,
                                  Doc("modification time, epoch seconds; nil: now (or "
                                      "unchanged when only atime_at is given)")] = None,
              atime_at: Annotated[float | None, TIME_RANGE,
                                  Doc("access time, epoch seconds; nil: now (or unchanged "
                                      "when only mtime_at is given)")] = None,
              make_parents: Annotated[bool, Doc("create missing parent directories")] = False,
              ) -> TouchResult:
        """Create an empty file when missing and set its times: ``{path, created,
        mtime_at, atime_at}`` (symlinks followed inside the roots).

        Errors: -32001 missing parent, -32002 outside the roots or not permitted.
        """
        return service(app).touch(path, mtime_at, atime_at, make_parents)

    @router.method("fs.link", kind="blocking")
    @as_caller
    def link(ctx: Context, target: Annotated[str | bytes, Doc("what the link points to: "
                                                              "for a symlink stored as "
                                                              "given (relative to the "
                                                              "link's directory), for a "
                                                              "hard link an existing "
                                                              "file")],
             path: Path,
             symbolic: Annotated[bool, Doc("a symbolic link (else a hard link)")] = False,
             ) -> LinkResult:
        """Make a link at ``path``: ``{path, target, symbolic}``.

        A symlink whose target resolves outside the roots is refused (-32002 ``reason:
        "symlink_outside_roots"``); a dangling target inside is allowed. A hard link joins
        two entries inside the roots (-32007 for a directory). Errors: -32003 ``path``
        exists, -32001 missing parent or hard-link target.
        """
        return service(app).link(target, path, symbolic)

    @router.method("fs.readlink", kind="blocking", safe=True)
    @as_caller
    def readlink(ctx: Context, path: Path) -> ReadlinkResult:
        """The target of a symlink as stored: ``{path, target}``.

        Errors: -32007 (``EINVAL``) not a symlink, -32002 a link pointing outside the
        roots, -32001 missing.
        """
        return service(app).readlink(path)

    @router.method("fs.realpath", kind="blocking", safe=True)
    @as_caller
    def realpath(ctx: Context, path: Path) -> RealpathResult:
        """A path with every symlink, ``.`` and ``..`` resolved: ``{path (resolved),
        requested, type}``.

        Errors: -32001 missing, -32002 resolving outside the roots.
        """
        return service(app).realpath(path)


def _register_search(router: Router, app: App) -> None:
    @router.method("fs.grep", kind="blocking", progress=True, safe=True)
    @as_caller
    def grep(ctx: Context, path: Path,
             pattern: Annotated[str | None, Doc("regular expression (regex package, "
                                                "searched line by line), or literal text "
                                                "with fixed")] = None,
             regex: Annotated[bool | str, Doc("true: pattern is a regular expression "
                                              "(false: same as fixed); a string: the "
                                              "regular expression itself, instead of "
                                              "pattern")] = True,
             fixed: Annotated[bool, Doc("pattern is literal text")] = False,
             ignore_case: Annotated[bool, Doc("case-insensitive")] = False,
             glob: Annotated[str | None, Doc("only files whose name matches this fnmatch "
                                             "pattern (relative path if it has a /)")] = None,
             max_count: Annotated[int | None, Range(1, None),
                                  Doc("most matches per file")] = None,
             max_filesize: Annotated[int, Range(0, None),
                                     Doc("skip larger files (bytes; at most "
                                         "fs.max_read_bytes)")] = DEFAULT_MAX_FILESIZE,
             limit: Count = None,
             context: Annotated[int, Range(0, MAX_CONTEXT_LINES),
                                Doc("lines of context before and after")] = 0,
             gitignore: Annotated[bool, Doc("honour .gitignore files and skip .git")] = False,
             include_hidden: Annotated[bool, Doc("search dot files and dot dirs")] = True,
             ) -> GrepResult:
        """Search file contents below a directory (or in one file): ``{path, matches:
        [{path, line_number, line, before, after}], truncated, files_scanned,
        files_matched, skipped_binary, skipped_large, timed_out, errors}``.

        Binary files (a NUL byte in the first 8 KiB) and files above ``max_filesize`` are
        skipped; symlinks are not followed. The pattern runs on the ``regex`` package with
        a time bound per file (a file that takes longer is listed in ``timed_out``).
        At most ``limit`` matches (``truncated``). Progress: files searched.
        """
        if isinstance(regex, str):
            if pattern is not None:
                from xsys.protocol import InvalidParams

                raise InvalidParams("give the expression in pattern or in regex, not both",
                                    {"param": "regex"})
            pattern, regex = regex, True
        if pattern is None:
            from xsys.protocol import InvalidParams

            raise InvalidParams("parameter 'pattern' is required", {"param": "pattern"})
        query = GrepQuery(pattern=pattern, fixed=fixed or not regex, ignore_case=ignore_case,
                          glob=glob, max_count=max_count, max_filesize=max_filesize,
                          context=context, gitignore=gitignore,
                          include_hidden=include_hidden)
        return service(app).grep(path, query, limit, ctx)

    @router.method("fs.archive", kind="blocking", progress=True)
    @as_caller
    def archive(ctx: Context,
                paths: Annotated[list[str | bytes], Doc("files or directories to pack, "
                                                        "each under its base name")],
                dst: Path,
                format: Annotated[Literal["tar", "tar.gz", "tar.xz", "zip"],
                                  Doc("archive format")] = "tar.gz",
                overwrite: Annotated[bool, Doc("replace an existing dst")] = False,
                ) -> ArchiveResult:
        """Pack files and trees into an archive: ``{dst, format, files, dirs, symlinks,
        input_bytes, size, skipped}``.

        Symlinks are stored as links, special files skipped; the archive appears at
        ``dst`` only when complete (atomic). Errors: -32003 dst exists without
        ``overwrite``. Progress: bytes read.
        """
        return service(app).archive(list(paths), dst, format, overwrite, ctx)

    @router.method("fs.extract", kind="blocking", progress=True)
    @as_caller
    def extract(ctx: Context, src: Path, dst: Path,
                overwrite: Annotated[bool, Doc("replace files already in dst")] = False,
                ) -> ExtractResult:
        """Unpack a tar (plain, gz, xz, bz2) or zip archive into a directory: ``{src, dst,
        format, created, members, files, dirs, symlinks, hardlinks, output_bytes}``.

        Safe against hostile archives: a member whose path or link target would land
        outside ``dst`` (``..``, absolute, through a symlink) fails the whole extract
        (-32002 ``reason: "unsafe_member"``) with nothing written; more than
        ``fs.max_extract_members`` members or ``fs.max_extract_bytes`` bytes: -32004; no
        setuid/setgid bits, no devices. ``dst`` is created when missing. Errors: -32007
        not an archive (``reason: "bad_archive"``), -32003 an entry already in dst without
        ``overwrite``. Progress: bytes written.
        """
        return service(app).extract(src, dst, overwrite, ctx)


def _handles(ctx: Context) -> Handles:
    """The connection's ``wb`` handles (closed with it); -32007 without a connection."""
    resources = getattr(ctx.session, "resources", None)
    if resources is None:
        raise Conflict("fs.open needs a Unix socket connection (descriptors cannot travel "
                       "over HTTP)", {"reason": "no_descriptor_passing"})
    handles = resources.get("fs.handles")
    if handles is None:
        handles = resources["fs.handles"] = Handles()
    assert isinstance(handles, Handles)
    return handles


def _register_descriptors(router: Router, app: App) -> None:
    @router.method("fs.open", kind="blocking")
    @as_caller
    def open_(ctx: Context, path: Path,
              mode: Annotated[Literal["rb", "wb"], Doc("rb: read; wb: write a new content "
                                                       "that replaces the file on fs.close "
                                                       "(atomic)")] = "rb",
              ) -> OpenResult:
        """Open a file and pass its descriptor to the client (Unix socket, SCM_RIGHTS):
        ``{path, mode, size, fd: true, handle|nil, inode}``.

        The descriptor rides in the ancillary data of the response frame (see the
        protocol doc, "Descriptors"); it is opened after the sandbox and permission
        checks, as the peer, so it refers to the checked file whatever happens to the
        path afterwards. ``wb`` follows fs.write's rules: the descriptor is a temp file
        in the target's directory, renamed over the target by ``fs.close {handle}``;
        dropped if the connection ends first. Errors as fs.read / fs.write; -32007 over
        HTTP.
        """
        attach = getattr(ctx.session, "attach_fds", None)
        if attach is None or ctx.request_id is None:
            raise Conflict("fs.open needs a Unix socket connection (descriptors cannot "
                           "travel over HTTP)", {"reason": "no_descriptor_passing"})
        fd, result, handle = service(app).open_fd(path, mode)
        if handle is not None:
            try:
                number = _handles(ctx).add(handle)
            except BaseException:
                os.close(fd)
                raise
            result = opened_write(handle, number)
        assert result is not None
        attach(ctx.request_id, [fd])
        return result

    @router.method("fs.close", kind="blocking")
    @as_caller
    def close(ctx: Context,
              handle: Annotated[int, Range(1, None), Doc("the handle fs.open gave")],
              commit: Annotated[bool, Doc("replace the target with what was written (false: "
                                          "discard it)")] = True) -> CloseResult:
        """Finish a ``wb`` fs.open: ``{path, committed, size, created}``.

        ``commit``: fsync, the old file's mode and owner, then an atomic rename over the
        target (as fs.write overwrite); else the temp file is dropped. Errors: -32001
        unknown handle (or one of another connection).
        """
        h = _handles(ctx).take(handle)
        if not commit:
            h.discard()
            return CloseResult(path=h.path, committed=False, size=0, created=False)
        return h.commit()


def _streams(ctx: Context) -> tuple[Streams, int]:
    """The connection's ``Streams`` and this request's id; -32007 without a connection."""
    resources = getattr(ctx.session, "resources", None)
    if resources is None or ctx.request_id is None:
        raise Conflict("streaming needs a socket connection", {"reason": "no_streaming"})
    streams = resources.get("fs.streams")
    if streams is None:
        streams = resources["fs.streams"] = Streams()
    assert isinstance(streams, Streams)
    return streams, ctx.request_id


def _can_lend(session: Any) -> bool:
    """Whether ``session`` can lend its socket to a worker (a Unix stream socket on a
    platform with ``sendfile``): streamed reads then use ``sendfile``."""
    import socket

    if not (hasattr(session, "lend_socket") and hasattr(os, "sendfile")
            and hasattr(select_mod, "poll")):
        return False
    transport = getattr(session, "transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    return sock is not None and getattr(sock, "family", None) == socket.AF_UNIX


class _SocketLease:
    """``streams.SocketLease`` over a ``Connection`` (``lend_socket``/``return_socket``
    on its loop): called from the stream's worker thread."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.loop: asyncio.AbstractEventLoop = session.loop

    def acquire(self, job: Job) -> int | None:
        """The lent descriptor, waiting for the connection's pending output to go out;
        raises on cancel or after ``STALL_TIMEOUT_S`` (the lend is then withdrawn)."""
        fut = asyncio.run_coroutine_threadsafe(self.session.lend_socket(self), self.loop)
        deadline = time.monotonic() + STALL_TIMEOUT_S
        while True:
            try:
                fd: int | None = fut.result(0.1)
                return fd
            except concurrent.futures.TimeoutError:
                if job.cancelled.is_set() or time.monotonic() > deadline:
                    fut.cancel()
                    self.release()  # in case it was lent meanwhile
                    check_cancelled(job)
                    raise Conflict(
                        f"streamed fs.read: the client read nothing for "
                        f"{STALL_TIMEOUT_S:.0f}s",
                        {"reason": "stream_stalled", "timeout_s": STALL_TIMEOUT_S}) from None

    def release(self) -> None:
        """Give the socket back (its output held meanwhile goes out)."""
        self.loop.call_soon_threadsafe(self.session.return_socket, self)

    def abort(self) -> None:
        """Close the connection now (a frame was left unfinished)."""
        self.loop.call_soon_threadsafe(self.session.abort)


def _grow_send_buffer(session: Any, size: int) -> None:
    """Let the kernel hold ``size`` bytes of a stream's output (fewer wake-ups and fewer
    copies into the transport's own buffer); best effort (``SO_SNDBUFFORCE`` as root)."""
    import socket

    transport = getattr(session, "transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return
    for opt in (getattr(socket, "SO_SNDBUFFORCE", None), socket.SO_SNDBUF):
        if opt is None:
            continue
        try:
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) >= size:
                return
            sock.setsockopt(socket.SOL_SOCKET, opt, size)
            return
        except OSError:
            continue


def _register_streams(router: Router, app: App) -> None:
    @router.method("fs.ack", kind="inline")
    @as_wire
    def ack(ctx: Context,
            request: Annotated[int, Range(0, None), Doc("id of the streamed fs.read")],
            offset: Annotated[int, Range(0, None),
                              Doc("bytes consumed from the start of the stream")],
            ) -> StreamAck:
        """Acknowledge a streamed fs.read up to ``offset``: ``{request, done}``.

        The daemon sends at most ``window_bytes`` beyond the highest offset acknowledged.
        Errors: -32001 no such stream on this connection.
        """
        streams, _ = _streams(ctx)
        rs = streams.read(request)
        rs.ack(offset)
        return StreamAck(request=request, done=rs.acked)

    @router.method("fs.write_chunk", kind="blocking")
    @as_caller
    def write_chunk(ctx: Context,
                    request: Annotated[int, Range(0, None),
                                       Doc("id of the streamed fs.write")],
                    offset: Annotated[int, Range(0, None), Doc("where data goes")],
                    data: Annotated[bytes, Doc("the chunk")],
                    eof: Annotated[bool, Doc("the last chunk: offset + len(data) is the "
                                             "size")] = False) -> StreamAck:
        """One chunk of a streamed fs.write: ``{request, done (bytes received)}``.

        Chunks may be pipelined and arrive in any order; memory stays bounded by the
        connection's in-flight requests. Errors: -32001 no such upload.
        """
        streams, _ = _streams(ctx)
        upload = streams.upload(request)
        return StreamAck(request=request, done=upload.write(offset, data, eof))
