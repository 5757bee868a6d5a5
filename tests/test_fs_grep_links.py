"""``fs.grep`` over a real tree with binary and non-UTF-8 files, and ``fs.touch``,
``fs.link``, ``fs.readlink``, ``fs.realpath``: in process on the service and over a real
daemon, including the CLI commands."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.fswatch_support import shared_daemon, workdir
from xsys.cli import main
from xsys.fs.config import FsConfig
from xsys.fs.grep import GrepQuery
from xsys.fs.service import FsService
from xsys.protocol import AlreadyExists, Conflict, InvalidParams, NotFound, PermissionDenied

__all__ = ["shared_daemon", "workdir"]  # fixtures used by this module


@pytest.fixture
def svc(tmp_path: Path) -> tuple[FsService, Path]:
    root = tmp_path / "root"
    (root / "src" / "deep").mkdir(parents=True)
    (root / "src" / "a.py").write_text("import os\n# TODO first\nx = 1\n# todo second\nend\n")
    (root / "src" / "deep" / "b.txt").write_text("nothing\nTODO deep\n")
    (root / "src" / "latin1.txt").write_bytes("café TODO ünï\n".encode("latin-1"))
    (root / "src" / "blob.bin").write_bytes(b"TODO\0binary TODO\n")
    (root / "src" / "late_nul.txt").write_bytes(b"TODO\n" + b"x" * 9000 + b"\0")
    (root / "src" / "ignored.log").write_text("TODO ignored\n")
    (root / "src" / ".gitignore").write_text("*.log\nbuild/\n")
    (root / "src" / "build").mkdir()
    (root / "src" / "build" / "out.txt").write_text("TODO built\n")
    (tmp_path / "outside.txt").write_text("TODO outside\n")
    os.symlink(tmp_path / "outside.txt", root / "src" / "escape.txt")
    os.symlink(tmp_path, root / "src" / "escape_dir")
    return FsService(FsConfig(roots=(str(root),))), root


def rels(result: Any, root: Path) -> list[tuple[str, int]]:
    return [(os.path.relpath(m.path, root / "src"), m.line_number) for m in result.matches]


def test_grep_skips_binary_reads_non_utf8_and_never_follows_links(
        svc: tuple[FsService, Path]) -> None:
    s, root = svc
    r = s.grep(str(root / "src"), GrepQuery("TODO"))
    found = rels(r, root)
    assert ("blob.bin", 1) not in found and r.skipped_binary == 1
    assert ("late_nul.txt", 1) in found  # NUL after the first block: still text
    latin = [m for m in r.matches if m.path.endswith("latin1.txt")]
    assert latin and "TODO" in latin[0].line and "\ufffd" in latin[0].line
    assert not any("outside" in m.line for m in r.matches)  # symlinks are not followed
    assert ("a.py", 2) in found and ("a.py", 4) not in found  # case-sensitive
    assert ("build/out.txt", 1) in found and ("ignored.log", 1) in found


def test_grep_options(svc: tuple[FsService, Path]) -> None:
    s, root = svc
    r = s.grep(str(root / "src"), GrepQuery("todo", ignore_case=True, glob="*.py",
                                            context=1))
    assert [(m.line_number, m.line, m.before, m.after) for m in r.matches] == [
        (2, "# TODO first", ["import os"], ["x = 1"]),
        (4, "# todo second", ["x = 1"], ["end"])]
    r = s.grep(str(root / "src"), GrepQuery("TODO", gitignore=True))
    found = {p for p, _ in rels(r, root)}
    assert "ignored.log" not in found and "build/out.txt" not in found and "a.py" in found
    r = s.grep(str(root / "src"), GrepQuery("x.=", fixed=True))
    assert r.matches == []
    r = s.grep(str(root / "src"), GrepQuery("x.=", fixed=False))
    assert [m.line for m in r.matches] == ["x = 1"]
    r = s.grep(str(root / "src"), GrepQuery("TODO|todo", max_count=1, glob="a.py"))
    assert len(r.matches) == 1
    r = s.grep(str(root / "src"), GrepQuery("TODO"), limit=2)
    assert len(r.matches) == 2 and r.truncated
    r = s.grep(str(root / "src" / "a.py"), GrepQuery("x = (\\d)"))  # one file
    assert [(m.line_number, m.line) for m in r.matches] == [(3, "x = 1")]
    r = s.grep(str(root / "src"), GrepQuery("TODO", max_filesize=10))
    assert r.skipped_large > 0 and all(os.path.getsize(m.path) <= 10
                                       for m in r.matches)
    for bad in ("(", "", "a" * 2000):
        with pytest.raises(InvalidParams):
            s.grep(str(root / "src"), GrepQuery(bad))
    with pytest.raises(PermissionDenied):
        s.grep(str(root / "src" / "escape_dir"), GrepQuery("TODO"))


def test_grep_pathological_regex_is_time_bounded(svc: tuple[FsService, Path]) -> None:
    s, root = svc
    (root / "src" / "evil.txt").write_text("a" * 5000 + "!\n")
    r = s.grep(str(root / "src" / "evil.txt"), GrepQuery("(a|aa)+$|(a*)*b"))
    assert r.matches == [] and r.timed_out == [str(root / "src" / "evil.txt")]



def test_touch(svc: tuple[FsService, Path]) -> None:
    s, root = svc
    r = s.touch(str(root / "new.txt"))
    assert r.created and (root / "new.txt").read_bytes() == b""
    r = s.touch(str(root / "new.txt"), mtime_at=1_000_000.0)
    assert not r.created and r.mtime_at == 1_000_000.0
    assert os.stat(root / "new.txt").st_mtime == 1_000_000.0
    r = s.touch(str(root / "new.txt"), atime_at=2_000_000.0)
    assert (r.mtime_at, r.atime_at) == (1_000_000.0, 2_000_000.0)
    with pytest.raises(NotFound):
        s.touch(str(root / "no" / "such" / "f"))
    assert s.touch(str(root / "no" / "such" / "f"), make_parents=True).created
    with pytest.raises(PermissionDenied):  # the symlink leads outside: not touched
        s.touch(str(root / "src" / "escape.txt"), mtime_at=5.0)
    assert os.stat(root.parent / "outside.txt").st_mtime != 5.0


def test_links(svc: tuple[FsService, Path]) -> None:
    s, root = svc
    r = s.link("src/a.py", str(root / "l1"), symbolic=True)
    assert r.symbolic and os.readlink(root / "l1") == "src/a.py"
    assert s.readlink(str(root / "l1")).target == "src/a.py"
    assert s.realpath(str(root / "l1")).path == str(root / "src" / "a.py")
    assert s.realpath(str(root / "src" / "deep" / ".." / "a.py")).path == str(root / "src"
                                                                            / "a.py")
    s.link("not/yet/there", str(root / "dangling"), symbolic=True)  # inside: allowed
    for target in ("../outside.txt", str(root.parent / "outside.txt"), "/etc/passwd",
                   "missing/../../../etc", "src/escape_dir/outside.txt"):
        with pytest.raises(PermissionDenied) as exc:
            s.link(target, str(root / "bad"), symbolic=True)
        assert exc.value.data["reason"] == "symlink_outside_roots", target
        assert not os.path.lexists(root / "bad")
    with pytest.raises(AlreadyExists):
        s.link("src/a.py", str(root / "l1"), symbolic=True)
    h = s.link(str(root / "src" / "a.py"), str(root / "hard"))
    assert not h.symbolic and os.stat(root / "hard").st_ino == os.stat(root / "src" /
                                                                       "a.py").st_ino
    with pytest.raises(PermissionDenied):  # hard links only within the roots
        s.link(str(root.parent / "outside.txt"), str(root / "hard2"))
    with pytest.raises(Conflict):
        s.link(str(root / "src"), str(root / "hard3"))
    with pytest.raises(Conflict):
        s.readlink(str(root / "src" / "a.py"))
    with pytest.raises(PermissionDenied):
        s.readlink(str(root / "src" / "escape.txt"))
    with pytest.raises(PermissionDenied):
        s.realpath(str(root / "src" / "escape.txt"))
    with pytest.raises(NotFound):
        s.realpath(str(root / "nope"))


def cli(socket: str, *args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, ["--socket", socket, *args], catch_exceptions=False)
    return r.exit_code, r.stdout


def test_over_the_socket_and_cli(shared_daemon: Any, workdir: Path) -> None:
    s = shared_daemon.socket
    (workdir / "t").mkdir()
    (workdir / "t" / "a.txt").write_text("one\nneedle two\nthree\n")
    (workdir / "t" / "b.bin").write_bytes(b"needle\0")
    with shared_daemon.client() as c:
        seen: list[Any] = []
        r = c.call("fs.grep", path=str(workdir / "t"), pattern="needle", context=1,
                   on_progress=seen.append)
        assert r["matches"] == [{"path": str(workdir / "t" / "a.txt"), "line_number": 2,
                                 "line": "needle two", "before": ["one"],
                                 "after": ["three"]}]
        assert r["skipped_binary"] == 1 and seen
        by_regex = c.call("fs.grep", path=str(workdir / "t"), regex=r"need\w+ t")
        assert [m["line"] for m in by_regex["matches"]] == ["needle two"]
        fixed = c.call("fs.grep", path=str(workdir / "t"), pattern="needle.", fixed=True)
        assert fixed["matches"] == []
        assert c.call("fs.touch", path=str(workdir / "t" / "n"), mtime_at=10.0)["mtime_at"] \
            == 10.0
        assert c.call("fs.link", target="a.txt", path=str(workdir / "t" / "l"),
                      symbolic=True)["symbolic"]
        assert c.call("fs.readlink", path=str(workdir / "t" / "l"))["target"] == "a.txt"
        assert c.call("fs.realpath", path=str(workdir / "t" / "l"))["path"] == \
            str(workdir / "t" / "a.txt")
    code, out = cli(s, "fs", "grep", "needle", str(workdir / "t"))
    assert code == 0 and out == f"{workdir / 't' / 'a.txt'}:2:needle two\n"
    code, out = cli(s, "fs", "grep", "absent", str(workdir / "t"))
    assert code == 1 and out.strip() == ""
    code, out = cli(s, "fs", "grep", "--json", "-C", "1", "needle", str(workdir / "t"))
    assert json.loads(out)["matches"][0]["before"] == ["one"]
    assert cli(s, "fs", "ln", "-s", "a.txt", str(workdir / "t" / "l2"))[0] == 0
    assert cli(s, "fs", "readlink", str(workdir / "t" / "l2")) == (0, "a.txt\n")
    assert cli(s, "fs", "realpath", str(workdir / "t" / "l2")) == \
        (0, f"{workdir / 't' / 'a.txt'}\n")
    assert cli(s, "fs", "ln", str(workdir / "t" / "a.txt"), str(workdir / "t" / "h"))[0] == 0
    assert (workdir / "t" / "h").stat().st_nlink == 2
    assert cli(s, "fs", "touch", "--mtime", "1000", str(workdir / "t" / "new"))[0] == 0
    assert (workdir / "t" / "new").stat().st_mtime == 1000
    assert cli(s, "fs", "archive", str(workdir / "t.zip"), str(workdir / "t"))[0] == 0
    code, out = cli(s, "fs", "extract", "--json", str(workdir / "t.zip"), str(workdir / "x"))
    assert code == 0 and json.loads(out)["format"] == "zip"
    assert (workdir / "x" / "t" / "a.txt").read_text() == "one\nneedle two\nthree\n"


def test_grep_reads_no_file_above_fs_max_read_bytes(tmp_path: Path) -> None:
    """grep reads each file whole, so ``max_filesize`` is capped at ``fs.max_read_bytes``:
    a peer asking for 1 TiB on a huge (here sparse) file gets it skipped and counted, not
    the daemon's memory filled."""
    root = tmp_path / "root"
    root.mkdir()
    with open(root / "sparse.txt", "wb") as f:
        f.write(b"needle\n")
        f.truncate(3 << 20)
    svc = FsService(FsConfig(roots=(str(root),), max_read_bytes=1 << 20))
    r = svc.grep(str(root), GrepQuery(pattern="needle", max_filesize=1 << 40))
    assert r.matches == [] and r.skipped_large == 1
    (root / "small.txt").write_bytes(b"needle\n")
    r = svc.grep(str(root), GrepQuery(pattern="needle", max_filesize=1 << 40))
    assert [m.path for m in r.matches] == [str(root / "small.txt")]


