"""The daemon's own request metrics, the standard process/python collectors, and
``deploy/prometheus/`` against the real tools: ``promtool check rules``/``test rules``/
``check config``/``check metrics``, and a real Prometheus (Debian ``prometheus``, from
``make test-deps``) scraping a real daemon's ``/metrics`` on loopback.

The promtool and Prometheus tests skip with the reason when the binaries are missing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import DaemonHandle
from tests.launcher import free_port, stop_process
from tests.rawsock import Raw
from xsys.daemon import Services
from xsys.http.requests import RequestCollector
from xsys.protocol import InvalidParams, MethodNotFound, encode_request
from xsys.server.stats import BUCKETS_S, RequestStats

Factory = Callable[..., DaemonHandle]
REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy" / "prometheus"
RULES = DEPLOY / "rules" / "xsys.rules.yml"
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
HAS_CHECKS = "checks" in {f.name for f in dataclasses.fields(Services)}
#: What ``promtool check metrics`` may say of our exposition: node_exporter's own names
#: (node_memory_MemTotal_bytes...) are camelCase on purpose, dashboards expect them, and
#: its entropy gauges count bits (node_entropy_available_bits).
KNOWN_LINTS = ("metric names should be written in 'snake_case' not 'camelCase'",
               'node_entropy_available_bits use base unit "bytes" instead of "bits"',
               'node_entropy_pool_size_bits use base unit "bytes" instead of "bits"')

needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package prometheus; "
    "`make test-deps` installs it)")



def fetch(url: str, data: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition: (name, sorted labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


# ---------------------------------------------------------------- the store and collector

def test_request_stats_buckets_and_collector() -> None:
    """A duration on a bucket's bound counts in that bucket (``le``); past the last
    bound in +Inf; the exposition's buckets are cumulative, ``_count`` is every code."""
    stats = RequestStats()
    stats.record("fs.stat", 0, BUCKETS_S[0])          # on the first bound
    stats.record("fs.stat", 0, 0.003)                 # in (0.0025, 0.005]
    stats.record("fs.stat", -32602, 0.0000001)
    stats.record("fs.stat", 0, 99.0)                  # past the last bound
    stats.record("rpc.ping", 0, 0.00003)
    stats.record_results(["rpc.ping", "fs.stat", "rpc.ping"], 0.0002)  # one read
    registry = CollectorRegistry()
    registry.register(RequestCollector(stats))
    found = samples(generate_latest(registry).decode())
    assert value(found, "xsys_requests_total", method="fs.stat", code="0") == 4
    assert value(found, "xsys_requests_total", method="fs.stat", code="-32602") == 1
    assert value(found, "xsys_requests_total", method="rpc.ping", code="0") == 3
    bucket = "xsys_request_duration_seconds_bucket"
    assert value(found, bucket, method="fs.stat", le="0.0001") == 2
    assert value(found, bucket, method="fs.stat", le="0.00025") == 3
    assert value(found, bucket, method="fs.stat", le="0.0025") == 3
    assert value(found, bucket, method="fs.stat", le="0.005") == 4
    assert value(found, bucket, method="fs.stat", le="30.0") == 4
    assert value(found, bucket, method="fs.stat", le="+Inf") == 5
    assert value(found, bucket, method="rpc.ping", le="0.0001") == 1
    assert value(found, bucket, method="rpc.ping", le="0.00025") == 3
    assert value(found, "xsys_request_duration_seconds_count", method="fs.stat") == 5
    assert value(found, "xsys_request_duration_seconds_sum", method="fs.stat") == \
        pytest.approx(BUCKETS_S[0] + 0.003 + 0.0000001 + 99.0 + 0.0002)
    assert stats.count("fs.stat") == 5 and stats.count("fs.stat", -32602) == 1


@pytest.fixture
def http_daemon(daemon_factory: Factory) -> tuple[DaemonHandle, str]:
    port = free_port()
    d = daemon_factory({"http": {"enabled": True, "port": port, "api": True,
                                 "token": "test-token-0123456789abcdef"}})
    return d, f"http://127.0.0.1:{port}"


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, body = fetch(base + "/metrics")
    assert status == 200
    return samples(body.decode())


