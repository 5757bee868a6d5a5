"""The HTTP gateway: Prometheus exposition with node_exporter names, health, REST mirror."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import DaemonHandle
from tests.launcher import free_port


def get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("Content-Type", "")


TOKEN = "test-token-0123456789abcdef"


def post(url: str, body: Any) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json",
                                          "Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture
def http_daemon(daemon_factory: Callable[..., DaemonHandle]) -> tuple[DaemonHandle, str]:
    port = free_port()
    d = daemon_factory({"http": {"enabled": True, "port": port, "api": True, "token": TOKEN}})
    return d, f"http://127.0.0.1:{port}"


def test_metrics_use_node_exporter_names(http_daemon: tuple[DaemonHandle, str]) -> None:
    _, base = http_daemon
    status, body, ctype = get(base + "/metrics")
    assert status == 200 and ctype.startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    for name in ("node_cpu_seconds", "node_memory_MemAvailable_bytes",
                 "node_memory_MemTotal_bytes", "node_load1", "node_filesystem_avail_bytes",
                 "node_network_receive_bytes", "node_boot_time_seconds", "xsys_info",
                 "xsys_connections"):
        assert name in families, name
    cpu = families["node_cpu_seconds"]
    assert {s.labels["mode"] for s in cpu.samples} >= {"user", "system", "idle"}
    mem = families["node_memory_MemTotal_bytes"].samples[0].value
    assert mem > 0


def test_health(http_daemon: tuple[DaemonHandle, str]) -> None:
    _, base = http_daemon
    status, body, _ = get(base + "/health")
    data = json.loads(body)
    assert status == 200 and data["status"] == "ok" and data["sample_age_s"] < 30


@pytest.mark.parametrize(
    ("method", "params", "status", "check"),
    [
        ("sys.memory", {}, 200, lambda b: b["result"]["virtual"]["total_bytes"] > 0),
        ("rpc.ping", {}, 200, lambda b: b["result"]["pong"] is True),
        ("no.such", {}, 404, lambda b: b["error"]["code"] == -32601),
        ("sys.process", {"pid": "x"}, 400, lambda b: b["error"]["data"]["param"] == "pid"),
        ("sys.process", {"pid": 2**31 - 3}, 404, lambda b: b["error"]["code"] == -32001),
    ],
)
def test_rest_mirror(http_daemon: tuple[DaemonHandle, str], method: str,
                     params: dict[str, Any], status: int,
                     check: Callable[[Any], bool]) -> None:
    _, base = http_daemon
    code, body = post(f"{base}/api/v1/{method}", params)
    assert code == status and check(body), body


def test_rest_mirror_off_by_default(daemon_factory: Callable[..., DaemonHandle]) -> None:
    port = free_port()
    daemon_factory({"http": {"enabled": True, "port": port}})
    code, body = post(f"http://127.0.0.1:{port}/api/v1/sys.memory", {})
    assert code == 400 and "http.api" in body["error"]["message"]
