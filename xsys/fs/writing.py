"""Writing files: atomic create/overwrite, appends, directories and permissions. Every
function here blocks and runs in the daemon's thread pool.

Atomic write (``create`` and ``overwrite``): the data goes to a temp file in the target's
directory (``.<name>.<random>.xsys-tmp``), which is fsynced, given the old file's mode
and owner, then renamed over the target (``os.replace``; ``os.link`` for ``create``, so an
existing file is never clobbered), and the directory is fsynced. A crash at any moment
leaves the old content or the new one, never a mix (a stray temp file at worst).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import tempfile
import threading
import zlib

from xsys.fs.model import Job, MkdirResult, WriteResult, check_cancelled
from xsys.fs.sandbox import Resolved, Sandbox
from xsys.protocol import AlreadyExists, Conflict, NotFound, error_from_oserror

TEMP_SUFFIX = ".xsys-tmp"


class PathLocks:
    """Striped locks serialising writers of the same path inside the daemon (appends,
    preconditions, no-clobber moves). Processes outside the daemon are not covered."""

    def __init__(self, stripes: int = 64) -> None:
        self._locks = [threading.Lock() for _ in range(stripes)]

    def lock(self, path: str) -> threading.Lock:
        """The lock guarding ``path``."""
        return self._locks[zlib.crc32(os.fsencode(path)) % len(self._locks)]


def current_umask() -> int:
    """The process umask, read without changing it where /proc allows (else set and
    restored once, at startup)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def sha256_of(path: str, chunk: int) -> str | None:
    """The sha256 hex digest of the file at ``path``, or None when it does not exist."""
    h = hashlib.sha256()
    try:
        with open(path, "rb", buffering=0) as f:
            while True:
                piece = f.read(chunk)
                if not piece:
                    break
                h.update(piece)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise error_from_oserror(exc, path) from None
    return h.hexdigest()


def check_expected(path: str, expected: str | None, chunk: int) -> None:
    """Raise -32007 (conflict) when the current content's sha256 is not ``expected``
    (``data``: ``expected``, ``actual`` — None when the file does not exist)."""
    if expected is None:
        return
    actual = sha256_of(path, chunk)
    if actual is None or actual.lower() != expected.lower():
        raise Conflict(f"precondition failed: the sha256 of {path} is {actual}, expected "
                       f"{expected}", {"path": path, "expected": expected, "actual": actual,
                                        "reason": "sha256_mismatch"})


