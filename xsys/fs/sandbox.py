"""Path confinement for the fs and watch namespaces, on descriptors, never on path strings.

A ``Sandbox`` holds the configured roots (each resolved with ``realpath`` once when the
daemon starts; the configured spelling is kept as an alias). ``locate(path)`` walks the
requested path the way the kernel would, but one component at a time relative to
directory descriptors opened from a root downwards with ``O_NOFOLLOW | O_DIRECTORY``:

- every component is looked at with ``fstatat(dirfd, name, AT_SYMLINK_NOFOLLOW)``; a
  symlink is read with ``readlinkat`` and its target walked the same way (a relative target
  from the directory that holds the link, an absolute one from the top), at most
  ``MAX_SYMLINKS`` of them;
- ``..`` goes back to the directory descriptor the walk came through; above the top of a
  root the walk continues lexically, outside every root, and only a path that comes back
  into a root (the same or another one) goes on. A walk that ends outside the roots is
  refused with -32002 (``permission_denied``);
- the result (``Located``) holds an open descriptor of the parent directory and the final
  name: every operation then acts with the ``*at`` forms of the system calls (``dir_fd=``,
  ``follow_symlinks=False``, ``O_NOFOLLOW``), so a directory or symlink swapped in while a
  request runs is never followed out of the roots; it makes the call fail instead
  (``ELOOP``/``ENOTDIR``, reported as -32002 ``reason: "changed"``).
- before handing the parent descriptor out, its real location is read back from
  ``/proc/self/fd`` (Linux) and must still lie inside a root, which catches a directory
  renamed out of the roots after it was opened.

A symlink inside a root that points inside a root (the same or another) works; one that
points outside is refused with -32002 (``reason: "symlink_outside_roots"``), and a loop
with -32002 (``errno: "ELOOP"``). Components that do not exist yet are kept in
``Located.missing`` (``fs.write``/``fs.mkdir`` create them with ``mkdirat`` and re-open
each with ``O_NOFOLLOW``); a ``..`` after a missing component is ENOENT, as for the kernel.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import tempfile
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from xsys.protocol import InvalidParams, NotFound, PermissionDenied, XsysError, error_from_oserror

#: Symlinks followed while resolving one path before it counts as a loop (Linux: 40).
MAX_SYMLINKS = 40
#: Times one resolution looks again at a component that changed between two system calls
#: before it refuses with -32002 (``reason: "changed"``).
MAX_RETRIES = 8
#: Descriptor flags for directories on the walk (``O_PATH`` where Linux has it: search
#: permission is enough, as for the kernel's own walk).
DIR_FLAGS = (getattr(os, "O_PATH", 0) or os.O_RDONLY) | getattr(os, "O_DIRECTORY", 0) \
    | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
#: Flags to open a directory for reading its entries.
LIST_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) \
    | getattr(os, "O_CLOEXEC", 0)
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_HAVE_PROC_FD = sys.platform.startswith("linux") and os.path.isdir("/proc/self/fd")


def default_roots() -> tuple[str, ...]:
    """The roots used when ``fs.roots`` is empty: the daemon user's home directory and the
    system temp dir (``tempfile.gettempdir()``)."""
    return (os.path.expanduser("~"), tempfile.gettempdir())


def as_str_path(path: str | bytes) -> str:
    """A request path as ``str``: bin (msgpack ``bin``: a file name that is not UTF-8) is
    decoded with ``os.fsdecode`` (surrogateescape), so it round-trips losslessly."""
    return os.fsdecode(path) if isinstance(path, bytes) else path


def fd_path(fd: int) -> str | None:
    """Where the open descriptor ``fd`` lies now (``/proc/self/fd``), or None where the
    platform cannot tell or the file was deleted."""
    if not _HAVE_PROC_FD:
        return None
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None
    if real.endswith(" (deleted)") or not real.startswith(os.sep):
        return None
    return real


def changed(path: str, exc: OSError | None = None) -> PermissionDenied:
    """The error for an entry that turned into a symlink (or stopped being a directory)
    while a request ran: -32002, ``reason: "changed"``."""
    detail = f" ({exc.strerror})" if exc is not None and exc.strerror else ""
    return PermissionDenied(f"{path!r} changed while the request ran{detail}; refusing to "
                            "follow it", {"path": path, "reason": "changed"})


def _outside(requested: str, resolved: str, reason: str, **extra: object) -> PermissionDenied:
    data: dict[str, object] = {"path": resolved, "resolved": resolved, "requested": requested,
                               "reason": reason}
    data.update(extra)
    if reason == "symlink_loop":
        return PermissionDenied(f"{requested!r}: too many levels of symbolic links at "
                                f"{resolved!r}", data)
    return PermissionDenied(f"{requested!r} resolves to {resolved!r}, outside the fs roots",
                            data)


@dataclass
class Located:
    """A requested path reached without following anything out of the roots.

    - ``dir_fd``: an open descriptor (``O_PATH`` on Linux) of the directory that holds the
      entry; owned by this object, closed by ``close()`` (or ``with``).
    - ``name``: the entry's name in ``dir_fd``; None when the path names that directory
      itself (a root, or a path ending in ``..``).
    - ``path``: the entry's real absolute path (for results and errors).
    - ``root``: the root the entry lies in.
    - ``st``: the entry's ``lstat`` (None when it does not exist).
    - ``missing``: components below ``dir_fd`` that do not exist yet, the last one being
      ``name`` (empty when the entry exists, ``[name]`` when only it is missing).
    - ``is_root``: the path names a root itself.
    """

    requested: str
    dir_fd: int
    name: str | None
    path: str
    root: str
    st: os.stat_result | None
    missing: list[str] = field(default_factory=list)
    is_root: bool = False

    def __enter__(self) -> Located:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close ``dir_fd`` (idempotent)."""
        if self.dir_fd >= 0:
            os.close(self.dir_fd)
            self.dir_fd = -1

    @property
    def exists(self) -> bool:
        """Whether the entry exists (``lstat``: a dangling symlink exists)."""
        return self.st is not None

    @property
    def parent_path(self) -> str:
        """The real path of ``dir_fd``."""
        return self.path if self.name is None else os.path.dirname(self.path)

    def lstat(self) -> os.stat_result:
        """Fresh ``lstat`` of the entry (``fstat`` of the directory when ``name`` is None).
        Raises the mapped ``OSError`` (-32001 when missing)."""
        try:
            if self.name is None:
                return os.stat(self.dir_fd)
            return os.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=False)
        except OSError as exc:
            raise error_from_oserror(exc, self.path) from None

    def open(self, flags: int, mode: int = 0o666) -> int:
        """``openat(dir_fd, name, flags | O_NOFOLLOW | O_CLOEXEC)``; the directory itself
        when ``name`` is None. A symlink swapped in meanwhile gives -32002 (``changed``);
        other failures their mapped errors."""
        try:
            if self.name is None:
                return os.open(".", (flags & ~getattr(os, "O_NOFOLLOW", 0))
                               | getattr(os, "O_CLOEXEC", 0), mode, dir_fd=self.dir_fd)
            return os.open(self.name, flags | NOFOLLOW, mode, dir_fd=self.dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise changed(self.path, exc) from None
            raise error_from_oserror(exc, self.path) from None

    def open_dir(self) -> int:
        """A readable descriptor of the entry, which must be a directory (-32007 ENOTDIR
        otherwise, -32001 when missing)."""
        if self.st is None:
            raise NotFound(f"no such directory: {self.path}",
                           {"errno": "ENOENT", "path": self.path})
        if not stat.S_ISDIR(self.st.st_mode):
            from xsys.protocol import Conflict

            raise Conflict(f"not a directory: {self.path}",
                           {"errno": "ENOTDIR", "path": self.path})
        try:
            return self.open(LIST_FLAGS)
        except XsysError as exc:
            if isinstance(exc.data, dict) and exc.data.get("errno") == "ENOTDIR":
                raise changed(self.path) from None
            raise


class Sandbox:
    """Resolves request paths against ``roots`` on descriptors (see the module docstring).

    Relative paths are taken relative to the first root. Raises -32002 for paths outside
    the roots and for symlink loops, -32602 for empty paths or NUL bytes, and -32001 when a
    path goes through something that is not a directory.
    """

    def __init__(self, roots: Iterable[str]) -> None:
        resolved: list[str] = []
        aliases: dict[str, str] = {}
        for root in roots:
            spelled = os.path.normpath(os.path.abspath(os.path.expanduser(root)))
            real = os.path.realpath(spelled)
            if real not in resolved:
                resolved.append(real)
            aliases[spelled] = real
            aliases[real] = real
        if not resolved:
            raise ValueError("the sandbox needs at least one root")
        self.roots: tuple[str, ...] = tuple(resolved)
        self._aliases = aliases

    # ------------------------------------------------------------------ containment

    def root_of(self, real: str) -> str | None:
        """The innermost root containing the real path ``real`` (string test), or None."""
        best: str | None = None
        for root in self.roots:
            prefix = root if root.endswith(os.sep) else root + os.sep
            if (real == root or real.startswith(prefix)) and (best is None
                                                             or len(root) > len(best)):
                best = root
        return best

    def contains(self, real: str) -> bool:
        """Whether the real path ``real`` lies inside a root."""
        return self.root_of(real) is not None

    def _entry_root(self, cursor: str) -> str | None:
        """The root that a lexical position outside the walk enters at, by its real path or
        its configured spelling."""
        hit = self._aliases.get(cursor)
        if hit is not None:
            return hit
        return None

    # ------------------------------------------------------------------ resolution

    def locate(self, path: str | bytes, *, follow: bool = True,
               allow_missing: bool = False) -> Located:
        """Walk ``path`` (see the module docstring) and return the open ``Located``.

        ``follow``: a final symlink is followed (its target must lie inside the roots);
        False: the link itself is the entry (``fs.remove``, ``fs.move``, ``fs.stat``).
        ``allow_missing``: missing components are returned in ``Located.missing`` instead
        of raising -32001. The caller closes the result.
        """
        requested = as_str_path(path)
        if not requested:
            raise InvalidParams("parameter 'path': must not be empty", {"param": "path"})
        if "\0" in requested:
            raise InvalidParams("parameter 'path': must not contain NUL bytes",
                                {"param": "path"})
        absolute = requested if os.path.isabs(requested) else os.path.join(self.roots[0],
                                                                           requested)
        loc = _Walk(self, requested, follow, allow_missing).run(absolute)
        if loc.name is not None or not loc.is_root:
            where = fd_path(loc.dir_fd)
            if where is not None and not self.contains(where):
                loc.close()
                raise _outside(requested, where, "moved_outside_roots")
        return loc

    def resolve(self, path: str | bytes, *, allow_outward_link: bool = False) -> Resolved:
        """The paths of ``path`` without keeping a descriptor (see ``Resolved``): for
        callers that hand a path to a library (watchdog) and for tests. Raises like
        ``locate``; ``allow_outward_link`` accepts a final symlink pointing outside."""
        with self.locate(path, follow=False, allow_missing=True) as entry:
            entry_path, root = entry.path, entry.root
            is_link = entry.st is not None and stat.S_ISLNK(entry.st.st_mode)
        real = entry_path
        if is_link:
            try:
                with self.locate(path, follow=True, allow_missing=True) as target:
                    real = target.path
            except PermissionDenied as exc:
                if not allow_outward_link:
                    raise
                if isinstance(exc.data, dict) and exc.data.get("reason") != "symlink_loop":
                    real = str(exc.data.get("resolved", entry_path))
        return Resolved(requested=as_str_path(path), real=real, entry=entry_path, root=root)


@dataclass(frozen=True)
class Resolved:
    """A requested path after resolution (no descriptor kept).

    - ``requested``: the path as the client sent it.
    - ``real``: every symlink followed (what ``open`` reaches); inside a root.
    - ``entry``: the parent resolved and the last name kept as is.
    - ``root``: the root that contains ``entry``.
    """

    requested: str
    real: str
    entry: str
    root: str

    @property
    def is_link(self) -> bool:
        """Whether the last component is a symlink (``entry`` differs from ``real``)."""
        return self.entry != self.real

    @property
    def is_root(self) -> bool:
        """Whether the path names a root itself."""
        return self.entry == self.root


class _Walk:
    """One resolution (see the module docstring); ``run`` returns the ``Located``."""

    def __init__(self, sandbox: Sandbox, requested: str, follow: bool,
                 allow_missing: bool) -> None:
        self.sb = sandbox
        self.requested = requested
        self.follow = follow
        self.allow_missing = allow_missing
        self.links = 0
        self.retries = 0
        # fd mode: a stack of (fd, real path); its bottom is a root. Outside mode: no stack,
        # a lexical cursor.
        self.stack: list[tuple[int, str]] = []
        self.cursor = os.sep
        self.root = ""

    def _close_all(self) -> None:
        for fd, _ in self.stack:
            os.close(fd)
        self.stack = []

    def _enter_root(self, root: str) -> None:
        try:
            fd = os.open(root, DIR_FLAGS)
        except OSError as exc:
            raise error_from_oserror(exc, root) from None
        self.stack = [(fd, root)]
        self.root = root

    def _leave(self, to: str) -> None:
        """Go to the lexical position ``to`` above the current root."""
        self._close_all()
        self.cursor = to
        inner = self.sb.root_of(to)
        if inner is not None:  # back inside another (enclosing) root
            self._enter_root(inner)
            self._pending_front(os.path.relpath(to, inner).split(os.sep)
                                if to != inner else [])

    def _pending_front(self, comps: Sequence[str]) -> None:
        self.pending.extendleft(reversed([c for c in comps if c]))

    def _at_top(self) -> None:
        """The walk is at ``/``: enter it when it is a root itself (``--local``)."""
        self.cursor = os.sep
        root = self.sb._entry_root(os.sep)
        if root is not None:
            self._enter_root(root)

    def run(self, absolute: str) -> Located:
        self.pending: deque[str] = deque()
        self._pending_front(absolute.split(os.sep))
        try:
            self._at_top()
            return self._run()
        except BaseException:
            self._close_all()
            raise

    def _run(self) -> Located:
        missing: list[str] = []
        while self.pending:
            comp = self.pending.popleft()
            if comp == ".":
                continue
            if missing:
                if comp == "..":
                    where = os.path.join(self.stack[-1][1], *missing)
                    raise NotFound(f"no such file or directory: {where}",
                                   {"errno": "ENOENT", "path": where})
                missing.append(comp)
                continue
            if not self.stack:  # outside every root: lexical until a root is reached
                self.cursor = (os.path.dirname(self.cursor) if comp == ".."
                               else os.path.join(self.cursor, comp))
                root = self.sb._entry_root(self.cursor)
                if root is not None:
                    self._enter_root(root)
                continue
            fd, real = self.stack[-1]
            if comp == "..":
                if len(self.stack) > 1:
                    os.close(self.stack.pop()[0])
                else:
                    self._leave(os.path.dirname(real))
                continue
            try:
                st = os.stat(comp, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                missing.append(comp)
                continue
            except OSError as exc:
                raise error_from_oserror(exc, os.path.join(real, comp)) from None
            last = not self.pending
            if stat.S_ISLNK(st.st_mode) and (self.follow or not last):
                if not self._follow_link(fd, real, comp):
                    self._retry(comp, real)
                continue
            if last:
                return self._found(comp, st)
            if not stat.S_ISDIR(st.st_mode):
                where = os.path.join(real, comp)
                raise NotFound(f"not a directory: {where}",
                               {"errno": errno.errorcode[errno.ENOTDIR], "path": where})
            try:
                sub = os.open(comp, DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                    self._retry(comp, real, exc)  # swapped since the lstat: look again
                    continue
                raise error_from_oserror(exc, os.path.join(real, comp)) from None
            self.stack.append((sub, os.path.join(real, comp)))
        if missing:
            return self._missing(missing)
        if not self.stack:
            raise _outside(self.requested, self.cursor,
                           "symlink_outside_roots" if self.links else "outside_roots")
        # the path names a directory on the stack itself (a root, or ends in ``..``)
        fd, real = self.stack.pop()
        self._close_all()
        return Located(self.requested, fd, None, real, self.root, os.stat(fd),
                       is_root=real == self.root)

    def _retry(self, comp: str, real: str, exc: OSError | None = None) -> None:
        """``comp`` changed between two system calls: walk it again, a few times at most,
        then refuse (-32002 ``changed``)."""
        self.retries += 1
        if self.retries > MAX_RETRIES:
            raise changed(os.path.join(real, comp), exc)
        self.pending.appendleft(comp)

    def _follow_link(self, fd: int, real: str, comp: str) -> bool:
        """Queue the link's target; False when ``comp`` is no longer a link."""
        self.links += 1
        where = os.path.join(real, comp)
        if self.links > MAX_SYMLINKS:
            raise _outside(self.requested, where, "symlink_loop", errno="ELOOP")
        try:
            target = os.readlink(comp, dir_fd=fd)
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.ENOENT):
                self.links -= 1
                return False
            raise error_from_oserror(exc, where) from None
        if os.path.isabs(target):  # from the top; outside the roots it goes lexically
            self._close_all()
            self._at_top()
        self._pending_front(target.split(os.sep))
        return True

    def _found(self, comp: str, st: os.stat_result) -> Located:
        fd, real = self.stack.pop()
        self._close_all()
        return Located(self.requested, fd, comp, os.path.join(real, comp), self.root, st)

    def _missing(self, missing: list[str]) -> Located:
        fd, real = self.stack[-1]
        where = os.path.join(real, *missing)
        if not self.allow_missing:
            raise NotFound(f"no such file or directory: {where}",
                           {"errno": "ENOENT", "path": where})
        self.stack.pop()
        self._close_all()
        return Located(self.requested, fd, missing[-1], where, self.root, None,
                       missing=list(missing))
