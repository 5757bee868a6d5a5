"""Service checks (issue 9): every probe against real parts (TCP listeners, an aiohttp
server, child processes, a fake Docker Engine API on a Unix socket), restarts of a real
child service, the give-up path with its critical alert reaching a webhook, and the
daemon's ``checks.*`` methods, ``xsys checks`` and ``xsys_check_*`` on ``/metrics``.

Probes are driven with ``ChecksService.run`` (no waiting on intervals); the daemon test
waits for ``checks.change`` notifications, never for time to pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from aiohttp import web
from click.testing import CliRunner

from tests.alerts_support import Recorder, free_port
from tests.conftest import DaemonHandle
from xsys.checks.docker import DEFAULT_HOST, resolve_host
from xsys.checks.service import ChecksService
from xsys.cli import main
from xsys.config import Config, ConfigError, from_dict
from xsys.daemon import compose
from xsys.protocol import NotFound
from xsys.server.app import App

#: The issue's config example, key for key.
ISSUE_EXAMPLE: dict[str, Any] = {"checks": [
    {"name": "redis", "tcp": "127.0.0.1:6379", "interval_s": 5, "timeout_s": 2,
     "retries": 2, "critical": True,
     "restart": {"command": ["systemctl", "restart", "redis"], "restart_after": 2,
                 "backoff_s": 1, "backoff_max_s": 300, "max_restarts": 5,
                 "restart_window_s": 3600}},
    {"name": "api", "http": {"url": "http://127.0.0.1:8100/health", "status": [200, 299],
                             "body_contains": "ok"}},
    {"name": "worker", "process": {"name": "worker.py"}},
    {"name": "report", "command": {"argv": ["/usr/local/bin/check-report"]}},
    {"name": "postgres", "docker": {"container": "jarvis_postgres"},
     "restart": {"docker": True}},
]}

#: A TCP service: listens on 127.0.0.1:PORT, writes its pid to READY once listening
#: (atomically), accepts and closes connections forever. ``crash`` mode: exits with 1
#: before listening.
SERVICE = """
import os, socket, sys
port, ready, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
if mode == "crash":
    sys.exit(1)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(64)
