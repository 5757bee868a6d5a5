"""``GET /health``, ``/health/live`` and ``/health/ready`` (docs/health.md): the status
rule over the checks, the daemon's own checks (sampler, monitor), the service checks of
``app.services.checks`` when that service exists, and basic auth on every /health path."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from tests.conftest import DaemonHandle
from tests.launcher import free_port
from xsys.config import Config
from xsys.daemon import Services, compose
from xsys.http.health import HealthState, http_status, overall

Factory = Callable[..., DaemonHandle]



def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read()), dict(r.headers)
    except urllib.error.HTTPError as e:
        body = e.read()
        return e.code, json.loads(body) if body.startswith(b"{") else body, dict(e.headers)


def wait_for(base: str, pred: Callable[[int, Any], bool], timeout_s: float = 30.0,
             path: str = "/health") -> tuple[int, Any]:
    """Poll ``base + path`` until ``pred(status, body)``; fails with the last answer."""
    deadline = time.monotonic() + timeout_s
    while True:
        status, body, _ = get(base + path)
        if pred(status, body):
            return status, body
        assert time.monotonic() < deadline, (status, body)
        time.sleep(0.05)


def check(status: str, critical: bool) -> dict[str, Any]:
    return {"status": status, "message": "", "since": 0.0, "latency_ms": None,
            "critical": critical}


@pytest.mark.parametrize(("checks", "expected"), [
    ({}, "ok"),
    ({"a": check("up", True), "b": check("up", False)}, "ok"),
    ({"a": check("up", True), "b": check("down", False)}, "degraded"),
    ({"a": check("up", True), "b": check("failed", False)}, "degraded"),
    ({"a": check("up", True), "b": check("unknown", False)}, "degraded"),
    ({"a": check("unknown", True)}, "degraded"),  # not known to be down
    ({"a": check("down", True), "b": check("up", False)}, "failed"),
    ({"a": check("failed", True)}, "failed"),
    ({"a": check("down", False), "b": check("down", True)}, "failed"),
])
def test_the_status_rule(checks: dict[str, dict[str, Any]], expected: str) -> None:
    assert overall(checks) == expected
    assert http_status(overall(checks)) == (503 if expected == "failed" else 200)


@pytest.fixture
def composed() -> Iterator[Any]:
    app, _router = compose(Config())
    yield app
    app.executor.shutdown(wait=True)


def test_sampler_check_unknown_up_then_stalled(composed: Any) -> None:
    """Before the first sample: unknown (degraded, not ready); with a fresh sample: up and
    ready; the same sample seen 5 intervals later: down, and the daemon failed (the
    sampler is critical), not ready."""
    app = composed
    now = [time.time()]
    state = HealthState(app, clock=lambda: now[0])
    body = asyncio.run(state.report())
    assert body["checks"]["sampler"]["status"] == "unknown"
    assert state.ready()[0] is False
    app.services.sampler.prime()
    snap = app.services.sampler.sample_now()
    now[0] = snap.ts + 0.1
    body = asyncio.run(state.report())
    sampler = body["checks"]["sampler"]
    assert sampler["status"] == "up" and sampler["critical"] is True
    assert sampler["since"] == now[0]  # it was unknown before
    ready, ready_body = state.ready()
    assert ready and ready_body["status"] == "ready"
    limit = max(5 * app.config.sys.sample_interval_s, 5.0)
    now[0] = snap.ts + limit + 1
    body = asyncio.run(state.report())
    assert body["checks"]["sampler"]["status"] == "down", body
    assert "stalled" in body["checks"]["sampler"]["message"]
    assert body["status"] == "failed" and http_status(body["status"]) == 503
    ready, ready_body = state.ready()
    assert not ready and "sampler" in ready_body["reasons"][0]


def test_monitor_check_down_when_enabled_but_not_running(composed: Any) -> None:
    """An enabled monitor whose loop is not running degrades the daemon (not critical);
    a disabled one is up."""
    app = composed
    app.services.sampler.prime()
    app.services.sampler.sample_now()
    state = HealthState(app)
    body = asyncio.run(state.report())
    assert app.config.monitor.enabled
    assert body["checks"]["monitor"]["status"] == "down"
    assert body["checks"]["monitor"]["critical"] is False
    assert body["status"] == "degraded"
    app.config = dataclasses.replace(
        app.config, monitor=dataclasses.replace(app.config.monitor, enabled=False))
    app.services.monitor.reload(app.config.monitor)
    body = asyncio.run(state.report())
    assert body["checks"]["monitor"]["status"] == "up", body
    assert "disabled" in body["checks"]["monitor"]["message"]
    assert body["status"] == "ok"


class FakeChecks:
    """A stand-in for the checks service's ``health()`` shape (the real one is tested
    against a daemon below, when it exists)."""

    def __init__(self, rows: dict[str, dict[str, Any]]) -> None:
        self.rows = rows

    def health(self) -> dict[str, dict[str, Any]]:
        if not self.rows:
            raise RuntimeError("boom")
        return self.rows


def test_service_checks_are_listed_and_summed(composed: Any) -> None:
    app = composed
    app.services.sampler.prime()
    app.services.sampler.sample_now()
    app.config = dataclasses.replace(
        app.config, monitor=dataclasses.replace(app.config.monitor, enabled=False))
    app.services.monitor.reload(app.config.monitor)
    state = HealthState(app)
    services = app.services
    saved = getattr(services, "checks", None)
    try:
        object.__setattr__(services, "checks", FakeChecks({
            "redis": check("down", True) | {"message": "connection refused", "since": 5.0,
                                            "latency_ms": 1.5},
            "sampler": check("up", False)}))
        body = asyncio.run(state.report())
        assert body["status"] == "failed"
        assert body["checks"]["redis"] == {"status": "down", "message": "connection refused",
                                           "since": 5.0, "latency_ms": 1.5,
                                           "critical": True}
        # a service check named like a built-in keeps its name; the built-in moves
        assert body["checks"]["sampler"]["critical"] is False
        assert body["checks"]["xsys.sampler"]["critical"] is True
        object.__setattr__(services, "checks", FakeChecks({}))  # health() raises
        body = asyncio.run(state.report())
        assert body["checks"]["checks"]["status"] == "unknown"
        assert "boom" in body["checks"]["checks"]["message"]
        assert body["status"] == "degraded"
    finally:
        object.__setattr__(services, "checks", saved)


@pytest.fixture
def http_daemon(daemon_factory: Factory) -> tuple[DaemonHandle, str]:
    port = free_port()
    d = daemon_factory({"http": {"enabled": True, "port": port}})
    return d, f"http://127.0.0.1:{port}"


def test_health_of_a_running_daemon(http_daemon: tuple[DaemonHandle, str]) -> None:
    """No token on loopback; ok with the sampler and the monitor up; live and ready."""
    _, base = http_daemon
    status, body = wait_for(base, lambda s, b: b["status"] == "ok")
    assert status == 200
    assert set(body) >= {"status", "checks", "version", "uptime_s"}
    for name in ("sampler", "monitor"):
        row = body["checks"][name]
        assert row["status"] == "up", body
        assert set(row) >= {"status", "message", "since", "latency_ms"}
        assert row["since"] <= time.time()
    status, live, headers = get(base + "/health/live")
    assert status == 200 and live["status"] == "live"
    assert headers["Cache-Control"] == "no-store"
    status, ready, _ = get(base + "/health/ready")
    assert status == 200 and ready["status"] == "ready"


def test_every_health_path_takes_basic_auth(daemon_factory: Factory, tmp_path: Path) -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prom: '{hashed}'\n")
    port = free_port()
    daemon_factory({"http": {"enabled": True, "port": port, "web_config_file": str(web)}})
    auth = {"Authorization": "Basic " + base64.b64encode(b"prom:pw").decode()}
    for path in ("/health", "/health/live", "/health/ready", "/metrics"):
        status, _, headers = get(f"http://127.0.0.1:{port}{path}")
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic"), path
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=auth)
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 200, path


# ---------------------------------------------------------------- with the checks service

HAS_CHECKS = "checks" in {f.name for f in dataclasses.fields(Services)}


class Listener:
    """A real TCP listener on loopback that can go away and come back on its port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.sock: socket.socket | None = None
        self.open()

    def open(self) -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(64)
        self.sock = s

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


