"""Shared fixtures: a real daemon in a subprocess on a temp socket.

``daemon_factory(config: dict | None = None, **kw) -> DaemonHandle`` starts
``python -m xsys serve --config <tmp>/config.json`` (the given config deep-merged over a
test default: socket in a temp dir, ``fs.roots`` = [the test's tmp_path]) and waits until
it answers ``rpc.ping``. ``daemon`` is one started with defaults. Every daemon is stopped
(SIGTERM, then SIGKILL) at the end of the test. The launching itself is
``tests/launcher.py`` (shared with the benchmarks).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.alerts_support import Recorder
from tests.launcher import REPO, DaemonProcess, daemon_env
from xsys.alerts.providers import HttpClient


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` merged into a copy of ``base`` (maps merge, other values replace)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


class DaemonHandle(DaemonProcess):
    """A test's daemon (a ``tests.launcher.DaemonProcess``): ``config`` written to
    ``workdir/config.json`` (``config_path``), its output in ``workdir/daemon.log``
    (``log_path``), run with ``env`` from this repository; ``socket`` is the config's
    ``server.socket``. ``start()``/``stop()``/``log()``/``signal()``/``client()``/
    ``async_client()`` come from ``DaemonProcess``."""

    def __init__(self, workdir: Path, config: dict[str, Any], env: dict[str, str]) -> None:
        self.workdir = workdir
        self.config = config
        self.config_path = workdir / "config.json"
        self.config_path.write_text(json.dumps(config))
        super().__init__(config["server"]["socket"], ["--config", str(self.config_path)],
                         log_path=workdir / "daemon.log", env=env, source_root=REPO)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short temp dir (Unix socket paths are limited to ~107 bytes)."""
    with tempfile.TemporaryDirectory(prefix="xsys-t-") as d:
        yield Path(d)


@pytest.fixture
def daemon_factory(tmp_path: Path, short_tmp: Path) -> Iterator[Callable[..., DaemonHandle]]:
    """Start real daemons; see the module docstring."""
    handles: list[DaemonHandle] = []
    counter = iter(range(1000))

    def start(config: dict[str, Any] | None = None, *, start: bool = True,
              env: dict[str, str] | None = None) -> DaemonHandle:
        n = next(counter)
        workdir = tmp_path / f"daemon{n}"
        workdir.mkdir()
        home = tmp_path / "home"
        home.mkdir(exist_ok=True)
        base = {
            "server": {"socket": str(short_tmp / f"d{n}" / "xsys.sock"),
                       "log_level": "DEBUG"},
            "fs": {"roots": [str(tmp_path)]},
            "sys": {"sample_interval_s": 0.5},
        }
        cfg = deep_merge(base, config or {})
        penv = daemon_env(home=home)
        penv.pop("XDG_RUNTIME_DIR", None)
        penv.update(env or {})
        handle = DaemonHandle(workdir, cfg, penv)
        handles.append(handle)
        return handle.start() if start else handle

    yield start
    for h in handles:
        h.stop()


@pytest.fixture
async def server() -> AsyncIterator[Recorder]:
    """A local HTTP server recording requests, standing in for ntfy/Gotify/webhooks."""
    rec = await Recorder().start()
    yield rec
    await rec.stop()


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    """The alert providers' shared HTTP client, closed afterwards."""
    client = HttpClient()
    yield client
    await client.close()


@pytest.fixture
def daemon(daemon_factory: Callable[..., DaemonHandle]) -> DaemonHandle:
    """A daemon with the test defaults."""
    return daemon_factory()
