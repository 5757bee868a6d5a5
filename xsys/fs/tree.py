"""Directory trees: listing, find, disk usage, removal, copy and move, on descriptors.

Every function here blocks and runs in the daemon's thread pool. Walks read a directory
through its descriptor (``scandir(fd)``, ``fstatat``) and go down with
``openat(fd, name, O_NOFOLLOW | O_DIRECTORY)``, checking that the directory opened is the
one listed (same device and inode, as ``os.fwalk`` does), so no walk ever follows a
symlink or a directory swapped in while it runs: a link is reported, copied or removed as
a link. Long loops check the job for cancellation and report progress.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fnmatch
import heapq
import os
import stat
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from xsys.fs.model import (
    DIR,
    FILE,
    SYMLINK,
    DiskUsage,
    Entry,
    Job,
    Listing,
    RemoveResult,
    TransferResult,
    check_cancelled,
    entry_type,
)
from xsys.fs.reading import READ_FLAGS, check_regular
from xsys.fs.sandbox import LIST_FLAGS, NOFOLLOW, Located, changed
from xsys.fs.writing import link_into_place, new_file
from xsys.protocol import (
    AlreadyExists,
    Conflict,
    InvalidParams,
    NotFound,
    PermissionDenied,
    error_from_oserror,
)

#: Longest ``glob``, ``name`` or ``regex`` pattern accepted (characters).
MAX_PATTERN_CHARS = 1024
#: Time one regex search of one name may take before ``fs.find`` gives up (seconds). The
#: ``regex`` package avoids most catastrophic backtracking; this bounds the rest.
REGEX_TIMEOUT_S = 0.25


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return a.st_dev == b.st_dev and a.st_ino == b.st_ino


def open_subdir(parent_fd: int, name: str, listed: os.stat_result | None) -> int | None:
    """Open the directory ``name`` in ``parent_fd`` for reading without following a
    symlink; None when it is no longer that directory (swapped, removed)."""
    try:
        fd = os.open(name, LIST_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
            return None
        raise
    if listed is not None and not _same(os.fstat(fd), listed):
        os.close(fd)
        return None
    return fd


@dataclass
class WalkItem:
    """One entry met by ``walk``: ``rel`` (path relative to the top), ``name``, ``st``
    (its ``lstat``) and ``dir_fd`` (the open directory holding it: valid only until the
    walk moves on)."""

    rel: str
    name: str
    st: os.stat_result
    dir_fd: int

    def link_target(self) -> str | None:
        """The symlink's target (``readlinkat``), None for other entries or on error."""
        if not stat.S_ISLNK(self.st.st_mode):
            return None
        try:
            return os.readlink(self.name, dir_fd=self.dir_fd)
        except OSError:
            return None


def _scan(fd: int, rel_dir: str, include_hidden: bool
          ) -> Generator[WalkItem, None, list[tuple[str, str, os.stat_result]]]:
    subdirs: list[tuple[str, str, os.stat_result]] = []
    with os.scandir(fd) as it:
        for entry in it:
            if not include_hidden and entry.name.startswith("."):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            rel = os.path.join(rel_dir, entry.name) if rel_dir else entry.name
            yield WalkItem(rel, entry.name, st, fd)
            if stat.S_ISDIR(st.st_mode):
                subdirs.append((entry.name, rel, st))
    return subdirs


