"""TinyMonitor fidelity (``monitor.compat: tinymonitor``, set when a TinyMonitor config.json
is loaded): what each provider receives for one alert, compared with golden files written
from TinyMonitor's formats (src/tinymonitor/alerts/*.py of the Python TinyMonitor, and
issue 11) and captured by real servers (aiohttp, aiosmtpd); TinyMonitor's cooldown rules
as a scenario on a fake clock; its component names and value texts; its log lines; and
``xsys serve --tinymonitor`` end to end (search order, relative ``tinymonitor.log``,
once-per-incident cooldown).

Set ``XSYS_UPDATE_GOLDEN=1`` to rewrite the golden files (then review the diff against
TinyMonitor's sources: the files are the contract).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.alerts_support import Recorder, SmtpSink, eventually
from tests.launcher import REPO, daemon_env, stop_process
from xsys.alerts.config import (
    GoogleChatConfig,
    GotifyConfig,
    NtfyConfig,
    SmtpConfig,
    WebhookConfig,
)
from xsys.alerts.model import Alert, HostContext
from xsys.alerts.providers import (
    GoogleChatProvider,
    GotifyProvider,
    HttpClient,
    NtfyProvider,
    SmtpProvider,
    WebhookProvider,
)
from xsys.client import Client
from xsys.config import Config, from_dict
from xsys.daemon import find_tinymonitor_config, tinymonitor_search_paths
from xsys.monitor.collectors import (
    Collection,
    Sample,
    tinymonitor_percent,
    tinymonitor_rate,
)
from xsys.monitor.config import convert_tinymonitor
from xsys.monitor.service import MonitorService
from xsys.protocol import DaemonNotRunning
from xsys.server.app import App

GOLDEN = Path(__file__).parent / "golden" / "tinymonitor"
UPDATE = os.environ.get("XSYS_UPDATE_GOLDEN") == "1"

#: The machine of the golden alert: uptime 26 h 3 min 4 s, the default route's address.
HOST = HostContext("testhost", ("192.0.2.10", "2001:db8::10"), (0.5, 0.4, 0.3), 93784.0,
                   ip_route="192.0.2.10")
CREATED_AT = 1_764_770_400.123456


def golden_alert(severity: str = "critical", text: str = "95.5%") -> Alert:
    """The alert every provider gets: CPU at 95.5 % over the 90 % critical line."""
    return Alert(id="a1b2c3-1", check="cpu", component="CPU",
                 severity=severity,  # type: ignore[arg-type]
                 status="firing", value=95.5, unit="percent", threshold=90.0,
                 started_at=CREATED_AT - 60, host=HOST, created_at=CREATED_AT,
                 fingerprint="0123456789abcdef", tinymonitor=True, text=text)


#: Headers every HTTP client adds on its own (requests and aiohttp differ there).
TRANSPORT_HEADERS = {"host", "user-agent", "content-length", "accept", "accept-encoding",
                     "connection"}


def normalise(text: str) -> str:
    """The time fields of the golden alert (local time zone dependent) as placeholders."""
    local = dt.datetime.fromtimestamp(CREATED_AT)
    return (text.replace(local.isoformat(), "<TIMESTAMP>")
            .replace(local.strftime("%Y-%m-%d %H:%M:%S"), "<TIME>"))


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{name} differs from the golden file"


def captured(server: Recorder, path: str) -> dict[str, Any]:
    (req,) = server.on(path)
    body = normalise(req.body.decode("utf-8"))
    content_type = req.headers.get("Content-Type", "")
    return {
        "method": req.method,
        "path": req.path,
        "headers": {k: v for k, v in sorted(req.headers.items())
                    if k.lower() not in TRANSPORT_HEADERS},
        # JSON bodies byte for byte as sent (json.dumps defaults, like requests' json=)
        "body": body,
        "body_json": json.loads(body) if content_type.startswith("application/json") else None,
    }


def dump(doc: Any) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


@pytest.fixture
async def rec() -> AsyncIterator[Recorder]:
    server = await Recorder().start()
    yield server
    await server.stop()


# ---------------------------------------------------------------- golden requests


async def test_webhook_golden(rec: Recorder, http: HttpClient) -> None:
    p = WebhookProvider(WebhookConfig(enabled=True, url=f"{rec.url}/hook",
                                      headers={"Authorization": "Bearer s3cret"}), http)
    await p.send(golden_alert())
    got = captured(rec, "/hook")
    check_golden("webhook.json", dump(got))
    doc = got["body_json"]
    # TinyMonitor's document exactly; xsys's fields only under "xsys"
    assert list(doc) == ["timestamp", "alert", "host", "xsys"]
    assert list(doc["alert"]) == ["level", "component", "value", "title", "message"]
    assert list(doc["host"]) == ["hostname", "ip_private", "ip_public", "uptime",
                                 "load_average"]
    assert doc["alert"]["title"] == "ALERT CRITICAL : CPU"
    assert doc["alert"]["message"] == "Component CPU is in state CRITICAL. Value: 95.5%"
    assert doc["host"]["uptime"] == "26h 3m" and doc["host"]["load_average"] == "0.50, 0.40, 0.30"
    assert doc["timestamp"] == "<TIMESTAMP>"  # naive local ISO time, microseconds


async def test_ntfy_golden(rec: Recorder, http: HttpClient) -> None:
    p = NtfyProvider(NtfyConfig(enabled=True, topic_url=f"{rec.url}/alerts", token="tk_1"),
                     http)
    await p.send(golden_alert())
    got = captured(rec, "/alerts")
    check_golden("ntfy.json", dump(got))
    assert "Content-Type" not in got["headers"]  # TinyMonitor sends none
    assert got["headers"]["Markdown"] == "yes"


async def test_gotify_golden(rec: Recorder, http: HttpClient) -> None:
    p = GotifyProvider(GotifyConfig(enabled=True, url=rec.url, token="app_tok"), http)
    await p.send(golden_alert(severity="warning", text="75.0%"))
    got = captured(rec, "/message")
    check_golden("gotify.json", dump(got))
    assert got["body_json"]["priority"] == 5


async def test_google_chat_golden(rec: Recorder, http: HttpClient) -> None:
    p = GoogleChatProvider(GoogleChatConfig(enabled=True, webhook_url=f"{rec.url}/chat"),
                           http)
    await p.send(golden_alert())
    await p.send(golden_alert(severity="warning", text="75.0%"))
    crit, warn = rec.on("/chat")
    rec.requests = [crit]
    got = captured(rec, "/chat")
    check_golden("google_chat.json", dump(got))
    card = got["body_json"]["cardsV2"][0]
    assert card["cardId"] == "tinymonitor-testhost-CPU"
    assert card["card"]["header"]["title"] == "\U0001f6a8 CRITICAL ALERT : CPU"
    assert [s["header"] for s in card["card"]["sections"]] == ["Incident Details",
                                                               "Machine Context"]
    assert card["card"]["sections"][1]["collapsible"] is True
    assert set(got["body_json"]) == {"cardsV2"}  # nothing TinyMonitor does not send
    assert json.loads(warn.body)["cardsV2"][0]["card"]["header"]["title"] == (
        "\u26a0\ufe0f WARNING : CPU")


async def test_email_golden() -> None:
    sink = SmtpSink().start()
    try:
        p = SmtpProvider(SmtpConfig(enabled=True, host="127.0.0.1", port=sink.port,
                                    from_addr="tinymonitor@example.com",
                                    to_addrs="ops@example.com, oncall@example.com",
                                    use_tls=False, timeout=10.0))
        await p.send(golden_alert())
    finally:
        sink.stop()
    (raw,) = sink.raw
    text = raw.decode("utf-8").replace("\r\n", "\n")
    text = re.sub(r"={15}\d+==", "<BOUNDARY>", text)
    check_golden("email.txt", normalise(text))
    ((mail_from, rcpts, msg),) = sink.messages
    assert (mail_from, rcpts) == ("tinymonitor@example.com",
                                  ["ops@example.com", "oncall@example.com"])
    assert msg["Subject"] == "[CRITICAL] CPU on testhost - 95.5%"
    assert msg.get_content_type() == "multipart/mixed"
    assert [part.get_content_type() for part in msg.iter_parts()] == ["text/html"]


# ------------------------------------------------------------- value texts


@pytest.mark.parametrize("rate,text", [
    (0, "0.0B/s"), (1024, "1024.0B/s"), (1536, "1.5KB/s"), (10 * 1024**2, "10.0MB/s"),
    (3.5 * 1024**3, "3.5GB/s"),
])
def test_io_rate_text(rate: float, text: str) -> None:
    assert tinymonitor_rate(rate) == text


def test_percent_text() -> None:
    assert [tinymonitor_percent(v) for v in (91.3, 45.0, 7.25, 100)] == [
        "91.3%", "45.0%", "7.2%", "100.0%"]


def test_real_collectors_name_components_like_tinymonitor(tmp_path: Path) -> None:
    from xsys.monitor.collectors import Collectors

    cfg = from_dict(Config, convert_tinymonitor({"io": {"warning": "1G"}})).monitor
    collection = Collectors(cfg).collect()
    by_component = {s.component: s for s in collection.samples}
    assert {"CPU", "MEMORY", "LOAD", "I/O", "REBOOT"} <= set(by_component)
    assert all(c in {"CPU", "MEMORY", "LOAD", "I/O", "REBOOT"} or c.startswith("DISK:/")
               for c in by_component)
    assert re.fullmatch(r"\d+\.\d%", by_component["CPU"].text)
    assert re.fullmatch(r"\d+\.\d%", by_component["MEMORY"].text)
    assert re.fullmatch(r"\d+\.\d\d", by_component["LOAD"].text)
    assert re.fullmatch(r"R: \d+\.\d[KMGT]?B/s W: \d+\.\d[KMGT]?B/s",
                        by_component["I/O"].text)
    assert by_component["REBOOT"].text in ("OK",
                                           "System requires a reboot (updates installed)")
    assert collection.host.ip_private and collection.host.ip_public == "N/A"


# ------------------------------------------------------------- cooldown scenario


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Feed:
    """TinyMonitor's CPU reading, set by the test."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.cpu = 10.0

    async def __call__(self) -> Collection:
        sample = Sample("cpu", "CPU", self.cpu, "percent", tinymonitor_percent(self.cpu))
        return Collection((sample,), HOST, {}, self.clock())


