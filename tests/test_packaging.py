"""Packaging: the wheel carries complete metadata and the package data the daemon needs,
and the one-file binary (PyInstaller) runs ``xsys serve`` and ``xsys sys info`` from a
directory outside the checkout. Building the binary takes about a minute: it runs only
where PyInstaller is installed (``make binary``/the ``dist`` extra) and skips otherwise.
"""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.launcher import REPO
from xsys import PROTOCOL_VERSION, __version__
from xsys.client import Client
from xsys.protocol import DaemonNotRunning


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    src = tmp_path_factory.mktemp("src") / "xsys"
    # a clean copy of the sources (no build/ or egg-info of the checkout's editable install)
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "node_modules", "build", "dist", "*.egg-info", "__pycache__",
        "clients", "bench", ".mypy_cache", ".ruff_cache", ".pytest_cache"))
    result = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out),
                             str(src)], capture_output=True, text=True, timeout=300)
    if result.returncode != 0 and "No module named build" in result.stderr:
        pytest.skip("python -m build is not installed (make install installs it)")
    if result.returncode != 0 and ("Could not find a version" in result.stderr
                                   or "Network is unreachable" in result.stderr):
        pytest.skip(f"the build backend could not be fetched: {result.stderr[-300:]}")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (found,) = out.glob("xsys-*.whl")
    return found


def test_wheel_metadata_is_complete(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(zf.read(meta_name))
        entry = zf.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert meta["Name"] == "xsys" and meta["Version"] == __version__
    assert meta["Requires-Python"] == ">=3.10"
    assert meta["License-Expression"] == "MIT" or meta["License"]
    classifiers = meta.get_all("Classifier") or []
    assert "Programming Language :: Python :: 3.10" in classifiers
    assert any(c.startswith("Topic :: System :: Monitoring") for c in classifiers)
    requires = meta.get_all("Requires-Dist") or []
    assert any(r.startswith("psutil") for r in requires)
    extras = set(meta.get_all("Provides-Extra") or [])
    assert {"dev", "fast"} <= extras
    assert "xsys = xsys.cli:main" in entry
    assert "xsys/py.typed" in names
    assert any(n.endswith("LICENSE") for n in names)


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if shutil.which("pyinstaller", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("PyInstaller is not installed (make binary installs it)")
    work = tmp_path_factory.mktemp("pyinstaller")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "pyinstaller"), "--noconfirm", "--onefile",
         "--name", "xsys", "--collect-submodules", "xsys", "--collect-data", "xsys",
         "--distpath", str(work / "dist"), "--workpath", str(work / "build"),
         "--specpath", str(work), "--log-level", "WARN", str(REPO / "xsys" / "__main__.py")],
        capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    yield work / "dist" / "xsys"


def test_binary_serves_from_outside_the_checkout(binary: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="xsys-bin-") as d:
        outside = Path(d)
        exe = outside / "xsys"
        shutil.copy2(binary, exe)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(outside)}
        version = subprocess.run([str(exe), "--version"], capture_output=True, text=True,
                                 timeout=60, cwd=outside, env=env)
        assert version.stdout.strip() == f"xsys {__version__} (protocol {PROTOCOL_VERSION})"
        sock = outside / "s" / "xsys.sock"
        log = open(outside / "daemon.log", "wb")  # noqa: SIM115
        daemon = subprocess.Popen([str(exe), "serve", "--socket", str(sock)], cwd=outside,
                                  env=env, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with Client(str(sock), timeout=5) as c:
                        c.call("rpc.ping")
                    break
                except (OSError, DaemonNotRunning):
                    assert daemon.poll() is None, (outside / "daemon.log").read_text()
                    assert time.monotonic() < deadline, "the binary's daemon never answered"
                    time.sleep(0.1)
            info = subprocess.run([str(exe), "--socket", str(sock), "sys", "info", "--json"],
                                  capture_output=True, text=True, timeout=60, cwd=outside,
                                  env=env)
            assert info.returncode == 0, info.stderr
            assert '"hostname"' in info.stdout
        finally:
            daemon.terminate()
            daemon.wait(20)
            log.close()