def walk(top_fd: int, job: Job, include_hidden: bool = True,
         errors: list[str] | None = None, recursive: bool = True) -> Iterator[WalkItem]:
    """Depth-first walk of the directory ``top_fd`` (owned by the caller), streaming: one
    directory listed at a time, descending only into real directories (see the module
    docstring). Hidden names (leading dot) are skipped and not descended into unless
    ``include_hidden``. Subdirectories that cannot be read are added to ``errors``."""
    subdirs = yield from _scan(top_fd, "", include_hidden)
    if not recursive:
        return
    frames: list[tuple[int, Iterator[tuple[str, str, os.stat_result]]]] = [
        (top_fd, iter(subdirs))]
    try:
        while frames:
            fd, pending = frames[-1]
            nxt = next(pending, None)
            if nxt is None:
                frames.pop()
                if fd != top_fd:
                    os.close(fd)
                continue
            check_cancelled(job)
            name, rel, listed = nxt
            try:
                sub = open_subdir(fd, name, listed)
            except OSError:
                sub = None
            if sub is None:
                if errors is not None:
                    errors.append(rel)
                continue
            frames.append((sub, iter(())))
            try:
                children = yield from _scan(sub, rel, include_hidden)
            except OSError:
                if errors is not None:
                    errors.append(rel)
                children = []
            frames[-1] = (sub, iter(children))
    finally:
        for fd, _ in frames:
            if fd != top_fd:
                os.close(fd)


def _entry(item: WalkItem, top: str) -> Entry:
    return Entry.from_stat(item.rel, os.path.join(top, item.rel), item.st, item.link_target())


# --------------------------------------------------------------------------- list


def check_pattern(param: str, pattern: str | None) -> None:
    """-32602 when a glob or regex is longer than ``MAX_PATTERN_CHARS``."""
    if pattern is not None and len(pattern) > MAX_PATTERN_CHARS:
        raise InvalidParams(f"parameter '{param}': at most {MAX_PATTERN_CHARS} characters",
                            {"param": param, "limit": MAX_PATTERN_CHARS})


def list_dir(loc: Located, recursive: bool, glob: str | None, include_hidden: bool,
             limit: int, job: Job) -> Listing:
    """Entries of the located directory (``name`` relative to it) sorted by name (relative
    path when ``recursive``). ``glob`` (fnmatch) applies to the base name, or to the
    relative path when it contains ``/``. At most ``limit`` entries, the first ``limit``
    by name: the directory is streamed through ``heapq.nsmallest`` (memory bounded by
    ``limit``, not by the directory's size) and ``truncated`` says more exist."""
    check_pattern("glob", glob)
    match = _glob_matcher(glob)
    top = loc.path
    scanned = 0

    def matching(fd: int) -> Iterator[Entry]:
        nonlocal scanned
        for item in walk(fd, job, include_hidden, recursive=recursive):
            scanned += 1
            if scanned % 1000 == 0:
                check_cancelled(job)
            if match(item.rel, item.name):
                yield _entry(item, top)

    fd = loc.open_dir()
    try:
        # one more than asked: whether it exists is ``truncated``
        entries = heapq.nsmallest(limit + 1, matching(fd), key=_by_name)
    except OSError as exc:
        raise error_from_oserror(exc, top) from None
    finally:
        os.close(fd)
    truncated = len(entries) > limit
    return Listing(path=top, entries=entries[:limit], truncated=truncated, scanned=scanned)


def _by_name(entry: Entry) -> bytes:
    """Sort key: the name's bytes (names that are not UTF-8 travel as bytes)."""
    return os.fsencode(entry.name)


def _glob_matcher(glob: str | None) -> Callable[[str, str], bool]:
    if not glob:
        return lambda rel, name: True
    if "/" in glob:
        return lambda rel, name: fnmatch.fnmatchcase(rel, glob)
    return lambda rel, name: fnmatch.fnmatchcase(name, glob)


# --------------------------------------------------------------------------- find


