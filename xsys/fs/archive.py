"""Archives: ``fs.archive`` (tar, tar.gz, tar.xz, zip) and ``fs.extract``, confined to the
roots, on descriptors (stdlib ``tarfile`` and ``zipfile``).

Creating: every input is walked from its ``Sandbox.locate`` descriptor (``tree.walk``:
nothing followed, directories device/inode-checked); files are read through
``openat(O_NOFOLLOW | O_NONBLOCK)`` descriptors and ``fstat``-checked; symlinks are stored
as links; special files are skipped (``skipped``). The archive is written to an unnamed
temp file in ``dst``'s directory and linked in only when complete (``writing.new_file``,
``link_into_place``: atomic, no litter).

Extracting (``extract``), the "zip slip" rules:

- every member is checked before anything is written for it: its name must be relative,
  without ``..`` and without NUL (``tarfile.data_filter``'s rules, applied to tar and zip
  members alike); a symlink's target must stay inside ``dst`` when resolved from the
  member's directory and must not be absolute; a hard link must name an earlier member;
  devices and FIFOs are refused; setuid, setgid and sticky bits and group/other write are
  cleared (the ``data`` filter). Any refusal fails the **whole** extract with -32002
  (``reason: "unsafe_member"``, ``member``);
- the members are written into a new temp directory ``.<dst>.<random>.xsys-tmp`` made in
  ``dst``'s parent (``mkdirat``), every directory on the way opened with ``O_NOFOLLOW |
  O_DIRECTORY`` from that directory's descriptor, every file created with ``O_CREAT |
  O_EXCL | O_NOFOLLOW``: a member that goes through a symlink made by an earlier member
  fails (ELOOP/ENOTDIR -> ``unsafe_member``), so nothing can land outside;
- the member count (``fs.max_extract_members``) and the total size (``fs.max_extract_bytes``:
  declared sizes up front, bytes actually written as they go) are bounded: -32004
  (``reason``), no zip bombs;
- on success the temp directory is renamed to ``dst`` (created when missing), or, when
  ``dst`` is an existing directory, its entries are moved in (a name already there:
  -32003 unless ``overwrite``; directories merge), with ``renameat`` on descriptors; on
  any failure the temp directory is removed, so nothing is left behind.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import posixpath
import secrets
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, Literal

from xsys.fs.model import FORMATS, ArchiveResult, ExtractResult, Job, NullJob, check_cancelled
from xsys.fs.reading import READ_FLAGS, check_regular
from xsys.fs.sandbox import DIR_FLAGS, LIST_FLAGS, NOFOLLOW, Located
from xsys.fs.tree import _clear_tree, rename_noreplace, walk
from xsys.fs.writing import TEMP_SUFFIX, fsync_dir, link_into_place, new_file
from xsys.protocol import (
    AlreadyExists,
    Conflict,
    InvalidParams,
    NotFound,
    PermissionDenied,
    TooLarge,
    error_from_oserror,
)

Format = Literal["tar", "tar.gz", "tar.xz", "zip"]
_TAR_MODES = {"tar": "w", "tar.gz": "w:gz", "tar.xz": "w:xz"}
#: Permission bits kept on extracted entries (no setuid, setgid, sticky).
KEEP_BITS = 0o777


# --------------------------------------------------------------------------- create


@dataclass
class _Counts:
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    skipped: int = 0
    done: int = 0


class _FdReader(io.RawIOBase):
    """A read-only raw stream over a descriptor it does not own."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        return os.readv(self.fd, [b])


