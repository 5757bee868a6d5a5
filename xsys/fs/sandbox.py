"""Path confinement for the fs and watch namespaces.

A ``Sandbox`` holds the configured roots (each resolved with ``realpath`` once, so a root
may itself be a symlink) and resolves every requested path component by component, the
way the kernel does: ``.``/``..`` are applied to the real directory reached so far and
every symlink is followed (at most ``MAX_SYMLINKS``). The final real path must lie inside
a root; otherwise the request fails with -32002 (permission_denied) and ``data`` carries
the resolved path. A symlink loop is refused the same way (errno ``ELOOP``).

Components that do not exist yet (the file ``fs.write`` is about to create, the tree
``fs.mkdir`` will make) are appended lexically, which is exact because a missing name
cannot be a symlink; a ``..`` after a missing component is ENOENT, as for the kernel.
The check is made when the request runs; on Linux, files the daemon opens are checked
once more through ``/proc/self/fd`` (``check_fd``), which closes the window in which a
symlink could be swapped in between the check and the ``open``.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from xsys.protocol import InvalidParams, NotFound, PermissionDenied, XsysError, error_from_oserror

#: Symlinks followed while resolving one path before it counts as a loop (Linux: 40).
MAX_SYMLINKS = 40


def default_roots() -> tuple[str, ...]:
    """The roots used when ``fs.roots`` is empty: the daemon user's home directory and the
    system temp dir (``tempfile.gettempdir()``)."""
    return (os.path.expanduser("~"), tempfile.gettempdir())


@dataclass(frozen=True)
class Resolved:
    """A requested path after resolution.

    - ``requested``: the path as the client sent it.
    - ``real``: every symlink followed, including the last component (what ``open``
      reaches); always inside a root.
    - ``entry``: the parent resolved and the last name kept as is (what ``lstat``,
      ``unlink`` and ``rename`` act on); equals ``real`` unless the last component is a
      symlink.
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
        """Whether the path names a root itself (never removed or moved)."""
        return self.entry == self.root


def _outside(requested: str, resolved: str, reason: str, **extra: object) -> PermissionDenied:
    data: dict[str, object] = {"path": resolved, "resolved": resolved, "requested": requested,
                               "reason": reason}
    data.update(extra)
    if reason == "symlink_loop":
        return PermissionDenied(f"{requested!r}: too many levels of symbolic links at "
                                f"{resolved!r}", data)
    return PermissionDenied(f"{requested!r} resolves to {resolved!r}, outside the fs roots",
                            data)


class Sandbox:
    """Resolves request paths against ``roots`` (see the module docstring).

    Relative paths are taken relative to the first root. Raises -32002 for paths outside
    the roots and for symlink loops, -32602 for empty paths or NUL bytes, and -32001 when a
    path goes through something that is not a directory.
    """

    def __init__(self, roots: Iterable[str]) -> None:
        resolved: list[str] = []
        for root in roots:
            real = os.path.realpath(os.path.abspath(os.path.expanduser(root)))
            if real not in resolved:
                resolved.append(real)
        if not resolved:
            raise ValueError("the sandbox needs at least one root")
        self.roots: tuple[str, ...] = tuple(resolved)

    # ------------------------------------------------------------------ containment

    def root_of(self, real: str) -> str | None:
        """The root containing the real path ``real``, or None."""
        for root in self.roots:
            if real == root:
                return root
            prefix = root if root.endswith(os.sep) else root + os.sep
            if real.startswith(prefix):
                return root
        return None

    def contains(self, real: str) -> bool:
        """Whether the real path ``real`` lies inside a root."""
        return self.root_of(real) is not None

    # ------------------------------------------------------------------ resolution

    def resolve(self, path: str, *, allow_outward_link: bool = False) -> Resolved:
        """Resolve ``path`` (see ``Resolved``) and check it against the roots.

        ``allow_outward_link``: accept a last component that is a symlink pointing
        outside the roots (only ``fs.remove`` uses it: unlinking the link never touches the
        target). Raises ``PermissionDenied``, ``InvalidParams`` or ``NotFound``.
        """
        if not path:
            raise InvalidParams("parameter 'path': must not be empty", {"param": "path"})
        if "\0" in path:
            raise InvalidParams("parameter 'path': must not contain NUL bytes",
                                {"param": "path"})
        absolute = path if os.path.isabs(path) else os.path.join(self.roots[0], path)
        head, name = os.path.split(absolute.rstrip(os.sep) or os.sep)
        if name in ("", ".", ".."):
            real = self._realpath(path, absolute)
            entry = real
        else:
            parent = self._realpath(path, head)
            entry = os.path.join(parent, name)
            try:
                real = self._realpath(path, entry)
            except PermissionDenied:
                if not allow_outward_link:
                    raise
                real = entry  # a looping link: only the link itself will be touched
        root = self.root_of(entry)
        if root is None:
            raise _outside(path, entry, "outside_roots")
        if not allow_outward_link and not self.contains(real):
            raise _outside(path, real, "symlink_outside_roots")
        return Resolved(requested=path, real=real, entry=entry, root=root)

    def resolve_many(self, paths: Sequence[str]) -> list[Resolved]:
        """``resolve`` each of ``paths``."""
        return [self.resolve(p) for p in paths]

    def _realpath(self, requested: str, absolute: str) -> str:
        """Follow every symlink in ``absolute``; missing tails are appended lexically."""
        pending = [c for c in absolute.split(os.sep) if c]
        pending.reverse()
        current = os.sep
        links = 0
        missing = False
        while pending:
            comp = pending.pop()
            if comp == ".":
                continue
            if comp == "..":
                if missing:  # the kernel cannot go up out of a directory that is not there
                    raise NotFound(f"no such file or directory: {current}",
                                   {"errno": "ENOENT", "path": current})
                current = os.path.dirname(current)
                continue
            candidate = os.path.join(current, comp)
            if missing:
                current = candidate
                continue
            try:
                st = os.lstat(candidate)
            except FileNotFoundError:
                missing = True
                current = candidate
                continue
            except OSError as exc:
                raise error_from_oserror(exc, candidate) from None
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > MAX_SYMLINKS:
                    raise _outside(requested, candidate, "symlink_loop",
                                   errno="ELOOP") from None
                try:
                    target = os.readlink(candidate)
                except OSError as exc:
                    raise error_from_oserror(exc, candidate) from None
                if os.path.isabs(target):
                    current = os.sep
                pending.extend(reversed([c for c in target.split(os.sep) if c]))
                continue
            if pending and not stat.S_ISDIR(st.st_mode):
                raise NotFound(f"not a directory: {candidate}",
                               {"errno": errno.errorcode[errno.ENOTDIR], "path": candidate})
            current = candidate
        return current

    # ------------------------------------------------------------------ open files

    def check_fd(self, fd: int, requested: str) -> None:
        """Check, on Linux, that the open file ``fd`` really lies inside a root (a symlink
        swapped in after ``resolve`` would show here). Raises ``PermissionDenied``."""
        try:
            real = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return  # no procfs: the resolve-time check stands alone
        if real.endswith(" (deleted)") or not real.startswith(os.sep):
            return
        if not self.contains(real):
            raise _outside(requested, real, "swapped_symlink")


def wrap_oserror(exc: OSError, path: str) -> XsysError:
    """The protocol error for ``exc`` raised while acting on ``path`` (errno name and path
    in ``data``)."""
    return error_from_oserror(exc, path)
