"""The fs trust boundary, attacked: symlink and directory swaps racing real requests,
roots under every spelling, special files, hard links, kill -9 during writes, file names
that are not UTF-8, and a second local user acting through a root daemon (issue 8)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DaemonHandle
from xsys.client import Client
from xsys.protocol import (
    Conflict,
    InvalidParams,
    NotFound,
    PermissionDenied,
    XsysError,
)

# --------------------------------------------------------------------------- helpers


def snapshot(top: Path) -> dict[str, tuple[str, int, bytes | str]]:
    """Every entry below ``top``: relative path -> (type, mode, content or link target)."""
    out: dict[str, tuple[str, int, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            rel = os.path.relpath(p, top)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", 0, os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), b"")
            else:
                with open(p, "rb") as f:
                    out[rel] = ("file", stat.S_IMODE(st.st_mode), f.read())
    return out


def make_outside(tmp: Path) -> Path:
    """An outside directory full of things an attacker would like to change or read."""
    out = tmp / "outside"
    (out / "deep" / "er").mkdir(parents=True)
    for rel in ("secret.txt", "deep/a.txt", "deep/er/b.txt", "target"):
        (out / rel).write_bytes(b"OUTSIDE-" + rel.encode())
    os.chmod(out / "secret.txt", 0o600)
    return out


class Swapper:
    """A thread that keeps turning ``victim`` into a symlink to ``outside`` and back into
    a real directory (holding ``target`` and ``sub/``), as fast as it can."""

    def __init__(self, victim: Path, outside: Path) -> None:
        self.victim = victim
        self.outside = outside
        self.stop = threading.Event()
        self.swaps = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def _real_dir(self, path: Path) -> None:
        (path / "sub").mkdir(parents=True, exist_ok=True)
        (path / "target").write_bytes(b"inside")
        (path / "sub" / "x").write_bytes(b"inside-x")

    def run(self) -> None:
        spare = self.victim.with_name(self.victim.name + ".real")
        while not self.stop.is_set():
            try:
                if self.victim.is_symlink():
                    os.unlink(self.victim)
                    if spare.exists():
                        os.rename(spare, self.victim)
                    else:
                        self.victim.mkdir()
                    self._real_dir(self.victim)
                else:
                    if self.victim.exists():
                        shutil.rmtree(spare, ignore_errors=True)
                        os.rename(self.victim, spare)
                    os.symlink(self.outside, self.victim)
                self.swaps += 1
            except OSError:
                continue

    def __enter__(self) -> Swapper:
        self._real_dir(self.victim)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)


# --------------------------------------------------------------------------- races


RACE_OPS: dict[str, Callable[[Client, str], Any]] = {
    "chmod": lambda c, v: c.call("fs.chmod", path=f"{v}/target", mode=0o777),
    "remove_recursive": lambda c, v: c.call("fs.remove", path=f"{v}/sub", recursive=True),
    "remove_file": lambda c, v: c.call("fs.remove", path=f"{v}/target"),
    "mkdir": lambda c, v: c.call("fs.mkdir", path=f"{v}/newdir/a", parents=True),
    "append": lambda c, v: c.call("fs.write", path=f"{v}/target", data=b"APPENDED",
                                  mode="append"),
    "overwrite": lambda c, v: c.call("fs.write", path=f"{v}/target", data=b"OVERWRITTEN"),
    "create": lambda c, v: c.call("fs.write", path=f"{v}/created", data=b"NEW",
                                  mode="create", make_parents=True),
    "copy_src": lambda c, v: c.call("fs.copy", src=f"{v}/sub", dst=f"{v}/../copied",
                                    overwrite=True),
    "copy_dst": lambda c, v: c.call("fs.copy", src=f"{v}/../seed", dst=f"{v}/seeded",
                                    overwrite=True),
    "move_src": lambda c, v: c.call("fs.move", src=f"{v}/target", dst=f"{v}/../moved",
                                    overwrite=True),
    "move_dst": lambda c, v: c.call("fs.move", src=f"{v}/../movable", dst=f"{v}/moved_in",
                                    overwrite=True),
    "list_recursive": lambda c, v: c.call("fs.list", path=v, recursive=True),
    "find": lambda c, v: c.call("fs.find", path=v, name="*"),
    "du": lambda c, v: c.call("fs.du", path=v),
    "read": lambda c, v: c.call("fs.read", path=f"{v}/target"),
    "hash": lambda c, v: c.call("fs.hash", path=f"{v}/target"),
    "tail": lambda c, v: c.call("fs.tail", path=f"{v}/target"),
    "stat": lambda c, v: c.call("fs.stat", path=f"{v}/target"),
}


def _no_outside_content(result: Any) -> None:
    text = repr(result)
    assert "OUTSIDE-" not in text, text[:500]
    assert "/outside" not in text, text[:500]


@pytest.mark.parametrize("op", sorted(RACE_OPS))
def test_symlink_swap_race_never_leaves_the_roots(
        op: str, tmp_path: Path, daemon_factory: Callable[..., DaemonHandle]) -> None:
    """Each operation, run over and over while another thread swaps the directory it works
    in for a symlink to an outside directory: nothing outside ever changes and no result
    carries outside content or paths."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "seed").write_bytes(b"seed")
    outside = make_outside(tmp_path)
    before = snapshot(outside)
    d = daemon_factory({"fs": {"roots": [str(root)]}})
    victim = root / "v"
    deadline = time.monotonic() + 1.5
    calls = errors = 0
    with Swapper(victim, outside) as swapper, d.client() as c:
        while time.monotonic() < deadline or swapper.swaps < 20:
            (root / "movable").write_bytes(b"m")
            try:
                _no_outside_content(RACE_OPS[op](c, str(victim)))
            except XsysError as exc:
                errors += 1
                assert exc.code in (-32001, -32002, -32003, -32007, -32602), exc
                assert "OUTSIDE-" not in repr(exc.data)  # (the refused path is named)
            calls += 1
            if calls > 5000:
                break
    assert snapshot(outside) == before
    assert calls > 10 and swapper.swaps > 10


