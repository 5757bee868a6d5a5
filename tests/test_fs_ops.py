"""FsService operations on real files in a temp dir (no daemon)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xsys.fs.config import FsConfig
from xsys.fs.model import NullJob
from xsys.fs.service import FsService
from xsys.fs.tree import FindQuery
from xsys.fs.writing import TEMP_SUFFIX, parse_mode
from xsys.protocol import (
    AlreadyExists,
    Conflict,
    InvalidParams,
    NotFound,
    PermissionDenied,
    TooLarge,
)


@pytest.fixture
def fs(tmp_path: Path) -> FsService:
    return FsService(FsConfig(roots=(str(tmp_path),), chunk_bytes=4096))


def temps(d: Path) -> list[str]:
    return [n for n in os.listdir(d) if n.endswith(TEMP_SUFFIX)]


# ----------------------------------------------------------------------------- write


def test_write_modes(fs: FsService, tmp_path: Path) -> None:
    p = str(tmp_path / "f.txt")
    r = fs.write(p, b"one\n", "create")
    assert r.created and r.size == 4 and r.sha256 == hashlib.sha256(b"one\n").hexdigest()
    with pytest.raises(AlreadyExists):
        fs.write(p, b"again", "create")
    r = fs.write(p, b"two\n", "overwrite")
    assert not r.created and Path(p).read_bytes() == b"two\n"
    r = fs.write(p, b"three\n", "append")
    assert r.size == 10 and r.sha256 is None and Path(p).read_bytes() == b"two\nthree\n"
    r = fs.write(str(tmp_path / "new.log"), b"x", "append")
    assert r.created
    assert temps(tmp_path) == []


def test_write_keeps_mode_and_parents(fs: FsService, tmp_path: Path) -> None:
    p = tmp_path / "script.sh"
    p.write_text("old")
    p.chmod(0o751)
    fs.write(str(p), b"new")
    assert stat.S_IMODE(p.stat().st_mode) == 0o751 and p.read_text() == "new"
    with pytest.raises(NotFound):
        fs.write(str(tmp_path / "a" / "b" / "c.txt"), b"x")
    fs.write(str(tmp_path / "a" / "b" / "c.txt"), b"x", make_parents=True)
    assert (tmp_path / "a" / "b" / "c.txt").read_bytes() == b"x"
    with pytest.raises(Conflict):
        fs.write(str(tmp_path / "a"), b"x")


def test_expected_sha256(fs: FsService, tmp_path: Path) -> None:
    p = str(tmp_path / "f")
    fs.write(p, b"v1")
    good = hashlib.sha256(b"v1").hexdigest()
    with pytest.raises(Conflict) as exc:
        fs.write(p, b"v2", expected_sha256="0" * 64)
    assert exc.value.code == -32007 and exc.value.data["actual"] == good
    fs.write(p, b"v2", expected_sha256=good.upper())
    assert Path(p).read_bytes() == b"v2"
    with pytest.raises(Conflict):
        fs.write(str(tmp_path / "missing"), b"x", expected_sha256=good)
    with pytest.raises(Conflict):  # append checks the precondition too
        fs.write(p, b"more", "append", expected_sha256=good)


def test_write_limit_and_cancel(tmp_path: Path) -> None:
    fs = FsService(FsConfig(roots=(str(tmp_path),), max_write_bytes=10, chunk_bytes=2))
    with pytest.raises(TooLarge) as exc:
        fs.write(str(tmp_path / "f"), b"x" * 11)
    assert exc.value.code == -32004
    (tmp_path / "g").write_bytes(b"old")
    job = NullJob()
    job.cancelled.set()
    with pytest.raises(asyncio.CancelledError):
        fs.write(str(tmp_path / "g"), b"new-data", job=job)
    assert (tmp_path / "g").read_bytes() == b"old" and temps(tmp_path) == []


def test_write_through_symlink_replaces_target(fs: FsService, tmp_path: Path) -> None:
    (tmp_path / "target").write_text("old")
    os.symlink("target", tmp_path / "link")
    fs.write(str(tmp_path / "link"), b"new")
    assert os.path.islink(tmp_path / "link") and (tmp_path / "target").read_text() == "new"


def test_mkdir(fs: FsService, tmp_path: Path) -> None:
    assert fs.mkdir(str(tmp_path / "d")).created
    with pytest.raises(AlreadyExists):
        fs.mkdir(str(tmp_path / "d"))
    assert not fs.mkdir(str(tmp_path / "d"), parents=True).created
    with pytest.raises(NotFound):
        fs.mkdir(str(tmp_path / "x" / "y"))
    assert fs.mkdir(str(tmp_path / "x" / "y"), parents=True).created


def test_chmod(fs: FsService, tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_text("x")
    assert fs.chmod(str(p), "0600").mode == 0o600
    assert fs.chmod(str(p), 0o755).mode == 0o755
    with pytest.raises(InvalidParams):
        fs.chmod(str(p), "rwx")
    assert parse_mode("0o644") == parse_mode("644") == 0o644
    with pytest.raises(ValueError):
        parse_mode(0o17777)


# ----------------------------------------------------------------------------- read


def test_read_ranges_and_limits(tmp_path: Path) -> None:
    fs = FsService(FsConfig(roots=(str(tmp_path),), max_read_bytes=100, chunk_bytes=7))
    data = bytes(range(256)) * 2
    (tmp_path / "f").write_bytes(data)
    with pytest.raises(TooLarge) as exc:
        fs.read(str(tmp_path / "f"))
    assert exc.value.code == -32004 and exc.value.data["limit"] == 100
    r = fs.read(str(tmp_path / "f"), offset=10, length=100)
    assert r.data == data[10:110] and r.length == 100 and r.size == 512 and not r.eof
    r = fs.read(str(tmp_path / "f"), offset=500, length=100)
    assert r.data == data[500:] and r.eof
    r = fs.read(str(tmp_path / "f"), offset=9999)
    assert r.data == b"" and r.eof
    with pytest.raises(Conflict):
        fs.read(str(tmp_path))
    with pytest.raises(NotFound):
        fs.read(str(tmp_path / "nope"))


def test_read_text(fs: FsService, tmp_path: Path) -> None:
    (tmp_path / "t").write_bytes("héllo".encode())
    assert fs.read(str(tmp_path / "t"), encoding="utf-8").data == "héllo"
    with pytest.raises(InvalidParams):
        fs.read(str(tmp_path / "t"), encoding="ascii")
    with pytest.raises(InvalidParams):
        fs.read(str(tmp_path / "t"), encoding="no-such-codec")


def test_read_limit_capped_by_frame(tmp_path: Path) -> None:
    fs = FsService(FsConfig(roots=(str(tmp_path),)), max_frame_bytes=1 << 20)
    assert fs.read_limit < 1 << 20


@pytest.mark.parametrize("algorithm", ["sha256", "sha1", "md5", "blake2b"])
def test_hash(fs: FsService, tmp_path: Path, algorithm: str) -> None:
    data = os.urandom(50_000)
    (tmp_path / "f").write_bytes(data)
    job = NullJob(want_progress=True)
    r = fs.hash(str(tmp_path / "f"), algorithm, job)
    assert r.digest == hashlib.new(algorithm, data).hexdigest() and r.size == 50_000
    assert job.reports[-1] == (50_000, 50_000, "bytes")


def test_tail_edge_cases(fs: FsService, tmp_path: Path) -> None:
    p = tmp_path / "log"
    p.write_text("a\nb\nc\n")
    assert fs.tail(str(p), 2).lines == ["b", "c"]
    assert fs.tail(str(p), 10).lines == ["a", "b", "c"]
    assert fs.tail(str(p), 0).lines == []
    p.write_text("no newline at end")
    assert fs.tail(str(p), 1).lines == ["no newline at end"]
    p.write_text("")
    assert fs.tail(str(p), 3).lines == []
    with pytest.raises(TooLarge):
        fs.tail(str(p), 10**6)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.text(alphabet="ab xy\r", max_size=30), max_size=40),
       trailing=st.booleans(), n=st.integers(0, 50))
def test_tail_matches_splitlines(fs: FsService, tmp_path: Path, lines: list[str],
                                 trailing: bool, n: int) -> None:
    text = "\n".join(lines) + ("\n" if trailing and lines else "")
    p = tmp_path / "prop.log"
    p.write_text(text, newline="")
    expected = text.split("\n")
    if text.endswith("\n"):
        expected = expected[:-1]
    if text == "":
        expected = []
    expected = [x.rstrip("\r") for x in expected]
    assert fs.tail(str(p), n).lines == (expected[-n:] if n else [])


# ----------------------------------------------------------------------------- trees


def make_tree(base: Path) -> None:
    (base / "t" / "sub" / "deep").mkdir(parents=True)
    (base / "t" / ".hidden").mkdir()
    (base / "t" / "a.py").write_text("a" * 10)
    (base / "t" / "b.txt").write_text("b" * 100)
    (base / "t" / ".dot").write_text("d")
    (base / "t" / "sub" / "c.py").write_text("c" * 1000)
    (base / "t" / "sub" / "deep" / "d.txt").write_text("")
    (base / "t" / ".hidden" / "e.py").write_text("e")
    os.symlink("a.py", base / "t" / "link.py")


def test_list(fs: FsService, tmp_path: Path) -> None:
    make_tree(tmp_path)
    t = str(tmp_path / "t")
    names = [e.name for e in fs.list(t).entries]
    assert names == ["a.py", "b.txt", "link.py", "sub"]
    assert ".dot" in [e.name for e in fs.list(t, include_hidden=True).entries]
    rec = fs.list(t, recursive=True)
    assert [e.name for e in rec.entries] == ["a.py", "b.txt", "link.py", "sub", "sub/c.py",
                                             "sub/deep", "sub/deep/d.txt"]
    assert [e.name for e in fs.list(t, recursive=True, glob="*.py").entries] == [
        "a.py", "link.py", "sub/c.py"]
    assert [e.name for e in fs.list(t, recursive=True, glob="sub/*").entries] == [
        "sub/c.py", "sub/deep", "sub/deep/d.txt"]
    link = next(e for e in rec.entries if e.name == "link.py")
    assert link.type == "symlink" and link.symlink_target == "a.py"
    sub = next(e for e in rec.entries if e.name == "sub")
    assert sub.type == "dir"
    cut = fs.list(t, recursive=True, limit=3)
    assert cut.truncated and len(cut.entries) == 3
    assert not fs.list(t, limit=4).truncated
    with pytest.raises(Conflict):
        fs.list(str(tmp_path / "t" / "a.py"))
    with pytest.raises(NotFound):
        fs.list(str(tmp_path / "nope"))


def test_list_limit_returns_the_first_entries_by_name(fs: FsService, tmp_path: Path) -> None:
    """f1..f3000 created in a shuffled order: a limit keeps the first by name, not the first
    the directory happens to yield; ``truncated`` stays true."""
    d = tmp_path / "many"
    d.mkdir()
    names = [f"f{i}" for i in range(1, 3001)]
    for n in sorted(names, key=lambda n: hash(n) % 7919):
        (d / n).write_text("")
    r = fs.list(str(d), limit=3)
    assert [e.name for e in r.entries] == sorted(names)[:3] == ["f1", "f10", "f100"]
    assert r.truncated and r.scanned == 3000
    exact = fs.list(str(d), limit=3000)
    assert not exact.truncated and [e.name for e in exact.entries] == sorted(names)
    rec = fs.list(str(tmp_path), recursive=True, glob="many/f2*", limit=2)
    assert [e.name for e in rec.entries] == ["many/f2", "many/f20"] and rec.truncated


def test_list_limit_is_clamped(tmp_path: Path) -> None:
    fs = FsService(FsConfig(roots=(str(tmp_path),), max_list_entries=5))
    for i in range(20):
        (tmp_path / f"f{i:02}").write_text("")
    r = fs.list(str(tmp_path), limit=1000)
    assert len(r.entries) == 5 and r.truncated
    assert len(fs.find(str(tmp_path), FindQuery()).entries) == 5


def test_find(fs: FsService, tmp_path: Path) -> None:
    make_tree(tmp_path)
    t = str(tmp_path / "t")

    def names(**kw: object) -> list[str]:
        return [e.name for e in fs.find(t, FindQuery(**kw)).entries]  # type: ignore[arg-type]

    assert names(name="*.py") == [".hidden/e.py", "a.py", "link.py", "sub/c.py"]
    assert names(name="*.py", type="file") == [".hidden/e.py", "a.py", "sub/c.py"]
    assert names(regex=r"^[bd]\.") == ["b.txt", "sub/deep/d.txt"]
    assert names(type="dir") == [".hidden", "sub", "sub/deep"]
    assert names(min_size=50) == ["b.txt", "sub/c.py"]
    assert names(max_size=1, type="file") == [".dot", ".hidden/e.py", "sub/deep/d.txt"]
    assert names(modified_since=4e9) == []
    with pytest.raises(InvalidParams):
        names(regex="(")
    job = NullJob(want_progress=True)
    r = fs.find(t, FindQuery(), limit=2, job=job)
    assert r.truncated and len(r.entries) == 2 and job.reports[-1][2] == "files"


def test_du(fs: FsService, tmp_path: Path) -> None:
    make_tree(tmp_path)
    os.link(tmp_path / "t" / "b.txt", tmp_path / "t" / "hard.txt")
    r = fs.du(str(tmp_path / "t"))
    assert r.size == 10 + 100 + 1 + 1000 + 0 + 1
    assert (r.files, r.dirs, r.symlinks) == (6, 3, 1)
    f = fs.du(str(tmp_path / "t" / "b.txt"))
    assert f.size == 100 and f.files == 1 and f.dirs == 0


def test_remove(fs: FsService, tmp_path: Path) -> None:
    make_tree(tmp_path)
    t = tmp_path / "t"
    with pytest.raises(Conflict) as exc:
        fs.remove(str(t))
    assert exc.value.code == -32007
    assert fs.remove(str(t / "link.py")).files == 1 and (t / "a.py").exists()
    r = fs.remove(str(t), recursive=True)
    assert not t.exists() and r.files == 6 and r.dirs == 4
    with pytest.raises(PermissionDenied):
        fs.remove(str(tmp_path), recursive=True)
    with pytest.raises(NotFound):
        fs.remove(str(t))


def test_remove_outward_link_removes_only_the_link(fs: FsService, tmp_path: Path) -> None:
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "keep").write_text("k")
    os.symlink(outside, tmp_path / "out")
    fs.remove(str(tmp_path / "out"), recursive=True)
    assert not os.path.lexists(tmp_path / "out") and (outside / "keep").exists()


def test_copy_file_and_tree(fs: FsService, tmp_path: Path) -> None:
    make_tree(tmp_path)
    t = tmp_path / "t"
    os.utime(t / "b.txt", (1_000_000, 1_000_000))
    r = fs.copy(str(t / "b.txt"), str(tmp_path / "b2.txt"), preserve=True)
    assert r.copied_bytes == 100 and (tmp_path / "b2.txt").stat().st_mtime == 1_000_000
    with pytest.raises(AlreadyExists):
        fs.copy(str(t / "b.txt"), str(tmp_path / "b2.txt"))
    with pytest.raises(Conflict):
        fs.copy(str(t / "b.txt"), str(t / "sub"), overwrite=True)
    job = NullJob(want_progress=True)
    r = fs.copy(str(t), str(tmp_path / "t2"), job=job)
    assert (r.files, r.symlinks) == (6, 1) and r.copied_bytes == 1112
    assert job.reports[-1] == (1112, 1112, "bytes")
    assert os.readlink(tmp_path / "t2" / "link.py") == "a.py"
    assert (tmp_path / "t2" / "sub" / "c.py").read_text() == "c" * 1000
    (t / "a.py").write_text("changed")
    fs.copy(str(t), str(tmp_path / "t2"), overwrite=True)
    assert (tmp_path / "t2" / "a.py").read_text() == "changed"
    with pytest.raises(InvalidParams):
        fs.copy(str(t), str(t / "sub" / "inside"))
    assert temps(tmp_path / "t2") == []


def test_copy_never_reads_outside(fs: FsService, tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    os.symlink("/etc/hostname", tmp_path / "t" / "host")
    fs.copy(str(tmp_path / "t"), str(tmp_path / "t2"))
    assert os.path.islink(tmp_path / "t2" / "host")
    with pytest.raises(PermissionDenied):
        fs.copy(str(tmp_path / "t" / "host"), str(tmp_path / "h"))


def test_move(fs: FsService, tmp_path: Path) -> None:
    make_tree(tmp_path)
    t = tmp_path / "t"
    r = fs.move(str(t / "b.txt"), str(tmp_path / "moved.txt"))
    assert r.renamed and (tmp_path / "moved.txt").read_text() == "b" * 100
    (tmp_path / "other").write_text("o")
    with pytest.raises(AlreadyExists):
        fs.move(str(tmp_path / "moved.txt"), str(tmp_path / "other"))
    fs.move(str(tmp_path / "moved.txt"), str(tmp_path / "other"), overwrite=True)
    assert (tmp_path / "other").read_text() == "b" * 100
    fs.move(str(t / "link.py"), str(tmp_path / "link2"))
    assert os.readlink(tmp_path / "link2") == "a.py"
    with pytest.raises(PermissionDenied):
        fs.move(str(tmp_path), str(tmp_path / "x"))
    with pytest.raises(InvalidParams):
        fs.move(str(t), str(t / "sub" / "x"))


def test_stat_and_exists(fs: FsService, tmp_path: Path) -> None:
    make_tree(tmp_path)
    t = tmp_path / "t"
    info = fs.stat(str(t / "b.txt"))
    assert info.type == "file" and info.size == 100 and info.mtime_at > 0
    assert isinstance(info.mtime_at, float) and info.symlink_target is None
    link = fs.stat(str(t / "link.py"))
    assert link.type == "symlink" and link.symlink_target == "a.py"
    assert fs.stat(str(t)).type == "dir"
    assert fs.exists(str(t / "a.py")).exists
    e = fs.exists(str(t / "nope"))
    assert not e.exists and e.type is None
    with pytest.raises(PermissionDenied):
        fs.exists("/etc/passwd")
