"""Directory trees: listing, find, disk usage, removal, copy and move. Every function here
blocks and runs in the daemon's thread pool; walks never follow symlinks (a link is
reported or copied as a link, so no walk leaves the roots), check the job for
cancellation and report progress."""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

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
from xsys.fs.sandbox import Resolved
from xsys.fs.writing import TEMP_SUFFIX
from xsys.protocol import (
    AlreadyExists,
    Conflict,
    InvalidParams,
    NotFound,
    PermissionDenied,
    error_from_oserror,
)


def _lstat(entry: os.DirEntry[str]) -> os.stat_result | None:
    try:
        return entry.stat(follow_symlinks=False)
    except OSError:
        return None


def _walk(top: str, job: Job, include_hidden: bool = True,
          errors: list[str] | None = None) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """Depth-first walk below ``top`` yielding ``(relative name, entry)`` in directory
    order, streaming (one directory open at a time, nothing held but the directories still
    to visit), descending into real directories only (never symlinks). Hidden names
    (leading dot) are skipped and not descended into unless ``include_hidden``."""
    stack: list[tuple[str, str]] = [("", top)]
    while stack:
        rel_dir, abs_dir = stack.pop()
        check_cancelled(job)
        subdirs: list[tuple[str, str]] = []
        try:
            with os.scandir(abs_dir) as it:
                for entry in it:
                    if not include_hidden and entry.name.startswith("."):
                        continue
                    rel = os.path.join(rel_dir, entry.name) if rel_dir else entry.name
                    yield rel, entry
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            subdirs.append((rel, entry.path))
                    except OSError:
                        continue
        except OSError:
            if errors is not None:
                errors.append(abs_dir)
            if abs_dir == top:
                raise
            continue
        stack.extend(reversed(subdirs))


def _flat(top: str, include_hidden: bool) -> Iterator[tuple[str, os.DirEntry[str]]]:
    with os.scandir(top) as it:
        for entry in it:
            if include_hidden or not entry.name.startswith("."):
                yield entry.name, entry


# --------------------------------------------------------------------------- list


