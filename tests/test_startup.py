"""What keeps the daemon's cold start short (issue 16, "Performance"; the timings are in
``bench/startup.py`` and docs/service.md, "Start-up time"): these tests guard its
structure, not its speed.

- Importing ``xsys.daemon`` leaves out what start-up does not use (aiohttp and the HTTP
  gateway, the archive modules, the alert providers and the email package, the CLI's
  client side): they load on first use.
- ``compose`` declares the methods without computing their result schemas; the first
  read (``rpc.methods``) computes the same schemas an eager router does.
- ``READY`` does not wait for the sampler's first sample, and a request arriving before
  it waits for that sample instead of taking its own on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import xsys.server.router as router_module
from xsys.config import Config, LoadedConfig, load_config
from xsys.daemon import Daemon, compose
from xsys.handlers import register_all
from xsys.host import Sampler, Snapshot
from xsys.server.dispatch import invoke
from xsys.server.router import Router

ROOT = Path(__file__).resolve().parent.parent

#: Modules (and packages: their submodules too) that ``import xsys.daemon`` must not load.
NOT_AT_START = (
    "aiohttp", "yarl", "multidict",  # the HTTP gateway, push and checks load it on use
    "xsys.http.gateway", "xsys.http.node", "xsys.http.ws",
    "tarfile", "zipfile", "xsys.fs.archive",  # fs.archive / fs.extract
    "smtplib", "email.mime",  # the smtp provider, TinyMonitor's e-mail
    "xsys.alerts.providers.smtp", "xsys.alerts.providers.ntfy",
    "xsys.alerts.providers.gotify", "xsys.alerts.providers.webhook",
    "xsys.alerts.providers.google_chat", "xsys.alerts.providers.alertmanager",
    "xsys.client", "xsys.cli",  # the client side
)


def _modules_after(code: str) -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XSYS_")}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys\n"
                          "print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, env=env, check=True, timeout=60)
    return set(json.loads(out.stdout.splitlines()[-1]))


def _loaded(modules: set[str], name: str) -> list[str]:
    return sorted(m for m in modules if m == name or m.startswith(name + "."))


def test_importing_the_daemon_leaves_out_what_start_up_does_not_use() -> None:
    modules = _modules_after("import json\nimport xsys.daemon")
    assert "xsys.daemon" in modules and "asyncio" in modules  # the probe itself works
    loaded = {name: _loaded(modules, name) for name in NOT_AT_START}
    assert {k: v for k, v in loaded.items() if v} == {}


def test_the_lazy_modules_still_load_on_use() -> None:
    # the guard above must not pass because a name is misspelt or gone
    modules = _modules_after("import json\nimport xsys.daemon, xsys.fs.archive, "
                             "xsys.http.gateway, xsys.alerts.providers.smtp, xsys.cli\n"
                             "from xsys.alerts.tinymonitor import email_message")
    for name in ("tarfile", "zipfile", "aiohttp", "smtplib", "xsys.http.gateway", "xsys.cli"):
        assert _loaded(modules, name), name


def test_compose_computes_result_schemas_on_first_read(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = router_module.result_schema

    def counting(annotation: Any, where: str = "result",
                 titles: dict[str, type] | None = None) -> dict[str, Any]:
        calls.append(where)
        return real(annotation, where, titles)

    monkeypatch.setattr(router_module, "result_schema", counting)
    app, lazy = compose(Config())
    try:
        assert calls == []
        described = {s.name: s.describe() for s in lazy.specs()}
        assert len(calls) == sum("result" in d for d in described.values()) > 50
        assert {s.name: s.describe() for s in lazy.specs()} == described  # kept: once
        assert len(calls) == sum("result" in d for d in described.values())
        eager = Router()
        register_all(eager, app)
        assert {s.name: s.describe() for s in eager.specs()} == described
    finally:
        app.executor.shutdown()


def _loaded_config(tmp: Path) -> LoadedConfig:
    return load_config(None, environ={}, system_file=tmp / "none", user_file=tmp / "none",
                       overrides={"server": {"socket": str(tmp / "x.sock")},
                                  "fs": {"roots": [str(tmp)]},
                                  "sys": {"sample_interval_s": 60.0},
                                  "monitor": {"enabled": False}})


async def test_ready_comes_before_the_first_sample_and_requests_wait_for_it(
        short_tmp: Path) -> None:
    release = threading.Event()
    daemon = Daemon(_loaded_config(short_tmp))
    sampler: Sampler = daemon.services.sampler
    real = sampler.sample_now

    def held_sample(min_span_s: float = 0.0) -> Snapshot:
        assert release.wait(10), "the first sample was never released"
        return real(min_span_s)

    sampler.sample_now = held_sample  # type: ignore[method-assign]
    run = asyncio.create_task(daemon.run())
    try:
        await asyncio.wait_for(daemon.ready.wait(), 30)
        # READY while the first sample is still held
        assert sampler.latest is None and sampler.samples_taken == 0
        warming = daemon.app.warming
        assert warming is not None and not warming.done()
        # an inline method reading the sample: without the wait it would take its own
        # sample on the loop (and block it on the held one)
        request = asyncio.create_task(invoke(daemon.app, daemon.router, "sys.load"))
        for _ in range(5):  # let the request run up to where it waits
            await asyncio.sleep(0)
        assert not request.done()
        release.set()
        result = await asyncio.wait_for(request, 30)
        assert sampler.samples_taken == 1 and sampler.latest is not None
        assert sampler.latest.interval_s > 0  # over the span since prime
        assert result["ts"] == sampler.latest.ts  # the request got that first sample
    finally:
        release.set()
        daemon.stop()
        assert await asyncio.wait_for(run, 30) == 0