@dataclass(frozen=True)
class FindQuery:
    """``fs.find`` criteria, all optional and combined with AND: ``name`` (fnmatch glob
    on the base name), ``regex`` (searched in the base name with the ``regex`` package,
    each search bounded by ``REGEX_TIMEOUT_S``), ``type`` (``file``, ``dir``,
    ``symlink``), ``min_size``/``max_size`` in bytes (inclusive; files only),
    ``modified_since`` (epoch seconds, mtime >= it). Patterns are at most
    ``MAX_PATTERN_CHARS`` long."""

    name: str | None = None
    regex: str | None = None
    type: str | None = None
    min_size: int | None = None
    max_size: int | None = None
    modified_since: float | None = None
    _compiled: Any = field(default=None, repr=False, compare=False)

    def compile(self) -> FindQuery:
        """A copy with ``regex`` compiled (itself when already compiled or without a
        regex); raises -32602 on a bad or too long pattern."""
        if self._compiled is not None:
            return self
        check_pattern("name", self.name)
        check_pattern("regex", self.regex)
        if self.regex is None:
            return self
        try:
            import regex  # only fs.find with a regex pays for it (idle RSS)

            rx = regex.compile(self.regex)
        except (regex.error, RecursionError, OverflowError) as exc:
            raise InvalidParams(f"parameter 'regex': {exc}",
                                {"param": "regex", "got": self.regex}) from None
        return FindQuery(self.name, self.regex, self.type, self.min_size, self.max_size,
                         self.modified_since, rx)

    def matches(self, name: str, st: os.stat_result) -> bool:
        """Whether an entry called ``name`` with ``lstat`` result ``st`` matches; raises
        -32602 when the regex takes longer than ``REGEX_TIMEOUT_S`` on one name."""
        kind = entry_type(st.st_mode)
        if self.type is not None and kind != self.type:
            return False
        if self.name is not None and not fnmatch.fnmatchcase(name, self.name):
            return False
        if self._compiled is not None:
            try:
                if not self._compiled.search(name, timeout=REGEX_TIMEOUT_S, concurrent=True):
                    return False
            except TimeoutError:
                raise InvalidParams(
                    f"parameter 'regex': matching took longer than {REGEX_TIMEOUT_S}s on one "
                    "name; simplify the pattern",
                    {"param": "regex", "reason": "timeout", "timeout_s": REGEX_TIMEOUT_S},
                ) from None
        if self.min_size is not None and (kind != FILE or st.st_size < self.min_size):
            return False
        if self.max_size is not None and (kind != FILE or st.st_size > self.max_size):
            return False
        return not (self.modified_since is not None and st.st_mtime < self.modified_since)


def find(loc: Located, query: FindQuery, limit: int, job: Job) -> Listing:
    """Entries below the located directory (itself excluded) matching ``query``,
    depth-first by name, at most ``limit``; progress counts entries scanned (total
    unknown)."""
    query = query.compile()
    top = loc.path
    entries: list[Entry] = []
    scanned = 0
    truncated = False
    fd = loc.open_dir()
    try:
        for item in walk(fd, job):
            scanned += 1
            if scanned % 256 == 0:
                check_cancelled(job)
                job.progress(scanned, None, "files")
            if not query.matches(item.name, item.st):
                continue
            if len(entries) >= limit:
                truncated = True
                break
            entries.append(_entry(item, top))
    except OSError as exc:
        raise error_from_oserror(exc, top) from None
    finally:
        os.close(fd)
    entries.sort(key=lambda e: e.name)
    job.progress(scanned, None, "files", force=True)
    return Listing(path=top, entries=entries, truncated=truncated, scanned=scanned)


# --------------------------------------------------------------------------- du


def disk_usage(loc: Located, job: Job) -> DiskUsage:
    """Sizes and counts of the tree at the located entry (see ``DiskUsage``); progress
    counts entries scanned."""
    st0 = loc.lstat()
    size = disk = files = dirs = links = others = 0
    seen: set[tuple[int, int]] = set()
    errors: list[str] = []

    def account(st: os.stat_result) -> None:
        nonlocal size, disk, files, dirs, links, others
        if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key in seen:
                return
            seen.add(key)
        disk += getattr(st, "st_blocks", 0) * 512
        kind = entry_type(st.st_mode)
        if kind == FILE:
            files += 1
            size += st.st_size
        elif kind == DIR:
            dirs += 1
        elif kind == SYMLINK:
            links += 1
        else:
            others += 1

    account(st0)
    if stat.S_ISDIR(st0.st_mode):
        dirs -= 1  # the top itself is not counted
        scanned = 0
        fd = loc.open_dir()
        try:
            for item in walk(fd, job, errors=errors):
                scanned += 1
                account(item.st)
                if scanned % 256 == 0:
                    job.progress(scanned, None, "files")
        except OSError as exc:
            raise error_from_oserror(exc, loc.path) from None
        finally:
            os.close(fd)
        job.progress(scanned, None, "files", force=True)
    return DiskUsage(path=loc.path, size=size, disk_bytes=disk, files=files, dirs=dirs,
                     symlinks=links, others=others, errors=len(errors))


