"""``fs.open``: a descriptor opened by the daemon after the sandbox and permission checks,
handed to the client over the Unix socket (``SCM_RIGHTS``; docs/protocol.md,
"Descriptors").

- ``rb``: the located regular file opened ``O_RDONLY | O_NOFOLLOW`` from its parent's
  descriptor and ``fstat``-checked (no FIFO, device or directory). The descriptor refers
  to that inode: swapping the path afterwards changes nothing for the client.
- ``wb``: the same rules as ``fs.write`` ``overwrite``: an unnamed ``O_TMPFILE`` (or named
  temp) file in the target's directory, checked like an atomic write (not a directory or
  special file, no hard-linked target unless ``fs.allow_hardlinked_writes``). The client
  writes into it; ``fs.close {handle, commit}`` then fsyncs it, gives it the old file's
  mode and owner and renames it over the target (``writing.link_into_place``), or
  discards it. A handle whose connection goes away is discarded: the target never sees a
  partial file.

Every function blocks (thread pool) and runs with the peer's credentials.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import threading
from dataclasses import dataclass

from xsys.fs.model import CloseResult, OpenResult, entry_type
from xsys.fs.reading import READ_FLAGS, check_regular
from xsys.fs.sandbox import Located
from xsys.fs.writing import (
    check_hardlinks,
    fsync_dir,
    link_into_place,
    new_file,
    require_parent,
)
from xsys.protocol import Conflict, NotFound, error_from_oserror

#: Modes ``fs.open`` accepts.
OPEN_MODES: tuple[str, ...] = ("rb", "wb")


def open_read(loc: Located) -> tuple[int, OpenResult]:
    """A blocking read-only descriptor of the located regular file and its result."""
    fd = loc.open(READ_FLAGS)
    try:
        st = check_regular(fd, loc.path)
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd, OpenResult(path=loc.path, mode="rb", size=st.st_size, fd=True, handle=None,
                          inode=st.st_ino)


def opened_write(handle: WriteHandle, number: int) -> OpenResult:
    """The ``fs.open`` result of a ``wb`` handle."""
    st = os.fstat(handle.fd)
    return OpenResult(path=handle.path, mode="wb", size=st.st_size, fd=True, handle=number,
                      inode=st.st_ino)


@dataclass
class WriteHandle:
    """A ``wb`` file awaiting ``fs.close``: the daemon's own descriptor of the temp file,
    the target directory's descriptor and name, the mode and owner to give it."""

    fd: int
    tmp: str | None
    dir_fd: int
    name: str
    path: str
    mode: int
    owner: tuple[int, int] | None
    created: bool
    closed: bool = False

    def discard(self) -> None:
        """Drop the temp file (idempotent)."""
        if self.closed:
            return
        self.closed = True
        if self.tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.tmp, dir_fd=self.dir_fd)
        os.close(self.fd)
        os.close(self.dir_fd)

    def commit(self) -> CloseResult:
        """fsync, mode and owner, then rename over the target; the handle is closed."""
        if self.closed:
            raise NotFound("this handle is already closed", {"reason": "closed"})
        try:
            if self.owner is not None:
                with contextlib.suppress(OSError):
                    os.fchown(self.fd, *self.owner)
            os.fchmod(self.fd, self.mode)
            os.fsync(self.fd)
            size = os.fstat(self.fd).st_size
            link_into_place(self.fd, self.tmp, self.dir_fd, self.name, exclusive=False)
            self.tmp = None
            fsync_dir(self.dir_fd)
        except OSError as exc:
            self.discard()
            raise error_from_oserror(exc, self.path) from None
        self.discard()
        return CloseResult(path=self.path, committed=True, size=size, created=self.created)


def open_write(loc: Located, umask: int, allow_hardlinked: bool) -> tuple[int, WriteHandle]:
    """A write-only descriptor of a new temp file for the located target (``fs.write``'s
    checks), for the client, and the daemon's ``WriteHandle``. The caller keeps
    ``loc.dir_fd`` alive through the handle (it takes it over)."""
    require_parent(loc, False, umask)
    old = loc.st
    if old is not None and not stat.S_ISREG(old.st_mode):
        if stat.S_ISDIR(old.st_mode):
            raise Conflict(f"is a directory: {loc.path}", {"errno": "EISDIR", "path": loc.path})
        raise Conflict(f"not a regular file ({entry_type(old.st_mode)}): {loc.path}",
                       {"path": loc.path, "type": entry_type(old.st_mode),
                        "reason": "not_regular_file"})
    check_hardlinks(loc, allow_hardlinked)
    assert loc.name is not None
    try:
        fd, tmp = new_file(loc.dir_fd, loc.name, 0o600)
    except OSError as exc:
        raise error_from_oserror(exc, loc.parent_path) from None
    mode = stat.S_IMODE(old.st_mode) if old is not None else 0o666 & ~umask
    owner = (old.st_uid, old.st_gid) if old is not None else None
    handle = WriteHandle(fd=fd, tmp=tmp, dir_fd=loc.dir_fd, name=loc.name, path=loc.path,
                         mode=mode, owner=owner, created=old is None)
    loc.dir_fd = -1  # the handle owns it now
    try:
        client_fd = os.dup(fd)
    except OSError:
        handle.discard()
        raise
    return client_fd, handle


class Handles:
    """The ``wb`` handles of one connection, bounded (``limit``); numbered from 1."""

    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self._next = 0
        self._open: dict[int, WriteHandle] = {}
        self._lock = threading.Lock()

    def add(self, handle: WriteHandle) -> int:
        """Register ``handle``; -32004 beyond ``limit`` open handles."""
        from xsys.protocol import TooLarge

        with self._lock:
            if len(self._open) >= self.limit:
                handle.discard()
                raise TooLarge(f"at most {self.limit} files open for writing per connection",
                               {"limit": self.limit})
            self._next += 1
            self._open[self._next] = handle
            return self._next

    def take(self, number: int) -> WriteHandle:
        """Remove and return handle ``number``; -32001 when unknown."""
        with self._lock:
            handle = self._open.pop(number, None)
        if handle is None:
            raise NotFound(f"no open handle {number} on this connection",
                           {"handle": number})
        return handle

    def close(self) -> None:
        """Discard every open handle (the connection went away)."""
        with self._lock:
            handles = list(self._open.values())
            self._open.clear()
        for h in handles:
            h.discard()