def list_dir(res: Resolved, recursive: bool, glob: str | None, include_hidden: bool,
             limit: int, job: Job) -> Listing:
    """Entries of the directory ``res.real`` (``name`` relative to it) sorted by name
    (relative path when ``recursive``). ``glob`` (fnmatch) applies to the base name, or to
    the relative path when it contains ``/``. At most ``limit`` entries: the directory is
    streamed and ``truncated`` says more exist (which ones were kept then follows directory
    order). Memory stays bounded by ``limit``."""
    top = res.real
    if not os.path.isdir(top):
        if not os.path.lexists(top):
            raise NotFound(f"no such directory: {top}", {"errno": "ENOENT", "path": top})
        raise Conflict(f"not a directory: {top}", {"errno": "ENOTDIR", "path": top})
    match = _glob_matcher(glob)
    entries: list[Entry] = []
    scanned = 0
    truncated = False
    source = _walk(top, job, include_hidden) if recursive else _flat(top, include_hidden)
    try:
        for rel, entry in source:
            scanned += 1
            if scanned % 1000 == 0:
                check_cancelled(job)
            if not match(rel, entry.name):
                continue
            if len(entries) >= limit:
                truncated = True
                break
            st = _lstat(entry)
            if st is not None:
                entries.append(Entry.from_stat(rel, entry.path, st))
    except OSError as exc:
        raise error_from_oserror(exc, top) from None
    entries.sort(key=lambda e: e.name)
    return Listing(path=top, entries=entries, truncated=truncated, scanned=scanned)


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
    on the base name), ``regex`` (``re.search`` on the base name), ``type`` (``file``,
    ``dir``, ``symlink``), ``min_size``/``max_size`` in bytes (inclusive; files only),
    ``modified_since`` (epoch seconds, mtime >= it)."""

    name: str | None = None
    regex: str | None = None
    type: str | None = None
    min_size: int | None = None
    max_size: int | None = None
    modified_since: float | None = None
    _compiled: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def compile(self) -> FindQuery:
        """A copy with ``regex`` compiled; raises -32602 on a bad pattern."""
        if self.regex is None:
            return self
        try:
            rx = re.compile(self.regex)
        except re.error as exc:
            raise InvalidParams(f"parameter 'regex': {exc}",
                                {"param": "regex", "got": self.regex}) from None
        return FindQuery(self.name, self.regex, self.type, self.min_size, self.max_size,
                         self.modified_since, rx)

    def matches(self, name: str, st: os.stat_result) -> bool:
        """Whether an entry called ``name`` with ``lstat`` result ``st`` matches."""
        kind = entry_type(st.st_mode)
        if self.type is not None and kind != self.type:
            return False
        if self.name is not None and not fnmatch.fnmatchcase(name, self.name):
            return False
        if self._compiled is not None and not self._compiled.search(name):
            return False
        if self.min_size is not None and (kind != FILE or st.st_size < self.min_size):
            return False
        if self.max_size is not None and (kind != FILE or st.st_size > self.max_size):
            return False
        return not (self.modified_since is not None and st.st_mtime < self.modified_since)


def find(res: Resolved, query: FindQuery, limit: int, job: Job) -> Listing:
    """Entries below ``res.real`` (itself excluded) matching ``query``, depth-first by
    name, at most ``limit``; progress counts entries scanned (total unknown)."""
    top = res.real
    if not os.path.isdir(top):
        if not os.path.lexists(top):
            raise NotFound(f"no such directory: {top}", {"errno": "ENOENT", "path": top})
        raise Conflict(f"not a directory: {top}", {"errno": "ENOTDIR", "path": top})
    query = query.compile()
    entries: list[Entry] = []
    scanned = 0
    truncated = False
    try:
        for rel, entry in _walk(top, job):
            scanned += 1
            if scanned % 256 == 0:
                check_cancelled(job)
                job.progress(scanned, None, "files")
            st = _lstat(entry)
            if st is None or not query.matches(entry.name, st):
                continue
            if len(entries) >= limit:
                truncated = True
                break
            entries.append(Entry.from_stat(rel, entry.path, st))
    except OSError as exc:
        raise error_from_oserror(exc, top) from None
    entries.sort(key=lambda e: e.name)
    job.progress(scanned, None, "files", force=True)
    return Listing(path=top, entries=entries, truncated=truncated, scanned=scanned)


# --------------------------------------------------------------------------- du


def disk_usage(res: Resolved, job: Job) -> DiskUsage:
    """Sizes and counts of the tree at ``res.real`` (see ``DiskUsage``); progress counts
    entries scanned."""
    top = res.real
    try:
        st0 = os.lstat(top)
    except OSError as exc:
        raise error_from_oserror(exc, top) from None
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
        try:
            for _rel, entry in _walk(top, job, errors=errors):
                scanned += 1
                st = _lstat(entry)
                if st is None:
                    errors.append(entry.path)
                    continue
                account(st)
                if scanned % 256 == 0:
                    job.progress(scanned, None, "files")
        except OSError as exc:
            raise error_from_oserror(exc, top) from None
        job.progress(scanned, None, "files", force=True)
    return DiskUsage(path=top, size=size, disk_bytes=disk, files=files, dirs=dirs,
                     symlinks=links, others=others, errors=len(errors))


# --------------------------------------------------------------------------- remove


def remove(res: Resolved, recursive: bool, job: Job) -> RemoveResult:
    """Remove ``res.entry`` (a symlink is removed itself, never its target). A non-empty
    directory needs ``recursive`` (else -32007, ENOTEMPTY); a root is never removed
    (-32002)."""
    target = res.entry
    if res.is_root:
        raise PermissionDenied(f"refusing to remove a sandbox root: {target}",
                               {"path": target, "reason": "root"})
    try:
        st = os.lstat(target)
    except OSError as exc:
        raise error_from_oserror(exc, target) from None
    if not stat.S_ISDIR(st.st_mode):
        try:
            os.unlink(target)
        except OSError as exc:
            raise error_from_oserror(exc, target) from None
        return RemoveResult(path=target, removed=True, files=1, dirs=0)
    if not recursive:
        try:
            os.rmdir(target)
        except OSError as exc:
            raise error_from_oserror(exc, target) from None
        return RemoveResult(path=target, removed=True, files=0, dirs=1)
    files, dirs = _rmtree(target, job)
    return RemoveResult(path=target, removed=True, files=files, dirs=dirs)


def _rmtree(top: str, job: Job) -> tuple[int, int]:
    """Remove the tree at ``top`` bottom-up without following symlinks; returns
    ``(files, dirs)`` removed."""
    files = dirs = 0

    def onerror(exc: OSError) -> None:
        raise exc

    try:
        for root, dirnames, filenames in os.walk(top, topdown=False, onerror=onerror,
                                                 followlinks=False):
            check_cancelled(job)
            for name in filenames:
                os.unlink(os.path.join(root, name))
                files += 1
            for name in dirnames:
                path = os.path.join(root, name)
                if os.path.islink(path):
                    os.unlink(path)
                    files += 1
                else:
                    os.rmdir(path)
                    dirs += 1
            job.progress(files + dirs, None, "files")
        os.rmdir(top)
    except OSError as exc:
        raise error_from_oserror(exc) from None
    return files, dirs + 1


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


def _tree_bytes(top: str, job: Job) -> int:
    total = 0
    for _rel, entry in _walk(top, job):
        st = _lstat(entry)
        if st is not None and stat.S_ISREG(st.st_mode):
            total += st.st_size
    return total


def _check_pair(src: str, dst: str) -> None:
    if src == dst:
        raise InvalidParams("src and dst are the same path", {"param": "dst", "path": dst})
    if dst.startswith(src.rstrip(os.sep) + os.sep):
        raise InvalidParams("dst is inside src", {"param": "dst", "path": dst, "src": src})


def copy(src: Resolved, dst: Resolved, overwrite: bool, preserve: bool, chunk: int,
         job: Job) -> TransferResult:
    """Copy the file or tree at ``src.real`` to exactly ``dst.real`` (not into it).

    An existing ``dst`` needs ``overwrite`` (else -32003): a file is replaced atomically,
    a directory is merged into (its files replaced). Symlinks inside a tree are copied as
    links; fifos, sockets and devices are skipped. ``preserve`` copies times too (the
    permission bits are always copied). Progress: bytes against the tree's total.
    """
    s, d = src.real, dst.real
    _check_pair(s, d)
    try:
        st = os.stat(s)
    except OSError as exc:
        raise error_from_oserror(exc, s) from None
    state = _Copy(job=job, chunk=chunk, overwrite=overwrite, preserve=preserve)
    dst_exists = os.path.lexists(d)
    if dst_exists and not overwrite:
        raise AlreadyExists(f"destination exists: {d}", {"errno": "EEXIST", "path": d})
    if not os.path.isdir(os.path.dirname(d)):
        raise error_from_oserror(FileNotFoundError(2, "No such file or directory"),
                                 os.path.dirname(d))
    try:
        if stat.S_ISDIR(st.st_mode):
            if dst_exists and not os.path.isdir(d):
                raise Conflict(f"cannot copy a directory over a non-directory: {d}",
                               {"errno": "ENOTDIR", "path": d})
            if job.want_progress:
                state.total = _tree_bytes(s, job)
            _copy_tree(s, d, state)
        elif stat.S_ISREG(st.st_mode):
            if dst_exists and os.path.isdir(d):
                raise Conflict(f"cannot copy a file over a directory: {d}",
                               {"errno": "EISDIR", "path": d})
            state.total = st.st_size
            _copy_file(s, d, state)
        else:
            raise InvalidParams(f"cannot copy a {entry_type(st.st_mode)}: {s}",
                                {"param": "src", "path": s})
    except OSError as exc:
        raise error_from_oserror(exc) from None
    job.progress(state.copied, state.total, "bytes", force=True)
    return TransferResult(src=s, dst=d, files=state.files, dirs=state.dirs,
                          symlinks=state.links, copied_bytes=state.copied,
                          skipped=state.skipped, renamed=False)


def _copy_file(s: str, d: str, state: _Copy) -> None:
    """Copy one regular file through a temp file next to ``d`` renamed into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(d)}.", suffix=TEMP_SUFFIX,
                               dir=os.path.dirname(d))
    try:
        with open(s, "rb", buffering=0) as fin, os.fdopen(fd, "wb", buffering=0) as fout:
            while True:
                check_cancelled(state.job)
                piece = fin.read(state.chunk)
                if not piece:
                    break
                fout.write(piece)
                state.tick(len(piece))
        if state.preserve:
            shutil.copystat(s, tmp)
        else:
            shutil.copymode(s, tmp)
        os.replace(tmp, d)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    state.files += 1