def _tarinfo(name: str, st: os.stat_result, kind: int, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.mtime = int(st.st_mtime)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.type = {stat.S_IFREG: tarfile.REGTYPE, stat.S_IFDIR: tarfile.DIRTYPE,
                 stat.S_IFLNK: tarfile.SYMTYPE}[kind]
    info.size = st.st_size if kind == stat.S_IFREG else 0
    info.linkname = target
    return info


class _Writer:
    """Adds entries to a tar or zip archive written to the descriptor ``out``."""

    def __init__(self, out: IO[bytes], fmt: str, chunk: int, job: Job, total: int | None
                 ) -> None:
        self.fmt = fmt
        self.chunk = chunk
        self.job = job
        self.total = total
        self.counts = _Counts()
        self.tar: tarfile.TarFile | None = None
        self.zip: zipfile.ZipFile | None = None
        if fmt == "zip":
            self.zip = zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED,
                                       allowZip64=True)
        else:
            self.tar = tarfile.open(  # noqa: SIM115 - closed by close()
                fileobj=out, mode=_TAR_MODES[fmt],  # type: ignore[call-overload]
                format=tarfile.PAX_FORMAT)

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()
        if self.tar is not None:
            self.tar.close()

    def add_dir(self, name: str, st: os.stat_result) -> None:
        self.counts.dirs += 1
        if self.tar is not None:
            self.tar.addfile(_tarinfo(name, st, stat.S_IFDIR))
        elif self.zip is not None:
            zi = zipfile.ZipInfo(name.rstrip("/") + "/", _zip_time(st))
            zi.external_attr = (stat.S_IFDIR | stat.S_IMODE(st.st_mode)) << 16 | 0x10
            self.zip.writestr(zi, b"")

    def add_link(self, name: str, st: os.stat_result, target: str) -> None:
        self.counts.symlinks += 1
        if self.tar is not None:
            self.tar.addfile(_tarinfo(name, st, stat.S_IFLNK, target))
        elif self.zip is not None:  # the Info-ZIP convention: S_IFLNK mode, target as data
            zi = zipfile.ZipInfo(name, _zip_time(st))
            zi.external_attr = (stat.S_IFLNK | 0o777) << 16
            zi.create_system = 3
            self.zip.writestr(zi, target.encode("utf-8", "surrogateescape"))

    def add_file(self, name: str, dir_fd: int, entry: str) -> None:
        try:
            fd = os.open(entry, READ_FLAGS | NOFOLLOW, dir_fd=dir_fd)
        except OSError:
            self.counts.skipped += 1
            return
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                self.counts.skipped += 1
                return
            self.counts.files += 1
            src = _Progress(io.BufferedReader(_FdReader(fd), self.chunk), self)
            if self.tar is not None:
                self.tar.addfile(_tarinfo(name, st, stat.S_IFREG), src)
            elif self.zip is not None:
                zi = zipfile.ZipInfo(name, _zip_time(st))
                zi.external_attr = (stat.S_IFREG | stat.S_IMODE(st.st_mode)) << 16
                zi.compress_type = zipfile.ZIP_DEFLATED
                zi.create_system = 3
                with self.zip.open(zi, "w", force_zip64=st.st_size > 2**31) as dst:
                    while piece := src.read(self.chunk):
                        dst.write(piece)
        finally:
            os.close(fd)


class _Progress:
    """A reader that counts bytes into the writer's progress and checks cancellation."""

    def __init__(self, raw: IO[bytes], writer: _Writer) -> None:
        self.raw = raw
        self.w = writer

    def read(self, n: int = -1) -> bytes:
        check_cancelled(self.w.job)
        data = self.raw.read(n)
        self.w.counts.done += len(data)
        self.w.job.progress(self.w.counts.done, self.w.total, "bytes")
        return data


def _zip_time(st: os.stat_result) -> tuple[int, int, int, int, int, int]:
    import time

    t = time.localtime(max(st.st_mtime, 315532800))  # zip cannot hold dates before 1980
    return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)


