"""The dashboard page in a real headless Chromium (Debian ``chromium``, installed by
``make test-deps``; skipped with the reason where it cannot run), driven over the DevTools
protocol (tests/chromium_support.py): the page loads with no console errors, every chart
receives data points, the "disconnected" notice appears when the daemon stops and clears
when it is back, refresh works; a screenshot is saved as a test artifact (the test's tmp
dir, and ``$XSYS_ARTIFACTS`` when set). Also ``xsys dashboard``."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.chromium_support import Chromium, ChromiumUnavailable
from tests.conftest import DaemonHandle
from tests.launcher import free_port
from xsys.cli import main
from xsys.cli.http import dashboard_url

TOKEN = "dashboard-test-token-0123456789"
Factory = Callable[..., DaemonHandle]
CHARTS = ("cpu", "mem", "load", "io", "net")




@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Chromium]:
    try:
        async with Chromium.launch(tmp_path / "chromium", height=1700) as b:
            yield b
    except ChromiumUnavailable as exc:
        pytest.skip(str(exc))


def save_artifact(path: Path) -> None:
    """Copy ``path`` into ``$XSYS_ARTIFACTS`` when that is set."""
    target = os.environ.get("XSYS_ARTIFACTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


async def test_dashboard_in_chromium(daemon_factory: Factory, browser: Chromium,
                                     tmp_path: Path) -> None:
    port = free_port()
    config: dict[str, Any] = {
        "http": {"enabled": True, "port": port, "token": TOKEN},
        "monitor": {"refresh": 0.5, "cpu": {"warning": 0, "critical": 1000, "duration": 0},
                    "reboot": {"state_file": str(tmp_path / "boot_time"),
                               "required_files": []}},
    }
    handle = await asyncio.to_thread(daemon_factory, config)
    base = f"http://127.0.0.1:{port}"

    await browser.navigate(f"{base}/?token={TOKEN}")
    # the cookie took over: the token is gone from the address bar
    assert await browser.evaluate("location.href") == f"{base}/"
    points = await browser.wait_for(
        "Object.values(xsysStatus.chartPoints).every(n => n > 1) && xsysStatus.chartPoints")
    assert set(points) == set(CHARTS)
    mark = await browser.evaluate(
        "performance.getEntriesByName('xsys-first-point').map(e => e.startTime)")
    assert mark and mark[0] > 0
    # per-core lines, processes, disks and the firing cpu alert are on the page
    assert await browser.wait_for("document.querySelectorAll('#procs tbody tr').length > 0")
    assert await browser.evaluate("document.querySelectorAll('#disks tbody tr').length") > 0
    legend = await browser.evaluate("document.getElementById('legend-cpu').textContent")
    assert "cpu0" in legend
    assert await browser.wait_for(
        "document.getElementById('alerts').textContent.includes('cpu')")
    assert await browser.evaluate("document.getElementById('notice').hidden") is True
    assert browser.console_errors == []
    await browser.wait_for("xsysStatus.snapshots >= 4")  # a few points per line
    shot = await browser.screenshot(tmp_path / "dashboard.png")
    assert shot.stat().st_size > 10_000
    save_artifact(shot)
    # the page's own timings, kept beside the screenshot (measured in bench/dashboard.py)
    timings = tmp_path / "dashboard-timings.json"
    timings.write_text(json.dumps({"first_point_ms": mark[0], "chart_points": points}))
    save_artifact(timings)

    # the daemon stops: the notice appears; it comes back: the notice clears, data flows
    await asyncio.to_thread(handle.stop)
    await browser.wait_for("!document.getElementById('notice').hidden")
    assert await browser.evaluate("document.getElementById('conn').textContent") == \
        "disconnected"
    before = await browser.evaluate("xsysStatus.snapshots")
    await asyncio.to_thread(handle.start)
    await browser.wait_for("document.getElementById('notice').hidden && xsysStatus.connected",
                           timeout_s=60)
    await browser.wait_for(f"xsysStatus.snapshots > {before}")
    assert await browser.evaluate("xsysStatus.connects") >= 2

    # refresh: the cookie still authenticates the page and its socket
    browser.console_errors.clear()
    await browser.send("Page.reload")
    await browser.wait_for("document.readyState === 'complete' && window.xsysStatus && "
                           "xsysStatus.chartPoints.cpu > 0")
    assert browser.console_errors == []

    # away and back: the page (from the back/forward cache or reloaded) streams again
    await browser.navigate("data:text/html,<p>elsewhere</p>")
    history = await browser.send("Page.getNavigationHistory")
    back = history["entries"][history["currentIndex"] - 1]
    assert back["url"] == f"{base}/"
    await browser.send("Page.navigateToHistoryEntry", entryId=back["id"])
    await browser.wait_for("location.href === '" + base + "/' && window.xsysStatus && "
                           "xsysStatus.connected")
    before = await browser.evaluate("xsysStatus.snapshots")
    await browser.wait_for(f"xsysStatus.snapshots > {before}")
    assert browser.console_errors == []


async def test_a_hostile_command_line_is_shown_as_text_not_markup(
        daemon_factory: Factory, browser: Chromium, tmp_path: Path) -> None:
    """Any local user names its processes: a command line holding HTML reaches the page
    as text (escaped), never as elements."""
    import subprocess
    import sys

    hostile = '<img id="xsys-pwned" src="x"><b id="xsys-bold">'
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass", hostile])
    try:
        port = free_port()
        await asyncio.to_thread(daemon_factory, {
            "http": {"enabled": True, "port": port, "token": TOKEN}})
        await browser.navigate(f"http://127.0.0.1:{port}/?token={TOKEN}")
        # the busy process is among the top 10 by CPU within a few snapshots
        await browser.wait_for("document.getElementById('procs').textContent"
                               ".includes('xsys-pwned')", timeout_s=60)
        assert await browser.evaluate(
            "document.getElementById('xsys-pwned') === null && "
            "document.getElementById('xsys-bold') === null && "
            "document.querySelectorAll('#procs img, #procs b').length === 0")
        assert browser.console_errors == []
    finally:
        busy.kill()
        busy.wait()


def test_dashboard_cli_prints_the_url(tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"http": {"enabled": True, "port": 9911, "token": TOKEN}}))
    result = CliRunner().invoke(main, ["dashboard", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"http://127.0.0.1:9911/?token={TOKEN}"
    cfg.write_text(json.dumps({"http": {"enabled": False}}))
    result = CliRunner().invoke(main, ["dashboard", "--config", str(cfg)])
    assert result.exit_code == 1 and "http.enabled" in result.stderr
    assert dashboard_url("::", 1, "a/b") == "http://[::1]:1/?token=a%2Fb"
    assert dashboard_url("0.0.0.0", 2, "t", https=True) == "https://127.0.0.1:2/?token=t"
    assert dashboard_url("fe80::1", 3, "t") == "http://[fe80::1]:3/?token=t"
