"""Writing files: atomic create/overwrite, appends, directories and permissions. Every
function here blocks and runs in the daemon's thread pool, on descriptors from
``Sandbox.locate`` (never on path strings).

Atomic write (``create`` and ``overwrite``): the data goes to an unnamed file in the
target's directory (Linux ``O_TMPFILE``; elsewhere a named temp file
``.<name>.<random>.xsys-tmp``), which is fsynced and given the old file's mode and owner.
``create`` then links it in with ``linkat`` (fails with EEXIST: an existing file is never
clobbered); ``overwrite`` links it under a temp name and renames that over the target in
the same directory descriptor; the directory is fsynced. A crash (kill -9) at any moment
leaves the old content or the new one, never a mix, and no temp file: an ``O_TMPFILE``
file that was never linked is freed by the kernel (the named temp exists only between one
``linkat`` and one ``renameat``).

Hard links: a regular file with more than one link may also be reachable from outside the
roots, so ``fs.write`` over it and ``fs.chmod`` of it are refused with -32002
(``reason: "hardlinked"``) unless ``fs.allow_hardlinked_writes``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import stat
import threading
import zlib

from xsys.fs.model import Job, MkdirResult, WriteResult, check_cancelled, entry_type
from xsys.fs.sandbox import DIR_FLAGS, NOFOLLOW, Located, changed
from xsys.protocol import (
    AlreadyExists,
    Conflict,
    NotFound,
    PermissionDenied,
    error_from_oserror,
)

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


def _open_for_hash(loc: Located) -> int | None:
    if loc.st is None:
        return None
    from xsys.fs.reading import READ_FLAGS, check_regular

    fd = loc.open(READ_FLAGS)
    try:
        check_regular(fd, loc.path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def sha256_of(loc: Located, chunk: int) -> str | None:
    """The sha256 hex digest of the located file, or None when it does not exist."""
    fd = _open_for_hash(loc)
    if fd is None:
        return None
    h = hashlib.sha256()
    try:
        while True:
            piece = os.read(fd, chunk)
            if not piece:
                break
            h.update(piece)
    except OSError as exc:
        raise error_from_oserror(exc, loc.path) from None
    finally:
        os.close(fd)
    return h.hexdigest()


def check_expected(loc: Located, expected: str | None, chunk: int) -> None:
    """Raise -32007 (conflict) when the current content's sha256 is not ``expected``
    (``data``: ``expected``, ``actual`` — None when the file does not exist)."""
    if expected is None:
        return
    actual = sha256_of(loc, chunk)
    if actual is None or actual.lower() != expected.lower():
        raise Conflict(f"precondition failed: the sha256 of {loc.path} is {actual}, expected "
                       f"{expected}", {"path": loc.path, "expected": expected,
                                       "actual": actual, "reason": "sha256_mismatch"})


def check_hardlinks(loc: Located, allowed: bool, st: os.stat_result | None = None) -> None:
    """Refuse (-32002, ``reason: "hardlinked"``) to change a regular file with more than
    one link unless ``allowed`` (module docstring). ``st``: the ``fstat`` of the file
    actually opened (a hard link may have been swapped in after the lookup); the lookup's
    ``lstat`` otherwise."""
    st = st if st is not None else loc.st
    if (not allowed and st is not None and stat.S_ISREG(st.st_mode) and st.st_nlink > 1):
        raise PermissionDenied(
            f"{loc.path} has {st.st_nlink} hard links and may be reachable from outside the "
            "fs roots; refusing to change it (fs.allow_hardlinked_writes)",
            {"path": loc.path, "nlink": st.st_nlink, "reason": "hardlinked"})


def fsync_dir(dir_fd: int) -> None:
    """fsync the directory behind ``dir_fd`` (an ``O_PATH`` descriptor is re-opened) so a
    rename in it is durable; best effort."""
    try:
        fd = os.open(".", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0), dir_fd=dir_fd)
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


def make_parents(loc: Located, umask: int) -> None:
    """Create the missing directories above the located entry (``loc.missing[:-1]``) with
    ``mkdirat``, each re-opened with ``O_NOFOLLOW | O_DIRECTORY`` (a symlink swapped in is
    refused), and move ``loc.dir_fd`` down to the last one."""
    for comp in loc.missing[:-1]:
        try:
            os.mkdir(comp, 0o777, dir_fd=loc.dir_fd)
        except FileExistsError:
            pass
        except OSError as exc:
            raise error_from_oserror(exc, os.path.join(loc.parent_path, comp)) from None
        try:
            sub = os.open(comp, DIR_FLAGS, dir_fd=loc.dir_fd)
        except OSError as exc:
            where = os.path.join(loc.parent_path, comp)
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise changed(where, exc) from None
            raise error_from_oserror(exc, where) from None
        os.close(loc.dir_fd)
        loc.dir_fd = sub
    loc.missing = loc.missing[-1:]


def require_parent(loc: Located, parents: bool, umask: int) -> None:
    """Make sure the directory holding the entry exists: created with ``parents``, else
    -32001 naming the first missing directory."""
    if len(loc.missing) <= 1:
        return
    if not parents:
        parent = os.path.dirname(loc.path)
        raise NotFound(f"parent directory does not exist: {parent}",
                       {"errno": "ENOENT", "path": parent})
    make_parents(loc, umask)


_TMPFILE_OK = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")


def new_file(dir_fd: int, name: str, mode: int) -> tuple[int, str | None]:
    """A new, unnamed file in the directory ``dir_fd`` (``O_TMPFILE``), or where that is
    not supported a named temp file ``.<name>.<random>.xsys-tmp``: ``(fd, temp name or
    None)``."""
    if _TMPFILE_OK:
        try:
            return os.open(".", os.O_TMPFILE | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0),
                           mode, dir_fd=dir_fd), None
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise
    for _ in range(100):
        tmp = f".{name[:100]}.{secrets.token_hex(6)}{TEMP_SUFFIX}"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, mode,
                           dir_fd=dir_fd), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temp name")


def link_into_place(fd: int, tmp: str | None, dir_fd: int, name: str, exclusive: bool) -> None:
    """Give the file from ``new_file`` the name ``name`` in ``dir_fd``: exclusively
    (``linkat``, EEXIST when taken) or replacing atomically (``renameat``). Raises
    ``OSError``; the temp name is gone either way."""
    if tmp is None:
        if exclusive:
            os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=dir_fd, follow_symlinks=True)
            return
        for _ in range(100):
            tmp_name = f".{name[:100]}.{secrets.token_hex(6)}{TEMP_SUFFIX}"
            try:
                os.link(f"/proc/self/fd/{fd}", tmp_name, dst_dir_fd=dir_fd,
                        follow_symlinks=True)
                break
            except FileExistsError:
                continue
        else:
            raise FileExistsError(errno.EEXIST, "no free temp name")
        tmp = tmp_name
    try:
        if exclusive:
            _link_no_clobber(dir_fd, tmp, name)
        else:
            os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise


def _link_no_clobber(dir_fd: int, tmp: str, name: str) -> None:
    try:
        os.link(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
            raise
        try:
            os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            return
        raise FileExistsError(errno.EEXIST, "File exists", name) from None
    os.unlink(tmp, dir_fd=dir_fd)


def atomic_write(loc: Located, data: bytes, *, exclusive: bool, make_dirs: bool, umask: int,
                 chunk: int, job: Job, allow_hardlinked: bool = False) -> WriteResult:
    """Write ``data`` to the located entry atomically (see the module docstring).

    ``exclusive`` (mode ``create``): fail with -32003 when the file exists.
    """
    target = loc.path
    require_parent(loc, make_dirs, umask)
    old = loc.st
    if old is not None and exclusive:
        raise AlreadyExists(f"file exists: {target}", {"errno": "EEXIST", "path": target})
    if old is not None and stat.S_ISDIR(old.st_mode):
        raise Conflict(f"is a directory: {target}", {"errno": "EISDIR", "path": target})
    if old is not None and not stat.S_ISREG(old.st_mode):
        raise Conflict(f"not a regular file ({entry_type(old.st_mode)}): {target}",
                       {"path": target, "type": entry_type(old.st_mode),
                        "reason": "not_regular_file"})
    check_hardlinks(loc, allow_hardlinked)
    assert loc.name is not None
    mode = stat.S_IMODE(old.st_mode) if old is not None else 0o666 & ~umask
    try:
        fd, tmp = new_file(loc.dir_fd, loc.name, 0o600)
    except OSError as exc:
        raise error_from_oserror(exc, loc.parent_path) from None
    try:
        try:
            _write_all(fd, data, chunk, job)
            if hasattr(os, "fchmod"):  # Unix: keep the old file's mode and owner
                if old is not None:
                    with contextlib.suppress(OSError):
                        os.fchown(fd, old.st_uid, old.st_gid)
                os.fchmod(fd, mode)
            os.fsync(fd)
            link_into_place(fd, tmp, loc.dir_fd, loc.name, exclusive)
            tmp = None
        finally:
            os.close(fd)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=loc.dir_fd)
        if isinstance(exc, FileExistsError) and exclusive:
            raise AlreadyExists(f"file exists: {target}",
                                {"errno": "EEXIST", "path": target}) from None
        if isinstance(exc, OSError):
            raise error_from_oserror(exc, target) from None
        raise
    fsync_dir(loc.dir_fd)
    return WriteResult(path=target, mode="create" if exclusive else "overwrite",
                       written_bytes=len(data), size=len(data), created=old is None,
                       sha256=hashlib.sha256(data).hexdigest())


def append(loc: Located, data: bytes, *, make_dirs: bool, umask: int, chunk: int, job: Job,
           allow_hardlinked: bool = False) -> WriteResult:
    """Append ``data`` to the located file (created when missing) with ``O_APPEND`` and
    fsync. Callers hold the path's lock, so appends through the daemon never interleave."""
    target = loc.path
    require_parent(loc, make_dirs, umask)
    check_hardlinks(loc, allow_hardlinked)
    if loc.st is not None and not stat.S_ISREG(loc.st.st_mode):
        from xsys.fs.reading import check_regular_mode

        check_regular_mode(loc.st, target)
    created = loc.st is None
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NONBLOCK", 0)
    fd = loc.open(flags, 0o666 & ~umask)
    try:
        from xsys.fs.reading import check_regular

        check_hardlinks(loc, allow_hardlinked, check_regular(fd, target))
        _write_all(fd, data, chunk, job)
        os.fsync(fd)
        size = os.fstat(fd).st_size
    except OSError as exc:
        raise error_from_oserror(exc, target) from None
    finally:
        os.close(fd)
    if created:
        fsync_dir(loc.dir_fd)
    return WriteResult(path=target, mode="append", written_bytes=len(data), size=size,
                       created=created, sha256=None)