def _add_tree(w: _Writer, loc: Located, base: str) -> None:
    st = loc.lstat()
    if stat.S_ISLNK(st.st_mode):
        assert loc.name is not None
        w.add_link(base, st, os.readlink(loc.name, dir_fd=loc.dir_fd))
        return
    if stat.S_ISREG(st.st_mode):
        assert loc.name is not None
        w.add_file(base, loc.dir_fd, loc.name)
        return
    if not stat.S_ISDIR(st.st_mode):
        w.counts.skipped += 1
        return
    w.add_dir(base, st)
    fd = loc.open_dir()
    try:
        for item in walk(fd, w.job):
            name = f"{base}/{item.rel}"
            mode = item.st.st_mode
            if stat.S_ISDIR(mode):
                w.add_dir(name, item.st)
            elif stat.S_ISLNK(mode):
                target = item.link_target()
                if target is not None:
                    w.add_link(name, item.st, target)
            elif stat.S_ISREG(mode):
                w.add_file(name, item.dir_fd, item.name)
            else:
                w.counts.skipped += 1
    finally:
        os.close(fd)


def _total_bytes(sources: list[Located], job: Job) -> int | None:
    if not job.want_progress:
        return None
    total = 0
    for loc in sources:
        st = loc.lstat()
        if stat.S_ISREG(st.st_mode):
            total += st.st_size
        elif stat.S_ISDIR(st.st_mode):
            fd = loc.open_dir()
            try:
                total += sum(i.st.st_size for i in walk(fd, job) if stat.S_ISREG(i.st.st_mode))
            finally:
                os.close(fd)
    return total


def create(sources: list[Located], dst: Located, fmt: str, overwrite: bool, chunk: int,
           umask: int, job: Job) -> ArchiveResult:
    """Write the archive of ``sources`` (each stored under its own base name) to ``dst``
    (see the module docstring). -32602 unknown format, -32003 ``dst`` exists without
    ``overwrite``, -32007 ``dst`` is a directory, -32001 missing parent."""
    if fmt not in FORMATS:
        raise InvalidParams(f"parameter 'format': one of {', '.join(FORMATS)}",
                            {"param": "format", "got": fmt})
    if len(dst.missing) > 1 or dst.name is None:
        raise NotFound(f"parent directory does not exist: {os.path.dirname(dst.path)}",
                       {"errno": "ENOENT", "path": os.path.dirname(dst.path)})
    if dst.st is not None:
        if stat.S_ISDIR(dst.st.st_mode):
            raise Conflict(f"is a directory: {dst.path}", {"errno": "EISDIR", "path": dst.path})
        if not overwrite:
            raise AlreadyExists(f"file exists: {dst.path}", {"errno": "EEXIST",
                                                              "path": dst.path})
    names = [os.path.basename(s.path.rstrip("/")) or "root" for s in sources]
    total = _total_bytes(sources, job)
    try:
        fd, tmp = new_file(dst.dir_fd, dst.name, 0o600)
    except OSError as exc:
        raise error_from_oserror(exc, dst.path) from None
    try:
        try:
            with open(fd, "wb", closefd=False, buffering=chunk) as out:
                w = _Writer(out, fmt, chunk, job, total)
                try:
                    for loc, name in zip(sources, names, strict=True):
                        _add_tree(w, loc, name)
                finally:
                    w.close()
            os.fchmod(fd, 0o666 & ~umask)
            os.fsync(fd)
            size = os.fstat(fd).st_size
            link_into_place(fd, tmp, dst.dir_fd, dst.name, exclusive=not overwrite)
            tmp = None
        finally:
            os.close(fd)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dst.dir_fd)
        if isinstance(exc, FileExistsError):
            raise AlreadyExists(f"file exists: {dst.path}",
                                {"errno": "EEXIST", "path": dst.path}) from None
        if isinstance(exc, OSError):
            raise error_from_oserror(exc, dst.path) from None
        raise
    fsync_dir(dst.dir_fd)
    job.progress(w.counts.done, total, "bytes", force=True)
    c = w.counts
    return ArchiveResult(dst=dst.path, format=fmt, files=c.files, dirs=c.dirs,
                         symlinks=c.symlinks, input_bytes=c.done, size=size,
                         skipped=c.skipped)


# --------------------------------------------------------------------------- extract