def test_touch_refuses_times_out_of_range(shared_daemon: Any, workdir: Path) -> None:
    """NaN, infinities and times past what the kernel stores are -32602, not -32603."""
    target = workdir / "t.txt"
    target.write_text("x")
    with shared_daemon.client() as c:
        for bad in (float("nan"), float("inf"), 1e20, -1e20):
            for key in ("mtime_at", "atime_at"):
                with pytest.raises(InvalidParams) as exc:
                    c.call("fs.touch", path=str(target), **{key: bad})
                assert exc.value.data["param"] == key
        assert c.call("fs.touch", path=str(target), mtime_at=1e9)["mtime_at"] == 1e9


def test_archive_cli_refuses_a_name_it_cannot_tell_the_format_of(shared_daemon: Any,
                                                                 workdir: Path) -> None:
    """`xsys fs archive out.rar x` made a tar.gz called out.rar: an unknown extension is a
    usage error (exit 2) unless --format says what to write."""
    (workdir / "x.txt").write_text("x")
    code, _ = cli(shared_daemon.socket, "fs", "archive", str(workdir / "out.rar"),
                  str(workdir / "x.txt"))
    assert code == 2 and not (workdir / "out.rar").exists()
    code, _ = cli(shared_daemon.socket, "fs", "archive", "--format", "zip",
                  str(workdir / "out.rar"), str(workdir / "x.txt"))
    assert code == 0 and zipfile.is_zipfile(workdir / "out.rar")
    code, _ = cli(shared_daemon.socket, "fs", "archive", str(workdir / "b.tgz"),
                  str(workdir / "x.txt"))
    assert code == 0
