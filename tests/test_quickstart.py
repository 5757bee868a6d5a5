"""The README's quick start, from a fresh clone: ``git clone`` this repository's HEAD into
a temporary directory, run ``make run`` there as the README's "Two commands" block says
(the installer's own choice: uv when it can get one, else pip), wait until the daemon
answers, then run every ``$ xsys ...`` command of the README's "First five things to try"
with the clone's ``.venv/bin/xsys`` and compare its output by shape
(``tests/test_doc_blocks.py``), and the Python example with the clone's Python.

``make test`` is the suite this test is part of, so it is not run again here. Needs git,
make and the package index the Makefile installs from (the machine's caches make it
fast); skipped with the reason when git or make is missing.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_doc_blocks import Block, blocks_of, commands, shape
from xsys.client import Client

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
INSTALL_TIMEOUT_S = 600.0


def section(name: str) -> list[Block]:
    """The README's fenced blocks under the ``## name`` heading."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"## {name}")
    end = text.find("\n## ", start + 1)
    first = text.count("\n", 0, start) + 1
    last = text.count("\n", 0, end) + 1 if end != -1 else 10**9
    return [b for b in blocks_of(README) if first <= b.line <= last]


def test_readme_quick_start_names_the_two_commands() -> None:
    (block,) = section("Two commands")
    lines = [ln.split("#")[0].strip() for ln in block.code.splitlines() if ln.strip()]
    assert lines == ["make run", "make test"]


def _answers(sock: str) -> bool:
    try:
        with Client(socket_path=sock, connect_timeout=1, timeout=5) as c:
            return bool(c.rpc.ping()["pong"])
    except Exception:  # DaemonNotRunning, a half-started daemon: not serving yet
        return False


@pytest.fixture(scope="module")
def fresh_clone() -> Iterator[tuple[Path, str]]:
    """A fresh clone serving ``make run``: ``(clone, socket)``."""
    for tool in ("git", "make"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    work = Path(tempfile.mkdtemp(prefix="xsys-qs-"))
    clone = work / "xsys"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=120)
    sock_dir = work / "run"
    sock_dir.mkdir(mode=0o700)
    sock = str(sock_dir / "xsys.sock")
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH") and not k.startswith("XSYS_")}
    env["XSYS_SOCKET"] = sock
    log = (work / "make-run.log").open("wb")
    proc = subprocess.Popen(["make", "run"], cwd=clone, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + INSTALL_TIMEOUT_S
    try:
        while not (os.path.exists(sock) and _answers(sock)):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                tail = (work / "make-run.log").read_text(errors="replace")[-3000:]
                pytest.fail(f"`make run` on a fresh clone did not serve:\n{tail}")
            time.sleep(0.1)  # polling for the marker (the daemon answering), not a wait
        yield clone, sock
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
        shutil.rmtree(work, ignore_errors=True)


def test_make_run_installs_only_what_running_needs(fresh_clone: tuple[Path, str]) -> None:
    clone, _sock = fresh_clone
    bin_dir = clone / ".venv" / "bin"
    assert (bin_dir / "xsys").exists(), "make run did not install the xsys command"
    for dev_tool in ("pytest", "mypy", "ruff"):
        assert not (bin_dir / dev_tool).exists(), f"make run installed {dev_tool}"


def test_first_five_things_work_on_the_fresh_clone(fresh_clone: tuple[Path, str]) -> None:
    clone, sock = fresh_clone
    blocks = section("First five things to try")
    consoles = [b for b in blocks if b.lang == "console"]
    pythons = [b for b in blocks if b.lang == "python"]
    assert len(consoles) >= 3 and pythons
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH") and not k.startswith("XSYS_")}
    env.update(XSYS_SOCKET=sock, COLUMNS="120",
               PATH=f"{clone / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    for block in consoles:
        for cmd, expected in commands(block.code):
            argv = shlex.split(cmd)
            assert argv[0] == "xsys", f"{block.id}: the quick start runs xsys only: {cmd}"
            r = subprocess.run([str(clone / ".venv" / "bin" / "xsys"), *argv[1:]], cwd=clone,
                               env=env, capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, f"`{cmd}` on the fresh clone: {r.stderr}"
            missing = sorted(w for w in shape(expected) if w not in r.stdout)
            assert not missing, f"`{cmd}` output lacks {missing}:\n{r.stdout}"
    for block in pythons:
        r = subprocess.run([str(clone / ".venv" / "bin" / "python"), "-c", block.code],
                           cwd=clone, env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"{block.id} on the fresh clone:\n{r.stderr}"
    assert re.search(r"<!-- setup-time:start -->\d", README.read_text()), \
        "README lacks the measured set-up time (python bench/setup.py)"
