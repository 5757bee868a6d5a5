"""The fs sandbox under a stateful attack (issue 8): hypothesis drives random fs operations
on ``FsService`` in-process, on real files, while an attacker thread keeps swapping
directories inside the root for symlinks to an outside directory (and to outside files),
renaming directories, and putting hard links to an outside file in place of inside files.

Invariants, checked after every step and at teardown:

- nothing outside the root changes (names, types, modes, contents, link targets of the
  whole temp dir except the root's subtree);
- no result carries outside content (``OUTSIDE-`` marker, an outside digest, the size of
  the outside sparse file), an outside inode, a path outside the root, or a name that only
  exists outside (every outside-only name starts with ``S``; no rule or attack creates one
  inside);
- every failure is a typed ``XsysError`` with one of the codes a refused or racing request
  may get (never a bare ``OSError``, an ``AssertionError`` or -32603).

Besides the thread, which lands between a request's system calls only by chance, a rule
(``choose_injection``) makes the attacker act synchronously right after each path lookup
of the following requests, on the entry the lookup found (or its parent): the exact
check-then-use window, chosen by hypothesis.

The attacker acts only through directory descriptors opened with ``O_NOFOLLOW`` (like the
sandbox), so it never changes anything outside itself. Hard links to the outside file
``Hfile`` are the documented exception for reads (a hard link is the same file: reading it
is allowed, writing and chmod are refused), so its content may be read but never changed.

The plain tests at the end pin the bugs the machine found, each as one deterministic
interleaving.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import random
import shutil
import stat
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

try:
    from xsys.fs.config import FsConfig
except ImportError:  # a tree from before the fs package held its config (for comparisons)
    from xsys.config import FsConfig  # type: ignore[no-redef,attr-defined]
from xsys.fs.model import Existence
from xsys.fs.service import FsService
from xsys.fs.tree import FindQuery
from xsys.protocol import XsysError

#: Content marker of every outside file but ``Hfile``.
MARK = b"OUTSIDE-"
#: Apparent size of the outside sparse file ``Sbig``: no inside file comes near it.
SBIG_SIZE = 3_333_333
#: Codes a request may get while racing the attacker or when refused: not found, permission
#: denied (outside, changed, hard-linked, root), exists, too large, conflict, bad params.
ALLOWED_CODES = frozenset({-32001, -32002, -32003, -32004, -32007, -32602})
#: Times each rule runs its operation in a row, each time racing the attacker afresh.
REPEAT = 3

#: Outside tree: names that also exist inside (so a path followed out of the root reaches
#: something) and names that exist only outside (leading ``S``).
OUTSIDE_FILES: dict[str, bytes] = {
    "Ssecret": MARK + b"secret\n",
    "f": MARK + b"f\n",
    "a/f": MARK + b"a-f\n",
    "a/Sa": MARK + b"a-Sa\n",
    "a/b/f": MARK + b"a-b-f\n",
    "Sdir/Sdeep": MARK + b"deep\nline2\n",
    "Sdir/f": MARK + b"Sdir-f\n",
    "c/Sc": MARK + b"c-Sc\n",
}
HARDLINK_SOURCE = "Hfile"
HARDLINK_DATA = b"HLINK-shared\n"

#: Components of the paths the rules use.
INSIDE_NAMES = ["a", "b", "c", "f", "lin", "lout"]
WRITE_NAMES = ["..", ".", "outside"]
READ_NAMES = [*WRITE_NAMES, "Ssecret", "Sdir", "Sbig", "Hfile"]

PAYLOADS = st.one_of(st.sampled_from([b"", b"x", b"inside\n", b"l1\nl2\nl3\n"]),
                     st.binary(max_size=24))


# --------------------------------------------------------------------------- helpers


def snapshot(top: Path, skip: str) -> dict[str, tuple[str, int, bytes | str]]:
    """Every entry below ``top`` (and ``top`` itself) except the subtree ``skip``: relative
    path -> (type, permission bits, content | link target)."""
    out: dict[str, tuple[str, int, bytes | str]] = {
        ".": ("dir", stat.S_IMODE(os.lstat(top).st_mode), b"")}
    for dirpath, dirnames, filenames in os.walk(top):
        if dirpath == str(top):
            dirnames[:] = [d for d in dirnames if d != skip]
            filenames = [f for f in filenames if f != skip]
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st_ = os.lstat(p)
            rel = os.path.relpath(p, top)
            mode = stat.S_IMODE(st_.st_mode)
            if stat.S_ISLNK(st_.st_mode):
                out[rel] = ("link", 0, os.readlink(p))
            elif stat.S_ISDIR(st_.st_mode):
                out[rel] = ("dir", mode, b"")
            elif stat.S_ISREG(st_.st_mode):
                with open(p, "rb") as f:
                    out[rel] = ("file", mode, hashlib.sha256(f.read()).digest())
            else:
                out[rel] = ("other", mode, b"")
    return out


def force_rmtree(top: Path) -> None:
    """Remove ``top`` even where a rule left a directory at mode 000 (no links followed)."""
    for dirpath, dirnames, _ in os.walk(top):
        for d in dirnames:
            p = os.path.join(dirpath, d)
            with contextlib.suppress(OSError):
                if stat.S_ISDIR(os.lstat(p).st_mode):  # (the attacker has stopped)
                    os.chmod(p, 0o700)
    shutil.rmtree(top, ignore_errors=True)


def flat(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """(field name, leaf value) pairs of a result: dataclasses, maps and lists flattened,
    list items keeping their list's name."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        for k, v in value.items():
            yield from flat(v, str(k))
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from flat(v, key)
    else:
        yield key, value


DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Attacker:
    """A thread that keeps changing the tree inside ``root`` (see the module docstring),
    as fast as it can, until ``stop``. Every action works on descriptors: the parent
    directory is opened component by component with ``O_NOFOLLOW``, so a symlink that the
    fs operations moved around is never followed out by the attacker itself."""

    def __init__(self, root: Path, outside: Path, seed: int) -> None:
        self.root = root
        self.outside = outside
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.warm = threading.Event()
        self.actions = 0
        self.failures: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, name="sandbox-attacker", daemon=True)
        self.out_targets = [str(outside), str(outside / "a"), str(outside / "Sdir"),
                            str(outside / "Ssecret"), str(outside / "a" / "f"),
                            str(outside / "Sbig"), str(outside / "f")]
        weighted: list[tuple[Callable[[], None], int]] = [
            (self.swap_dir_out, 6), (self.swap_back_in, 4), (self.link_out, 3),
            (self.hardlink_in, 3), (self.file_back, 2), (self.rename_dir, 2),
            (self.populate, 3), (self.link_in, 1)]
        self.actions_list = [fn for fn, w in weighted for _ in range(w)]

    # -- plumbing

    def start(self) -> None:
        """Start the thread and wait until it has gone through a first round of actions."""
        self.thread.start()
        self.warm.wait(10)

    def close(self) -> None:
        """Stop the thread and wait for it."""
        self.stop.set()
        self.thread.join(10)

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self.rng.choice(self.actions_list)()
            except OSError:
                pass
            except BaseException as exc:  # the attacker's own bug: reported at teardown
                self.failures.append(exc)
                return
            self.actions += 1
            if self.actions == 50:
                self.warm.set()
        self.warm.set()

    @contextlib.contextmanager
    def parent(self, rel: str) -> Iterator[tuple[int, str]]:
        """(descriptor of the directory holding ``rel``, last name), walked without
        following symlinks; OSError when a component is not a real directory."""
        parts = rel.split("/")
        fd = os.open(self.root, DIR_FLAGS)
        try:
            for comp in parts[:-1]:
                sub = os.open(comp, DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = sub
            yield fd, parts[-1]
        finally:
            os.close(fd)

    def pick(self) -> str:
        depth = self.rng.choice((1, 1, 2))
        return "/".join(self.rng.choice(INSIDE_NAMES) for _ in range(depth))

    def _lstat(self, fd: int, name: str) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def _new_file(self, fd: int, name: str, data: bytes) -> None:
        tmp = f".atk-{self.rng.randrange(1 << 30)}"
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644,
                      dir_fd=fd)
        try:
            os.write(out, data)
        finally:
            os.close(out)
        try:
            os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
        except OSError:
            os.unlink(tmp, dir_fd=fd)
            raise

    def _outward(self, rel: str) -> str:
        target = self.rng.choice(self.out_targets)
        if self.rng.random() < 0.5:
            # a relative spelling that climbs to / from any depth, so that it still points
            # outside after a rule moved the link deeper (where a shorter one would land
            # inside the root and let a rule create an outside-only name there)
            return "../" * 24 + target.lstrip("/")
        return target

    # -- actions

    def swap_dir_out(self, rel: str | None = None) -> None:
        """A real directory becomes a symlink to an outside directory or file (the
        directory is kept under a hidden stash name)."""
        rel = rel or self.pick()
        with self.parent(rel) as (fd, name):
            st_ = self._lstat(fd, name)
            if st_ is not None and stat.S_ISDIR(st_.st_mode):
                with self.parent(f".stash{self.rng.randrange(4)}") as (rfd, stash):
                    os.rename(name, stash, src_dir_fd=fd, dst_dir_fd=rfd)
            elif st_ is not None:
                os.unlink(name, dir_fd=fd)
            os.symlink(self._outward(rel), name, dir_fd=fd)

    def swap_back_in(self, rel: str | None = None) -> None:
        """A symlink becomes a real directory again (a stashed one, or a new one)."""
        rel = rel or self.pick()
        with self.parent(rel) as (fd, name):
            st_ = self._lstat(fd, name)
            if st_ is None or not stat.S_ISLNK(st_.st_mode):
                return
            os.unlink(name, dir_fd=fd)
            try:
                with self.parent(f".stash{self.rng.randrange(4)}") as (rfd, stash):
                    os.rename(stash, name, src_dir_fd=rfd, dst_dir_fd=fd)
            except OSError:
                os.mkdir(name, dir_fd=fd)
                sub = os.open(name, DIR_FLAGS, dir_fd=fd)
                try:
                    self._new_file(sub, "f", b"inside-new\n")
                finally:
                    os.close(sub)

    def link_out(self, rel: str | None = None) -> None:
        """A file (or nothing) becomes a symlink to outside, atomically (rename)."""
        rel = rel or self.pick()
        with self.parent(rel) as (fd, name):
            tmp = f".atk-{self.rng.randrange(1 << 30)}"
            os.symlink(self._outward(rel), tmp, dir_fd=fd)
            try:
                os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
            except OSError:
                os.unlink(tmp, dir_fd=fd)
                raise

    def link_in(self, rel: str | None = None) -> None:
        """A symlink that stays inside the root (relative or absolute)."""
        rel = rel or self.pick()
        target = self.rng.choice(["a", "c", "../a", str(self.root / "b"), "f"])
        with self.parent(rel) as (fd, name):
            if self._lstat(fd, name) is None:
                os.symlink(target, name, dir_fd=fd)

    def hardlink_in(self, rel: str | None = None) -> None:
        """A file (or nothing) becomes a hard link to the outside ``Hfile`` (atomically,
        so a request that looked at a one-link file may then open the shared one)."""
        rel = rel or self.pick()
        with self.parent(rel) as (fd, name):
            tmp = f".atk-{self.rng.randrange(1 << 30)}"
            os.link(self.outside / HARDLINK_SOURCE, tmp, dst_dir_fd=fd)
            try:
                os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
            except OSError:
                os.unlink(tmp, dir_fd=fd)
                raise

    def file_back(self, rel: str | None = None) -> None:
        """A hard link or symlink becomes a plain inside file again."""
        rel = rel or self.pick()
        with self.parent(rel) as (fd, name):
            st_ = self._lstat(fd, name)
            if st_ is not None and not stat.S_ISDIR(st_.st_mode):
                self._new_file(fd, name, b"inside-file\n")

    def rename_dir(self) -> None:
        """Move an entry to another place inside the root."""
        src, dst = self.pick(), self.pick()
        with self.parent(src) as (sfd, sname), self.parent(dst) as (dfd, dname):
            os.rename(sname, dname, src_dir_fd=sfd, dst_dir_fd=dfd)

    def populate(self, rel: str | None = None) -> None:
        """Keep the tree populated: a directory with a file in it."""
        rel = rel or self.pick()
        with self.parent(rel) as (fd, name):
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, dir_fd=fd)
            sub = os.open(name, DIR_FLAGS, dir_fd=fd)
            try:
                self._new_file(sub, self.rng.choice(["f", "b"]), b"inside-pop\n")
            finally:
                os.close(sub)