with open(ready + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(ready + ".tmp", ready)
while True:
    c, _ = s.accept()
    c.close()
"""

#: The restart command: starts SERVICE detached (its own session) and exits 0 once it
#: listens (its READY file exists); ``crash`` mode: once it has exited.
LAUNCHER = """
import os, subprocess, sys, time
service, port, ready, mode = sys.argv[1:5]
if os.path.exists(ready):
    os.unlink(ready)
p = subprocess.Popen([sys.executable, service, port, ready, mode], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
if mode == "crash":
    sys.exit(0 if p.wait() == 1 else 5)
deadline = time.monotonic() + 30
while not os.path.exists(ready):
    if p.poll() is not None or time.monotonic() > deadline:
        sys.exit(3)
    time.sleep(0.01)
"""


def config(*checks: dict[str, Any], **sections: Any) -> Config:
    """A ``Config`` with these checks (validated like a config file)."""
    result: Config = from_dict(Config, {"checks": list(checks), **sections})
    return result


@contextlib.asynccontextmanager
async def checks_of(*checks: dict[str, Any]) -> AsyncIterator[ChecksService]:
    """A ``ChecksService`` on a real ``App`` (its thread pool), not started: the test
    drives the probes with ``run``."""
    app = App(config(*checks))
    service = ChecksService(app.config.checks, app)
    try:
        yield service
    finally:
        await service.stop()
        await app.stop(2.0)


async def listener(port: int = 0) -> asyncio.Server:
    """A real TCP listener on 127.0.0.1 that closes what it accepts."""
    async def handle(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.close()

    return await asyncio.start_server(handle, "127.0.0.1", port, reuse_address=True)


def port_of(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


# ------------------------------------------------------------------------------ config


def test_the_issue_example_is_a_valid_config() -> None:
    cfg = config(*ISSUE_EXAMPLE["checks"])
    assert [c.name for c in cfg.checks] == ["redis", "api", "worker", "report", "postgres"]
    assert [c.probe for c in cfg.checks] == ["tcp", "http", "process", "command", "docker"]
    redis = cfg.checks[0]
    assert redis.restart is not None and redis.restart.max_restarts == 5
    assert cfg.checks[1].http is not None and cfg.checks[1].http.status == (200, 299)
    assert cfg.checks[1].interval_s == 30.0  # the default


@pytest.mark.parametrize(("check", "message"), [
    ({"name": "x"}, "exactly one probe"),
    ({"name": "x", "tcp": "127.0.0.1:1", "command": {"argv": ["true"]}}, "exactly one probe"),
    ({"name": "x", "tcp": "127.0.0.1"}, "host:port"),
    ({"name": "x", "tcp": "127.0.0.1:1", "interval_s": 0.4}, "interval_s"),
    ({"name": "x", "tcp": "127.0.0.1:1", "retries": 0}, "retries"),
    ({"name": "bad name", "tcp": "127.0.0.1:1"}, "name"),
    ({"name": "x", "http": {"url": "ftp://h/"}}, "url"),
    ({"name": "x", "http": {"url": "http://h/", "status": [300, 200]}}, "status"),
    ({"name": "x", "process": {"name": "a", "pidfile": "/p"}}, "exactly one of name"),
    ({"name": "x", "process": {"cmdline": "("}}, "regular expression"),
    ({"name": "x", "command": {"argv": []}}, "argv"),
    ({"name": "x", "tcp": "127.0.0.1:1", "restart": {"docker": True}}, "docker probe"),
    ({"name": "x", "tcp": "127.0.0.1:1", "restart": {}}, "exactly one of command"),
    ({"name": "x", "tcp": "127.0.0.1:1", "restart": {"command": ["true"],
                                                      "max_restarts": 0}}, "max_restarts"),
    ({"name": "x", "tcp": "127.0.0.1:1", "bogus": 1}, "unknown key"),
])
def test_bad_checks_are_refused_with_the_key(check: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config(check)


def test_two_checks_with_one_name_are_refused() -> None:
    with pytest.raises(ConfigError, match="used twice"):
        config({"name": "a", "tcp": "127.0.0.1:1"}, {"name": "a", "tcp": "127.0.0.1:2"})


# ------------------------------------------------------------------------------ probes


async def test_tcp_check_follows_a_real_listener() -> None:
    server = await listener()
    port = port_of(server)
    async with checks_of({"name": "svc", "tcp": f"127.0.0.1:{port}", "critical": True}) as s:
        assert s.status()[0]["state"] == "unknown"
        row = await s.run("svc")
        assert row["state"] == "up" and row["last_error"] is None
        assert row["latency_ms"] is not None and row["latency_ms"] >= 0
        server.close()
        await server.wait_closed()
        row = await s.run("svc")
        assert row["state"] == "down"
        assert "connect" in (row["last_error"] or "")
        down_since = row["since"]
        health = s.health()["svc"]
        assert health["status"] == "down" and health["critical"] is True
        assert health["message"] == row["last_error"]
        server = await listener(port)
        try:
            row = await s.run("svc")
            assert row["state"] == "up" and row["since"] >= down_since
        finally:
            server.close()


async def test_retries_failures_before_down() -> None:
    port = free_port()
    async with checks_of({"name": "svc", "tcp": f"127.0.0.1:{port}", "retries": 3}) as s:
        states = [(await s.run("svc"))["state"] for _ in range(3)]
        assert states == ["unknown", "unknown", "down"]
        assert s.status()[0]["consecutive_failures"] == 3


@pytest.fixture
async def web_app() -> AsyncIterator[str]:
    """A real aiohttp server: /ok, /error (500), /other (200 without "ok"), /json."""
    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="all ok")

    async def error(_: web.Request) -> web.Response:
        return web.Response(status=500, text="ok but broken")

    async def other(_: web.Request) -> web.Response:
        return web.Response(text="nothing to see")

    async def as_json(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/error", error)
    app.router.add_get("/other", other)
    app.router.add_get("/json", as_json)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_http_check_status_range_body_and_header(web_app: str) -> None:
    checks = [
        {"name": "ok", "http": {"url": f"{web_app}/ok", "status": [200, 299],
                                "body_contains": "ok"}},
        {"name": "error", "http": {"url": f"{web_app}/error", "status": [200, 299]}},
        {"name": "error-allowed", "http": {"url": f"{web_app}/error", "status": [200, 599]}},
        {"name": "body", "http": {"url": f"{web_app}/other", "body_contains": "ok"}},
        {"name": "missing", "http": {"url": f"{web_app}/nope"}},
        {"name": "header", "http": {"url": f"{web_app}/json",
                                    "header": {"content-type": "application/json"}}},
        {"name": "header-bad", "http": {"url": f"{web_app}/ok",
                                        "header": {"Content-Type": "application/json"}}},
        {"name": "refused", "http": {"url": f"http://127.0.0.1:{free_port()}/"}},
    ]
    async with checks_of(*checks) as s:
        rows = {c["name"]: await s.run(c["name"]) for c in checks}
    assert rows["ok"]["state"] == "up"
    assert rows["error"]["state"] == "down"
    assert rows["error"]["last_error"] == "HTTP 500, expected 200..299"
    assert rows["error-allowed"]["state"] == "up"
    assert rows["body"]["state"] == "down" and "does not contain 'ok'" in str(
        rows["body"]["last_error"])
    assert rows["missing"]["state"] == "down" and "HTTP 404" in str(rows["missing"]["last_error"])
    assert rows["header"]["state"] == "up"
    assert rows["header-bad"]["state"] == "down"
    assert "Content-Type" in str(rows["header-bad"]["last_error"])
    assert rows["refused"]["state"] == "down"


async def test_http_check_is_bounded_by_its_timeout() -> None:
    hang = asyncio.Event()

    async def slow(_: web.Request) -> web.Response:
        await hang.wait()
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/", slow)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with checks_of({"name": "slow", "http": {"url": f"http://127.0.0.1:{port}/"},
                              "timeout_s": 0.3}) as s:
            row = await s.run("slow")
        assert row["state"] == "down"
    finally:
        hang.set()
        await runner.cleanup()


@pytest.fixture
def child(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child process running ``xsys-probe-target.py`` (a sleeping Python script)."""
    script = tmp_path / "xsys-probe-target.py"
    script.write_text("import time\nwhile True:\n    time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, str(script), "--marker-8c1f"])
    yield proc
    proc.kill()
    proc.wait()


async def test_process_check_by_name_cmdline_and_pidfile(
        child: subprocess.Popen[bytes], tmp_path: Path) -> None:
    pidfile = tmp_path / "target.pid"
    pidfile.write_text(f"{child.pid}\n")
    checks = [
        {"name": "by-name", "process": {"name": "xsys-probe-target.py"}},
        {"name": "by-cmdline", "process": {"cmdline": r"probe-target\.py --marker-8c1f$"}},
        {"name": "by-pidfile", "process": {"pidfile": str(pidfile)}},
        {"name": "absent", "process": {"name": "no-such-process-4711"}},
        {"name": "no-pidfile", "process": {"pidfile": str(tmp_path / "missing.pid")}},
    ]
    async with checks_of(*checks) as s:
        rows = {c["name"]: await s.run(c["name"]) for c in checks}
        assert [rows[n]["state"] for n in ("by-name", "by-cmdline", "by-pidfile")] == \
            ["up"] * 3
        assert rows["absent"]["state"] == "down"
        assert rows["absent"]["last_error"] == "no process named 'no-such-process-4711'"
        assert rows["no-pidfile"]["state"] == "down"
        child.kill()
        child.wait()
        for name in ("by-name", "by-cmdline", "by-pidfile"):
            assert (await s.run(name))["state"] == "down", name


async def test_command_check_exit_status_and_timeout(tmp_path: Path) -> None:
    pid_file = tmp_path / "sleeper.pid"
    sleeper = ["sh", "-c", f'echo $$ > {pid_file}; exec sleep 60']
    checks = [
        {"name": "true", "command": {"argv": ["true"]}},
        {"name": "false", "command": {"argv": [sys.executable, "-c",
                                               "import sys; sys.exit('broken: 42')"]}},
        {"name": "missing", "command": {"argv": [str(tmp_path / "no-such-program")]}},
        {"name": "slow", "command": {"argv": sleeper}, "timeout_s": 0.5},
        {"name": "shell-free", "command": {"argv": ["true; false"]}},
    ]
    async with checks_of(*checks) as s:
        rows = {c["name"]: await s.run(c["name"]) for c in checks}
    assert rows["true"]["state"] == "up"
    assert rows["false"]["state"] == "down"
    assert rows["false"]["last_error"] == f"{sys.executable} exited with 1: broken: 42"
    assert rows["missing"]["state"] == "down" and "cannot run" in str(
        rows["missing"]["last_error"])
    assert rows["slow"]["state"] == "down" and "killed" in str(rows["slow"]["last_error"])
    pid = int(pid_file.read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert rows["shell-free"]["state"] == "down"  # no shell: "true; false" is no program


async def test_run_of_an_unknown_check_is_not_found() -> None:
    async with checks_of({"name": "a", "tcp": "127.0.0.1:1"}) as s:
        with pytest.raises(NotFound, match="no check 'b'"):
            await s.run("b")


async def test_reload_keeps_states_and_forgets_removed_checks() -> None:
    server = await listener()
    port = port_of(server)
    first = config({"name": "keep", "tcp": f"127.0.0.1:{port}"},
                   {"name": "change", "tcp": f"127.0.0.1:{port}"},
                   {"name": "gone", "tcp": f"127.0.0.1:{free_port()}"})
    app = App(first)
    reported: list[tuple[str, float, bool]] = []
    forgotten: list[str] = []
    s = ChecksService(first.checks, app,
                      report=lambda n, level, crit: reported.append((n, level, crit)),
                      forget=forgotten.append)
    try:
        for name in ("keep", "change", "gone"):
            await s.run(name)
        assert reported == [("gone", 1.0, False)]  # only a level that is not 0 is sent
        second = config({"name": "new", "tcp": f"127.0.0.1:{port}"},
                        {"name": "keep", "tcp": f"127.0.0.1:{port}"},
                        {"name": "change", "tcp": f"127.0.0.1:{port}", "critical": True})
        s.reload(second.checks)
        rows = {r["name"]: r for r in s.status()}
        assert list(rows) == ["new", "keep", "change"]
        assert rows["keep"]["state"] == "up" and rows["change"]["state"] == "up"
        assert rows["change"]["critical"] is True and rows["new"]["state"] == "unknown"
        assert forgotten == ["gone"]
    finally:
        server.close()
        await s.stop()
        await app.stop(2.0)


# ------------------------------------------------------------------------------ restart


class Service:
    """The SERVICE script on ``port``, restarted by the LAUNCHER command."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.script = tmp_path / "service.py"
        self.script.write_text(SERVICE)
        self.launcher = tmp_path / "launch.py"
        self.launcher.write_text(LAUNCHER)
        self.ready = tmp_path / "service.ready"
        self.first: subprocess.Popen[bytes] | None = None

    def restart_command(self, mode: str = "serve") -> list[str]:
        return [sys.executable, str(self.launcher), str(self.script), str(self.port),
                str(self.ready), mode]

    def start(self) -> None:
        """Start the first instance as the test's child (killed and reaped by ``kill``)."""
        self.first = subprocess.Popen([sys.executable, str(self.script), str(self.port),
                                       str(self.ready), "serve"])
        while not self.ready.exists():
            assert self.first.poll() is None, "the service did not start"
            with contextlib.suppress(Exception):
                self.first.wait(0.01)

    def kill(self) -> None:
        """Kill the first instance and reap it: its listener is gone on return."""
        assert self.first is not None
        self.first.kill()
        self.first.wait()
        self.ready.unlink()

    def cleanup(self) -> None:
        if self.first is not None and self.first.poll() is None:
            self.first.kill()
            self.first.wait()
        if self.ready.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(self.ready.read_text()), signal.SIGKILL)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    svc = Service(tmp_path)
    yield svc
    svc.cleanup()


async def test_restart_command_brings_a_killed_service_back(service: Service) -> None:
    service.start()
    check = {"name": "svc", "tcp": f"127.0.0.1:{service.port}", "interval_s": 1,
             "restart": {"command": service.restart_command(), "restart_after": 1,
                         "backoff_s": 0}}
    async with checks_of(check) as s:
        assert (await s.run("svc"))["state"] == "up"
        service.kill()
        row = await s.run("svc")  # fails -> down -> the restart command runs
        assert row["state"] == "down" and row["restarts"] == 1
        assert service.ready.exists()  # the launcher saw the new instance listen
        new_pid = int(service.ready.read_text())
        assert service.first is not None and new_pid != service.first.pid
        row = await s.run("svc")
        assert row["state"] == "up" and row["restarts"] == 1


async def test_backoff_doubles_between_restarts(service: Service) -> None:
    now = [1000.0]
    check = {"name": "svc", "tcp": f"127.0.0.1:{service.port}",
             "restart": {"command": service.restart_command("crash"), "backoff_s": 10,
                         "backoff_max_s": 25, "max_restarts": 10}}
    app = App(config(check))
    s = ChecksService(app.config.checks, app, clock=lambda: now[0])
    try:
        at: list[float] = []
        for t in (1000, 1005, 1010, 1015, 1030, 1050, 1055, 1080):
            now[0] = t
            before = s.status()[0]["restarts"]
            await s.run("svc")
            if s.status()[0]["restarts"] > before:
                at.append(t)
        # first at once, then 10 s, 20 s, then capped at 25 s
        assert at == [1000, 1010, 1030, 1055, 1080]
    finally:
        await s.stop()
        await app.stop(2.0)


async def test_a_service_that_keeps_dying_is_given_up_with_a_critical_alert(
        service: Service, server: Recorder) -> None:
    check = {"name": "flappy", "tcp": f"127.0.0.1:{service.port}", "critical": False,
             "restart": {"command": service.restart_command("crash"), "backoff_s": 0,
                         "max_restarts": 3, "restart_window_s": 3600}}
    cfg = config(check, monitor={
        "enabled": False, "repeat_interval": -1,
        "alerts": {"console": {"enabled": False},
                   "webhook": {"enabled": True, "url": f"{server.url}/hook", "timeout": 5}}})
    app, _router = compose(cfg)
    monitor, checks = app.services.monitor, app.services.checks
    await monitor.start()  # the checks are driven by hand, not started
    try:
        states = []
        for _ in range(5):
            row = await checks.run("flappy")
            states.append((row["state"], row["restarts"]))
        assert states == [("down", 1), ("down", 2), ("down", 3), ("failed", 3),
                          ("failed", 3)]
        assert checks.health()["flappy"]["status"] == "failed"
        first, second = await server.wait("/hook", 2)
        down, failed = first.json()["alert"], second.json()["alert"]
        assert (down["component"], down["level"], down["value"]) == \
            ("service:flappy", "WARNING", "down")
        assert (failed["component"], failed["check"], failed["level"], failed["value"]) == \
            ("service:flappy", "service", "CRITICAL", "failed")
        history = monitor.history_page(check="service")["alerts"]
        assert [a["severity"] for a in history] == ["critical", "warning"]
    finally:
        await checks.stop()
        await monitor.stop(2.0)
        await app.stop(2.0)


async def test_recovery_resolves_the_alert(server: Recorder) -> None:
    lsn = await listener()
    port = port_of(lsn)
    lsn.close()
    await lsn.wait_closed()
    cfg = config({"name": "db", "tcp": f"127.0.0.1:{port}", "critical": True}, monitor={
        "enabled": False,
        "alerts": {"console": {"enabled": False},
                   "webhook": {"enabled": True, "url": f"{server.url}/hook", "timeout": 5}}})
    app, _router = compose(cfg)
    await app.services.monitor.start()
    try:
        assert (await app.services.checks.run("db"))["state"] == "down"
        lsn = await listener(port)
        assert (await app.services.checks.run("db"))["state"] == "up"
        fired, resolved = await server.wait("/hook", 2)
        assert fired.json()["alert"]["level"] == "CRITICAL"
        assert resolved.json()["alert"]["level"] == "RESOLVED"
        assert resolved.json()["alert"]["component"] == "service:db"
    finally:
        lsn.close()
        await app.services.checks.stop()
        await app.services.monitor.stop(2.0)
        await app.stop(2.0)


# ------------------------------------------------------------------------------ docker


class FakeEngine:
    """The two Engine API endpoints the checks use, on a Unix socket (aiohttp)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.containers: dict[str, dict[str, Any]] = {}
        self.restarts: list[str] = []
        self._runner: web.AppRunner | None = None

    async def inspect(self, request: web.Request) -> web.Response:
        name = request.match_info["id"]
        state = self.containers.get(name)
        if state is None:
            return web.json_response({"message": f"No such container: {name}"}, status=404)
        return web.json_response({"Id": "0123", "Name": f"/{name}", "State": state})

    async def restart(self, request: web.Request) -> web.Response:
        name = request.match_info["id"]
        if name not in self.containers:
            return web.json_response({"message": f"No such container: {name}"}, status=404)
        self.restarts.append(name)
        self.containers[name] = {"Status": "running", "Running": True}
        return web.Response(status=204)

    async def start(self) -> FakeEngine:
        app = web.Application()
        app.router.add_get("/containers/{id}/json", self.inspect)
        app.router.add_post("/containers/{id}/restart", self.restart)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        await web.UnixSite(self._runner, str(self.path)).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def engine(short_tmp: Path) -> AsyncIterator[FakeEngine]:
    fake = await FakeEngine(short_tmp / "docker.sock").start()
    yield fake
    await fake.stop()


async def test_docker_check_against_the_engine_api(engine: FakeEngine) -> None:
    host = f"unix://{engine.path}"
    engine.containers.update({
        "web": {"Status": "running", "Running": True},
        "db": {"Status": "running", "Running": True, "Health": {"Status": "healthy"}},
        "sick": {"Status": "running", "Running": True, "Health": {"Status": "unhealthy"}},
        "stopped": {"Status": "exited", "Running": False},
    })
    names = ["web", "db", "sick", "stopped", "ghost"]
    checks = [{"name": n, "docker": {"container": n, "host": host}} for n in names]
    async with checks_of(*checks) as s:
        rows = {n: await s.run(n) for n in names}
    assert [rows[n]["state"] for n in names] == ["up", "up", "down", "down", "down"]
    assert rows["sick"]["last_error"] == "container sick is unhealthy"
    assert rows["stopped"]["last_error"] == "container stopped is exited"
    assert rows["ghost"]["last_error"] == "no container 'ghost'"


async def test_docker_restart_through_the_engine_api(engine: FakeEngine) -> None:
    engine.containers["app"] = {"Status": "exited", "Running": False}
    check = {"name": "app", "docker": {"container": "app", "host": f"unix://{engine.path}"},
             "restart": {"docker": True, "backoff_s": 0}}
    async with checks_of(check) as s:
        row = await s.run("app")
        assert row["state"] == "down" and row["restarts"] == 1
        assert engine.restarts == ["app"]
        assert (await s.run("app"))["state"] == "up"


async def test_no_docker_engine_is_unknown_with_the_reason(
        short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = short_tmp / "nothing.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{missing}")
    assert resolve_host("") == f"unix://{missing}"
    assert resolve_host("", {}) == DEFAULT_HOST
    refused = short_tmp / "refused.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(refused))  # exists, nobody listens
    try:
        checks = [{"name": "env", "docker": {"container": "x"}},
                  {"name": "refused", "docker": {"container": "x",
                                                 "host": f"unix://{refused}"}}]
        async with checks_of(*checks) as s:
            env = await s.run("env")
            ref = await s.run("refused")
        assert env["state"] == "unknown" and str(missing) in str(env["last_error"])
        assert ref["state"] == "unknown" and "no Docker engine" in str(ref["last_error"])
    finally:
        sock.close()


async def test_real_docker_engine() -> None:
    host = resolve_host("")
    path = host[len("unix://"):] if host.startswith("unix://") else None
    if path is not None and not os.path.exists(path):
        pytest.skip(f"no Docker engine on this machine ({path} does not exist)")
    name = "xsys-test-no-such-container-5d2e"
    async with checks_of({"name": "real", "docker": {"container": name}}) as s:
        row = await s.run("real")
    if row["state"] == "unknown":
        pytest.skip(f"the Docker engine is not usable here: {row['last_error']}")
    assert row["state"] == "down" and row["last_error"] == f"no container {name!r}"


# ------------------------------------------------------------------------------ daemon


def _metric(text: str, name: str, check: str) -> float | None:
    prefix = f'{name}{{check="{check}"}} '
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix):])
    return None


def test_daemon_serves_checks_status_run_subscribe_cli_and_metrics(
        daemon_factory: Callable[..., DaemonHandle]) -> None:
    lsn = socket.socket()
    lsn.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsn.bind(("127.0.0.1", 0))
    lsn.listen(512)
    port = lsn.getsockname()[1]
    http_port = free_port()
    h = daemon_factory({
        "checks": [{"name": "svc", "tcp": f"127.0.0.1:{port}", "interval_s": 0.5,
                    "critical": True},
                   {"name": "other", "command": {"argv": ["true"]}, "interval_s": 60}],
        "http": {"enabled": True, "port": http_port},
        "monitor": {"enabled": False},
    })
    with h.client(timeout=30) as c:
        row = c.call("checks.run", name="svc")
        assert row["state"] == "up" and row["probe"] == "tcp"
        sub = c.subscribe("checks.subscribe", {"name": "sv*"})
        lsn.close()
        event = sub.next(30)
        assert event is not None and event["method"] == "checks.change"
        assert event["previous"] == "up" and event["check"]["name"] == "svc"
        assert event["check"]["state"] == "down"
        status = {r["name"]: r for r in c.call("checks.status")["checks"]}
        assert set(status) == {"svc", "other"} and status["svc"]["state"] == "down"
        with pytest.raises(NotFound):
            c.call("checks.run", name="nope")
        sub.close()

    body = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics",
                                  timeout=10).read().decode()
    assert _metric(body, "xsys_check_up", "svc") == 0.0
    assert _metric(body, "xsys_check_restarts_total", "svc") == 0.0
    assert _metric(body, "xsys_check_latency_seconds", "svc") is not None
    assert _metric(body, "xsys_check_state_since_seconds", "svc") == pytest.approx(
        status["svc"]["since"])

    runner = CliRunner()
    result = runner.invoke(main, ["--socket", h.socket, "checks"])
    assert result.exit_code == 1, result.output  # svc is down
    assert "svc" in result.output and "DOWN (critical)" in result.output
    result = runner.invoke(main, ["--socket", h.socket, "checks", "run", "other", "--json"])
    assert result.exit_code == 0, result.output
    assert '"state": "up"' in result.output
    result = runner.invoke(main, ["--socket", h.socket, "checks", "run", "nope"])
    assert result.exit_code == 1 and "-32001" in result.output


def test_cli_renderers() -> None:
    from xsys.cli.checks import down_exit_code, render_change, render_status

    row = {"name": "db", "probe": "tcp", "target": "127.0.0.1:5432", "state": "down",
           "since": 1_700_000_000.0, "last_error": "connect 127.0.0.1:5432: refused",
           "latency_ms": 0.5, "last_run_at": 1_700_000_001.0, "consecutive_failures": 2,
           "restarts": 1, "critical": True, "interval_s": 5.0}
    text = render_status({"checks": [row]})
    assert text.splitlines()[0].split() == ["CHECK", "PROBE", "STATE", "FOR", "LATENCY",
                                            "RESTARTS", "ERROR"]
    assert "DOWN (critical)" in text and "0.5 ms" in text and "refused" in text
    assert render_status({"checks": []}).startswith("no service checks configured")
    line = render_change({"check": row, "previous": "up"})
    assert "db  UP -> DOWN (critical)  connect 127.0.0.1:5432: refused" in line
    assert down_exit_code({"checks": [row]}) == 1
    assert down_exit_code({**row, "state": "up"}) == 0