def test_requests_are_counted_by_method_and_code(http_daemon: tuple[DaemonHandle, str]
                                                 ) -> None:
    """Socket and HTTP API requests land in ``xsys_requests_total{method,code}`` and the
    histogram; unknown methods and malformed messages use fixed labels (a client cannot
    grow the label set); the counts are exact deltas."""
    d, base = http_daemon
    before = scrape(base)
    with d.client() as c:
        for _ in range(5):
            c.call("rpc.ping")
        with pytest.raises(MethodNotFound):
            c.call("no.such.method.x1")
        with pytest.raises(InvalidParams):
            c.call("sys.process", {"pid": "x"})
        c.call("sys.memory")  # a task (pool) request
    raw = Raw(d.socket)
    raw.send_msg([1, 2, 3])  # not a map
    assert raw.recv_msg()["error"]["code"] == -32600
    # pipelined: 40 pings and a bad call in one write, answered by one write
    raw.send_bytes(b"".join(encode_request(i, "rpc.ping") for i in range(40))
                   + encode_request(40, "sys.process", {"pid": "x"}))
    answers = [raw.recv_msg() for _ in range(41)]
    assert sum("result" in a for a in answers) == 40
    raw.close()
    token = {"Authorization": "Bearer test-token-0123456789abcdef",
             "Content-Type": "application/json"}
    assert fetch(base + "/api/v1/rpc.ping", b"{}", token)[0] == 200
    assert fetch(base + "/api/v1/no.such.method.x2", b"{}", token)[0] == 404
    assert fetch(base + "/api/v1/no.such.method.x3", b"{}",
                 {"Content-Type": "application/json"})[0] == 401
    after = scrape(base)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("xsys_requests_total", method="rpc.ping", code="0") == 46
    assert delta("xsys_request_duration_seconds_count", method="rpc.ping") == 46
    assert delta("xsys_request_duration_seconds_bucket", method="rpc.ping",
                 le="+Inf") == 46
    assert delta("xsys_requests_total", method="unknown", code="-32601") == 2
    assert delta("xsys_requests_total", method="unknown", code="-32006") == 1
    assert delta("xsys_requests_total", method="sys.process", code="-32602") == 2
    assert delta("xsys_requests_total", method="sys.memory", code="0") == 1
    assert delta("xsys_requests_total", method="invalid", code="-32600") == 1
    methods = {dict(labels).get("method") for name, labels in after
               if name == "xsys_requests_total"}
    assert not any(m and m.startswith("no.such") for m in methods), methods
    # the standard collectors of prometheus_client
    names = {name for name, _ in after}
    assert {"process_resident_memory_bytes", "process_cpu_seconds_total",
            "process_open_fds", "python_info",
            "python_gc_objects_collected_total"} <= names


# ---------------------------------------------------------------- promtool

def promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], input=None if stdin is None else
                          stdin.decode(), capture_output=True, text=True, timeout=120,
                          check=False)


@needs_promtool
def test_promtool_checks_the_rules_and_the_config() -> None:
    r = promtool("check", "rules", str(RULES))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout
    r = promtool("check", "config", str(DEPLOY / "prometheus.yml"))
    assert r.returncode == 0, r.stdout + r.stderr


@needs_promtool
def test_promtool_unit_tests_of_the_rules() -> None:
    r = promtool("test", "rules", str(DEPLOY / "rules" / "xsys.rules.test.yml"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


@needs_promtool
def test_promtool_fails_a_broken_rule(tmp_path: Path) -> None:
    """The checks above can fail: a rule file with a bad expression is refused."""
    bad = tmp_path / "bad.yml"
    bad.write_text(RULES.read_text().replace("xsys_check_up == 0", "xsys_check_up == ="))
    assert promtool("check", "rules", str(bad)).returncode != 0


def check_metrics_lints(text: str) -> list[str]:
    r = promtool("check", "metrics", stdin=text.encode())
    lines = [line.strip() for line in (r.stdout + r.stderr).splitlines() if line.strip()]
    return [line for line in lines if not any(known in line for known in KNOWN_LINTS)]


@needs_promtool
def test_promtool_check_metrics_finds_only_known_lints(
        http_daemon: tuple[DaemonHandle, str]) -> None:
    d, base = http_daemon
    with d.client() as c:
        c.call("rpc.ping")
        # the app metrics (issue 9, part C), when they are in this tree
        with contextlib.suppress(MethodNotFound):
            c.call("metrics.observe", {"name": "app_job_seconds", "value": 0.2,
                                       "help": "A job's duration."})
    status, body = fetch(base + "/metrics")
    assert status == 200 and b"xsys_requests_total" in body
    assert check_metrics_lints(body.decode()) == []
    # the lint does find what it should: a counter without _total, no HELP
    assert check_metrics_lints("# TYPE bad counter\nbad 1\n") != []


# ---------------------------------------------------------------- a real Prometheus

class Prometheus:
    """A real Prometheus on loopback with its own config and TSDB under ``workdir``."""

    def __init__(self, workdir: Path, target: str, rule_files: list[Path]) -> None:
        assert PROMETHEUS is not None
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                       "scrape_timeout": "1s"},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [{"job_name": "xsys",
                                "static_configs": [{"targets": [target]}]}],
        }
        self.config = workdir / "prometheus.yml"
        self.config.write_text(json.dumps(config))  # JSON is YAML
        self.log = workdir / "prometheus.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [PROMETHEUS, f"--config.file={self.config}",
                 f"--storage.tsdb.path={workdir / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if fetch(self.base + "/-/ready")[0] == 200:
                    return
            except OSError:
                pass
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.1)

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = self.base + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        status, body = fetch(url)
        data = json.loads(body)
        assert status == 200 and data["status"] == "success", data
        result: list[dict[str, Any]] = data["data"]["result"]
        return result

    def rules(self) -> list[dict[str, Any]]:
        status, body = fetch(self.base + "/api/v1/rules")
        assert status == 200
        return [rule for group in json.loads(body)["data"]["groups"]
                for rule in group["rules"]]

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Callable[..., Prometheus]]:
    if PROMETHEUS is None:
        pytest.skip("prometheus not installed (Debian package prometheus; "
                    "`make test-deps` installs it)")
    started: list[Prometheus] = []

    def start(target: str, rule_files: list[Path]) -> Prometheus:
        workdir = tmp_path / f"prometheus{len(started)}"
        workdir.mkdir()
        prom = Prometheus(workdir, target, rule_files)
        started.append(prom)
        prom.wait_ready()
        return prom

    yield start
    for prom in started:
        prom.stop()