async def tiny_service(rec: Recorder, tmp_path: Path, **top: Any,
                       ) -> tuple[MonitorService, App, Clock, Feed]:
    data = {"refresh": 1, "memory": {"enabled": False}, "filesystem": {"enabled": False},
            "load": {"enabled": False}, "reboot": {"enabled": False},
            "io": {"enabled": False}, "log_file": str(tmp_path / "tinymonitor.log"),
            "alerts": {"webhook": {"enabled": True, "url": f"{rec.url}/hook"}}, **top}
    converted = convert_tinymonitor(data)
    converted["monitor"]["enabled"] = False  # ticks driven by the test
    app = App(from_dict(Config, converted))
    clock = Clock()
    feed = Feed(clock)
    service = MonitorService(app, clock=clock, collect=feed)
    await service.start()
    return service, app, clock, feed


async def run_steps(service: MonitorService, clock: Clock, feed: Feed,
                    steps: list[tuple[float, float]]) -> list[tuple[float, str]]:
    """Feed (t, cpu) readings; returns (t, level) of every alert sent."""
    start = clock.now
    sent: list[tuple[float, str]] = []
    for t, cpu in steps:
        clock.now = start + t
        feed.cpu = cpu
        for outcome in await service.tick():
            sent.append((t, outcome.alert.level))
    return sent


