"""The monitor in a real daemon (``daemon_factory``): a threshold crossing reaches a
webhook, IPC subscribers get ``monitor.alert``, the CLI commands work against it, and a
SIGHUP reload applies new thresholds (the firing alert resolves)."""

from __future__ import annotations

import asyncio
import json
import select
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.alerts_support import Recorder
from tests.conftest import REPO, DaemonHandle
from xsys.cli import main


def monitor_config(tmp_path: Path, webhook_url: str | None = None,
                   repeat_interval: float = -1, **cpu: Any) -> dict[str, Any]:
    """A fast monitor whose cpu check fires at once (warning 0 %)."""
    alerts: dict[str, Any] = {"console": {"enabled": True}, "backoff_s": 0.05}
    if webhook_url:
        alerts["webhook"] = {"enabled": True, "url": webhook_url, "timeout": 5}
    return {"monitor": {
        "refresh": 0.2, "repeat_interval": repeat_interval,
        "cpu": {"warning": 0, "critical": 1000, "duration": 0, **cpu},
        "memory": {"enabled": False}, "swap": {"enabled": False}, "load": {"enabled": False},
        "filesystem": {"enabled": False}, "inodes": {"enabled": False},
        "network": {"enabled": False}, "io": {"enabled": False},
        "reboot": {"state_file": str(tmp_path / "boot_time"), "required_files": []},
        "alerts": alerts,
    }}


@pytest.fixture
async def webhook() -> AsyncIterator[Recorder]:
    rec = await Recorder().start()
    yield rec
    await rec.stop()


async def test_threshold_crossing_reaches_the_webhook(
        daemon_factory: Callable[..., DaemonHandle], webhook: Recorder,
        tmp_path: Path) -> None:
    h = await asyncio.to_thread(daemon_factory,
                                monitor_config(tmp_path, f"{webhook.url}/hook"))
    (req,) = await webhook.wait("/hook", 1, timeout=30)
    doc = req.json()
    assert doc["alert"]["component"] == "cpu" and doc["alert"]["level"] == "WARNING"
    assert doc["host"]["hostname"]

    def history() -> dict[str, Any]:
        with h.client() as c:
            result: dict[str, Any] = c.call("monitor.history")
            return result

    for _ in range(100):
        alerts = (await asyncio.to_thread(history))["alerts"]
        if alerts and {d["provider"]: d["status"] for d in alerts[-1]["deliveries"]} == {
                "console": "sent", "webhook": "sent"}:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"deliveries not recorded: {alerts}")

    # SIGHUP with a higher threshold: the reload resolves the firing alert
    config = json.loads(h.config_path.read_text())
    config["monitor"]["cpu"]["warning"] = 1000
    h.config_path.write_text(json.dumps(config))
    h.signal(signal.SIGHUP)
    resolved = await webhook.wait("/hook", 2, timeout=30)
    assert resolved[1].json()["alert"]["level"] == "RESOLVED"
    with h.client() as c:
        checks = {x["check"]: x for x in c.call("monitor.checks")["checks"]}
    assert checks["cpu"]["warning"] == 1000


def test_subscribe_and_cli(daemon_factory: Callable[..., DaemonHandle], tmp_path: Path) -> None:
    h = daemon_factory(monitor_config(tmp_path, repeat_interval=0))  # repeats every tick
    with h.client(timeout=10) as c:
        sub = c.subscribe("monitor.subscribe", {"check": "cpu"})
        assert sub.id.startswith("monitor")
        event = sub.next(timeout=20)
        assert event is not None and event["method"] == "monitor.alert"
        assert event["alert"]["component"] == "cpu" and event["alert"]["status"] == "firing"
        sub.close()
        # a silence holds the repeats back
        s = c.call("monitor.silence", check="cpu", duration_s=3600, comment="test")
        assert s["comment"] == "test"
        status = c.call("monitor.status")
        assert status["running"] is True and status["ticks"] >= 1
        (cpu,) = [x for x in status["checks"] if x["check"] == "cpu"]
        assert cpu["state"] == "warning"

    runner = CliRunner()

    def cli(*args: str) -> Any:
        result = runner.invoke(main, ["--socket", h.socket, "monitor", *args])
        assert result.exit_code == 0, result.output
        return result

    out = cli("status").stdout
    assert "COMPONENT" in out and "cpu" in out and "WARNING" in out
    assert json.loads(cli("status", "--json").stdout)["firing"] == 1
    assert "cpu" in cli("history").stdout
    assert "console" in cli("test").stdout
    assert json.loads(cli("test", "--provider", "console", "--json").stdout)["results"][0]["ok"]
    silence = json.loads(cli("silence", "--check", "memory", "-d", "10m", "--json").stdout)
    assert silence["ends_at"] - silence["starts_at"] == pytest.approx(600)
    assert silence["id"] in cli("silence", "--list").stdout
    assert silence["id"] in cli("unsilence", silence["id"]).stdout
    assert "cpu" in cli("checks").stdout
    bad = runner.invoke(main, ["--socket", h.socket, "monitor", "test", "-p", "webhook"])
    assert bad.exit_code == 1 and "not enabled" in bad.stderr


def test_watch_streams_alerts(daemon_factory: Callable[..., DaemonHandle],
                              tmp_path: Path) -> None:
    h = daemon_factory(monitor_config(tmp_path, repeat_interval=0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "xsys", "--socket", h.socket, "monitor", "watch", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(REPO))
    try:
        with h.client() as c:
            for _ in range(300):  # until it has subscribed (then the next repeat is its)
                if c.call("monitor.status")["subscribers"]:
                    break
                time.sleep(0.05)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "no alert printed in 30 s"
        line = proc.stdout.readline()
        alert = json.loads(line)
        assert alert["component"] == "cpu" and alert["status"] == "firing"
    finally:
        proc.terminate()
        proc.wait(10)


def test_cli_reports_a_stopped_daemon(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--socket", str(tmp_path / "none.sock"), "monitor",
                                       "status"])
    assert result.exit_code == 2 and "not running" in result.stderr