def _copy_tree(s: str, d: str, state: _Copy) -> None:
    """Copy the directory ``s`` to ``d`` (merging into an existing ``d``)."""
    dirs_made: list[tuple[str, str]] = [(s, d)]
    os.makedirs(d, exist_ok=True)
    state.dirs += 1
    for rel, entry in _walk(s, state.job):
        target = os.path.join(d, rel)
        st = _lstat(entry)
        if st is None:
            continue
        if stat.S_ISDIR(st.st_mode):
            if os.path.lexists(target) and not os.path.isdir(target):
                raise Conflict(f"cannot merge a directory over a file: {target}",
                               {"errno": "ENOTDIR", "path": target})
            os.makedirs(target, exist_ok=True)
            dirs_made.append((entry.path, target))
            state.dirs += 1
        elif stat.S_ISLNK(st.st_mode):
            if os.path.lexists(target):
                os.unlink(target)
            os.symlink(os.readlink(entry.path), target)
            state.links += 1
        elif stat.S_ISREG(st.st_mode):
            if os.path.isdir(target) and not os.path.islink(target):
                raise Conflict(f"cannot copy a file over a directory: {target}",
                               {"errno": "EISDIR", "path": target})
            _copy_file(entry.path, target, state)
        else:
            state.skipped += 1
    for src_dir, dst_dir in reversed(dirs_made):
        if state.preserve:
            shutil.copystat(src_dir, dst_dir)
        else:
            shutil.copymode(src_dir, dst_dir)