async def test_cooldown_is_per_component_and_covers_level_changes(
        rec: Recorder, tmp_path: Path) -> None:
    service, app, clock, feed = await tiny_service(
        rec, tmp_path, cooldown=60, cpu={"warning": 70, "critical": 90})
    try:
        sent = await run_steps(service, clock, feed, [
            (0, 75.0),    # WARNING: sent
            (10, 95.0),   # CRITICAL within the cooldown: nothing
            (30, 95.0),   # still within: nothing
            (60, 95.0),   # exactly 60 s: TinyMonitor wants more than the cooldown
            (61, 95.0),   # after: sent
            (70, 10.0),   # recovery: a log line, nothing sent
            (80, 75.0),   # a new incident within the cooldown of the last alert: nothing
            (122, 75.0),  # after: sent
            (123, 89.9),  # no hysteresis, no re-send within the cooldown
        ])
        assert sent == [(0, "WARNING"), (61, "CRITICAL"), (122, "WARNING")]
        await rec.wait("/hook", 3)
        bodies = [r.json() for r in rec.on("/hook")]
        assert [b["alert"]["level"] for b in bodies] == ["WARNING", "CRITICAL", "WARNING"]
        assert all(b["alert"]["component"] == "CPU" for b in bodies)
        assert "RESOLVED" not in {b["alert"]["level"] for b in bodies}
    finally:
        await service.stop(2.0)
        await app.stop(2.0)