def test_watch_add_refuses_a_symlink_out(tmp_path: Path, daemon: DaemonHandle) -> None:
    outside = Path(tempfile.mkdtemp(prefix="xsys-out-"))
    try:
        os.symlink(outside, tmp_path / "w")
        with daemon.client() as c, pytest.raises(PermissionDenied):
            c.call("watch.add", paths=[str(tmp_path / "w")])
    finally:
        shutil.rmtree(outside)


# --------------------------------------------------------------------------- roots


def test_roots_are_never_replaced_or_removed(tmp_path: Path,
                                             daemon_factory: Callable[..., DaemonHandle]
                                             ) -> None:
    root = tmp_path / "r"
    other = tmp_path / "o"
    (root / "inner").mkdir(parents=True)
    other.mkdir()
    (root / "file").write_text("f")
    (other / "keep").write_text("k")
    os.symlink(root, tmp_path / "root-link")
    d = daemon_factory({"fs": {"roots": [str(root), str(other)]}})
    spellings = [str(root), f"{root}/", f"{root}/.", f"{root}/inner/..",
                 str(tmp_path / "root-link"), f"{other}/../r"]
    with d.client() as c:
        for spelling in spellings:
            with pytest.raises(PermissionDenied) as exc:
                c.call("fs.remove", path=spelling, recursive=True)
            assert exc.value.data["reason"] in ("root", "outside_roots"), spelling
            with pytest.raises(PermissionDenied):
                c.call("fs.move", src=spelling, dst=f"{other}/moved", overwrite=True)
            with pytest.raises(PermissionDenied):
                c.call("fs.move", src=f"{root}/file", dst=spelling, overwrite=True)
            with pytest.raises(PermissionDenied):
                c.call("fs.copy", src=f"{other}/keep", dst=spelling, overwrite=True)
        with pytest.raises(PermissionDenied):
            c.call("fs.move", src=str(other), dst=f"{root}/x", overwrite=True)
    assert (root / "file").read_text() == "f" and (other / "keep").read_text() == "k"
    assert root.is_dir() and other.is_dir()


# --------------------------------------------------------------------------- special files