@pytest.mark.skipif(not HAS_CHECKS, reason="the checks service (issue 9, part A) is not "
                    "in this tree yet")
def test_a_critical_tcp_check_fails_health_and_a_non_critical_one_degrades(
        daemon_factory: Factory) -> None:
    critical, optional = Listener(), Listener()
    try:
        port = free_port()
        daemon_factory({
            "http": {"enabled": True, "port": port},
            "checks": [
                {"name": "db", "tcp": f"127.0.0.1:{critical.port}", "interval_s": 0.5,
                 "timeout_s": 1, "retries": 1, "critical": True},
                {"name": "cache", "tcp": f"127.0.0.1:{optional.port}", "interval_s": 0.5,
                 "timeout_s": 1, "retries": 1, "critical": False},
            ]})
        base = f"http://127.0.0.1:{port}"
        status, body = wait_for(base, lambda s, b: b["status"] == "ok")
        assert status == 200 and body["checks"]["db"]["status"] == "up"
        assert body["checks"]["db"]["latency_ms"] is not None
        critical.close()
        status, body = wait_for(base, lambda s, b: s == 503)
        assert body["status"] == "failed" and body["checks"]["db"]["status"] == "down"
        assert body["checks"]["cache"]["status"] == "up"
        critical.open()
        status, body = wait_for(base, lambda s, b: b["status"] == "ok")
        assert status == 200
        optional.close()
        status, body = wait_for(base, lambda s, b: b["status"] != "ok")
        assert status == 200 and body["status"] == "degraded"
        assert body["checks"]["cache"]["status"] == "down"
    finally:
        critical.close()
        optional.close()