async def test_negative_cooldown_sends_once_per_incident(rec: Recorder,
                                                         tmp_path: Path) -> None:
    service, app, clock, feed = await tiny_service(
        rec, tmp_path, cooldown=-1, cpu={"warning": 70, "critical": 90, "duration": 5})
    try:
        sent = await run_steps(service, clock, feed, [
            (0, 75.0),      # WARNING seen, waiting for duration
            (4, 75.0),      # not yet
            (5, 75.0),      # held 5 s: sent
            (500, 75.0),    # same incident: never again
            (5000, 75.0),
            (5001, 10.0),   # recovery
            (5002, 75.0),   # a new incident
            (5007, 75.0),   # held 5 s: sent
            (9000, 75.0),
        ])
        assert sent == [(5, "WARNING"), (5007, "WARNING")]
    finally:
        await service.stop(2.0)
        await app.stop(2.0)


LOG_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - tinymonitor - (INFO|ERROR) - (.+)$")


async def test_log_file_lines(rec: Recorder, tmp_path: Path) -> None:
    rec.set("/down", (500, {}, 0.0))
    service, app, clock, feed = await tiny_service(
        rec, tmp_path, cooldown=0, cpu={"warning": 70, "critical": 90},
        alerts={"webhook": {"enabled": True, "url": f"{rec.url}/hook"},
                "ntfy": {"enabled": True, "topic_url": f"{rec.url}/down"}})
    try:
        await run_steps(service, clock, feed, [(0, 10.0), (1, 75.0), (2, 10.0)])
        await rec.wait("/hook", 1)
        log_file = tmp_path / "tinymonitor.log"

        def lines() -> list[str]:
            return log_file.read_text(encoding="utf-8").splitlines() \
                if log_file.exists() else []

        await eventually(lambda: any("[ntfy] Failed to send alert" in x for x in lines())
                         and any("[webhook] Alert sent successfully" in x for x in lines()),
                         timeout=20)
    finally:
        await service.stop(2.0)
        await app.stop(2.0)
    got = lines()
    assert all(LOG_LINE.match(x) for x in got), got
    messages = [LOG_LINE.match(x).group(2) for x in got]  # type: ignore[union-attr]
    assert messages[:3] == ["Alert Provider loaded: Ntfy", "Alert Provider loaded: Webhook",
                            "Starting TinyMonitor..."]
    for expected in ("ALERT: CPU is WARNING (75.0%)",
                     "Triggering alert via ntfy for CPU (WARNING)",
                     "Triggering alert via webhook for CPU (WARNING)",
                     "[webhook] Alert sent successfully",
                     # TinyMonitor's ntfy (and Google Chat) log the body only; its
                     # webhook and Gotify log the status code and the body
                     "[ntfy] Failed to send alert: error 500",
                     "RECOVERY: CPU is back to normal"):
        assert expected in messages, (expected, messages)
    # only TinyMonitor's providers have lines: xsys's own console provider (on by default
    # in the daemon's log) is not one, and its lines would break counts and filters
    assert "console" in service.providers
    assert not [m for m in messages if "console" in m], messages


# ------------------------------------------------------------- serve --tinymonitor


def test_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    work = tmp_path / "work"
    (home / ".config" / "tinymonitor").mkdir(parents=True)
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    paths = tinymonitor_search_paths(work)
    assert paths == [work / "config.json", home / ".config/tinymonitor/config.json",
                     Path("/etc/tinymonitor/config.json")]
    user = home / ".config" / "tinymonitor" / "config.json"
    user.write_text("{}")
    (work / "config.json").write_text("{}")
    assert find_tinymonitor_config(work) == work / "config.json"
    (work / "config.json").unlink()
    assert find_tinymonitor_config(work) == user
    user.unlink()
    if Path("/etc/tinymonitor/config.json").exists():
        assert find_tinymonitor_config(work) == Path("/etc/tinymonitor/config.json")
    else:
        assert find_tinymonitor_config(work) is None


