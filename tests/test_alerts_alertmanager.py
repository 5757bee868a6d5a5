"""The Alertmanager provider against a real Alertmanager (Debian's
``prometheus-alertmanager``: ``apt-get install prometheus-alertmanager``): the posted alert
is read back from its API v2 with our labels, and the resolved one ends it. Skipped with
the reason when the binary is not installed."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.alerts_support import free_port, make_alert
from xsys.alerts.config import AlertmanagerConfig
from xsys.alerts.providers import AlertmanagerProvider, HttpClient

BINARY = "/usr/bin/prometheus-alertmanager"
CONFIG = """\
route:
  receiver: "null"
  group_wait: 1s
receivers:
  - name: "null"
"""


def _binary() -> str | None:
    if Path(BINARY).exists():
        return BINARY
    return shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


pytestmark = pytest.mark.skipif(
    _binary() is None,
    reason="prometheus-alertmanager is not installed "
           "(apt-get install prometheus-alertmanager; `make test-deps` does it)")


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = _binary()
    assert binary is not None
    work = tmp_path_factory.mktemp("alertmanager")
    (work / "alertmanager.yml").write_text(CONFIG)
    port = free_port()
    log = open(work / "log.txt", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [binary, f"--config.file={work / 'alertmanager.yml'}",
         f"--storage.path={work / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
         "--cluster.listen-address="],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        import urllib.request

        while True:
            if proc.poll() is not None:
                raise RuntimeError((work / "log.txt").read_text(errors="replace"))
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("alertmanager did not become ready")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    client = HttpClient()
    yield client
    await client.close()


async def _alerts(url: str, **params: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.get(
            f"{url}/api/v2/alerts", params=params,
            timeout=aiohttp.ClientTimeout(total=5)) as resp:
        assert resp.status == 200
        data: list[dict[str, Any]] = await resp.json()
        return data


async def test_alert_round_trip(alertmanager: str, http: HttpClient) -> None:
    provider = AlertmanagerProvider(
        AlertmanagerConfig(enabled=True, url=alertmanager, labels={"env": "test"}), http)
    firing = make_alert(check="filesystem", component="filesystem:/srv", severity="critical")
    await provider.send(firing)
    ours: list[dict[str, Any]] = []
    for _ in range(200):
        ours = [a for a in await _alerts(alertmanager)
                if a["labels"].get("component") == "filesystem:/srv"]
        if ours:
            break
        await asyncio.sleep(0.05)
    (alert,) = ours
    assert alert["labels"]["alertname"] == "XsysFilesystem"
    assert alert["labels"]["severity"] == "critical"
    assert alert["labels"]["instance"] == "testhost"
    assert alert["labels"]["env"] == "test"
    assert alert["annotations"]["summary"] == "ALERT CRITICAL : filesystem:/srv"
    assert alert["status"]["state"] == "active"
    # the same labels again: Alertmanager deduplicates into the one alert
    await provider.send(firing)
    again = [a for a in await _alerts(alertmanager)
             if a["labels"].get("component") == "filesystem:/srv"]
    assert [a["fingerprint"] for a in again] == [alert["fingerprint"]]
    await provider.send(make_alert(check="filesystem", component="filesystem:/srv",
                                   severity="critical", status="resolved"))
    for _ in range(200):
        left = [a for a in await _alerts(alertmanager)
                if a["labels"].get("component") == "filesystem:/srv"]
        if not left:
            break
        await asyncio.sleep(0.05)
    assert left == []
    await provider.close()