# --------------------------------------------------------------------------- remove


def guard_roots(loc: Located, roots: tuple[str, ...], action: str) -> None:
    """Refuse (-32002, ``reason: "root"``) to remove, move or replace a root or a
    directory that holds one, whatever the spelling (compared on real paths)."""
    path = loc.path
    for root in roots:
        if loc.is_root or path == root or root.startswith(path.rstrip(os.sep) + os.sep):
            raise PermissionDenied(f"refusing to {action} a sandbox root: {path}",
                                   {"path": path, "reason": "root", "root": root})


def remove(loc: Located, recursive: bool, job: Job) -> RemoveResult:
    """Remove the located entry (found without following a final symlink, so a link is
    removed itself, never its target). A non-empty directory needs ``recursive`` (else
    -32007, ENOTEMPTY); callers refuse roots first (``guard_roots``)."""
    target = loc.path
    require_named(loc, "path")
    if loc.st is None or loc.name is None:
        raise NotFound(f"no such file or directory: {target}",
                       {"errno": "ENOENT", "path": target})
    try:
        if not stat.S_ISDIR(loc.st.st_mode):
            os.unlink(loc.name, dir_fd=loc.dir_fd)
            return RemoveResult(path=target, removed=True, files=1, dirs=0)
        if not recursive:
            os.rmdir(loc.name, dir_fd=loc.dir_fd)
            return RemoveResult(path=target, removed=True, files=0, dirs=1)
        fd = open_subdir(loc.dir_fd, loc.name, loc.st)
        if fd is None:
            raise changed(target)
        try:
            files, dirs = _clear_tree(fd, job)
        finally:
            os.close(fd)
        os.rmdir(loc.name, dir_fd=loc.dir_fd)
    except OSError as exc:
        raise error_from_oserror(exc, target) from None
    return RemoveResult(path=target, removed=True, files=files, dirs=dirs + 1)


def _clear_dir(fd: int) -> tuple[int, list[str]]:
    """Unlink every non-directory in ``fd``; return (count, subdirectory names)."""
    with os.scandir(fd) as it:
        listed = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
    files = 0
    subdirs: list[str] = []
    for name, is_dir in listed:
        if is_dir:
            subdirs.append(name)
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=fd)
            files += 1
    return files, subdirs


def _clear_tree(top_fd: int, job: Job) -> tuple[int, int]:
    """Empty the directory ``top_fd`` bottom-up through descriptors; returns ``(files,
    dirs)`` removed. A subdirectory swapped for a symlink is unlinked as a link."""
    files, subdirs = _clear_dir(top_fd)
    dirs = 0
    frames: list[tuple[int, list[str], str | None]] = [(top_fd, subdirs, None)]
    try:
        while frames:
            fd, pending, _name = frames[-1]
            if pending:
                check_cancelled(job)
                name = pending.pop()
                try:
                    sub = open_subdir(fd, name, None)
                except OSError as exc:
                    raise error_from_oserror(exc, name) from None
                if sub is None:  # no longer a directory: a link or file now, or gone
                    with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                        os.unlink(name, dir_fd=fd)
                        files += 1
                    continue
                n, subs = _clear_dir(sub)
                files += n
                frames.append((sub, subs, name))
                job.progress(files + dirs, None, "files")
                continue
            frames.pop()
            if _name is not None:
                os.close(fd)
                os.rmdir(_name, dir_fd=frames[-1][0])
                dirs += 1
    finally:
        for open_fd, _, opened_as in frames:
            if opened_as is not None:
                os.close(open_fd)
    return files, dirs