# --------------------------------------------------------------------------- the machine


def rel_paths(extra: list[str]) -> st.SearchStrategy[str]:
    """Relative paths of 1-3 components, mostly names that exist inside the root."""
    return st.lists(st.sampled_from(INSIDE_NAMES * 3 + extra), min_size=1,
                    max_size=3).map("/".join)


class SandboxMachine(RuleBasedStateMachine):
    """Random ``FsService`` operations on paths inside a root (with ``..``, symlinks, and
    outside names) against the ``Attacker`` (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.base = Path(tempfile.mkdtemp(prefix="xsys-sandbox-sm-")).resolve()
        self.root = self.base / "root"
        self.outside = self.base / "outside"
        self._build()
        self.before = snapshot(self.base, skip="root")
        self.outside_inodes = {os.lstat(os.path.join(d, n)).st_ino
                               for d, dirs, files in os.walk(self.outside)
                               for n in dirs + files if n != HARDLINK_SOURCE}
        self.outside_inodes.add(os.lstat(self.outside).st_ino)
        self.outside_inodes.add(os.lstat(self.base).st_ino)
        self.outside_digests = {hashlib.sha256(data).hexdigest()
                                for data in OUTSIDE_FILES.values()}
        self.outside_digests.add(hashlib.sha256(b"\0" * SBIG_SIZE).hexdigest())
        self.svc = FsService(FsConfig(roots=(str(self.root),)))
        for name in ("locate", "resolve"):  # (``resolve`` on the tree before the rewrite)
            real = getattr(self.svc, name, None)
            if real is not None:
                setattr(self.svc, name, self._injecting(real))
        self.attacker: Attacker | None = None
        self.injection: str | None = None
        self.switch_interval = sys.getswitchinterval()
        self.history: list[str] = []  # the operations so far, for failure messages

    def _build(self) -> None:
        for rel, data in OUTSIDE_FILES.items():
            p = self.outside / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        os.chmod(self.outside / "Ssecret", 0o600)
        with open(self.outside / "Sbig", "wb") as f:
            f.truncate(SBIG_SIZE)
        (self.outside / HARDLINK_SOURCE).write_bytes(HARDLINK_DATA)
        for rel in ("a/b", "b", "c"):
            (self.root / rel).mkdir(parents=True)
        for rel in ("f", "a/f", "a/b/f", "c/f"):
            (self.root / rel).write_bytes(b"inside-" + rel.encode() + b"\nlast\n")
        os.symlink("a", self.root / "lin")
        os.symlink(self.outside, self.root / "lout")
        os.symlink("../c", self.root / "b" / "lin")

    def teardown(self) -> None:
        try:
            if self.attacker is not None:
                self.attacker.close()
                assert not self.attacker.failures, self.attacker.failures
            self.nothing_outside_changed()
        finally:
            sys.setswitchinterval(self.switch_interval)
            force_rmtree(self.base)

    # -- the attacker's move right inside a request

    def _injecting(self, real: Callable[..., Any]) -> Callable[..., Any]:
        """``real`` (the service's path lookup), then the chosen attacker action on the
        entry it found: the swap lands exactly between a request's lookup and its use."""

        def lookup(*args: Any, **kwargs: Any) -> Any:
            found = real(*args, **kwargs)
            self.inject(getattr(found, "path", None) or getattr(found, "entry", None))
            return found

        return lookup

    def inject(self, where: str | None) -> None:
        kind = self.injection
        if kind is None or self.attacker is None or where is None or not self._inside(where):
            return
        rel = os.path.relpath(where, self.root)
        if kind == "swap_parent_out":
            kind, rel = "swap_dir_out", os.path.dirname(rel)
        if rel in ("", ".") or any(c.startswith("S") for c in rel.split("/")):
            return  # (never make an outside-only name inside)
        with contextlib.suppress(OSError):
            getattr(self.attacker, kind)(rel)

    # -- checks

    def path_arg(self, rel: str, absolute: bool) -> str:
        return f"{self.root}/{rel}" if absolute else rel

    def _inside(self, value: str) -> bool:
        return value == str(self.root) or value.startswith(f"{self.root}/")

    def check_result(self, what: str, result: Any) -> None:
        if isinstance(result, Existence) and not result.exists:
            return  # a missing path, spelled lexically: it describes nothing
        for key, value in flat(result):
            if key == "symlink_target":  # a link's own text: may name anything
                continue
            if isinstance(value, bytes):
                assert MARK not in value, f"{what}: outside content in {key}: {value[:80]!r}"
            elif isinstance(value, str):
                assert MARK.decode() not in value, f"{what}: outside content in {key}"
                if key in ("path", "src", "dst"):
                    assert self._inside(value), f"{what}: {key} outside the root: {value}"
                    rel = os.path.relpath(value, self.root)
                    assert not any(c.startswith("S") for c in rel.split("/")), \
                        f"{what}: an outside-only name in {key}: {value}"
                elif key == "name":
                    assert not any(c.startswith("S") for c in value.split("/")), \
                        f"{what}: an outside-only name listed: {value}"
                elif key == "digest":
                    assert value not in self.outside_digests, f"{what}: outside digest"
            elif isinstance(value, int):
                if key in ("size", "length"):
                    assert value != SBIG_SIZE, f"{what}: the outside sparse file's size"
                if key == "inode":
                    assert value not in self.outside_inodes, f"{what}: an outside inode"
        if what.startswith("du"):
            assert result.size < SBIG_SIZE, f"{what}: counted outside files: {result}"

    def op(self, what: str, fn: Callable[[], Any]) -> None:
        self.history.append(f"{what} (attacker inside the request: {self.injection})")
        for _ in range(REPEAT):
            try:
                self._op_once(what, fn)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{self.steps()}") from exc

    def steps(self) -> str:
        return "operations so far:\n  " + "\n  ".join(self.history)

    def _op_once(self, what: str, fn: Callable[[], Any]) -> None:
        try:
            result = fn()
        except XsysError as exc:
            assert exc.code in ALLOWED_CODES, \
                f"{what}: unexpected error {exc.code} {exc}: {exc.data!r}"
            assert MARK.decode() not in repr(exc.data), f"{what}: outside content in error"
            return
        except Exception as exc:
            raise AssertionError(f"{what}: untyped failure {type(exc).__name__}: {exc!r}") \
                from exc
        self.check_result(what, result)

    @invariant()
    def nothing_outside_changed(self) -> None:
        now = snapshot(self.base, skip="root")
        if now != self.before:
            changed = sorted(k for k in set(now) | set(self.before)
                             if now.get(k) != self.before.get(k))
            raise AssertionError(f"outside the root changed: {changed}\n{self.steps()}")

    # -- rules

    @initialize(seed=st.integers(0, 2**32 - 1))
    def start_attacker(self, seed: int) -> None:
        # switch threads often so the attacker lands between the system calls of a request
        sys.setswitchinterval(1e-5)
        self.attacker = Attacker(self.root, self.outside, seed)
        self.attacker.start()

    @rule(kind=st.sampled_from([None, "hardlink_in", "link_out", "swap_dir_out",
                                "swap_parent_out", "file_back"]))
    def choose_injection(self, kind: str | None) -> None:
        """What the attacker does inside the next requests, right after their lookup."""
        self.injection = kind

    @rule(rel=rel_paths(WRITE_NAMES), absolute=st.booleans(), data=PAYLOADS,
          mode=st.sampled_from(["create", "overwrite", "append"]), parents=st.booleans())
    def write(self, rel: str, absolute: bool, data: bytes, mode: str, parents: bool) -> None:
        path = self.path_arg(rel, absolute)
        self.op(f"write {path} {mode}",
                lambda: self.svc.write(path, data, mode=mode,  # type: ignore[arg-type]
                                       make_parents=parents))

    @rule(rel=rel_paths(WRITE_NAMES), absolute=st.booleans(), parents=st.booleans())
    def mkdir(self, rel: str, absolute: bool, parents: bool) -> None:
        path = self.path_arg(rel, absolute)
        self.op(f"mkdir {path}", lambda: self.svc.mkdir(path, parents=parents))

    @rule(rel=rel_paths(READ_NAMES), absolute=st.booleans(),
          mode=st.sampled_from([0o000, 0o600, 0o644, 0o755, 0o777, 0o4755]))
    def chmod(self, rel: str, absolute: bool, mode: int) -> None:
        path = self.path_arg(rel, absolute)
        self.op(f"chmod {path} {mode:o}", lambda: self.svc.chmod(path, mode))

    @rule(rel=rel_paths(READ_NAMES), absolute=st.booleans(), recursive=st.booleans())
    def remove(self, rel: str, absolute: bool, recursive: bool) -> None:
        path = self.path_arg(rel, absolute)
        self.op(f"remove {path} recursive={recursive}",
                lambda: self.svc.remove(path, recursive=recursive))

    @rule(src=rel_paths(READ_NAMES), dst=rel_paths(WRITE_NAMES), absolute=st.booleans(),
          overwrite=st.booleans())
    def copy(self, src: str, dst: str, absolute: bool, overwrite: bool) -> None:
        s, d = self.path_arg(src, absolute), self.path_arg(dst, not absolute)
        self.op(f"copy {s} {d}", lambda: self.svc.copy(s, d, overwrite=overwrite))

    @rule(src=rel_paths(READ_NAMES), dst=rel_paths(WRITE_NAMES), absolute=st.booleans(),
          overwrite=st.booleans())
    def move(self, src: str, dst: str, absolute: bool, overwrite: bool) -> None:
        s, d = self.path_arg(src, absolute), self.path_arg(dst, absolute)
        self.op(f"move {s} {d}", lambda: self.svc.move(s, d, overwrite=overwrite))

    @rule(rel=rel_paths(READ_NAMES), absolute=st.booleans(), recursive=st.booleans())
    def list(self, rel: str, absolute: bool, recursive: bool) -> None:
        path = self.path_arg(rel, absolute)
        self.op(f"list {path}", lambda: self.svc.list(path, recursive=recursive,
                                                      include_hidden=True))

    @rule(rel=rel_paths(READ_NAMES), absolute=st.booleans(),
          kind=st.sampled_from([None, "file", "dir", "symlink"]))
    def find(self, rel: str, absolute: bool, kind: str | None) -> None:
        path = self.path_arg(rel, absolute)
        self.op(f"find {path}", lambda: self.svc.find(path, FindQuery(name="*", type=kind)))

    @rule(rel=rel_paths(READ_NAMES), absolute=st.booleans())
    def du(self, rel: str, absolute: bool) -> None:
        path = self.path_arg(rel, absolute)
        self.op(f"du {path}", lambda: self.svc.du(path))

    @rule(rel=rel_paths(READ_NAMES), absolute=st.booleans(), offset=st.integers(0, 8),
          length=st.none() | st.integers(0, 64))
    def read(self, rel: str, absolute: bool, offset: int, length: int | None) -> None:
        path = self.path_arg(rel, absolute)
        self.op(f"read {path}", lambda: self.svc.read(path, offset, length))

    @rule(rel=rel_paths(READ_NAMES), absolute=st.booleans())
    def hash(self, rel: str, absolute: bool) -> None:
        path = self.path_arg(rel, absolute)
        self.op(f"hash {path}", lambda: self.svc.hash(path))

    @rule(rel=rel_paths(READ_NAMES), absolute=st.booleans(), lines=st.integers(0, 5))
    def tail(self, rel: str, absolute: bool, lines: int) -> None:
        path = self.path_arg(rel, absolute)
        self.op(f"tail {path}", lambda: self.svc.tail(path, lines))

    @rule(rel=rel_paths(READ_NAMES), absolute=st.booleans())
    def stat(self, rel: str, absolute: bool) -> None:
        path = self.path_arg(rel, absolute)
        self.op(f"stat {path}", lambda: self.svc.stat(path))

    @rule(rel=rel_paths(READ_NAMES), absolute=st.booleans())
    def exists(self, rel: str, absolute: bool) -> None:
        path = self.path_arg(rel, absolute)
        self.op(f"exists {path}", lambda: self.svc.exists(path))


# No shrinking: with a concurrent attacker a failing run does not replay exactly, so
# shrinking would mostly burn time (hypothesis then reports the run as flaky); the
# assertion message lists the operations of the failing run as they ran.
SandboxMachine.TestCase.settings = settings(
    max_examples=25, stateful_step_count=30, deadline=None, database=None,
    phases=(Phase.explicit, Phase.generate), suppress_health_check=[HealthCheck.too_slow])
test_sandbox_holds_under_a_concurrent_attacker = SandboxMachine.TestCase


# --------------------------------------------------------------------------- found by the machine


def _swap_after_lookup(svc: FsService, swap: Callable[[], None]) -> None:
    """Run ``swap`` once, right after the service's next path lookup returns: the same
    interleaving as an attacker that wins the race, without timing."""
    real = svc.locate
    done = False

    def locate(*args: Any, **kwargs: Any) -> Any:
        nonlocal done
        found = real(*args, **kwargs)
        if not done:
            done = True
            swap()
        return found

    svc.locate = locate  # type: ignore[method-assign]


def _hardlink_setup(tmp_path: Path) -> tuple[FsService, Path, Path, Callable[[], None]]:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    shared = outside / "shared"
    shared.write_bytes(b"OUTSIDE-shared\n")
    os.chmod(shared, 0o600)
    (root / "x").write_bytes(b"inside\n")  # one link: passes the hard-link rule

    def swap() -> None:  # x becomes a hard link to the outside file, atomically
        os.link(shared, root / ".tmp")
        os.rename(root / ".tmp", root / "x")

    return FsService(FsConfig(roots=(str(root),))), root, shared, swap


def test_append_never_writes_a_hard_link_swapped_in_after_the_lookup(tmp_path: Path) -> None:
    """The hard-link rule (writes refused when ``st_nlink > 1``) must hold on the file
    actually opened, not on the ``lstat`` taken during the lookup."""
    svc, _root, shared, swap = _hardlink_setup(tmp_path)
    _swap_after_lookup(svc, swap)
    with contextlib.suppress(XsysError):
        svc.write("x", b"APPENDED\n", mode="append")
    assert shared.read_bytes() == b"OUTSIDE-shared\n"


def test_chmod_never_changes_a_hard_link_swapped_in_after_the_lookup(tmp_path: Path) -> None:
    """Same for ``fs.chmod``: the outside file keeps its mode."""
    svc, _root, shared, swap = _hardlink_setup(tmp_path)
    _swap_after_lookup(svc, swap)
    with contextlib.suppress(XsysError):
        svc.chmod("x", 0o666)
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o600


def test_copy_and_move_to_a_directory_spelled_with_a_dot_fail_typed(tmp_path: Path) -> None:
    """A destination that names an existing directory through ``.`` or ``..`` (``b/.``,
    ``b/c/..``) gets a typed error, not an ``AssertionError`` (-32603 on the wire)."""
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "b" / "c").mkdir(parents=True)
    (root / "f").write_bytes(b"f")
    svc = FsService(FsConfig(roots=(str(root),)))
    calls: list[tuple[str, Callable[[], Any]]] = [
        ("copy f b/.", lambda: svc.copy("f", "b/.")),
        ("copy a b/c/..", lambda: svc.copy("a", "b/c/..", overwrite=True)),
        ("move a b/.", lambda: svc.move("a", "b/.")),
        ("move f b/c/..", lambda: svc.move("f", "b/c/..", overwrite=True)),
    ]
    for what, call in calls:
        try:
            call()
        except XsysError as exc:
            assert exc.code in ALLOWED_CODES, (what, exc)
        except Exception as exc:
            raise AssertionError(f"{what}: untyped {type(exc).__name__}: {exc!r}") from exc
