"""``fs.grep``: content search below a directory (or in one file), on descriptors.

The tree is walked like ``tree.walk`` (``scandir(fd)``, ``openat(O_NOFOLLOW |
O_DIRECTORY)`` with a device/inode check; symlinks are never followed), each regular file
is opened with ``openat(O_NOFOLLOW | O_NONBLOCK)`` and ``fstat``-checked. A file is skipped
as binary when its first ``BINARY_PROBE_BYTES`` hold a NUL byte, and when it is larger
than ``max_filesize`` bytes. With ``gitignore`` the ``.gitignore`` files met on the way
(read through the directory descriptor) apply to what lies below them, with git's rules
(``pathspec.GitIgnoreSpec``), and ``.git`` directories are skipped.

The pattern is compiled once with the ``regex`` package on bytes (UTF-8), like
``fs.find``'s (``tree.FindQuery``): it avoids most catastrophic backtracking, and every
search runs with a timeout, so one file costs at most ``FILE_TIMEOUT_S`` of regex time
(the file is then listed in ``timed_out`` and the search goes on). Results are bounded by
``limit`` (matches in all) and ``max_count`` (per file); lines are cut to
``MAX_LINE_CHARS``.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from xsys.fs.model import GrepMatch, GrepResult, Job, check_cancelled
from xsys.fs.reading import READ_FLAGS
from xsys.fs.sandbox import Located
from xsys.fs.tree import MAX_PATTERN_CHARS, check_pattern, open_subdir
from xsys.protocol import InvalidParams, error_from_oserror

#: Bytes looked at for a NUL byte to call a file binary (as git and ripgrep do).
BINARY_PROBE_BYTES = 8192
#: Regex time one file may take in all (seconds); then it is reported in ``timed_out``.
FILE_TIMEOUT_S = 0.5
#: Longest line returned (characters); longer lines are cut.
MAX_LINE_CHARS = 4096
#: Most context lines before and after a match.
MAX_CONTEXT_LINES = 100
#: Default ``max_filesize`` (bytes).
DEFAULT_MAX_FILESIZE = 64 * 1024 * 1024


@dataclass(frozen=True)
class GrepQuery:
    """What ``fs.grep`` looks for: ``pattern`` (a regular expression, or a literal string
    with ``fixed``), ``ignore_case``, ``glob`` (fnmatch on the base name, or on the
    relative path when it has a ``/``), ``max_count`` matches per file, ``max_filesize``
    bytes, ``context`` lines, ``gitignore``, ``include_hidden`` (dot files and dirs)."""

    pattern: str
    fixed: bool = False
    ignore_case: bool = False
    glob: str | None = None
    max_count: int | None = None
    max_filesize: int = DEFAULT_MAX_FILESIZE
    context: int = 0
    gitignore: bool = False
    include_hidden: bool = True

    def compile(self) -> Any:
        """The compiled bytes pattern; -32602 on an empty, too long or bad pattern."""
        check_pattern("pattern", self.pattern)
        check_pattern("glob", self.glob)
        if not self.pattern:
            raise InvalidParams("parameter 'pattern': must not be empty", {"param": "pattern"})
        if self.context > MAX_CONTEXT_LINES:
            raise InvalidParams(f"parameter 'context': at most {MAX_CONTEXT_LINES} lines",
                                {"param": "context", "limit": MAX_CONTEXT_LINES})
        import regex  # only searches pay for it (idle RSS)

        raw = self.pattern.encode("utf-8", "surrogateescape")
        if self.fixed:
            raw = regex.escape(raw)
        flags = regex.MULTILINE | (regex.IGNORECASE if self.ignore_case else 0)
        try:
            return regex.compile(raw, flags)
        except (regex.error, RecursionError, OverflowError) as exc:
            raise InvalidParams(f"parameter 'pattern': {exc}",
                                {"param": "pattern", "got": self.pattern}) from None


assert MAX_PATTERN_CHARS > 0


def _line(raw: bytes) -> str:
    return raw[:MAX_LINE_CHARS * 4].decode("utf-8", "replace")[:MAX_LINE_CHARS]


class _Search:
    """One ``fs.grep`` run (see the module docstring)."""

    def __init__(self, query: GrepQuery, limit: int, job: Job) -> None:
        self.q = query
        self.rx = query.compile()
        self.limit = limit
        self.job = job
        self.matches: list[GrepMatch] = []
        self.truncated = False
        self.scanned = self.matched = self.binary = self.large = self.errors = 0
        self.timed_out: list[str] = []
        self.glob = _glob(query.glob)

    def full(self) -> bool:
        return len(self.matches) >= self.limit

    def search_file(self, dir_fd: int, name: str, path: str) -> None:
        """Search the regular file ``name`` in ``dir_fd``."""
        try:
            fd = os.open(name, READ_FLAGS | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError:
            self.errors += 1
            return
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return
            if st.st_size > self.q.max_filesize:
                self.large += 1
                return
            data = _read_all(fd, st.st_size, self.q.max_filesize)
        except OSError:
            self.errors += 1
            return
        finally:
            os.close(fd)
        if data is None:
            self.large += 1
            return
        if b"\0" in data[:BINARY_PROBE_BYTES]:
            self.binary += 1
            return
        self.scanned += 1
        self._scan(data, path)

    def _scan(self, data: bytes, path: str) -> None:
        deadline = time.monotonic() + FILE_TIMEOUT_S
        pos = 0
        found = 0
        line_starts: list[int] | None = None
        while pos <= len(data):
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise TimeoutError
                m = self.rx.search(data, pos, timeout=left, concurrent=True)
            except TimeoutError:
                self.timed_out.append(path)
                break
            if m is None:
                break
            start = data.rfind(b"\n", 0, m.start()) + 1
            end = data.find(b"\n", m.start())
            end = len(data) if end < 0 else end
            if line_starts is None and self.q.context:
                line_starts = _line_starts(data)
            number = data.count(b"\n", 0, start) + 1
            before, after = self._context(data, line_starts, number)
            if self.full():
                self.truncated = True
                break
            self.matches.append(GrepMatch(path=path, line_number=number,
                                          line=_line(data[start:end]), before=before,
                                          after=after))
            found += 1
            if self.q.max_count is not None and found >= self.q.max_count:
                break
            pos = end + 1
        if found:
            self.matched += 1

    def _context(self, data: bytes, starts: list[int] | None,
                 number: int) -> tuple[list[str], list[str]]:
        if not self.q.context or starts is None:
            return [], []

        def line_at(n: int) -> str:  # 1-based
            a = starts[n - 1]
            b = starts[n] - 1 if n < len(starts) else len(data)
            return _line(data[a:b])

        total = len(starts) - (1 if data.endswith(b"\n") else 0)
        lo = max(1, number - self.q.context)
        hi = min(total, number + self.q.context)
        return ([line_at(n) for n in range(lo, number)],
                [line_at(n) for n in range(number + 1, hi + 1)])


def _line_starts(data: bytes) -> list[int]:
    starts = [0]
    at = data.find(b"\n")
    while at >= 0:
        starts.append(at + 1)
        at = data.find(b"\n", at + 1)
    return starts


def _read_all(fd: int, size: int, cap: int) -> bytes | None:
    """The whole file (None when it grew past ``cap`` while read)."""
    parts: list[bytes] = []
    got = 0
    while True:
        piece = os.read(fd, max(65536, size - got + 1))
        if not piece:
            break
        got += len(piece)
        if got > cap:
            return None
        parts.append(piece)
    return b"".join(parts)


def _glob(glob: str | None) -> Callable[[str, str], bool]:
    import fnmatch

    if not glob:
        return lambda rel, name: True
    if "/" in glob:
        return lambda rel, name: fnmatch.fnmatchcase(rel, glob)
    return lambda rel, name: fnmatch.fnmatchcase(name, glob)


def _gitignore(dir_fd: int) -> Any:
    """The ``GitIgnoreSpec`` of the ``.gitignore`` in ``dir_fd`` (None when absent)."""
    try:
        fd = os.open(".gitignore", READ_FLAGS | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        text = os.read(fd, 1024 * 1024).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)
    import pathspec

    try:
        return pathspec.GitIgnoreSpec.from_lines(text.splitlines())
    except Exception:
        return None


def _ignored(specs: list[tuple[str, Any]], rel: str, is_dir: bool) -> bool:
    for base, spec in specs:
        if base and not rel.startswith(base + "/"):
            continue
        sub = rel[len(base) + 1:] if base else rel
        if spec.match_file(sub + "/" if is_dir else sub):
            return True
    return False


def _walk(top_fd: int, search: _Search, top: str) -> Iterator[tuple[int, str, str]]:
    """``(dir_fd, name, rel)`` of the regular files below ``top_fd``, depth-first in name
    order, pruned by the gitignore rules; ``dir_fd`` is valid until the next item."""
    q = search.q
    stack: list[tuple[int, str, list[tuple[str, Any]]]] = [(top_fd, "", [])]
    try:
        while stack:
            fd, rel_dir, specs = stack.pop()
            try:
                if q.gitignore:
                    spec = _gitignore(fd)
                    if spec is not None:
                        specs = [*specs, (rel_dir, spec)]
                with os.scandir(fd) as it:
                    entries = sorted(((e.name, e.stat(follow_symlinks=False)) for e in it),
                                     key=lambda p: p[0])
            except OSError:
                search.errors += 1
                if fd != top_fd:
                    os.close(fd)
                continue
            subdirs: list[tuple[int, str, list[tuple[str, Any]]]] = []
            try:
                for name, st in entries:
                    check_cancelled(search.job)
                    if not q.include_hidden and name.startswith("."):
                        continue
                    rel = f"{rel_dir}/{name}" if rel_dir else name
                    if stat.S_ISDIR(st.st_mode):
                        if q.gitignore and (name == ".git" or _ignored(specs, rel, True)):
                            continue
                        sub = open_subdir(fd, name, st)
                        if sub is None:
                            search.errors += 1
                            continue
                        subdirs.append((sub, rel, specs))
                    elif stat.S_ISREG(st.st_mode):
                        if q.gitignore and _ignored(specs, rel, False):
                            continue
                        if search.glob(rel, name):
                            yield fd, name, rel
                    if search.truncated:
                        break
            finally:
                if fd != top_fd:
                    os.close(fd)
            stack.extend(reversed(subdirs))
            if search.truncated:
                break
    finally:
        for fd, _, _ in stack:
            if fd != top_fd:
                os.close(fd)


def grep(loc: Located, query: GrepQuery, limit: int, job: Job) -> GrepResult:
    """Search the located file, or the regular files below the located directory (see the
    module docstring). Progress counts files searched (total unknown). Raises -32602 on a
    bad pattern, -32001 when the path is missing."""
    search = _Search(query, limit, job)
    top = loc.path
    st = loc.lstat()
    if not stat.S_ISDIR(st.st_mode):
        assert loc.name is not None
        search.search_file(loc.dir_fd, loc.name, top)
    else:
        fd = loc.open_dir()
        try:
            for dir_fd, name, rel in _walk(fd, search, top):
                search.search_file(dir_fd, name, os.path.join(top, rel))
                done = search.scanned + search.binary + search.large
                if done % 64 == 0:
                    job.progress(done, None, "files")
                if search.truncated:
                    break
        except OSError as exc:
            raise error_from_oserror(exc, top) from None
        finally:
            os.close(fd)
    job.progress(search.scanned + search.binary + search.large, None, "files", force=True)
    return GrepResult(path=top, matches=search.matches, truncated=search.truncated,
                      files_scanned=search.scanned, files_matched=search.matched,
                      skipped_binary=search.binary, skipped_large=search.large,
                      timed_out=search.timed_out, errors=search.errors)