# --------------------------------------------------------------------------- copy


@dataclass
class _Copy:
    """State of one copy: counts, progress, options."""

    job: Job
    chunk: int
    overwrite: bool
    preserve: bool
    total: int | None = None
    copied: int = 0
    files: int = 0
    dirs: int = 0
    links: int = 0
    skipped: int = 0

    def tick(self, n: int) -> None:
        self.copied += n
        self.job.progress(self.copied, self.total, "bytes")


def _tree_bytes(fd: int, job: Job) -> int:
    return sum(i.st.st_size for i in walk(fd, job) if stat.S_ISREG(i.st.st_mode))


def require_named(loc: Located, param: str) -> None:
    """-32602 when the path names a directory through a final ``.`` or ``..`` (``b/.``):
    copy and move act on an entry of its parent, which such a spelling does not name."""
    if loc.name is None:
        raise InvalidParams(f"parameter '{param}': {loc.requested!r} ends in '.' or '..'; "
                            "name the entry itself", {"param": param, "path": loc.path})


def check_transfer(src: Located, dst: Located, overwrite: bool, *,
                   move: bool) -> os.stat_result:
    """The checks ``copy`` and ``move`` share, in order: ``dst`` not ``src`` nor inside it
    (-32602), both named (``move``: ``src`` too; -32602), ``src`` exists (-32001), the
    directory of ``dst`` exists (-32001), ``dst`` free unless ``overwrite`` (-32003).
    Returns the ``lstat`` of ``src``."""
    s, d = src.path, dst.path
    check_pair(s, d)
    if move:
        require_named(src, "src")
    require_named(dst, "dst")
    if src.st is None:
        raise NotFound(f"no such file or directory: {s}", {"errno": "ENOENT", "path": s})
    if len(dst.missing) > 1:
        parent = os.path.dirname(d)
        raise NotFound(f"no such directory: {parent}", {"errno": "ENOENT", "path": parent})
    if dst.st is not None and not overwrite:
        raise AlreadyExists(f"destination exists: {d}", {"errno": "EEXIST", "path": d})
    return src.st


def check_pair(src: str, dst: str) -> None:
    """-32602 when ``dst`` is ``src`` or lies inside it (real paths)."""
    if src == dst:
        raise InvalidParams("src and dst are the same path", {"param": "dst", "path": dst})
    if dst.startswith(src.rstrip(os.sep) + os.sep):
        raise InvalidParams("dst is inside src", {"param": "dst", "path": dst, "src": src})


def _lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def copy(src: Located, dst: Located, overwrite: bool, preserve: bool, chunk: int,
         job: Job) -> TransferResult:
    """Copy the file or tree at ``src`` to exactly ``dst`` (not into it).

    An existing ``dst`` needs ``overwrite`` (else -32003): a file is replaced atomically,
    a directory is merged into (its files replaced). Symlinks inside a tree are copied as
    links; fifos, sockets and devices are skipped (a special file named as ``src`` is
    refused with -32602). ``preserve`` copies times too (the permission bits are always
    copied). Progress: bytes against the tree's total.
    """
    st = check_transfer(src, dst, overwrite, move=False)
    s, d = src.path, dst.path
    assert dst.name is not None
    state = _Copy(job=job, chunk=chunk, overwrite=overwrite, preserve=preserve)
    dst_st = dst.st
    try:
        if stat.S_ISDIR(st.st_mode):
            if dst_st is not None and not stat.S_ISDIR(dst_st.st_mode):
                raise Conflict(f"cannot copy a directory over a non-directory: {d}",
                               {"errno": "ENOTDIR", "path": d})
            src_fd = src.open_dir()
            try:
                if job.want_progress:
                    state.total = _tree_bytes(src_fd, job)
                _copy_tree(src_fd, st, dst.dir_fd, dst.name, state)
            finally:
                os.close(src_fd)
        elif stat.S_ISREG(st.st_mode):
            if dst_st is not None and stat.S_ISDIR(dst_st.st_mode):
                raise Conflict(f"cannot copy a file over a directory: {d}",
                               {"errno": "EISDIR", "path": d})
            state.total = st.st_size
            fd = src.open(READ_FLAGS)
            try:
                _copy_file(fd, check_regular(fd, s), dst.dir_fd, dst.name, state)
            finally:
                os.close(fd)
        else:
            raise InvalidParams(f"cannot copy a {entry_type(st.st_mode)}: {s}",
                                {"param": "src", "path": s})
    except OSError as exc:
        raise error_from_oserror(exc) from None
    job.progress(state.copied, state.total, "bytes", force=True)
    return TransferResult(src=s, dst=d, files=state.files, dirs=state.dirs,
                          symlinks=state.links, copied_bytes=state.copied,
                          skipped=state.skipped, renamed=False)