def test_fifo_never_blocks_a_worker(tmp_path: Path,
                                    daemon_factory: Callable[..., DaemonHandle]) -> None:
    """More FIFO reads than the pool has workers, then ordinary requests: every FIFO
    request is refused at once and the pool is free (a blocked worker would never come
    back: nothing ever writes to the FIFO)."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    (tmp_path / "plain").write_text("ok")
    d = daemon_factory({"server": {"workers": 2}})
    with d.client() as c:
        for method in ("fs.read", "fs.hash", "fs.tail"):
            for _ in range(4):
                with pytest.raises(Conflict) as exc:
                    c.call(method, path=str(fifo))
                assert exc.value.data["reason"] == "not_regular_file"
                assert exc.value.data["type"] == "fifo"
        with pytest.raises(InvalidParams):
            c.call("fs.copy", src=str(fifo), dst=str(tmp_path / "copy"))
        with pytest.raises(Conflict):
            c.call("fs.write", path=str(fifo), data=b"x", mode="append")
        with pytest.raises(Conflict):
            c.call("fs.write", path=str(fifo), data=b"x")
        assert c.call("fs.read", path=str(tmp_path / "plain"))["data"] == b"ok"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_special_files_in_a_tree_copy_are_skipped(tmp_path: Path, daemon: DaemonHandle) -> None:
    (tmp_path / "t").mkdir()
    os.mkfifo(tmp_path / "t" / "pipe")
    (tmp_path / "t" / "f").write_text("f")
    with daemon.client() as c:
        res = c.call("fs.copy", src=str(tmp_path / "t"), dst=str(tmp_path / "t2"))
    assert res["skipped"] == 1 and res["files"] == 1
    assert not (tmp_path / "t2" / "pipe").exists()


# --------------------------------------------------------------------------- hard links


def test_hardlinked_files_are_not_changed(tmp_path: Path,
                                          daemon_factory: Callable[..., DaemonHandle]) -> None:
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("outside")
    os.chmod(outside, 0o600)
    os.link(outside, root / "alias")
    d = daemon_factory({"fs": {"roots": [str(root)]}})
    with d.client() as c:
        for call in (lambda: c.call("fs.write", path=str(root / "alias"), data=b"pwn"),
                     lambda: c.call("fs.write", path=str(root / "alias"), data=b"pwn",
                                    mode="append"),
                     lambda: c.call("fs.chmod", path=str(root / "alias"), mode=0o666)):
            with pytest.raises(PermissionDenied) as exc:
                call()
            assert exc.value.data["reason"] == "hardlinked"
            assert exc.value.data["nlink"] == 2
        assert c.call("fs.read", path=str(root / "alias"))["data"] == b"outside"
    assert outside.read_text() == "outside" and stat.S_IMODE(outside.stat().st_mode) == 0o600
    d2 = daemon_factory({"fs": {"roots": [str(root)], "allow_hardlinked_writes": True}})
    with d2.client() as c:
        c.call("fs.write", path=str(root / "alias"), data=b"more", mode="append")
    assert outside.read_text() == "outsidemore"


# --------------------------------------------------------------------------- crash safety


def test_kill_9_during_writes_leaves_old_or_new_and_no_litter(
        tmp_path: Path, daemon_factory: Callable[..., DaemonHandle]) -> None:
    """A daemon killed with SIGKILL while large writes run: the file holds the old or the
    new content, and after a restart no temp file is left in the directory."""
    target = tmp_path / "data.bin"
    old = b"old" * 1000
    target.write_bytes(old)
    new = os.urandom(32 * 1024 * 1024)
    outcomes = set()
    for attempt in range(3):
        d = daemon_factory({"fs": {"max_write_bytes": 64 * 1024 * 1024}})

        def write(handle: DaemonHandle = d) -> None:
            with contextlib.suppress(Exception), handle.client(timeout=30) as c:
                c.call("fs.write", path=str(target), data=new)

        t = threading.Thread(target=write, daemon=True)
        t.start()
        time.sleep(0.05 + 0.1 * attempt)
        assert d.proc is not None
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(10)
        t.join(30)
        content = target.read_bytes()
        assert content in (old, new)
        outcomes.add(content == new)
        target.write_bytes(old)
        d2 = daemon_factory()
        d2.stop()
        assert sorted(os.listdir(tmp_path)) == sorted(
            n for n in os.listdir(tmp_path) if not n.endswith(".xsys-tmp")), os.listdir(tmp_path)
        assert [n for n in os.listdir(tmp_path) if n.startswith(".data.bin")] == []


# --------------------------------------------------------------------------- names


BAD = b"caf\xe9-\xff.txt"


def test_non_utf8_names_round_trip(tmp_path: Path, daemon: DaemonHandle) -> None:
    d = os.fsencode(tmp_path / "names")
    os.mkdir(d)
    for i in range(5):
        with open(os.path.join(d, BAD + str(i).encode()), "wb") as f:
            f.write(b"content%d" % i)
    with open(os.path.join(d, b"plain.txt"), "wb") as f:
        f.write(b"plain")
    with daemon.client() as c:
        listing = c.call("fs.list", path=str(tmp_path / "names"))
        names = [e["name"] for e in listing["entries"]]
        assert "plain.txt" in names
        raw = sorted(n for n in names if isinstance(n, bytes))
        assert raw == sorted(BAD + str(i).encode() for i in range(5))
        entry = next(e for e in listing["entries"] if e["name"] == BAD + b"0")
        assert isinstance(entry["path"], bytes) and entry["path"].endswith(BAD + b"0")
        found = c.call("fs.find", path=str(tmp_path), name="caf*")
        assert len(found["entries"]) == 5
        st = c.call("fs.stat", path=entry["path"])
        assert st["path"] == entry["path"] and st["name"] == BAD + b"0"
        assert c.call("fs.read", path=entry["path"])["data"] == b"content0"
        res = c.call("fs.write", path=os.path.join(d, b"new-\xfe"), data=b"n")
        assert res["path"] == os.path.join(d, b"new-\xfe")
        with pytest.raises(NotFound) as exc:
            c.call("fs.read", path=os.path.join(d, b"missing-\xfe"))
        assert exc.value.data["path"] == os.path.join(d, b"missing-\xfe")
    with open(os.path.join(d, b"new-\xfe"), "rb") as f:
        assert f.read() == b"n"


def test_non_utf8_names_in_watch_events_are_not_lost(tmp_path: Path,
                                                      daemon: DaemonHandle) -> None:
    d = tmp_path / "w"
    d.mkdir()
    n = 300
    with daemon.client() as c:
        sub = c.subscribe("watch.add", paths=[str(d)], events=["created"])
        for i in range(n):
            name = BAD + b"%d" % i
            with open(os.path.join(os.fsencode(d), name), "wb"):
                pass
        with open(d / "marker", "wb"):
            pass
        seen: set[bytes | str] = set()
        overflow = 0
        deadline = time.monotonic() + 30
        while "marker" not in seen and time.monotonic() < deadline:
            note = sub.next(timeout=5)
            if note is None:
                continue
            if note["method"] == "watch.overflow":
                overflow += note["dropped"]
                continue
            for ev in note["events"]:
                seen.add(os.path.basename(ev["path"]))
    assert overflow == 0
    assert {s for s in seen if isinstance(s, bytes)} == {BAD + b"%d" % i for i in range(n)}


# --------------------------------------------------------------------------- find


def test_find_regex_is_bounded(tmp_path: Path, daemon: DaemonHandle) -> None:
    (tmp_path / ("a" * 28 + "!")).write_text("x")
    (tmp_path / ("a" * 28)).write_text("x")
    with daemon.client() as c:
        try:
            res = c.call("fs.find", path=str(tmp_path), regex=r"^(a+)+$")
            assert [e["name"] for e in res["entries"]] == ["a" * 28]
        except InvalidParams as exc:
            assert exc.data["reason"] == "timeout"
        for param in ("regex", "name"):
            with pytest.raises(InvalidParams) as exc:
                c.call("fs.find", path=str(tmp_path), **{param: "a" * 5000})
            assert exc.value.data["param"] == param
        with pytest.raises(InvalidParams):
            c.call("fs.list", path=str(tmp_path), glob="*" * 5000)
        assert c.call("rpc.ping")["pong"] is True


# --------------------------------------------------------------------------- privilege

PEER = "xsys-test-peer"


@pytest.fixture(scope="module")
def peer_user() -> Iterator[pwd.struct_passwd]:
    """A throwaway second local user (created with useradd; skipped where impossible)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("needs root to create a second user")
    if shutil.which("useradd") is None:
        pytest.skip("useradd is not installed")
    try:
        yield pwd.getpwnam(PEER)
        return
    except KeyError:
        pass
    r = subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", PEER],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"useradd failed: {r.stderr.strip()}")
    try:
        yield pwd.getpwnam(PEER)
    finally:
        subprocess.run(["userdel", PEER], capture_output=True)