# --------------------------------------------------------------------------- move


def move(src: Resolved, dst: Resolved, overwrite: bool, preserve: bool, chunk: int,
         job: Job) -> TransferResult:
    """Move ``src.entry`` (a symlink moves itself) to exactly ``dst.entry``: a rename when
    both are on one filesystem, else a copy then a removal. An existing ``dst`` needs
    ``overwrite`` (-32003); a root never moves (-32002)."""
    s, d = src.entry, dst.entry
    if src.is_root:
        raise PermissionDenied(f"refusing to move a sandbox root: {s}",
                               {"path": s, "reason": "root"})
    _check_pair(s, d)
    try:
        st = os.lstat(s)
    except OSError as exc:
        raise error_from_oserror(exc, s) from None
    if os.path.lexists(d) and not overwrite:
        raise AlreadyExists(f"destination exists: {d}", {"errno": "EEXIST", "path": d})
    try:
        os.rename(s, d)
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
            if os.path.lexists(d):
                os.unlink(d)
            os.symlink(os.readlink(s), d)
            os.unlink(s)
        except OSError as exc:
            raise error_from_oserror(exc, d) from None
        return TransferResult(src=s, dst=d, files=0, dirs=0, symlinks=1, copied_bytes=0,
                              skipped=0, renamed=False)
    copied = copy(src, dst, overwrite, preserve, chunk, job)
    remove(src, recursive=True, job=job)
    return TransferResult(src=s, dst=d, files=copied.files, dirs=copied.dirs,
                          symlinks=copied.symlinks, copied_bytes=copied.copied_bytes,
                          skipped=copied.skipped, renamed=False)