def _apply_meta(fd: int, st: os.stat_result, preserve: bool) -> None:
    if hasattr(os, "fchmod"):
        os.fchmod(fd, stat.S_IMODE(st.st_mode))
    if preserve:
        os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))


def _copy_file(src_fd: int, st: os.stat_result, dst_dir_fd: int, name: str,
               state: _Copy) -> None:
    """Copy one regular file into a new file in ``dst_dir_fd`` linked in as ``name``."""
    fd, tmp = new_file(dst_dir_fd, name, 0o600)
    try:
        try:
            while True:
                check_cancelled(state.job)
                piece = os.read(src_fd, state.chunk)
                if not piece:
                    break
                view = memoryview(piece)
                while view:
                    view = view[os.write(fd, view):]
                state.tick(len(piece))
            _apply_meta(fd, st, state.preserve)
            link_into_place(fd, tmp, dst_dir_fd, name, exclusive=False)
            tmp = None
        finally:
            os.close(fd)
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dst_dir_fd)
    state.files += 1


def _copy_tree(src_fd: int, src_st: os.stat_result, dst_parent: int, name: str,
               state: _Copy, depth: int = 0) -> None:
    """Copy the directory ``src_fd`` to ``name`` in ``dst_parent`` (merging into an
    existing directory); directories get their mode (and times) after their contents."""
    if depth > 1000:
        raise InvalidParams("directory tree deeper than 1000 levels", {"param": "src"})
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o700, dir_fd=dst_parent)
    dst_fd = open_subdir(dst_parent, name, None)
    if dst_fd is None:
        raise changed(name)
    try:
        state.dirs += 1
        with os.scandir(src_fd) as it:
            listed = list(it)
        for entry in listed:
            check_cancelled(state.job)
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            there = _lstat_at(dst_fd, entry.name)
            if stat.S_ISDIR(st.st_mode):
                if there is not None and not stat.S_ISDIR(there.st_mode):
                    raise Conflict(f"cannot merge a directory over a file: {entry.name}",
                                   {"errno": "ENOTDIR", "path": entry.name})
                sub = open_subdir(src_fd, entry.name, st)
                if sub is None:
                    state.skipped += 1
                    continue
                try:
                    _copy_tree(sub, st, dst_fd, entry.name, state, depth + 1)
                finally:
                    os.close(sub)
            elif stat.S_ISLNK(st.st_mode):
                if there is not None:
                    if stat.S_ISDIR(there.st_mode):
                        raise Conflict(f"cannot copy a link over a directory: {entry.name}",
                                       {"errno": "EISDIR", "path": entry.name})
                    os.unlink(entry.name, dir_fd=dst_fd)
                os.symlink(os.readlink(entry.name, dir_fd=src_fd), entry.name, dir_fd=dst_fd)
                state.links += 1
            elif stat.S_ISREG(st.st_mode):
                if there is not None and stat.S_ISDIR(there.st_mode):
                    raise Conflict(f"cannot copy a file over a directory: {entry.name}",
                                   {"errno": "EISDIR", "path": entry.name})
                try:
                    fd = os.open(entry.name, READ_FLAGS | NOFOLLOW, dir_fd=src_fd)
                except OSError as exc:
                    if exc.errno == errno.ELOOP:
                        state.skipped += 1
                        continue
                    raise
                try:
                    fst = os.fstat(fd)
                    if not stat.S_ISREG(fst.st_mode):
                        state.skipped += 1
                        continue
                    _copy_file(fd, fst, dst_fd, entry.name, state)
                finally:
                    os.close(fd)
            else:
                state.skipped += 1
        _apply_meta(dst_fd, src_st, state.preserve)
    finally:
        os.close(dst_fd)