def fsync_dir(path: str) -> None:
    """fsync the directory ``path`` so a rename in it is durable (best effort where
    directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes, chunk: int, job: Job) -> None:
    view = memoryview(data)
    done = 0
    while done < len(view):
        check_cancelled(job)
        done += os.write(fd, view[done:done + chunk])


def _make_parents(sandbox: Sandbox, res: Resolved, make_parents: bool) -> str:
    parent = os.path.dirname(res.real)
    if make_parents:
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise error_from_oserror(exc, parent) from None
        # re-check: a symlink may have appeared among the new parents
        sandbox.resolve(parent)
    elif not os.path.isdir(parent):
        raise NotFound(f"parent directory does not exist: {parent}",
                       {"errno": "ENOENT", "path": parent})
    return parent


def atomic_write(sandbox: Sandbox, res: Resolved, data: bytes, *, exclusive: bool,
                 make_parents: bool, umask: int, chunk: int, job: Job) -> WriteResult:
    """Write ``data`` to ``res.real`` atomically (see the module docstring).

    ``exclusive`` (mode ``create``): fail with -32003 when the file exists.
    """
    target = res.real
    parent = _make_parents(sandbox, res, make_parents)
    try:
        old = os.stat(target)
    except FileNotFoundError:
        old = None
    except OSError as exc:
        raise error_from_oserror(exc, target) from None
    if old is not None and exclusive:
        raise AlreadyExists(f"file exists: {target}", {"errno": "EEXIST", "path": target})
    if old is not None and stat.S_ISDIR(old.st_mode):
        raise Conflict(f"is a directory: {target}", {"errno": "EISDIR", "path": target})
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=TEMP_SUFFIX,
                                   dir=parent)
    except OSError as exc:
        raise error_from_oserror(exc, parent) from None
    try:
        try:
            sandbox.check_fd(fd, res.requested)
            _write_all(fd, data, chunk, job)
            mode = stat.S_IMODE(old.st_mode) if old is not None else 0o666 & ~umask
            if hasattr(os, "fchmod"):  # Unix: keep the old file's mode and owner
                os.fchmod(fd, mode)
                if old is not None:
                    with contextlib.suppress(OSError):
                        os.fchown(fd, old.st_uid, old.st_gid)
            os.fsync(fd)
        finally:
            os.close(fd)
        if exclusive:
            _link_no_clobber(tmp, target)
        else:
            os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise error_from_oserror(exc, target) from None
        raise
    fsync_dir(parent)
    return WriteResult(path=target, mode="create" if exclusive else "overwrite",
                       written_bytes=len(data), size=len(data), created=old is None,
                       sha256=hashlib.sha256(data).hexdigest())


def _link_no_clobber(tmp: str, target: str) -> None:
    """Give ``tmp`` the name ``target`` unless ``target`` exists (EEXIST), then drop the
    temp name; falls back to a checked rename where hard links are not supported."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise AlreadyExists(f"file exists: {target}",
                            {"errno": "EEXIST", "path": target}) from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
            raise
        if os.path.lexists(target):
            raise AlreadyExists(f"file exists: {target}",
                                {"errno": "EEXIST", "path": target}) from None
        os.rename(tmp, target)
        return
    os.unlink(tmp)


def append(sandbox: Sandbox, res: Resolved, data: bytes, *, make_parents: bool, umask: int,
           chunk: int, job: Job) -> WriteResult:
    """Append ``data`` to ``res.real`` (created when missing) with ``O_APPEND`` and fsync.
    Callers hold the path's lock, so appends through the daemon never interleave."""
    target = res.real
    _make_parents(sandbox, res, make_parents)
    created = not os.path.lexists(target)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(target, flags, 0o666 & ~umask)
    except OSError as exc:
        raise error_from_oserror(exc, target) from None
    try:
        sandbox.check_fd(fd, res.requested)
        _write_all(fd, data, chunk, job)
        os.fsync(fd)
        size = os.fstat(fd).st_size
    except OSError as exc:
        raise error_from_oserror(exc, target) from None
    finally:
        os.close(fd)
    if created:
        fsync_dir(os.path.dirname(target))
    return WriteResult(path=target, mode="append", written_bytes=len(data), size=size,
                       created=created, sha256=None)


def mkdir(res: Resolved, parents: bool, umask: int) -> MkdirResult:
    """Create the directory ``res.real``; with ``parents`` also its missing parents and no
    error when it already exists as a directory. Raises -32003 when it exists (without
    ``parents``, or as a non-directory) and -32001 when the parent is missing."""
    target = res.real
    try:
        if parents:
            if os.path.isdir(target):
                return MkdirResult(path=target, created=False)
            os.makedirs(target, exist_ok=False)
        else:
            os.mkdir(target)
    except OSError as exc:
        raise error_from_oserror(exc, target) from None
    return MkdirResult(path=target, created=True)


def parse_mode(mode: int | str) -> int:
    """``0o755``, ``493``, ``"755"``, ``"0755"`` or ``"0o755"`` -> 493. Raises
    ``ValueError`` outside 0..0o7777 or on a malformed string."""
    if isinstance(mode, str):
        text = mode.strip().lower()
        if text.startswith("0o"):
            text = text[2:]
        if not text or any(c not in "01234567" for c in text):
            raise ValueError(f"not an octal mode: {mode!r}")
        value = int(text, 8)
    else:
        value = mode
    if not 0 <= value <= 0o7777:
        raise ValueError(f"mode out of range 0..0o7777: {mode!r}")
    return value