def test_a_real_prometheus_scrapes_the_daemon(daemon_factory: Factory,
                                              prometheus_factory: Callable[..., Prometheus]
                                              ) -> None:
    """Prometheus scrapes /metrics every second and evaluates deploy/prometheus's rules;
    read back through its query API: ``up == 1``, node_* series, the request counter,
    the recording rule over the request histogram, every rule evaluated without error;
    and, when those parts are in the tree, a service check's ``xsys_check_up`` and an
    app histogram's ``histogram_quantile``."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        port = free_port()
        config: dict[str, Any] = {"http": {"enabled": True, "port": port}}
        if HAS_CHECKS:
            config["checks"] = [{"name": "db", "interval_s": 0.5, "timeout_s": 1,
                                 "tcp": f"127.0.0.1:{listener.getsockname()[1]}"}]
        d = daemon_factory(config)
        prom = prometheus_factory(f"127.0.0.1:{port}", [RULES])
        with d.client() as c:
            try:
                c.call("metrics.observe", {"name": "app_job_seconds", "value": 0.2})
                app_metrics = True
            except MethodNotFound:
                app_metrics = False  # issue 9, part C not in this tree yet

            def until(expr: str, pred: Callable[[list[dict[str, Any]]], bool],
                      timeout_s: float = 90.0) -> list[dict[str, Any]]:
                """Query ``expr`` until ``pred(result)``, keeping traffic flowing (pings,
                app observations) so that rates have something to measure."""
                deadline = time.monotonic() + timeout_s
                while True:
                    c.call("rpc.ping")
                    if app_metrics:
                        c.call("metrics.observe", {"name": "app_job_seconds",
                                                   "value": 0.2})
                    result = prom.query(expr)
                    if pred(result):
                        return result
                    assert time.monotonic() < deadline, (expr, result,
                                                         prom.log.read_text())
                    time.sleep(0.2)

            up = until('up{job="xsys"}', lambda r: bool(r) and r[0]["value"][1] == "1")
            assert up[0]["metric"]["instance"] == f"127.0.0.1:{port}"
            mem = until("node_memory_MemTotal_bytes", bool)
            assert float(mem[0]["value"][1]) > 0
            until("node_cpu_seconds_total", lambda r: len(r) >= 3)
            pings = until('xsys_requests_total{method="rpc.ping",code="0"}', bool)
            assert float(pings[0]["value"][1]) >= 1
            until("process_resident_memory_bytes", bool)
            p99 = until('xsys:request_duration_seconds:p99_5m{method="rpc.ping"}',
                        lambda r: bool(r) and r[0]["value"][1] != "NaN")
            assert 0 < float(p99[0]["value"][1]) <= BUCKETS_S[-1]
            if HAS_CHECKS:
                until('xsys_check_up{check="db"} == 1', bool)
            if app_metrics:
                q = until('histogram_quantile(0.5, sum by (le) '
                          '(rate(app_job_seconds_bucket[30s])))',
                          lambda r: bool(r) and r[0]["value"][1] != "NaN")
                # every observation is 0.2: the median lies in the (0.1, 0.25] bucket
                assert 0.1 < float(q[0]["value"][1]) <= 0.25
            # every rule of deploy/prometheus evaluated against real data, without error
            deadline = time.monotonic() + 60
            while any(rule["health"] == "unknown" for rule in prom.rules()):
                assert time.monotonic() < deadline, prom.rules()
                time.sleep(0.2)
            bad = [(r["name"], r.get("lastError")) for r in prom.rules()
                   if r["health"] != "ok"]
            assert bad == []
            assert math.isfinite(float(pings[0]["value"][1]))
    finally:
        listener.close()