# --------------------------------------------------------------------------- move

_RENAME_NOREPLACE = 1
_renameat2: Any = None


def rename_noreplace(src_dir: int, src: str, dst_dir: int, dst: str) -> None:
    """``renameat2(..., RENAME_NOREPLACE)`` (Linux, glibc 2.28+): fails with EEXIST when
    ``dst`` exists, atomically; elsewhere a check then ``renameat``. Raises ``OSError``."""
    global _renameat2
    if _renameat2 is None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            fn = libc.renameat2
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                           ctypes.c_uint]
            fn.restype = ctypes.c_int
            _renameat2 = fn
        except (OSError, AttributeError):
            _renameat2 = False
    if _renameat2:
        rc = _renameat2(src_dir, os.fsencode(src), dst_dir, os.fsencode(dst), _RENAME_NOREPLACE)
        if rc == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOSYS):
            raise OSError(err, os.strerror(err), dst)
    if _lstat_at(dst_dir, dst) is not None:
        raise FileExistsError(errno.EEXIST, "File exists", dst)
    os.rename(src, dst, src_dir_fd=src_dir, dst_dir_fd=dst_dir)


def move(src: Located, dst: Located, overwrite: bool, preserve: bool, chunk: int,
         job: Job) -> TransferResult:
    """Move the located ``src`` (found without following a final symlink: a link moves
    itself) to exactly ``dst``: a rename when both are on one filesystem, else a copy then
    a removal. An existing ``dst`` needs ``overwrite`` (-32003); callers refuse roots
    first (``guard_roots``)."""
    st = check_transfer(src, dst, overwrite, move=True)
    s, d = src.path, dst.path
    assert src.name is not None and dst.name is not None
    try:
        if overwrite:
            os.rename(src.name, dst.name, src_dir_fd=src.dir_fd, dst_dir_fd=dst.dir_fd)
        else:
            rename_noreplace(src.dir_fd, src.name, dst.dir_fd, dst.name)
    except FileExistsError:
        raise AlreadyExists(f"destination exists: {d}", {"errno": "EEXIST", "path": d}) \
            from None
    except OSError as exc:
        if exc.errno != errno.EXDEV:  # EXDEV: another filesystem, copy then remove
            raise error_from_oserror(exc, d) from None
    else:
        is_dir = stat.S_ISDIR(st.st_mode)
        return TransferResult(src=s, dst=d, files=0 if is_dir else 1, dirs=int(is_dir),
                              symlinks=int(stat.S_ISLNK(st.st_mode)), copied_bytes=0,
                              skipped=0, renamed=True)
    if stat.S_ISLNK(st.st_mode):
        try:
            target = os.readlink(src.name, dir_fd=src.dir_fd)
            if dst.st is not None:
                os.unlink(dst.name, dir_fd=dst.dir_fd)
            os.symlink(target, dst.name, dir_fd=dst.dir_fd)
            os.unlink(src.name, dir_fd=src.dir_fd)
        except OSError as exc:
            raise error_from_oserror(exc, d) from None
        return TransferResult(src=s, dst=d, files=0, dirs=0, symlinks=1, copied_bytes=0,
                              skipped=0, renamed=False)
    copied = copy(src, dst, overwrite, preserve, chunk, job)
    remove(src, recursive=True, job=job)
    return TransferResult(src=s, dst=d, files=copied.files, dirs=copied.dirs,
                          symlinks=copied.symlinks, copied_bytes=copied.copied_bytes,
                          skipped=copied.skipped, renamed=False)