@dataclass
class Member:
    """One archive member, format-neutral: ``name`` (relative, ``/``-separated), ``kind``
    (``file``, ``dir``, ``symlink``, ``hardlink``), ``mode`` bits, ``size`` bytes,
    ``target`` (links), ``mtime`` and the opener of its content."""

    name: str
    kind: str
    mode: int
    size: int
    target: str
    mtime: float
    raw: Any


def unsafe(name: str, why: str) -> PermissionDenied:
    """-32002 ``unsafe_member``: the error that fails a whole extract."""
    return PermissionDenied(f"archive member {name!r}: {why}; nothing was extracted",
                            {"reason": "unsafe_member", "member": name, "detail": why})


def _clean_name(name: str) -> str:
    """The member name normalised; ``unsafe`` when absolute, climbing or odd."""
    if not name or "\0" in name:
        raise unsafe(name, "empty name or NUL byte")
    if name.startswith("/") or name.startswith("\\") or (len(name) > 1 and name[1] == ":"):
        raise unsafe(name, "absolute path")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise unsafe(name, "'..' in the path")
    if not parts:
        raise unsafe(name, "names the destination itself")
    return "/".join(parts)


def _check_link_target(name: str, target: str) -> None:
    if not target or "\0" in target:
        raise unsafe(name, "empty link target")
    if target.startswith("/"):
        raise unsafe(name, f"absolute link target {target!r}")
    where = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    if where == ".." or where.startswith("../") or where.startswith("/"):
        raise unsafe(name, f"link target {target!r} leaves the destination")


#: Largest pax or GNU long-name header read (names are at most 4,096 bytes on Linux).
MAX_TAR_HEADER_BYTES = 1 << 20


