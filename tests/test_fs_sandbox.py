"""The fs sandbox: path resolution against the roots and every way out of them."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xsys.fs.sandbox import Sandbox, default_roots
from xsys.protocol import InvalidParams, NotFound, PermissionDenied


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "sub").mkdir(parents=True)
    (r / "sub" / "f.txt").write_text("x")
    return r


def test_plain_paths_resolve_inside(root: Path) -> None:
    sb = Sandbox([str(root)])
    res = sb.resolve(str(root / "sub" / "f.txt"))
    assert res.real == str(root / "sub" / "f.txt") and res.root == str(root)
    assert sb.resolve("sub/f.txt").real == res.real  # relative to the first root
    assert sb.resolve(str(root / "sub" / ".." / "sub" / "." / "f.txt")).real == res.real
    assert sb.resolve(str(root)).is_root


def test_missing_tail_is_lexical(root: Path) -> None:
    sb = Sandbox([str(root)])
    assert sb.resolve(str(root / "new" / "deeper" / "x")).real == str(root / "new/deeper/x")
    with pytest.raises(NotFound):  # like the kernel: no going up out of a missing dir
        sb.resolve(str(root / "new" / ".." / ".." / ".." / "etc"))
    with pytest.raises(PermissionDenied) as exc:
        sb.resolve(str(root / ".." / "new" / "x"))
    assert exc.value.data["reason"] == "outside_roots"


def test_dotdot_escape_refused_with_resolved_path(root: Path) -> None:
    sb = Sandbox([str(root)])
    with pytest.raises(PermissionDenied) as exc:
        sb.resolve(str(root / ".." / ".." / "etc" / "passwd"))
    assert exc.value.code == -32002
    resolved = os.path.realpath(str(root / ".." / ".." / "etc" / "passwd"))
    assert exc.value.data["path"] == resolved == exc.value.data["resolved"]
    with pytest.raises(PermissionDenied):
        sb.resolve("../../../../../../etc/passwd")


def test_absolute_outside_refused(root: Path) -> None:
    sb = Sandbox([str(root)])
    for path in ("/etc/passwd", "/", str(root.parent), str(root) + "x"):
        with pytest.raises(PermissionDenied):
            sb.resolve(path)


def test_symlink_to_etc_refused(root: Path) -> None:
    os.symlink("/etc", root / "etc")
    os.symlink("/etc/passwd", root / "passwd")
    sb = Sandbox([str(root)])
    for path in ("etc", "etc/passwd", "passwd", "etc/../etc/hostname"):
        with pytest.raises(PermissionDenied) as exc:
            sb.resolve(str(root / path))
        assert exc.value.data["resolved"].startswith("/etc")
    # the link itself may be removed: only it is touched
    res = sb.resolve(str(root / "etc"), allow_outward_link=True)
    assert res.entry == str(root / "etc") and res.is_link


def test_relative_symlink_escape_refused(root: Path) -> None:
    os.symlink("../../..", root / "sub" / "up")
    sb = Sandbox([str(root)])
    with pytest.raises(PermissionDenied):
        sb.resolve(str(root / "sub" / "up" / "etc"))


def test_symlink_loop_refused(root: Path) -> None:
    os.symlink(root / "b", root / "a")
    os.symlink(root / "a", root / "b")
    os.symlink("self", root / "self")
    sb = Sandbox([str(root)])
    for name in ("a", "b/x", "self"):
        with pytest.raises(PermissionDenied) as exc:
            sb.resolve(str(root / name))
        assert exc.value.data["errno"] == "ELOOP"
    assert sb.resolve(str(root / "a"), allow_outward_link=True).entry == str(root / "a")


def test_inside_symlinks_are_followed(root: Path) -> None:
    os.symlink("sub", root / "alias")
    sb = Sandbox([str(root)])
    res = sb.resolve(str(root / "alias" / "f.txt"))
    assert res.real == str(root / "sub" / "f.txt")
    link = sb.resolve(str(root / "alias"))
    assert link.entry == str(root / "alias") and link.real == str(root / "sub")


def test_root_that_is_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "f").write_text("x")
    os.symlink(real, tmp_path / "link")
    sb = Sandbox([str(tmp_path / "link")])
    assert sb.roots == (str(real),)
    assert sb.resolve(str(tmp_path / "link" / "f")).real == str(real / "f")
    assert sb.resolve(str(real / "f")).real == str(real / "f")
    with pytest.raises(PermissionDenied):
        sb.resolve(str(tmp_path / "link" / ".." / "elsewhere"))


def test_not_a_directory_and_bad_input(root: Path) -> None:
    sb = Sandbox([str(root)])
    with pytest.raises(NotFound) as exc:
        sb.resolve(str(root / "sub" / "f.txt" / "x"))
    assert exc.value.data["errno"] == "ENOTDIR"
    with pytest.raises(InvalidParams):
        sb.resolve("")
    with pytest.raises(InvalidParams):
        sb.resolve("a\0b")


def test_several_roots_and_defaults(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    sb = Sandbox([str(a), str(b), str(a)])
    assert sb.roots == (str(a), str(b))
    assert sb.resolve(str(b / "x")).root == str(b)
    assert tempfile.gettempdir() in default_roots()
    with pytest.raises(ValueError):
        Sandbox([])


# ----------------------------------------------------------------------------- property

_TREE = tempfile.mkdtemp(prefix="xsys-sandbox-prop-")
atexit.register(shutil.rmtree, _TREE, True)
_ROOT = os.path.join(_TREE, "root")
os.makedirs(os.path.join(_ROOT, "a", "b"))
os.makedirs(os.path.join(_TREE, "outside"))
os.symlink("..", os.path.join(_ROOT, "a", "up"))           # back to root (inside)
os.symlink("../..", os.path.join(_ROOT, "a", "upup"))      # to _TREE (outside)
os.symlink(os.path.join(_TREE, "outside"), os.path.join(_ROOT, "out"))
os.symlink("a/b", os.path.join(_ROOT, "ab"))
os.symlink("loop2", os.path.join(_ROOT, "loop1"))
os.symlink("loop1", os.path.join(_ROOT, "loop2"))
_SANDBOX = Sandbox([_ROOT])

components = st.sampled_from(["a", "b", "..", ".", "up", "upup", "out", "ab", "loop1",
                              "new", "outside", "root"])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(components, min_size=0, max_size=8), st.booleans())
def test_resolution_never_escapes_and_matches_realpath(parts: list[str],
                                                       absolute: bool) -> None:
    rel = os.path.join(*parts) if parts else "."
    path = os.path.join(_ROOT, rel) if absolute else rel
    try:
        res = _SANDBOX.resolve(path)
    except PermissionDenied as exc:
        real = os.path.realpath(os.path.join(_ROOT, rel))
        inside = real == _ROOT or real.startswith(_ROOT + os.sep)
        assert exc.data.get("errno") == "ELOOP" or not inside
        return
    except NotFound:
        return
    assert res.real == _ROOT or res.real.startswith(_ROOT + os.sep)
    assert res.entry == _ROOT or res.entry.startswith(_ROOT + os.sep)
    assert res.real == os.path.realpath(os.path.join(_ROOT, rel))
