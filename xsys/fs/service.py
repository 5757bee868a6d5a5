"""``FsService``: the fs namespace's facade over the sandbox and the file operations.

Each method takes request paths as given by the client, resolves them in the sandbox
(-32002 outside the roots), enforces the configured limits and returns a domain
dataclass. All methods block (file I/O) and are meant for the daemon's thread pool.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import stat
from collections.abc import Callable, Sequence
from typing import Literal

from xsys.fs import grep, links, opening, reading, streams, tree, writing
from xsys.fs.config import FsConfig
from xsys.fs.model import (
    ArchiveResult,
    ChmodResult,
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
    NullJob,
    OpenResult,
    ReadlinkResult,
    ReadResult,
    RealpathResult,
    RemoveResult,
    TailResult,
    TouchResult,
    TransferResult,
    WriteResult,
    entry_type,
)
from xsys.fs.sandbox import Located, Resolved, Sandbox, as_str_path, default_roots
from xsys.protocol import DEFAULT_MAX_FRAME_BYTES, InvalidParams, TooLarge, error_from_oserror

WriteMode = Literal["create", "overwrite", "append"]
#: Room kept in a response frame for everything but the file data.
FRAME_OVERHEAD_BYTES = 4096


class FsService:
    """Sandboxed file operations (see the module docstring).

    ``config``: the ``fs`` config section; ``max_frame_bytes``: the server's frame limit,
    which also caps what one ``fs.read`` can return.
    """

    def __init__(self, config: FsConfig, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self.config = config
        self.sandbox = Sandbox(config.roots or default_roots())
        self.read_limit = min(config.max_read_bytes, max_frame_bytes - FRAME_OVERHEAD_BYTES)
        self.locks = writing.PathLocks()
        self.umask = writing.current_umask()

    @property
    def roots(self) -> tuple[str, ...]:
        """The resolved roots."""
        return self.sandbox.roots

    def resolve(self, path: str | bytes, *, allow_outward_link: bool = False) -> Resolved:
        """Resolve ``path`` in the sandbox to path strings (raises -32002 outside the
        roots); the operations below use ``locate`` and act on descriptors instead."""
        return self.sandbox.resolve(path, allow_outward_link=allow_outward_link)

    def locate(self, path: str | bytes, *, follow: bool = True,
               allow_missing: bool = False) -> Located:
        """``Sandbox.locate``: the open parent descriptor and name of ``path``."""
        return self.sandbox.locate(path, follow=follow, allow_missing=allow_missing)

    # ------------------------------------------------------------------ metadata

    def stat(self, path: str | bytes) -> FileInfo:
        """Metadata of ``path``'s entry; a symlink is described itself (``type``
        ``symlink``, ``symlink_target``) and must point inside the roots."""
        with self.locate(path, follow=False) as loc:
            st = loc.lstat()
            target = None
            if stat.S_ISLNK(st.st_mode):
                assert loc.name is not None
                try:
                    target = os.readlink(loc.name, dir_fd=loc.dir_fd)
                except OSError as exc:
                    raise error_from_oserror(exc, loc.path) from None
                self.locate(path, follow=True, allow_missing=True).close()
            return FileInfo.from_stat(loc.path, st, target)

    def exists(self, path: str | bytes) -> Existence:
        """Whether ``path`` exists (following symlinks) and its type."""
        with self.locate(path, follow=True, allow_missing=True) as loc:
            if loc.st is None:
                return Existence(path=loc.path, exists=False, type=None)
            return Existence(path=loc.path, exists=True, type=entry_type(loc.st.st_mode))

    def chmod(self, path: str | bytes, mode: int | str) -> ChmodResult:
        """Set the permission bits of ``path`` (symlinks followed) to ``mode`` (int, or an
        octal string such as ``"0755"``); -32602 on a malformed mode, -32002 for a file
        with several hard links (unless ``fs.allow_hardlinked_writes``)."""
        try:
            bits = writing.parse_mode(mode)
        except ValueError as exc:
            raise InvalidParams(f"parameter 'mode': {exc}", {"param": "mode", "got": mode}) \
                from None
        with self.locate(path) as loc:
            now = writing.chmod(loc, bits, self.config.allow_hardlinked_writes)
            return ChmodResult(path=loc.path, mode=now)

    # ------------------------------------------------------------------ reading

    def read(self, path: str | bytes, offset: int = 0, length: int | None = None,
             encoding: str | None = None, job: Job | None = None) -> ReadResult:
        """``length`` bytes (None: to the end) from ``offset``; -32004 above the read
        limit; text when ``encoding`` is given; -32007 for a directory or special file."""
        with self.locate(path) as loc:
            return reading.read_file(loc, offset, length, encoding, self.read_limit,
                                     self.config.chunk_bytes, job or NullJob())

    def hash(self, path: str | bytes, algorithm: str = "sha256",
             job: Job | None = None) -> HashResult:
        """The hex digest of the file, streamed in chunks (progress in bytes)."""
        with self.locate(path) as loc:
            return reading.hash_file(loc, algorithm, self.config.chunk_bytes,
                                     job or NullJob())

    def tail(self, path: str | bytes, lines: int = 10, job: Job | None = None) -> TailResult:
        """The last ``lines`` lines of a text file (at most ``max_tail_lines``)."""
        if lines > self.config.max_tail_lines:
            raise TooLarge(f"at most {self.config.max_tail_lines} lines per fs.tail",
                           {"limit": self.config.max_tail_lines, "requested": lines})
        with self.locate(path) as loc:
            return reading.tail_file(loc, lines, self.read_limit, self.config.chunk_bytes,
                                     job or NullJob())

    # ------------------------------------------------------------------ writing

    def write(self, path: str | bytes, data: bytes, mode: WriteMode = "overwrite",
              make_parents: bool = False, expected_sha256: str | None = None,
              job: Job | None = None) -> WriteResult:
        """Write ``data`` (create | overwrite atomically, or append); -32004 above
        ``max_write_bytes``, -32003 for ``create`` over an existing file, -32007 when
        ``expected_sha256`` does not match the current content, -32002 over a file with
        several hard links (unless ``fs.allow_hardlinked_writes``)."""
        if len(data) > self.config.max_write_bytes:
            raise TooLarge(f"write of {len(data)} bytes exceeds the limit of "
                           f"{self.config.max_write_bytes} bytes",
                           {"limit": self.config.max_write_bytes, "requested": len(data)})
        job = job or NullJob()
        chunk = self.config.chunk_bytes
        allow = self.config.allow_hardlinked_writes
        with self.locate(path, allow_missing=True) as loc, self.locks.lock(loc.path):
            writing.check_expected(loc, expected_sha256, chunk)
            if mode == "append":
                return writing.append(loc, data, make_dirs=make_parents, umask=self.umask,
                                      chunk=chunk, job=job, allow_hardlinked=allow)
            return writing.atomic_write(loc, data, exclusive=mode == "create",
                                        make_dirs=make_parents, umask=self.umask,
                                        chunk=chunk, job=job, allow_hardlinked=allow)

    def mkdir(self, path: str | bytes, parents: bool = False) -> MkdirResult:
        """Create a directory (``parents``: like ``mkdir -p``)."""
        with self.locate(path, allow_missing=True) as loc:
            return writing.mkdir(loc, parents, self.umask)

    # ------------------------------------------------------------------ trees

    def list(self, path: str | bytes, recursive: bool = False, glob: str | None = None,
             include_hidden: bool = False, limit: int | None = None,
             job: Job | None = None) -> Listing:
        """Directory entries, bounded by ``limit`` (clamped to ``max_list_entries``)."""
        with self.locate(path, allow_missing=True) as loc:
            return tree.list_dir(loc, recursive, glob, include_hidden, self._limit(limit),
                                 job or NullJob())

    def find(self, path: str | bytes, query: tree.FindQuery, limit: int | None = None,
             job: Job | None = None) -> Listing:
        """Entries below ``path`` matching ``query``, bounded like ``list``."""
        query = query.compile()
        with self.locate(path, allow_missing=True) as loc:
            return tree.find(loc, query, self._limit(limit), job or NullJob())

    def du(self, path: str | bytes, job: Job | None = None) -> DiskUsage:
        """Size and counts of the tree at ``path``."""
        with self.locate(path, follow=True) as loc:
            return tree.disk_usage(loc, job or NullJob())

    def remove(self, path: str | bytes, recursive: bool = False,
               job: Job | None = None) -> RemoveResult:
        """Remove a file, symlink (itself) or directory (non-empty ones need
        ``recursive``); a root, or a directory holding one, never (-32002)."""
        with self.locate(path, follow=False) as loc:
            tree.guard_roots(loc, self.roots, "remove")
            return tree.remove(loc, recursive, job or NullJob())

    def copy(self, src: str | bytes, dst: str | bytes, overwrite: bool = False,
             preserve: bool = False, job: Job | None = None) -> TransferResult:
        """Copy a file or tree to exactly ``dst`` (never over a root)."""
        with self.locate(src) as s, self.locate(dst, allow_missing=True) as d:
            tree.guard_roots(d, self.roots, "replace")
            return tree.copy(s, d, overwrite, preserve, self.config.chunk_bytes,
                             job or NullJob())

    def move(self, src: str | bytes, dst: str | bytes, overwrite: bool = False,
             preserve: bool = True, job: Job | None = None) -> TransferResult:
        """Move (rename, or copy and remove across filesystems) to exactly ``dst``; a
        root, or a directory holding one, is never moved or replaced (-32002)."""
        with self.locate(src, follow=False) as s, \
                self.locate(dst, follow=False, allow_missing=True) as d, \
                self.locks.lock(d.path):
            tree.guard_roots(s, self.roots, "move")
            tree.guard_roots(d, self.roots, "replace")
            return tree.move(s, d, overwrite, preserve, self.config.chunk_bytes,
                             job or NullJob())

    def _limit(self, limit: int | None) -> int:
        cap = self.config.max_list_entries
        return cap if limit is None else max(1, min(limit, cap))

    # ------------------------------------------------------------------ links and times

    def touch(self, path: str | bytes, mtime_at: float | None = None,
              atime_at: float | None = None, make_parents: bool = False) -> TouchResult:
        """Create ``path`` when missing and set its times (``links.touch``)."""
        with self.locate(path, allow_missing=True) as loc:
            return links.touch(loc, mtime_at, atime_at, self.umask, make_parents)

    def link(self, target: str | bytes, path: str | bytes,
             symbolic: bool = False) -> LinkResult:
        """Make ``path`` a symlink to ``target`` (stored as given, which must resolve inside
        the roots) or a hard link to the existing entry ``target`` (``links``)."""
        with self.locate(path, follow=False, allow_missing=True) as loc:
            if symbolic:
                return links.symlink(self.sandbox, loc, as_str_path(target))
            with self.locate(target, follow=False) as src:
                return links.hardlink(src, loc)

    def readlink(self, path: str | bytes) -> ReadlinkResult:
        """The target of the symlink ``path``, which must itself point inside the roots."""
        with self.locate(path, follow=False) as loc:
            out = links.readlink(loc)
        self.locate(path, follow=True, allow_missing=True).close()
        return out

    def realpath(self, path: str | bytes) -> RealpathResult:
        """``path`` fully resolved (-32001 when missing, -32002 outside the roots)."""
        with self.locate(path, follow=True) as loc:
            return links.realpath(loc)

    # ------------------------------------------------------------------ search, archives

    def grep(self, path: str | bytes, query: grep.GrepQuery, limit: int | None = None,
             job: Job | None = None) -> GrepResult:
        """Lines matching ``query`` in the file or tree at ``path`` (``grep.grep``);
        ``limit`` matches at most (clamped to ``max_list_entries``). Each file is read
        whole, so ``max_filesize`` is clamped to ``max_read_bytes`` (larger files are
        skipped and counted in ``skipped_large``)."""
        if query.max_filesize > self.config.max_read_bytes:
            query = dataclasses.replace(query, max_filesize=self.config.max_read_bytes)
        with self.locate(path) as loc:
            return grep.grep(loc, query, self._limit(limit), job or NullJob())

    def archive(self, paths: Sequence[str | bytes], dst: str | bytes, format: str = "tar.gz",
                overwrite: bool = False, job: Job | None = None) -> ArchiveResult:
        """Write ``paths`` (files or trees, each under its base name) into the archive
        ``dst`` (``archive.create``)."""
        if not paths:
            raise InvalidParams("parameter 'paths': at least one path", {"param": "paths"})
        with contextlib.ExitStack() as stack:
            sources = [stack.enter_context(self.locate(p, follow=False)) for p in paths]
            d = stack.enter_context(self.locate(dst, allow_missing=True))
            tree.guard_roots(d, self.roots, "replace")
            from xsys.fs import archive as archiving  # tarfile, zipfile, lzma: on first use

            with self.locks.lock(d.path):
                return archiving.create(sources, d, format, overwrite, self.config.chunk_bytes,
                                        self.umask, job or NullJob())

    def extract(self, src: str | bytes, dst: str | bytes, overwrite: bool = False,
                job: Job | None = None) -> ExtractResult:
        """Unpack the archive ``src`` into the directory ``dst`` (created when missing;
        ``archive.extract``: nothing outside ``dst``, bounded by ``max_extract_bytes`` and
        ``max_extract_members``)."""
        from xsys.fs import archive as archiving

        with self.locate(src) as s, self.locate(dst, allow_missing=True) as d:
            return archiving.extract(s, d, overwrite, self.config.max_extract_bytes,
                                     self.config.max_extract_members, self.config.chunk_bytes,
                                     self.umask, job or NullJob())

    # ------------------------------------------------------------------ descriptors

    def open_fd(self, path: str | bytes, mode: str) -> tuple[int, OpenResult | None,
                                                            opening.WriteHandle | None]:
        """``fs.open``: ``(descriptor for the client, result for rb, handle for wb)``
        (``opening``); -32602 for another mode."""
        if mode not in opening.OPEN_MODES:
            raise InvalidParams(f"parameter 'mode': one of {', '.join(opening.OPEN_MODES)}",
                                {"param": "mode", "got": mode})
        if mode == "rb":
            with self.locate(path) as loc:
                fd, result = opening.open_read(loc)
                return fd, result, None
        with self.locate(path, allow_missing=True) as loc:
            fd, handle = opening.open_write(loc, self.umask,
                                            self.config.allow_hardlinked_writes)
            return fd, None, handle

    # ------------------------------------------------------------------ streams

    def read_stream(self, path: str | bytes, offset: int, length: int | None,
                    stream: streams.ReadStream, send: Callable[[int, bytes], None],
                    job: Job | None = None,
                    lease: streams.SocketLease | None = None,
                    request: int = 0) -> ReadResult:
        """Streamed ``fs.read`` (``streams.stream_file``): chunks of
        ``streams.stream_chunk``, with ``sendfile`` on ``lease``'s socket when given
        (``request``: the stream's id, in each chunk)."""
        real_job = job or NullJob()
        with self.locate(path) as loc, reading.open_regular(loc) as (fd, st):
            chunk = streams.stream_chunk(self.config.chunk_bytes, stream.window)
            return streams.stream_file(fd, loc.path, st.st_size, offset, length, chunk,
                                       stream, send, real_job, lease, request)

    def upload_handle(self, path: str | bytes) -> opening.WriteHandle:
        """The temp file of a streamed ``fs.write`` (``fs.write``'s checks)."""
        with self.locate(path, allow_missing=True) as loc:
            fd, handle = opening.open_write(loc, self.umask,
                                            self.config.allow_hardlinked_writes)
        os.close(fd)
        return handle
