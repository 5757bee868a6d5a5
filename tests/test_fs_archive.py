"""``fs.archive`` / ``fs.extract`` on real files, with hostile archives built here: ``../``
members, absolute names, a symlink then a file through it, a link target leaving the
destination, a 1 GB sparse member against ``fs.max_extract_bytes`` and 100k tiny members
against ``fs.max_extract_members``. After every refused extract nothing exists outside
the destination (the parent directory is byte-for-byte as before) and the destination
was not created."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.fswatch_support import shared_daemon, workdir
from xsys.fs.config import FsConfig
from xsys.fs.service import FsService
from xsys.protocol import AlreadyExists, Conflict, PermissionDenied, TooLarge

__all__ = ["shared_daemon", "workdir"]  # fixtures used by this module

FORMATS = ("tar", "tar.gz", "tar.xz", "zip")


def snapshot(top: Path) -> dict[str, Any]:
    """Every entry below ``top``: type, mode, link target or content hash."""
    out: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(top))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("file", stat.S_IMODE(st.st_mode),
                            hashlib.sha256(p.read_bytes()).hexdigest())
            else:
                out[rel] = ("dir", stat.S_IMODE(st.st_mode))
    return out


@pytest.fixture
def env(tmp_path: Path) -> tuple[FsService, Path, Path]:
    """(service, root, outside): a root with a small tree, and a sibling outside it."""
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    (root / "src" / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "keep.txt").write_text("outside\n")
    (root / "src" / "a.txt").write_text("alpha\n")
    (root / "src" / "sub" / "b.bin").write_bytes(bytes(range(256)) * 100)
    (root / "src" / "run.sh").write_text("#!/bin/sh\n")
    (root / "src" / "run.sh").chmod(0o755)
    os.symlink("a.txt", root / "src" / "link")
    os.mkfifo(root / "src" / "fifo")
    return FsService(FsConfig(roots=(str(root),))), root, outside


def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:  # type: ignore[call-overload]
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def ti(name: str, kind: bytes = tarfile.REGTYPE, target: str = "",
       mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    info.mode = mode
    return info


@pytest.mark.parametrize("fmt", FORMATS)
def test_archive_then_extract_round_trip(env: tuple[FsService, Path, Path], fmt: str) -> None:
    svc, root, _ = env
    dst = root / f"out.{fmt}"
    r = svc.archive([str(root / "src")], str(dst), fmt)
    assert (r.files, r.dirs, r.symlinks, r.skipped) == (3, 2, 1, 1)  # the fifo is skipped
    assert r.size == dst.stat().st_size > 0 and r.format == fmt
    with pytest.raises(AlreadyExists):
        svc.archive([str(root / "src")], str(dst), fmt)
    x = svc.extract(str(dst), str(root / "x"))
    assert x.created and x.format == fmt and x.files == 3 and x.symlinks == 1
    before = snapshot(root / "src")
    before.pop("fifo")
    assert snapshot(root / "x" / "src") == before
    assert not [n for n in os.listdir(root) if n.endswith(".xsys-tmp")]


def test_extract_into_existing_dir_merges_and_respects_overwrite(
        env: tuple[FsService, Path, Path]) -> None:
    svc, root, _ = env
    svc.archive([str(root / "src")], str(root / "a.tar"), "tar")
    dst = root / "dst"
    (dst / "src").mkdir(parents=True)
    (dst / "src" / "a.txt").write_text("mine\n")
    (dst / "other").write_text("stays\n")
    with pytest.raises(AlreadyExists):
        svc.extract(str(root / "a.tar"), str(dst))
    assert (dst / "src" / "a.txt").read_text() == "mine\n"
    assert sorted(os.listdir(dst / "src")) == ["a.txt"]  # nothing moved in
    r = svc.extract(str(root / "a.tar"), str(dst), overwrite=True)
    assert not r.created
    assert (dst / "src" / "a.txt").read_text() == "alpha\n"
    assert (dst / "other").read_text() == "stays\n"
    assert sorted(os.listdir(dst)) == ["other", "src"]  # no temp dir left


def refused(svc: FsService, root: Path, outside: Path, archive: Path,
            exc_type: type[Exception] = PermissionDenied) -> Any:
    """Extract ``archive`` into root/dst: it must fail with ``exc_type`` and leave the root
    (but for the archive) and the outside dir exactly as they were."""
    before_root, before_out = snapshot(root), snapshot(outside)
    with pytest.raises(exc_type) as info:
        svc.extract(str(archive), str(root / "dst"))
    assert snapshot(root) == before_root
    assert snapshot(outside) == before_out
    assert not (root / "dst").exists()
    return info.value


HOSTILE_TAR: dict[str, list[tuple[tarfile.TarInfo, bytes | None]]] = {
    "dotdot": [(ti("ok.txt"), b"ok"), (ti("../../outside/evil"), b"evil")],
    "dotdot_inside": [(ti("a/../../evil"), b"evil")],
    "absolute": [(ti("ok.txt"), b"ok"), (ti("/tmp/xsys-evil-absolute"), b"evil")],
    "symlink_out_then_file": [(ti("ok.txt"), b"ok"),
                              (ti("esc", tarfile.SYMTYPE, "../outside"), None),
                              (ti("esc/evil"), b"evil")],
    "symlink_absolute": [(ti("esc", tarfile.SYMTYPE, "/etc"), None)],
    "symlink_inward_then_file": [(ti("d", tarfile.DIRTYPE, mode=0o755), None),
                                 (ti("hop", tarfile.SYMTYPE, "d"), None),
                                 (ti("hop/f"), b"through a link")],
    "hardlink_outside": [(ti("h", tarfile.LNKTYPE, "../outside/keep.txt"), None)],
    "hardlink_absolute": [(ti("h", tarfile.LNKTYPE, "/etc/passwd"), None)],
    "device": [(ti("dev", tarfile.CHRTYPE), None)],
    # each target is inside lexically, but the kernel resolves "a" first: a -> ".", so
    # "a/.." is dst's parent and "b/.." the parent's parent
    "symlink_chain_out": [(ti("a", tarfile.SYMTYPE, "."), None),
                          (ti("b", tarfile.SYMTYPE, "a/.."), None)],
    "symlink_chain_later_member": [(ti("b", tarfile.SYMTYPE, "d/x/../.."), None),
                                   (ti("d", tarfile.DIRTYPE, mode=0o755), None),
                                   (ti("d/x", tarfile.SYMTYPE, ".."), None)],
}


@pytest.mark.parametrize("case", sorted(HOSTILE_TAR))
def test_hostile_tar_fails_whole_and_writes_nothing(env: tuple[FsService, Path, Path],
                                                    case: str) -> None:
    svc, root, outside = env
    archive = root / "evil.tar"
    archive.write_bytes(tar_bytes(HOSTILE_TAR[case]))
    err = refused(svc, root, outside, archive)
    assert err.code == -32002 and err.data["reason"] == "unsafe_member"
    assert not Path("/tmp/xsys-evil-absolute").exists()


def zip_bytes(entries: list[tuple[str, bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return buf.getvalue()


HOSTILE_ZIP = {
    "dotdot": [("ok.txt", b"ok", 0o100644), ("../outside/evil", b"evil", 0o100644)],
    "absolute": [("/tmp/xsys-evil-zip", b"evil", 0o100644)],
    "backslash_dotdot": [("..\\..\\evil", b"evil", 0o100644)],
    "symlink_then_file": [("esc", b"../outside", 0o120777), ("esc/evil", b"e", 0o100644)],
    "symlink_inward_then_file": [("d/", b"", 0o40755), ("hop", b"d", 0o120777),
                                 ("hop/f", b"x", 0o100644)],
    "symlink_chain_out": [("a", b".", 0o120777), ("b", b"a/../outside", 0o120777)],
}


@pytest.mark.parametrize("case", sorted(HOSTILE_ZIP))
def test_hostile_zip_fails_whole_and_writes_nothing(env: tuple[FsService, Path, Path],
                                                    case: str) -> None:
    svc, root, outside = env
    archive = root / "evil.zip"
    archive.write_bytes(zip_bytes(HOSTILE_ZIP[case]))
    err = refused(svc, root, outside, archive)
    assert err.data["reason"] == "unsafe_member"
    assert not Path("/tmp/xsys-evil-zip").exists()


def test_setuid_bits_are_dropped(env: tuple[FsService, Path, Path]) -> None:
    svc, root, _ = env
    (root / "s.tar").write_bytes(tar_bytes([(ti("suid", mode=0o6777), b"x"),
                                            (ti("dir", tarfile.DIRTYPE, mode=0o3777), None)]))
    (root / "s.zip").write_bytes(zip_bytes([("suid", b"x", 0o106777)]))
    for name in ("s.tar", "s.zip"):
        svc.extract(str(root / name), str(root / name.replace(".", "_")))
        mode = (root / name.replace(".", "_") / "suid").stat().st_mode
        assert not mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | stat.S_IWOTH)
    assert not (root / "s_tar" / "dir").stat().st_mode & (stat.S_ISGID | stat.S_ISVTX)


def test_hardlink_and_inward_symlink_members_work(env: tuple[FsService, Path, Path]) -> None:
    svc, root, _ = env
    (root / "l.tar").write_bytes(tar_bytes([
        (ti("d", tarfile.DIRTYPE, mode=0o755), None), (ti("d/f"), b"data"),
        (ti("d/hard", tarfile.LNKTYPE, "d/f"), None),
        (ti("d/soft", tarfile.SYMTYPE, "f"), None), (ti("up", tarfile.SYMTYPE, "d/f"), None)]))
    r = svc.extract(str(root / "l.tar"), str(root / "l"))
    assert (r.files, r.hardlinks, r.symlinks) == (1, 1, 2)
    assert (root / "l" / "d" / "hard").stat().st_ino == (root / "l" / "d" / "f").stat().st_ino
    assert (root / "l" / "up").read_bytes() == b"data"


def test_sparse_1gb_member_is_refused_by_size(env: tuple[FsService, Path, Path],
                                              tmp_path: Path) -> None:
    svc, root, outside = env
    svc = FsService(FsConfig(roots=(str(root),), max_extract_bytes=64 * 1024 * 1024))
    gnu_tar = shutil.which("tar")
    sparse = tmp_path / "sparse.img"
    with open(sparse, "wb") as f:
        f.truncate(1 << 30)  # 1 GiB, no blocks
    archive = root / "bomb.tar"
    if gnu_tar and subprocess.run([gnu_tar, "--sparse", "-cf", str(archive), "-C",
                                   str(tmp_path), "sparse.img"], capture_output=True,
                                  check=False).returncode == 0:
        assert archive.stat().st_size < 1 << 20  # a real sparse member: tiny archive
    else:  # no GNU tar: the same header, without the (all-zero) data blocks
        info = ti("sparse.img")
        info.size = 1 << 30
        archive.write_bytes(info.tobuf(tarfile.GNU_FORMAT))
    err = refused(svc, root, outside, archive, TooLarge)
    assert err.code == -32004 and err.data["reason"] == "max_extract_bytes"


def test_zip_bomb_is_cut_at_the_size_bound(env: tuple[FsService, Path, Path]) -> None:
    svc, root, outside = env
    svc = FsService(FsConfig(roots=(str(root),), max_extract_bytes=8 * 1024 * 1024))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros", bytes(32 * 1024 * 1024))
    assert len(buf.getvalue()) < 1 << 20
    (root / "bomb.zip").write_bytes(buf.getvalue())
    err = refused(svc, root, outside, root / "bomb.zip", TooLarge)
    assert err.data["reason"] == "max_extract_bytes"


def many_members_tar(count: int) -> bytes:
    """A tar of ``count`` empty files, built from one header template (fast)."""
    template = bytearray(ti("f0000000").tobuf(tarfile.USTAR_FORMAT))
    out = bytearray()
    for i in range(count):
        h = bytearray(template)
        h[0:8] = b"f%07d" % i
        h[148:156] = b" " * 8
        h[148:156] = b"%06o\0 " % sum(h)
        out += h
    return bytes(out + bytes(1024))


def test_100k_members_are_refused_by_count(env: tuple[FsService, Path, Path]) -> None:
    svc, root, outside = env
    assert svc.config.max_extract_members < 100_000  # the default refuses it too
    svc = FsService(FsConfig(roots=(str(root),), max_extract_members=1000))
    (root / "many.tar").write_bytes(many_members_tar(100_000))
    err = refused(svc, root, outside, root / "many.tar", TooLarge)
    assert err.data == {"reason": "max_extract_members",
                        "limit": svc.config.max_extract_members}


def test_not_an_archive_and_bad_destinations(env: tuple[FsService, Path, Path]) -> None:
    svc, root, _ = env
    with pytest.raises(Conflict) as exc:
        svc.extract(str(root / "src" / "a.txt"), str(root / "x"))
    assert exc.value.data["reason"] == "bad_archive"
    assert not (root / "x").exists()
    svc.archive([str(root / "src" / "a.txt")], str(root / "a.zip"), "zip")
    with pytest.raises(Conflict):  # dst is a file
        svc.extract(str(root / "a.zip"), str(root / "src" / "a.txt"))
    with pytest.raises(PermissionDenied):  # dst outside the roots
        svc.extract(str(root / "a.zip"), str(root.parent / "outside" / "x"))
    with pytest.raises(PermissionDenied):  # archive written outside the roots
        svc.archive([str(root / "src")], str(root.parent / "outside" / "x.tar"), "tar")
    assert not (root.parent / "outside" / "x.tar").exists()


def test_extract_over_the_socket_with_progress(shared_daemon: Any, workdir: Path) -> None:
    (workdir / "in").mkdir()
    (workdir / "in" / "big").write_bytes(os.urandom(3 * 1024 * 1024))
    with shared_daemon.client() as c:
        seen: list[dict[str, Any]] = []
        r = c.call("fs.archive", paths=[str(workdir / "in")], dst=str(workdir / "a.tar.gz"),
                   format="tar.gz", on_progress=seen.append)
        assert r["files"] == 1 and seen and seen[-1]["done"] == 3 * 1024 * 1024
        seen.clear()
        x = c.call("fs.extract", src=str(workdir / "a.tar.gz"), dst=str(workdir / "out"),
                   on_progress=seen.append)
        assert x["output_bytes"] == 3 * 1024 * 1024 and x["format"] == "tar.gz"
        assert seen and seen[-1]["done"] == 3 * 1024 * 1024
        assert (workdir / "out" / "in" / "big").read_bytes() == \
            (workdir / "in" / "big").read_bytes()
        (workdir / "evil.tar").write_bytes(tar_bytes([(ti("../evil"), b"x")]))
        with pytest.raises(PermissionDenied) as exc:
            c.call("fs.extract", src=str(workdir / "evil.tar"), dst=str(workdir / "e"))
        assert exc.value.data["reason"] == "unsafe_member"
        assert not (workdir / "e").exists() and not (workdir.parent / "evil").exists()


@pytest.mark.parametrize("kind", [tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME])
def test_a_huge_pax_or_longname_header_is_refused_unread(env: tuple[FsService, Path, Path],
                                                          kind: bytes) -> None:
    """tarfile reads a pax or GNU long-name header whole into memory: a 64 MiB one (a few
    hundred KiB gzipped; 4 GiB takes 18 MiB) made the daemon allocate it. Headers above
    1 MiB fail the extract before they are read."""
    import gzip

    svc, root, outside = env
    header = ti("././@LongHeader", kind)
    header.size = 64 << 20
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1) as gz:
        gz.write(header.tobuf(tarfile.USTAR_FORMAT))
        zeros = bytes(1 << 20)
        for _ in range(64):
            gz.write(zeros)
        gz.write(ti("f").tobuf(tarfile.USTAR_FORMAT) + bytes(1024))
    (root / "hdr.tar.gz").write_bytes(raw.getvalue())
    err = refused(svc, root, outside, root / "hdr.tar.gz")
    assert err.data["reason"] == "unsafe_member" and "header" in str(err)