@pytest.fixture
def serve_tiny(tmp_path: Path, short_tmp: Path) -> Iterator[Callable[[Path], Any]]:
    """Run ``xsys serve --tinymonitor`` (no --config) in a working directory."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(cwd: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
        sock = str(short_tmp / f"s{len(procs)}.sock")
        log_path = tmp_path / f"serve{len(procs)}.log"
        env = daemon_env(source_root=REPO, home=tmp_path / "home")
        env.pop("XDG_RUNTIME_DIR", None)
        with open(log_path, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "xsys", "serve", "--tinymonitor",
                                     "--socket", sock], stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=out, env=env, cwd=str(cwd))
        procs.append(proc)
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(log_path.read_text())
            try:
                with Client(sock, timeout=2.0) as c:
                    c.call("rpc.ping")
                return proc, sock, log_path
            except (DaemonNotRunning, OSError):
                if time.monotonic() > deadline:
                    raise AssertionError(log_path.read_text()) from None
                time.sleep(0.05)

    yield start
    for proc in procs:
        stop_process(proc)


def tiny_config(url: str) -> dict[str, Any]:
    return {"refresh": 0.2, "cooldown": -1, "cpu": {"warning": 0, "critical": 1000},
            "memory": {"enabled": False}, "filesystem": {"enabled": False},
            "load": {"enabled": False}, "reboot": {"enabled": False},
            "io": {"enabled": False},
            "alerts": {"webhook": {"enabled": True, "url": url}}}


async def test_serve_tinymonitor_end_to_end(rec: Recorder, tmp_path: Path,
                                            serve_tiny: Callable[[Path], Any]) -> None:
    import asyncio

    work = tmp_path / "work"
    work.mkdir()
    user_dir = tmp_path / "home" / ".config" / "tinymonitor"
    user_dir.mkdir(parents=True)
    (work / "config.json").write_text(json.dumps(tiny_config(f"{rec.url}/cwd")))
    (user_dir / "config.json").write_text(json.dumps(tiny_config(f"{rec.url}/user")))

    proc, sock, out = await asyncio.to_thread(serve_tiny, work)
    (req,) = await rec.wait("/cwd", 1, timeout=30)
    doc = req.json()
    assert doc["alert"]["component"] == "CPU" and doc["alert"]["level"] == "WARNING"
    assert re.fullmatch(r"\d+\.\d%", doc["alert"]["value"])
    assert re.fullmatch(r"\d+h \d+m", doc["host"]["uptime"])
    assert doc["host"]["ip_public"] == "N/A"

    def ticks() -> int:
        with Client(sock, timeout=5.0) as c:
            return int(c.call("monitor.status")["ticks"])

    # cooldown -1: the CPU stays over 0 % for 15 more ticks, and nothing more is sent
    first = await asyncio.to_thread(ticks)
    while await asyncio.to_thread(ticks) < first + 15:
        await asyncio.sleep(0.1)
    assert len(rec.on("/cwd")) == 1 and not rec.on("/user")
    # TinyMonitor's log file, relative to the working directory
    log_file = work / "tinymonitor.log"
    await eventually(lambda: log_file.exists()
                     and "[webhook] Alert sent successfully" in log_file.read_text(),
                     timeout=20)
    assert "ALERT: CPU is WARNING (" in log_file.read_text()
    await asyncio.to_thread(stop_process, proc)

    # without ./config.json: ~/.config/tinymonitor/config.json
    (work / "config.json").unlink()
    proc, sock, out = await asyncio.to_thread(serve_tiny, work)
    await rec.wait("/user", 1, timeout=30)
    assert str(user_dir / "config.json") in out.read_text()


# ------------------------------------------------------------- public IP, import


async def test_public_ip_lookup_is_opt_in() -> None:
    import asyncio

    from aiohttp import web

    from xsys.monitor.collectors import Collectors

    calls: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        calls.append(request.path)
        if request.path == "/broken":
            return web.Response(status=500, text="no")
        return web.Response(text="203.0.113.7\n")

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        def host_of(url: str) -> HostContext:
            extra = {"alerts": {"public_ip_url": url}} if url else {}
            cfg = from_dict(Config, convert_tinymonitor(extra)).monitor
            return Collectors(cfg).host_context(None, time.time())

        assert (await asyncio.to_thread(host_of, "")).ip_public == "N/A"
        assert calls == []  # off by default: no outside call
        got = await asyncio.to_thread(host_of, f"http://127.0.0.1:{port}/ip")
        assert got.ip_public == "203.0.113.7"
        got = await asyncio.to_thread(host_of, f"http://127.0.0.1:{port}/broken")
        assert got.ip_public == "N/A"  # as TinyMonitor when its lookup fails
        assert calls == ["/ip", "/broken"]
    finally:
        await runner.cleanup()


def test_import_says_what_it_keeps(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from xsys.cli import main

    path = tmp_path / "config.json"
    data = {"cooldown": -1, "alerts": {"ntfy": {"enabled": True,
                                                "topic_url": "https://ntfy.sh/t"}}}
    path.write_text(json.dumps(data))
    result = CliRunner().invoke(main, ["config", "import-tinymonitor", str(path)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == convert_tinymonitor(data)
    assert json.loads(result.stdout)["monitor"]["compat"] == "tinymonitor"
    err = result.stderr
    assert "kept: cooldown per component" in err and "no resolved notifications" in err
    assert "not kept:" in err and "public_ip_url" in err