def mkdir(loc: Located, parents: bool, umask: int) -> MkdirResult:
    """Create the located directory; with ``parents`` also its missing parents and no
    error when it already exists as a directory. Raises -32003 when it exists (without
    ``parents``, or as a non-directory) and -32001 when the parent is missing."""
    target = loc.path
    if loc.st is not None:
        if parents and stat.S_ISDIR(loc.st.st_mode):
            return MkdirResult(path=target, created=False)
        raise AlreadyExists(f"file exists: {target}", {"errno": "EEXIST", "path": target})
    require_parent(loc, parents, umask)
    assert loc.name is not None
    try:
        os.mkdir(loc.name, 0o777, dir_fd=loc.dir_fd)
    except OSError as exc:
        raise error_from_oserror(exc, target) from None
    return MkdirResult(path=target, created=True)


def chmod(loc: Located, bits: int, allow_hardlinked: bool = False) -> int:
    """Set the permission bits of the located entry (a final symlink was followed by the
    walk; a symlink swapped in meanwhile is refused) and return the bits now set. The
    kernel applies its own rules for the acting uid (setgid cleared for a group it is not
    in, EPERM for a file it does not own)."""
    check_hardlinks(loc, allow_hardlinked)
    flags = getattr(os, "O_PATH", os.O_RDONLY)
    fd = loc.open(flags)
    try:
        opened = os.fstat(fd)
        if stat.S_ISLNK(opened.st_mode):
            raise changed(loc.path)
        check_hardlinks(loc, allow_hardlinked, opened)
        if hasattr(os, "O_PATH") and os.path.isdir("/proc/self/fd"):
            os.chmod(f"/proc/self/fd/{fd}", bits)
        else:
            os.fchmod(fd, bits)
        return stat.S_IMODE(os.fstat(fd).st_mode)
    except OSError as exc:
        raise error_from_oserror(exc, loc.path) from None
    finally:
        os.close(fd)


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
