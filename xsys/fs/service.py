"""``FsService``: the fs namespace's facade over the sandbox and the file operations.

Each method takes request paths as given by the client, resolves them in the sandbox
(-32002 outside the roots), enforces the configured limits and returns a domain
dataclass. All methods block (file I/O) and are meant for the daemon's thread pool.
"""

from __future__ import annotations

import os
import stat
from typing import Literal

from xsys.config import FsConfig
from xsys.fs import reading, tree, writing
from xsys.fs.model import (
    ChmodResult,
    DiskUsage,
    Existence,
    FileInfo,
    HashResult,
    Job,
    Listing,
    MkdirResult,
    NullJob,
    ReadResult,
    RemoveResult,
    TailResult,
    TransferResult,
    WriteResult,
    entry_type,
)
from xsys.fs.sandbox import Resolved, Sandbox, default_roots
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

    def resolve(self, path: str, *, allow_outward_link: bool = False) -> Resolved:
        """Resolve ``path`` in the sandbox (raises -32002 outside the roots)."""
        return self.sandbox.resolve(path, allow_outward_link=allow_outward_link)

    # ------------------------------------------------------------------ metadata

    def stat(self, path: str) -> FileInfo:
        """Metadata of ``path``'s entry; a symlink is described itself (``type``
        ``symlink``, ``symlink_target``) and must point inside the roots."""
        res = self.resolve(path)
        try:
            st = os.lstat(res.entry)
            target = os.readlink(res.entry) if stat.S_ISLNK(st.st_mode) else None
        except OSError as exc:
            raise error_from_oserror(exc, res.entry) from None
        return FileInfo.from_stat(res.entry, st, target)

    def exists(self, path: str) -> Existence:
        """Whether ``path`` exists (following symlinks) and its type."""
        res = self.resolve(path)
        try:
            st = os.stat(res.real)
        except (FileNotFoundError, NotADirectoryError):
            return Existence(path=res.real, exists=False, type=None)
        except OSError as exc:
            raise error_from_oserror(exc, res.real) from None
        return Existence(path=res.real, exists=True, type=entry_type(st.st_mode))

    def chmod(self, path: str, mode: int | str) -> ChmodResult:
        """Set the permission bits of ``path`` (symlinks followed) to ``mode`` (int, or an
        octal string such as ``"0755"``); -32602 on a malformed mode."""
        try:
            bits = writing.parse_mode(mode)
        except ValueError as exc:
            raise InvalidParams(f"parameter 'mode': {exc}", {"param": "mode", "got": mode}) \
                from None
        res = self.resolve(path)
        try:
            os.chmod(res.real, bits)
            now = stat.S_IMODE(os.stat(res.real).st_mode)
        except OSError as exc:
            raise error_from_oserror(exc, res.real) from None
        return ChmodResult(path=res.real, mode=now)

    # ------------------------------------------------------------------ reading

    def read(self, path: str, offset: int = 0, length: int | None = None,
             encoding: str | None = None, job: Job | None = None) -> ReadResult:
        """``length`` bytes (None: to the end) from ``offset``; -32004 above the read
        limit; text when ``encoding`` is given."""
        res = self.resolve(path)
        return reading.read_file(self.sandbox, res, offset, length, encoding, self.read_limit,
                                 self.config.chunk_bytes, job or NullJob())

    def hash(self, path: str, algorithm: str = "sha256", job: Job | None = None) -> HashResult:
        """The hex digest of the file, streamed in chunks (progress in bytes)."""
        res = self.resolve(path)
        return reading.hash_file(self.sandbox, res, algorithm, self.config.chunk_bytes,
                                 job or NullJob())

    def tail(self, path: str, lines: int = 10, job: Job | None = None) -> TailResult:
        """The last ``lines`` lines of a text file (at most ``max_tail_lines``)."""
        if lines > self.config.max_tail_lines:
            raise TooLarge(f"at most {self.config.max_tail_lines} lines per fs.tail",
                           {"limit": self.config.max_tail_lines, "requested": lines})
        res = self.resolve(path)
        return reading.tail_file(self.sandbox, res, lines, self.read_limit,
                                 self.config.chunk_bytes, job or NullJob())

    # ------------------------------------------------------------------ writing

    def write(self, path: str, data: bytes, mode: WriteMode = "overwrite",
              make_parents: bool = False, expected_sha256: str | None = None,
              job: Job | None = None) -> WriteResult:
        """Write ``data`` (create | overwrite atomically, or append); -32004 above
        ``max_write_bytes``, -32003 for ``create`` over an existing file, -32007 when
        ``expected_sha256`` does not match the current content."""
        if len(data) > self.config.max_write_bytes:
            raise TooLarge(f"write of {len(data)} bytes exceeds the limit of "
                           f"{self.config.max_write_bytes} bytes",
                           {"limit": self.config.max_write_bytes, "requested": len(data)})
        res = self.resolve(path)
        job = job or NullJob()
        chunk = self.config.chunk_bytes
        with self.locks.lock(res.real):
            writing.check_expected(res.real, expected_sha256, chunk)
            if mode == "append":
                return writing.append(self.sandbox, res, data, make_parents=make_parents,
                                      umask=self.umask, chunk=chunk, job=job)
            return writing.atomic_write(self.sandbox, res, data, exclusive=mode == "create",
                                        make_parents=make_parents, umask=self.umask,
                                        chunk=chunk, job=job)

    def mkdir(self, path: str, parents: bool = False) -> MkdirResult:
        """Create a directory (``parents``: like ``mkdir -p``)."""
        return writing.mkdir(self.resolve(path), parents, self.umask)

    # ------------------------------------------------------------------ trees

    def list(self, path: str, recursive: bool = False, glob: str | None = None,
             include_hidden: bool = False, limit: int | None = None,
             job: Job | None = None) -> Listing:
        """Directory entries, bounded by ``limit`` (clamped to ``max_list_entries``)."""
        res = self.resolve(path)
        return tree.list_dir(res, recursive, glob, include_hidden, self._limit(limit),
                             job or NullJob())

    def find(self, path: str, query: tree.FindQuery, limit: int | None = None,
             job: Job | None = None) -> Listing:
        """Entries below ``path`` matching ``query``, bounded like ``list``."""
        res = self.resolve(path)
        return tree.find(res, query, self._limit(limit), job or NullJob())

    def du(self, path: str, job: Job | None = None) -> DiskUsage:
        """Size and counts of the tree at ``path``."""
        return tree.disk_usage(self.resolve(path), job or NullJob())

    def remove(self, path: str, recursive: bool = False, job: Job | None = None) -> RemoveResult:
        """Remove a file, symlink or directory (non-empty ones need ``recursive``)."""
        res = self.resolve(path, allow_outward_link=True)
        return tree.remove(res, recursive, job or NullJob())

    def copy(self, src: str, dst: str, overwrite: bool = False, preserve: bool = False,
             job: Job | None = None) -> TransferResult:
        """Copy a file or tree to exactly ``dst``."""
        s, d = self.resolve(src), self.resolve(dst)
        return tree.copy(s, d, overwrite, preserve, self.config.chunk_bytes, job or NullJob())

    def move(self, src: str, dst: str, overwrite: bool = False, preserve: bool = True,
             job: Job | None = None) -> TransferResult:
        """Move (rename, or copy and remove across filesystems) to exactly ``dst``."""
        s, d = self.resolve(src), self.resolve(dst)
        with self.locks.lock(d.entry):
            return tree.move(s, d, overwrite, preserve, self.config.chunk_bytes,
                             job or NullJob())

    def _limit(self, limit: int | None) -> int:
        cap = self.config.max_list_entries
        return cap if limit is None else max(1, min(limit, cap))
