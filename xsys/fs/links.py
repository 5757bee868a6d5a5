"""Timestamps and links: ``fs.touch``, ``fs.link``, ``fs.readlink`` and ``fs.realpath``.

Every function blocks (thread pool) and acts on the descriptors of ``Sandbox.locate``: the
timestamps are set with ``utimensat(dir_fd, name, AT_SYMLINK_NOFOLLOW)``, a new file is
created with ``openat(O_CREAT | O_EXCL | O_NOFOLLOW)``, links with ``symlinkat`` and
``linkat`` (never following a final symlink). A symlink's target is checked by walking it
in the sandbox from the directory that will hold the link (``..`` and absolute targets
included): one that resolves outside the roots is refused with -32002 (``reason:
"symlink_outside_roots"``); a dangling target inside the roots is allowed, as with
``ln -s``. Hard links join two entries that both lie inside the roots.
"""

from __future__ import annotations

import errno
import os
import stat
import time

from xsys.fs.model import LinkResult, ReadlinkResult, RealpathResult, TouchResult, entry_type
from xsys.fs.sandbox import Located, Sandbox, changed
from xsys.fs.writing import require_parent
from xsys.protocol import (
    AlreadyExists,
    Conflict,
    PermissionDenied,
    XsysError,
    error_from_oserror,
)


def touch(loc: Located, mtime_at: float | None, atime_at: float | None,
          umask: int, make_parents: bool = False) -> TouchResult:
    """Create the located file when missing (empty, mode ``0o666 & ~umask``) and set its
    times: ``mtime_at``/``atime_at`` epoch seconds, each defaulting to now when both are
    None, else to its current value. -32001 when the parent is missing (without
    ``make_parents``)."""
    created = False
    require_parent(loc, make_parents, umask)
    if loc.st is None:
        assert loc.name is not None
        try:
            fd = os.open(loc.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC | os.O_NONBLOCK, 0o666, dir_fd=loc.dir_fd)
        except FileExistsError:
            fd = -1
        except OSError as exc:
            raise error_from_oserror(exc, loc.path) from None
        if fd >= 0:
            os.close(fd)
            created = True
    now = time.time()
    if mtime_at is None and atime_at is None:
        mtime_at = atime_at = now
    st = loc.lstat()
    mtime = mtime_at if mtime_at is not None else st.st_mtime
    atime = atime_at if atime_at is not None else st.st_atime
    try:
        if loc.name is None:
            os.utime(loc.dir_fd, (atime, mtime))
        else:
            os.utime(loc.name, (atime, mtime), dir_fd=loc.dir_fd, follow_symlinks=False)
        after = loc.lstat()
    except OSError as exc:
        raise error_from_oserror(exc, loc.path) from None
    return TouchResult(path=loc.path, created=created, mtime_at=after.st_mtime,
                       atime_at=after.st_atime)


def symlink(sandbox: Sandbox, loc: Located, target: str) -> LinkResult:
    """Make the symlink ``loc`` -> ``target`` (stored as given). The target is walked in
    the sandbox from the link's directory first: -32002 (``symlink_outside_roots``) when
    it lands outside the roots, -32003 when ``loc`` exists, -32001 missing parent."""
    if not target or "\0" in target:
        from xsys.protocol import InvalidParams

        raise InvalidParams("parameter 'target': must be a non-empty path without NUL",
                            {"param": "target"})
    _require_free(loc)
    assert loc.name is not None
    where = os.path.join(loc.parent_path, target)
    try:
        sandbox.locate(where, follow=True, allow_missing=True).close()
    except PermissionDenied as exc:
        data = dict(exc.data) if isinstance(exc.data, dict) else {}
        data.update({"reason": "symlink_outside_roots", "target": target,
                     "path": loc.path})
        raise PermissionDenied(f"symlink target {target!r} resolves outside the fs roots",
                               data) from None
    except XsysError:  # a missing directory then ``..``: judge the spelling itself
        if not sandbox.contains(os.path.normpath(where)):
            raise PermissionDenied(f"symlink target {target!r} resolves outside the fs roots",
                                   {"reason": "symlink_outside_roots", "target": target,
                                    "path": loc.path}) from None
    try:
        os.symlink(target, loc.name, dir_fd=loc.dir_fd)
    except FileExistsError:
        raise AlreadyExists(f"file exists: {loc.path}",
                            {"errno": "EEXIST", "path": loc.path}) from None
    except OSError as exc:
        raise error_from_oserror(exc, loc.path) from None
    return LinkResult(path=loc.path, target=target, symbolic=True)


def hardlink(src: Located, loc: Located) -> LinkResult:
    """Make ``loc`` a hard link to the located existing entry ``src`` (a symlink is linked
    itself): both inside the roots; -32007 for a directory, -32003 when ``loc`` exists."""
    _require_free(loc)
    assert loc.name is not None
    if src.st is None or src.name is None:
        raise Conflict(f"cannot hard-link {src.path}", {"path": src.path})
    if stat.S_ISDIR(src.st.st_mode):
        raise Conflict(f"is a directory: {src.path}", {"errno": "EISDIR", "path": src.path})
    try:
        os.link(src.name, loc.name, src_dir_fd=src.dir_fd, dst_dir_fd=loc.dir_fd,
                follow_symlinks=False)
    except FileExistsError:
        raise AlreadyExists(f"file exists: {loc.path}",
                            {"errno": "EEXIST", "path": loc.path}) from None
    except OSError as exc:
        raise error_from_oserror(exc, loc.path) from None
    return LinkResult(path=loc.path, target=src.path, symbolic=False)


def _require_free(loc: Located) -> None:
    if loc.st is not None:
        raise AlreadyExists(f"file exists: {loc.path}", {"errno": "EEXIST", "path": loc.path})
    if len(loc.missing) > 1:
        from xsys.protocol import NotFound

        parent = os.path.dirname(loc.path)
        raise NotFound(f"parent directory does not exist: {parent}",
                       {"errno": "ENOENT", "path": parent})


def readlink(loc: Located) -> ReadlinkResult:
    """The target of the located symlink (``readlinkat``); -32007 (``EINVAL``) when it is
    not a symlink."""
    if loc.st is None or loc.name is None or not stat.S_ISLNK(loc.st.st_mode):
        raise Conflict(f"not a symbolic link: {loc.path}", {"errno": "EINVAL",
                                                            "path": loc.path})
    try:
        target = os.readlink(loc.name, dir_fd=loc.dir_fd)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            raise changed(loc.path, exc) from None
        raise error_from_oserror(exc, loc.path) from None
    return ReadlinkResult(path=loc.path, target=target)


def realpath(loc: Located) -> RealpathResult:
    """The located entry's real path (every link followed, inside the roots)."""
    st = loc.lstat()
    return RealpathResult(path=loc.path, requested=loc.requested,
                          type=entry_type(st.st_mode))