PEER_SCRIPT = r"""
import json, os, sys
from xsys.client import Client
from xsys.protocol import XsysError
sock, calls = sys.argv[1], json.loads(sys.argv[2])
uid, gid = int(sys.argv[3]), int(sys.argv[4])
os.setgroups([])  # imports done as root (the venv may live under /root), then drop
os.setgid(gid)
os.setuid(uid)
out = []
with Client(sock) as c:
    for method, params in calls:
        for k in ("data",):
            if k in params: params[k] = params[k].encode()
        try:
            r = c.call(method, **params)
            out.append({"ok": True, "result": repr(r)})
        except XsysError as e:
            out.append({"ok": False, "code": e.code, "data": repr(e.data)})
print(json.dumps(out))
"""


def run_as(user: pwd.struct_passwd, sock: str, calls: list[tuple[str, dict[str, Any]]]
           ) -> list[dict[str, Any]]:
    """Run ``calls`` through a real client in a process that becomes ``user`` (setuid)
    before it connects, so the daemon sees that user's SO_PEERCRED."""
    import json

    r = subprocess.run([sys.executable, "-c", PEER_SCRIPT, sock, json.dumps(calls),
                        str(user.pw_uid), str(user.pw_gid)],
                       capture_output=True, text=True, timeout=60,
                       cwd=str(Path(__file__).resolve().parent.parent),
                       env={"PATH": os.environ.get("PATH", ""), "HOME": "/"})
    assert r.returncode == 0, r.stderr
    result: list[dict[str, Any]] = json.loads(r.stdout)
    return result


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory any user can reach (pytest's tmp_path is root-only)."""
    d = Path(tempfile.mkdtemp(prefix="xsys-peer-"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_peer_gets_no_more_than_it_has(peer_user: pwd.struct_passwd, shared_dir: Path,
                                       daemon_factory: Callable[..., DaemonHandle]) -> None:
    """A root daemon serving a second user: it reads, writes, creates and chmods exactly
    what that user could itself; files it creates are its own; no setuid-root binary."""
    root = shared_dir / "root"
    root.mkdir()
    os.chmod(root, 0o755)
    (root / "root-only").write_text("TOP-SECRET")
    os.chmod(root / "root-only", 0o600)
    (root / "public").write_text("public")
    os.chmod(root / "public", 0o644)
    (root / "tool").write_bytes(b"#!/bin/sh\n")
    os.chmod(root / "tool", 0o755)
    mine = root / "mine"
    mine.mkdir()
    os.chown(mine, peer_user.pw_uid, peer_user.pw_gid)
    sockdir = shared_dir / "sock"
    d = daemon_factory({"fs": {"roots": [str(root)]},
                        "server": {"socket": str(sockdir / "xsys.sock"),
                                   "group": str(peer_user.pw_gid),
                                   "allowed_uids": [0, peer_user.pw_uid]}})
    results = run_as(peer_user, d.socket, [
        ("fs.read", {"path": str(root / "root-only")}),
        ("fs.read", {"path": str(root / "public")}),
        ("fs.write", {"path": str(root / "tool"), "data": "pwned"}),
        ("fs.chmod", {"path": str(root / "tool"), "mode": 0o4755}),
        ("fs.write", {"path": str(root / "new"), "data": "x"}),
        ("fs.write", {"path": str(mine / "evil"), "data": "#!/bin/sh\n"}),
        ("fs.chmod", {"path": str(mine / "evil"), "mode": 0o6755}),
        ("fs.remove", {"path": str(root / "public")}),
        ("fs.copy", {"src": str(root / "root-only"), "dst": str(mine / "stolen")}),
        ("fs.hash", {"path": str(root / "root-only")}),
        ("fs.mkdir", {"path": str(root / "d")}),
    ])
    denied = [r["ok"] is False and r["code"] == -32002 for r in results]
    assert denied == [True, False, True, True, True, False, False, True, True, True, True], \
        results
    assert "TOP-SECRET" not in repr(results)
    assert (root / "tool").read_bytes() == b"#!/bin/sh\n"
    assert stat.S_IMODE((root / "tool").stat().st_mode) == 0o755
    assert not (root / "new").exists() and not (mine / "stolen").exists()
    evil = (mine / "evil").stat()
    assert evil.st_uid == peer_user.pw_uid and evil.st_gid == peer_user.pw_gid
    assert not (evil.st_mode & stat.S_ISUID and evil.st_uid == 0)
    assert not (evil.st_mode & stat.S_ISGID and evil.st_gid == 0)
    assert (root / "public").read_text() == "public"
    with d.client() as c:  # root itself still reads everything (credentials restored)
        assert c.call("fs.read", path=str(root / "root-only"))["data"] == b"TOP-SECRET"
    digest = hashlib.sha256(b"TOP-SECRET").hexdigest()
    assert digest not in repr(results)


def test_peer_gets_no_more_through_open_grep_archives_links(
        peer_user: pwd.struct_passwd, shared_dir: Path,
        daemon_factory: Callable[..., DaemonHandle]) -> None:
    """The issue-13 methods under a root daemon serving a second user: fs.open (both
    modes), streamed fs.read, fs.grep, fs.archive, fs.extract, fs.link and fs.touch give
    that user nothing it could not do itself; nothing of a root-only file comes out."""
    root = shared_dir / "root"
    root.mkdir()
    os.chmod(root, 0o755)
    (root / "root-only").write_text("TOP-SECRET")
    os.chmod(root / "root-only", 0o600)
    (root / "tool").write_bytes(b"#!/bin/sh\n")
    os.chmod(root / "tool", 0o755)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("dropped")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    (root / "a.tar").write_bytes(buf.getvalue())
    os.chmod(root / "a.tar", 0o644)
    mine = root / "mine"
    mine.mkdir()
    os.chown(mine, peer_user.pw_uid, peer_user.pw_gid)
    d = daemon_factory({"fs": {"roots": [str(root)]},
                        "server": {"socket": str(shared_dir / "sock" / "xsys.sock"),
                                   "group": str(peer_user.pw_gid),
                                   "allowed_uids": [0, peer_user.pw_uid]}})
    secret = str(root / "root-only")
    results = run_as(peer_user, d.socket, [
        ("fs.open", {"path": secret, "mode": "rb"}),
        ("fs.open", {"path": str(root / "tool"), "mode": "wb"}),
        ("fs.read", {"path": secret, "stream": True}),
        ("fs.archive", {"paths": [str(mine)], "dst": str(root / "loot.tar"), "format": "tar"}),
        ("fs.extract", {"src": str(root / "a.tar"), "dst": str(root / "unpacked")}),
        ("fs.link", {"target": secret, "path": str(mine / "hard")}),
        ("fs.touch", {"path": str(root / "tool"), "mtime_at": 0}),
        ("fs.touch", {"path": str(root / "new")}),
        ("fs.grep", {"path": str(root), "pattern": "TOP"}),
        ("fs.archive", {"paths": [secret], "dst": str(mine / "loot.tar"), "format": "tar"}),
    ])
    denied = [r["ok"] is False and r["code"] == -32002 for r in results]
    assert denied[:8] == [True] * 8, [(r["code"], r["data"][:200]) for r in results]
    assert results[8]["ok"] and "TOP-SECRET" not in results[8]["result"], results
    # an unreadable file is skipped and counted, never packed
    assert results[9]["ok"] and "'skipped': 1" in results[9]["result"], results
    with tarfile.open(mine / "loot.tar") as tf:
        assert tf.getnames() == []
    assert "TOP-SECRET" not in repr(results)
    assert not (root / "loot.tar").exists() and not (mine / "hard").exists()
    assert not (root / "unpacked").exists() and not (root / "new").exists()
    assert (root / "tool").stat().st_mtime > 0
    assert (root / "tool").read_bytes() == b"#!/bin/sh\n"
    assert sorted(os.listdir(root)) == ["a.tar", "mine", "root-only", "tool"]
    assert os.listdir(mine) == ["loot.tar"]
    assert (mine / "loot.tar").stat().st_uid == peer_user.pw_uid