class _BoundedTarInfo(tarfile.TarInfo):
    """A ``TarInfo`` that refuses to read a pax or GNU long-name/long-link header above
    ``MAX_TAR_HEADER_BYTES``: tarfile reads such a header whole into memory, so a small
    compressed archive could make the daemon allocate gigabytes."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
                         tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK) \
                and self.size > MAX_TAR_HEADER_BYTES:
            raise unsafe(self.name, f"a {self.size}-byte extended header (at most "
                                    f"{MAX_TAR_HEADER_BYTES})")
        out: tarfile.TarInfo = super()._proc_member(tarfile_)  # type: ignore[misc]
        return out


def _tar_members(tf: tarfile.TarFile) -> Iterator[Member]:
    for ti in tf:
        _clean_name(ti.name)  # absolute names fail (the data filter would strip the "/")
        try:  # the stdlib's own "data" rules (absolute, .., links out, specials, bits)
            filtered = tarfile.data_filter(ti, "/nonexistent-xsys-dest")
        except tarfile.FilterError as exc:
            raise unsafe(ti.name, str(exc).split(": ", 1)[-1]) from None
        if filtered is None:
            continue
        mode = filtered.mode if filtered.mode is not None else ti.mode & 0o755
        ti = filtered
        if ti.isdir():
            kind = "dir"
        elif ti.issym():
            kind = "symlink"
        elif ti.islnk():
            kind = "hardlink"
        elif ti.isreg():
            kind = "file"
        else:
            raise unsafe(ti.name, "device or FIFO")
        yield Member(ti.name, kind, mode, ti.size,
                     ti.linkname, float(ti.mtime or 0), ti)


def _zip_members(zf: zipfile.ZipFile) -> Iterator[Member]:
    for zi in zf.infolist():
        mode = zi.external_attr >> 16
        if zi.is_dir():
            kind = "dir"
        elif zi.create_system == 3 and stat.S_ISLNK(mode):
            kind = "symlink"
        elif stat.S_IFMT(mode) and zi.create_system == 3 and not stat.S_ISREG(mode):
            raise unsafe(zi.filename, "device or FIFO")
        else:
            kind = "file"
        bits = stat.S_IMODE(mode) or (0o755 if kind == "dir" else 0o644)
        bits &= ~(stat.S_IWGRP | stat.S_IWOTH)
        target = ""
        if kind == "symlink":
            if zi.file_size > 4096:
                raise unsafe(zi.filename, "symlink target too long")
            target = zf.read(zi).decode("utf-8", "surrogateescape")
        import time

        try:
            mtime = time.mktime((*zi.date_time, 0, 0, -1))
        except (OverflowError, ValueError):
            mtime = 0.0
        yield Member(zi.filename, kind, bits, zi.file_size if kind == "file" else 0,
                     target, mtime, zi)


class _Extract:
    """One extract into the temp directory descriptor ``top`` (module docstring)."""

    def __init__(self, top: int, max_bytes: int, max_members: int, chunk: int, job: Job,
                 total: int | None) -> None:
        self.top = top
        self.max_bytes = max_bytes
        self.max_members = max_members
        self.chunk = chunk
        self.job = job
        self.total = total
        self.written = 0
        self.members = 0
        self.files = self.dirs = self.symlinks = self.hardlinks = 0
        self.seen: set[str] = set()
        self.dir_modes: list[tuple[str, int]] = []

    def _dir(self, parts: list[str], member: str) -> int:
        """A new descriptor of the directory ``parts`` below ``top`` (made as needed, never
        through a symlink)."""
        fd = os.dup(self.top)
        try:
            for p in parts:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(p, 0o700, dir_fd=fd)
                try:
                    sub = os.open(p, DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise unsafe(member, "goes through a symlink or a file made by an "
                                             "earlier member") from None
                    raise
                os.close(fd)
                fd = sub
        except BaseException:
            os.close(fd)
            raise
        return fd

    def add(self, m: Member, open_member: Any) -> None:
        check_cancelled(self.job)
        self.members += 1
        name = m.name
        parts = name.split("/")
        if m.kind == "dir":
            fd = self._dir(parts, name)
            os.close(fd)
            self.dirs += 1
            self.dir_modes.append((name, (m.mode & KEEP_BITS) | 0o700))
            return
        fd = self._dir(parts[:-1], name)
        leaf = parts[-1]
        try:
            if name in self.seen or _exists(fd, leaf):
                self._replace(fd, leaf, name)
            self.seen.add(name)
            if m.kind == "symlink":
                os.symlink(m.target, leaf, dir_fd=fd)
                self.symlinks += 1
            elif m.kind == "hardlink":
                self._hardlink(fd, leaf, name, m.target)
            else:
                self._file(fd, leaf, name, m, open_member)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise unsafe(name, "goes through a symlink made by an earlier member") \
                    from None
            raise
        finally:
            os.close(fd)

    def _replace(self, fd: int, leaf: str, name: str) -> None:
        """A later member with an earlier one's name replaces it (as tar does), unless the
        earlier one is a directory."""
        st = os.stat(leaf, dir_fd=fd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            raise unsafe(name, "replaces a directory")
        os.unlink(leaf, dir_fd=fd)

    def _hardlink(self, fd: int, leaf: str, name: str, target: str) -> None:
        src = _clean_name(target)
        if src not in self.seen:
            raise unsafe(name, f"hard link to {target!r}, not an earlier member")
        sparts = src.split("/")
        sfd = self._dir(sparts[:-1], name)
        try:
            st = os.stat(sparts[-1], dir_fd=sfd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                raise unsafe(name, f"hard link to {target!r}, which is not a file")
            os.link(sparts[-1], leaf, src_dir_fd=sfd, dst_dir_fd=fd, follow_symlinks=False)
        finally:
            os.close(sfd)
        self.hardlinks += 1

    def _file(self, fd: int, leaf: str, name: str, m: Member, open_member: Any) -> None:
        out = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW | os.O_CLOEXEC,
                      0o600, dir_fd=fd)
        try:
            with open_member(m) as src:
                while True:
                    check_cancelled(self.job)
                    piece = src.read(self.chunk)
                    if not piece:
                        break
                    self.written += len(piece)
                    if self.written > self.max_bytes:
                        raise _too_big(self.max_bytes)
                    view = memoryview(piece)
                    while view:
                        view = view[os.write(out, view):]
                    self.job.progress(self.written, self.total, "bytes")
            os.fchmod(out, m.mode & KEEP_BITS)
            if m.mtime:
                os.utime(out, (m.mtime, m.mtime))
        finally:
            os.close(out)
        self.files += 1

    def finish(self) -> None:
        """Give directories their modes (deepest first, after their content), each
        reached through descriptors like the members."""
        for name, mode in sorted(self.dir_modes, key=lambda p: -p[0].count("/")):
            parts = name.split("/")
            with contextlib.suppress(OSError, PermissionDenied):
                fd = self._dir(parts[:-1], name)
                try:
                    sub = os.open(parts[-1], LIST_FLAGS, dir_fd=fd)
                    try:
                        os.fchmod(sub, mode)
                    finally:
                        os.close(sub)
                finally:
                    os.close(fd)


def _exists(fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _too_big(limit: int) -> TooLarge:
    return TooLarge(f"the archive unpacks to more than {limit} bytes (fs.max_extract_bytes); "
                    "nothing was extracted", {"reason": "max_extract_bytes", "limit": limit})


@contextlib.contextmanager
def _open_archive(fd: int, path: str, max_members: int
                  ) -> Iterator[tuple[str, list[Member], Any]]:
    """``(format, members, opener)`` of the archive in ``fd`` (detected from its content),
    every member checked (``_clean_name``, link targets, tar's ``data`` filter) and their
    count bounded before anything is written; -32007 (``reason: "bad_archive"``) when it
    is neither tar nor zip."""
    f = open(os.dup(fd), "rb")  # noqa: SIM115 - closed below
    try:
        if zipfile.is_zipfile(f):
            f.seek(0)
            try:
                zf = zipfile.ZipFile(f)
            except (zipfile.BadZipFile, OSError) as exc:
                raise _bad(path, exc) from None
            with zf:
                yield "zip", _checked(_zip_members(zf), max_members), \
                    lambda m: zf.open(m.raw)
            return
        fmt = _tar_format(f)
        try:
            tf = tarfile.open(fileobj=f, mode="r:*",  # noqa: SIM115 - with below
                              tarinfo=_BoundedTarInfo)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise _bad(path, exc) from None
        with tf:
            yield fmt, _checked(_tar_members(tf), max_members), lambda m: _tar_open(tf, m)
    finally:
        f.close()


def _checked(members: Iterator[Member], max_members: int) -> list[Member]:
    out: list[Member] = []
    for m in members:
        if len(out) >= max_members:
            raise TooLarge(f"the archive has more than {max_members} members "
                           "(fs.max_extract_members); nothing was extracted",
                           {"reason": "max_extract_members", "limit": max_members})
        m.name = _clean_name(m.name)
        if m.kind == "symlink":
            _check_link_target(m.name, m.target)
        out.append(m)
    _check_link_chains(out)
    return out


#: Most symlinks one resolution follows (Linux's MAXSYMLINKS); a chain longer is refused.
_MAX_HOPS = 40


def _check_link_chains(members: list[Member]) -> None:
    """``unsafe`` when a symlink member's target leaves the destination once the other
    symlink members of the archive are followed as the kernel would (``a -> .`` then
    ``b -> a/..``: each target stays inside on its own, ``b`` points at dst's parent)."""
    links: dict[str, str] = {}
    for m in members:  # the last member of a name is what stays on disk
        if m.kind == "symlink":
            links[m.name] = m.target
        else:
            links.pop(m.name, None)
    for name, target in links.items():
        _resolve_inside(name, target, links)


def _resolve_inside(name: str, target: str, links: dict[str, str]) -> None:
    where = name.split("/")[:-1]
    todo = list(reversed(target.split("/")))
    hops = 0
    while todo:
        part = todo.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not where:
                raise unsafe(name, f"link target {target!r} leaves the destination "
                                   "through the archive's other symlinks")
            where.pop()
            continue
        path = "/".join([*where, part])
        if path in links:
            hops += 1
            if hops > _MAX_HOPS:
                raise unsafe(name, f"link target {target!r}: more than {_MAX_HOPS} "
                                   "symlinks to follow")
            nxt = links[path]
            if nxt.startswith("/"):
                raise unsafe(name, f"link target {target!r} goes through an absolute link")
            todo.extend(reversed(nxt.split("/")))
            continue
        where.append(part)


@contextlib.contextmanager
def _tar_open(tf: tarfile.TarFile, m: Member) -> Iterator[IO[bytes]]:
    f = tf.extractfile(m.raw)
    if f is None:
        raise unsafe(m.name, "no content")
    with f:
        yield f


def _tar_format(f: IO[bytes]) -> str:
    f.seek(0)
    head = f.read(6)
    f.seek(0)
    if head.startswith(b"\x1f\x8b"):
        return "tar.gz"
    if head.startswith(b"\xfd7zXZ"):
        return "tar.xz"
    if head.startswith(b"BZh"):
        return "tar.bz2"
    return "tar"


def _bad(path: str, exc: BaseException) -> Conflict:
    return Conflict(f"not a readable tar or zip archive: {path} ({exc})",
                    {"path": path, "reason": "bad_archive"})


def extract(src: Located, dst: Located, overwrite: bool, max_bytes: int, max_members: int,
            chunk: int, umask: int, job: Job) -> ExtractResult:
    """Unpack the archive at ``src`` into the directory ``dst`` (see the module docstring).

    Errors: -32002 ``unsafe_member`` (nothing written), -32004 ``max_extract_members`` /
    ``max_extract_bytes`` (nothing written), -32007 ``bad_archive`` or ``dst`` not a
    directory, -32003 an entry of the archive already in ``dst`` without ``overwrite``,
    -32001 ``src`` or ``dst``'s parent missing.
    """
    if len(dst.missing) > 1:
        parent = os.path.dirname(dst.path)
        raise NotFound(f"parent directory does not exist: {parent}",
                       {"errno": "ENOENT", "path": parent})
    if dst.st is not None and not stat.S_ISDIR(dst.st.st_mode):
        raise Conflict(f"not a directory: {dst.path}", {"errno": "ENOTDIR", "path": dst.path})
    sfd = src.open(READ_FLAGS)
    try:
        check_regular(sfd, src.path)
        # the temp directory: in dst's parent when dst is new (renamed to dst at the end),
        # in dst itself when it exists (its entries are moved up at the end)
        home = dst.dir_fd if dst.st is None else dst.open_dir()
        try:
            try:
                tmp = _make_temp_dir(home, dst.name or "extract")
            except OSError as exc:  # EACCES: the peer may not write there
                raise error_from_oserror(exc, dst.path) from None
            try:
                result = _extract_into(sfd, src, dst, home, tmp, overwrite, max_bytes,
                                       max_members, chunk, umask, job)
            finally:
                _remove_temp(home, tmp)
        finally:
            if home != dst.dir_fd:
                os.close(home)
    finally:
        os.close(sfd)
    return result


def _make_temp_dir(parent: int, name: str) -> str:
    for _ in range(100):
        tmp = f".{name[:100]}.{secrets.token_hex(6)}{TEMP_SUFFIX}"
        try:
            os.mkdir(tmp, 0o700, dir_fd=parent)
            return tmp
        except FileExistsError:
            continue
    raise AlreadyExists("no free temp name", {"errno": "EEXIST"})


def _remove_temp(parent: int, tmp: str) -> None:
    """Remove the temp directory ``tmp`` in ``parent`` and its content (if still there)."""
    try:
        fd = os.open(tmp, LIST_FLAGS, dir_fd=parent)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            _clear_tree(fd, NullJob())
    finally:
        os.close(fd)
    with contextlib.suppress(OSError):
        os.rmdir(tmp, dir_fd=parent)


def _extract_into(sfd: int, src: Located, dst: Located, home: int, tmp: str, overwrite: bool,
                  max_bytes: int, max_members: int, chunk: int, umask: int,
                  job: Job) -> ExtractResult:
    top = os.open(tmp, LIST_FLAGS, dir_fd=home)
    try:
        with _open_archive(sfd, src.path, max_members) as (fmt, members, opener):
            total = sum(m.size for m in members)  # declared sizes, before writing
            if total > max_bytes:
                raise _too_big(max_bytes)
            ex = _Extract(top, max_bytes, max_members, chunk, job, total)
            for m in members:
                try:
                    ex.add(m, opener)
                except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib_error()) as exc:
                    raise _bad(src.path, exc) from None
            ex.finish()
        if dst.st is None:
            os.chmod(tmp, 0o777 & ~umask, dir_fd=home, follow_symlinks=False)
            assert dst.name is not None
            try:
                rename_noreplace(home, tmp, home, dst.name)
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    raise AlreadyExists(f"{dst.path} appeared while extracting",
                                        {"errno": "EEXIST", "path": dst.path}) from None
                raise
        else:
            _collisions(top, home, "", overwrite, skip=tmp)
            _move_all(top, home)
        fsync_dir(home)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        raise _bad(src.path, exc) from None
    except OSError as exc:
        raise error_from_oserror(exc, dst.path) from None
    finally:
        os.close(top)
    job.progress(ex.written, total, "bytes", force=True)
    return ExtractResult(src=src.path, dst=dst.path, format=fmt, created=dst.st is None,
                         members=ex.members, files=ex.files, dirs=ex.dirs,
                         symlinks=ex.symlinks, hardlinks=ex.hardlinks,
                         output_bytes=ex.written)


def zlib_error() -> type[Exception]:
    """``zlib.error`` (corrupt compressed data)."""
    import zlib

    return zlib.error


def _collisions(src_fd: int, dst_fd: int, rel: str, overwrite: bool,
                skip: str | None = None) -> None:
    """-32003 for the first entry of ``src_fd`` already in ``dst_fd`` (directories on both
    sides merge; with ``overwrite`` only file/directory mismatches refuse, -32007)."""
    with os.scandir(src_fd) as it:
        names = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
    for name, is_dir in names:
        if name == skip:
            continue
        try:
            there = os.stat(name, dir_fd=dst_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        where = f"{rel}/{name}" if rel else name
        if is_dir and stat.S_ISDIR(there.st_mode):
            with _pair(src_fd, dst_fd, name) as (a, b):
                _collisions(a, b, where, overwrite)
            continue
        if not overwrite:
            raise AlreadyExists(f"{where} exists in the destination (use overwrite)",
                                {"errno": "EEXIST", "path": where})
        if is_dir or stat.S_ISDIR(there.st_mode):
            raise Conflict(f"{where}: a file and a directory of the same name",
                           {"path": where, "reason": "type_mismatch"})


@contextlib.contextmanager
def _pair(src_fd: int, dst_fd: int, name: str) -> Iterator[tuple[int, int]]:
    a = os.open(name, LIST_FLAGS, dir_fd=src_fd)
    try:
        b = os.open(name, LIST_FLAGS, dir_fd=dst_fd)
        try:
            yield a, b
        finally:
            os.close(b)
    finally:
        os.close(a)


def _move_all(src_fd: int, dst_fd: int) -> None:
    """Rename every entry of ``src_fd`` into ``dst_fd`` (over files, merging directories)."""
    with os.scandir(src_fd) as it:
        names = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
    for name, is_dir in names:
        try:
            there = os.stat(name, dir_fd=dst_fd, follow_symlinks=False)
        except FileNotFoundError:
            there = None
        if there is not None and is_dir and stat.S_ISDIR(there.st_mode):
            with _pair(src_fd, dst_fd, name) as (a, b):
                _move_all(a, b)
            continue
        os.rename(name, name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
