"""App metrics (issue 9): ``metrics.*`` against a real daemon, exposure on ``/metrics``
(the HTTP gateway on a free loopback port, no token), validation, limits and expiry; the
store's rules directly with a controlled clock; the Python helpers."""

from __future__ import annotations

import json
import math
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import DaemonHandle
from tests.launcher import free_port
from xsys.client import Client
from xsys.client.metrics import Counter, Gauge, Histogram
from xsys.metrics import (
    AppMetricsCollector,
    MetricsConfig,
    MetricsService,
    exposition,
    render_text,
)
from xsys.protocol import Conflict, InvalidParams, TooLarge


@pytest.fixture
def metrics_daemon(daemon_factory: Callable[..., DaemonHandle]) -> tuple[DaemonHandle, str]:
    port = free_port()
    d = daemon_factory({"http": {"enabled": True, "port": port},
                        "metrics": {"max_series": 20}})
    return d, f"http://127.0.0.1:{port}/metrics"


@pytest.fixture
def client(metrics_daemon: tuple[DaemonHandle, str]) -> Iterator[Client]:
    with metrics_daemon[0].client() as c:
        yield c


def scrape(url: str) -> dict[str, Any]:
    """name -> metric family, as Prometheus' parser reads ``url``."""
    with urllib.request.urlopen(url, timeout=30) as r:
        text = r.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(url: str, name: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    fams = scrape(url)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in fams[name].samples}


def test_each_op_is_exposed_with_its_type_labels_and_values(
        metrics_daemon: tuple[DaemonHandle, str], client: Client) -> None:
    _, url = metrics_daemon
    assert client.call("metrics.inc", {"name": "app_jobs_total", "labels": {"queue": "a"},
                                       "help": "Jobs done."}) == {"value": 1.0}
    assert client.call("metrics.inc", {"name": "app_jobs_total", "value": 2.5,
                                       "labels": {"queue": "a"}}) == {"value": 3.5}
    client.call("metrics.set", {"name": "app_temperature_celsius", "value": 21.5,
                                "unit": "celsius"})
    assert client.call("metrics.add", {"name": "app_temperature_celsius",
                                       "value": -1.5}) == {"value": 20.0}
    for v in (0.003, 0.2, 20.0):
        out = client.call("metrics.observe", {"name": "app_latency_seconds", "value": v,
                                              "labels": {"route": "/x"},
                                              "buckets": [0.01, 0.5, 1]})
    assert out == {"count": 3, "sum": pytest.approx(20.203)}

    fams = scrape(url)
    assert fams["app_jobs"].type == "counter" and fams["app_jobs"].documentation == "Jobs done."
    assert samples(url, "app_jobs")[("app_jobs_total", (("queue", "a"),))] == 3.5
    assert fams["app_temperature_celsius"].type == "gauge"
    assert samples(url, "app_temperature_celsius")[("app_temperature_celsius", ())] == 20.0
    hist = samples(url, "app_latency_seconds")
    route = (("route", "/x"),)
    assert fams["app_latency_seconds"].type == "histogram"
    assert {k[1]: v for k, v in hist.items() if k[0] == "app_latency_seconds_bucket"} == {
        (("le", "0.01"), *route): 1, (("le", "0.5"), *route): 2,
        (("le", "1.0"), *route): 2, (("le", "+Inf"), *route): 3}
    assert hist[("app_latency_seconds_count", route)] == 3
    assert hist[("app_latency_seconds_sum", route)] == pytest.approx(20.203)

    listed = {m["name"]: m for m in client.call("metrics.list")["metrics"]}
    assert listed["app_jobs_total"] | {"updated_at": 0} == {
        "name": "app_jobs_total", "type": "counter", "help": "Jobs done.", "unit": "",
        "labels": ["queue"], "series": 1, "updated_at": 0}
    assert listed["app_latency_seconds"]["buckets"] == [0.01, 0.5, 1.0]
    assert listed["app_temperature_celsius"]["unit"] == "celsius"


def test_default_buckets_are_prometheus_clients(client: Client,
                                                 metrics_daemon: tuple[DaemonHandle, str],
                                                 ) -> None:
    client.call("metrics.observe", {"name": "app_wait_seconds", "value": 0.3})
    les = [s.labels["le"] for s in scrape(metrics_daemon[1])["app_wait_seconds"].samples
           if s.name.endswith("_bucket")]
    assert les == ["0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.25", "0.5", "0.75",
                   "1.0", "2.5", "5.0", "7.5", "10.0", "+Inf"]


def test_push_applies_a_batch(client: Client, metrics_daemon: tuple[DaemonHandle, str],
                              ) -> None:
    batch = [{"op": "inc", "name": "batch_total", "value": 1, "labels": {"k": str(i % 3)}}
             for i in range(30)]
    batch += [{"op": "set", "name": "batch_gauge", "value": 7},
              {"op": "add", "name": "batch_gauge", "value": 1},
              {"op": "observe", "name": "batch_seconds", "value": 0.02}]
    assert client.call("metrics.push", {"samples": batch}) == {"samples": 33, "created": 5}
    got = samples(metrics_daemon[1], "batch")
    assert got == {("batch_total", (("k", "0"),)): 10, ("batch_total", (("k", "1"),)): 10,
                   ("batch_total", (("k", "2"),)): 10}
    assert samples(metrics_daemon[1], "batch_gauge")[("batch_gauge", ())] == 8
    assert client.call("metrics.list")["series"] == 5


BAD: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"name": "9bad_total"}, InvalidParams, "not a Prometheus metric name"),
    ({"name": "app-x_total"}, InvalidParams, "not a Prometheus metric name"),
    ({"name": "app_requests"}, InvalidParams, "must end in _total"),
    ({"name": "app_x_total", "labels": {"__x": "1"}}, InvalidParams, "reserved"),
    ({"name": "app_x_total", "labels": {"a-b": "1"}}, InvalidParams, "label name"),
    ({"name": "app_x_total", "labels": {"a": 1}}, InvalidParams, "must be a string"),
    ({"name": "app_x_total", "value": -1}, InvalidParams, "only goes up"),
    ({"name": "app_x_total", "value": math.nan}, InvalidParams, "finite"),
    ({"name": "app_x_total", "value": math.inf}, InvalidParams, "finite"),
    ({"name": "app_x_total", "value": -math.inf}, InvalidParams, "finite"),
    ({"name": "app_x_total", "unit": "bytes"}, InvalidParams, "must end in _bytes"),
    ({"name": "xsys_mine_total"}, Conflict, "xsys's own"),
    ({"name": "node_load1_total"}, Conflict, "xsys's own"),
    ({"name": "process_x_total"}, Conflict, "xsys's own"),
    ({"name": "python_x_total"}, Conflict, "xsys's own"),
]


@pytest.mark.parametrize(("params", "error", "reason"), BAD)
def test_bad_updates_get_a_clear_error_and_change_nothing(
        client: Client, metrics_daemon: tuple[DaemonHandle, str], params: dict[str, Any],
        error: type[Exception], reason: str) -> None:
    client.call("metrics.inc", {"name": "app_ok_total"})
    with pytest.raises(error, match=reason):
        client.call("metrics.inc", params)
    listed = client.call("metrics.list")
    assert [m["name"] for m in listed["metrics"]] == ["app_ok_total"]
    assert listed["series"] == 1
    assert set(scrape(metrics_daemon[1])) >= {"app_ok"}


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinities_are_refused_for_gauges_and_histograms(
        client: Client, value: float) -> None:
    client.call("metrics.set", {"name": "g", "value": 1})
    client.call("metrics.observe", {"name": "h_seconds", "value": 1})
    for method, name in (("metrics.set", "g"), ("metrics.add", "g"),
                         ("metrics.observe", "h_seconds")):
        with pytest.raises(InvalidParams, match="finite"):
            client.call(method, {"name": name, "value": value})
    assert client.call("metrics.add", {"name": "g", "value": 0}) == {"value": 1.0}
    assert client.call("metrics.observe", {"name": "h_seconds", "value": 0}) == {
        "count": 2, "sum": 1.0}


def test_a_name_keeps_its_type_label_set_unit_and_buckets(
        client: Client, metrics_daemon: tuple[DaemonHandle, str]) -> None:
    client.call("metrics.set", {"name": "app_size_bytes", "value": 5, "labels": {"a": "1"},
                                "unit": "bytes"})
    client.call("metrics.observe", {"name": "app_op_seconds", "value": 1, "buckets": [1, 2]})
    changes = [
        ("metrics.observe", {"name": "app_size_bytes", "value": 1, "labels": {"a": "1"}},
         "is a gauge"),
        ("metrics.set", {"name": "app_size_bytes", "value": 1, "labels": {"b": "1"}},
         "has the labels"),
        ("metrics.set", {"name": "app_size_bytes", "value": 1}, "has the labels"),
        ("metrics.set", {"name": "app_size_bytes", "value": 1,
                         "labels": {"a": "1", "b": "2"}}, "has the labels"),
        ("metrics.set", {"name": "app_size_bytes", "value": 1, "labels": {"a": "1"},
                         "unit": "other"}, "has unit"),
        ("metrics.observe", {"name": "app_op_seconds", "value": 1, "buckets": [1, 3]},
         "other buckets"),
        # a gauge whose exposed name is one of the histogram's samples
        ("metrics.set", {"name": "app_op_seconds_count", "value": 1}, "already exposed"),
    ]
    for method, params, reason in changes:
        with pytest.raises(Conflict, match=reason):
            client.call(method, params)
    assert client.call("metrics.list")["series"] == 2
    assert samples(metrics_daemon[1], "app_size_bytes") == {
        ("app_size_bytes", (("a", "1"),)): 5}


def test_series_past_max_series_are_refused_and_change_nothing(
        client: Client, metrics_daemon: tuple[DaemonHandle, str]) -> None:
    for i in range(20):  # max_series = 20
        client.call("metrics.inc", {"name": "app_hits_total", "labels": {"user": str(i)}})
    with pytest.raises(TooLarge, match="max_series") as info:
        client.call("metrics.inc", {"name": "app_hits_total", "labels": {"user": "new"}})
    assert info.value.data == {"max_series": 20}
    with pytest.raises(TooLarge):
        client.call("metrics.set", {"name": "other_gauge", "value": 1})
    # existing series still update
    assert client.call("metrics.inc", {"name": "app_hits_total",
                                       "labels": {"user": "3"}}) == {"value": 2.0}
    listed = client.call("metrics.list")
    assert listed["series"] == 20 and listed["max_series"] == 20
    assert [m["name"] for m in listed["metrics"]] == ["app_hits_total"]
    assert len(scrape(metrics_daemon[1])["app_hits"].samples) == 20


def test_a_bad_sample_rejects_the_whole_batch_naming_its_index(
        client: Client, metrics_daemon: tuple[DaemonHandle, str]) -> None:
    client.call("metrics.inc", {"name": "app_a_total"})
    bad_batches: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"op": "inc", "name": "app_a_total", "value": math.nan}, InvalidParams, "finite"),
        ({"op": "dec", "name": "app_a_total", "value": 1}, InvalidParams, "op"),
        ({"op": "set", "name": "app_a_total", "value": 1}, Conflict, "is a counter"),
        ({"op": "observe", "name": "app_b", "value": 1, "buckets": [2, 1]}, InvalidParams,
         "increase"),
        ({"op": "set", "name": "app_b_total", "value": 1}, InvalidParams, "only a counter"),
        ({"op": "inc", "name": "app_a_total", "value": 1, "labels": {"x": "1"}}, Conflict,
         "has the labels"),
        ("not a map", InvalidParams, "expected a map"),
    ]
    for bad, error, reason in bad_batches:
        batch = [{"op": "inc", "name": "app_a_total", "value": 1},
                 {"op": "set", "name": "app_fresh", "value": 1},
                 bad]
        with pytest.raises(error, match=reason) as info:
            client.call("metrics.push", {"samples": batch})
        assert str(info.value).startswith("samples[2]")
        assert info.value.data["index"] == 2  # type: ignore[attr-defined]
    # a batch that would pass max_series (20) is refused as a whole
    many = [{"op": "set", "name": "app_many", "value": 1, "labels": {"i": str(i)}}
            for i in range(25)]
    with pytest.raises(TooLarge) as full:
        client.call("metrics.push", {"samples": many})
    assert full.value.data["index"] == 19  # type: ignore[attr-defined]
    listed = client.call("metrics.list")
    assert [m["name"] for m in listed["metrics"]] == ["app_a_total"]
    assert samples(metrics_daemon[1], "app_a") == {("app_a_total", ()): 1.0}


def test_series_expire_after_ttl(daemon_factory: Callable[..., DaemonHandle]) -> None:
    d = daemon_factory({"metrics": {"ttl_s": 0.5}})
    with d.client() as c:
        c.call("metrics.set", {"name": "app_gone", "value": 1, "labels": {"a": "1"}})
        deadline = time.monotonic() + 30
        listed = c.call("metrics.list")
        while listed["metrics"] and time.monotonic() < deadline:
            time.sleep(0.05)
            c.call("metrics.set", {"name": "app_kept", "value": 1})  # kept fresh
            listed = c.call("metrics.list")
            if [m["name"] for m in listed["metrics"]] == ["app_kept"]:
                break
        assert [m["name"] for m in listed["metrics"]] == ["app_kept"]
        assert listed["ttl_s"] == 0.5
        # the expired name is free again, even for another type
        c.call("metrics.observe", {"name": "app_gone", "value": 1})


def test_a_reload_applies_new_limits(daemon_factory: Callable[..., DaemonHandle]) -> None:
    d = daemon_factory({"metrics": {"max_series": 1}})
    with d.client() as c:
        c.call("metrics.set", {"name": "app_one", "value": 1})
        with pytest.raises(TooLarge):
            c.call("metrics.set", {"name": "app_two", "value": 1})
        d.config["metrics"] = {"max_series": 2, "ttl_s": 60}
        d.config_path.write_text(json.dumps(d.config))
        d.signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while c.call("metrics.list")["max_series"] != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.call("metrics.list")["ttl_s"] == 60
        c.call("metrics.set", {"name": "app_two", "value": 1})
        assert c.call("metrics.list")["series"] == 2


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_expiry_with_a_controlled_clock() -> None:
    clock = Clock()
    store = MetricsService(MetricsConfig(ttl_s=10, max_series=2), clock=clock)
    store.update("set", "a", 1, {"k": "1"})
    store.update("set", "a", 1, {"k": "2"})
    with pytest.raises(TooLarge):
        store.update("set", "b", 1, {})
    clock.now += 6
    store.update("set", "a", 2, {"k": "2"})
    clock.now += 5  # k=1 is 11 s old, k=2 5 s
    store.update("set", "b", 1, {})  # room made by expiring k=1
    assert {r["name"]: r["series"] for r in store.describe()} == {"a": 1, "b": 1}
    clock.now += 10.5
    assert store.expire() == 2
    assert store.describe() == [] and store.series_count == 0
    store.update("inc", "a_total", 1, {})
    assert store.describe()[0]["name"] == "a_total"


def test_expiry_that_makes_room_keeps_the_update_whole() -> None:
    """At max_series, expiry runs and the update is validated again: a series of a
    metric that expired meanwhile is declared afresh, never left outside the store."""
    clock = Clock()
    store = MetricsService(MetricsConfig(ttl_s=10, max_series=2), clock=clock)
    store.push([{"op": "set", "name": "a", "value": 1, "labels": {"k": "1"}},
                {"op": "set", "name": "b", "value": 1}])
    clock.now += 11  # both expired, not swept yet
    assert store.update("set", "a", 5, {"k": "2"}) == 5.0
    assert [(r["name"], r["series"]) for r in store.describe()] == [("a", 1)]
    clock.now += 4
    store.update("set", "b", 7, {})
    clock.now += 11  # a{k=2} and b expired, not swept yet
    assert store.push([{"op": "add", "name": "b", "value": 1},
                       {"op": "set", "name": "c", "value": 2}]) == (2, 2)
    assert store.series_count == 2
    text = render_text(store)
    assert "\nb 1.0\n" in text and "\nc 2.0\n" in text and "a{" not in text


def test_values_and_buckets_beyond_a_double_are_refused() -> None:
    store = MetricsService(MetricsConfig())
    with pytest.raises(InvalidParams, match="range of a double"):
        store.update("set", "g", 10 ** 400, {})
    with pytest.raises(InvalidParams, match="range of a double"):
        store.update("observe", "h", 1, {}, buckets=[1, 10 ** 400])
    with pytest.raises(InvalidParams, match="finite"):
        store.update("observe", "h", 1, {}, buckets=[1, math.nan])
    assert store.update("observe", "h", 1, {}, buckets=[1, 2, math.inf]) == (1, 1.0)
    assert store.describe()[0]["buckets"] == [1.0, 2.0]
    assert [r["name"] for r in store.describe()] == ["h"]


def test_without_ttl_nothing_expires() -> None:
    clock = Clock()
    store = MetricsService(MetricsConfig(), clock=clock)
    store.update("set", "a", 1, {})
    clock.now += 10 ** 9
    assert store.expire() == 0 and store.describe()[0]["series"] == 1


def test_a_name_the_registry_declares_is_refused() -> None:
    taken = ["my_requests", "my_requests_total", "my_requests_created"]
    store = MetricsService(MetricsConfig(), reserved=lambda: taken)
    with pytest.raises(Conflict, match="xsys's own"):
        store.update("inc", "my_requests_total", 1, {})
    with pytest.raises(Conflict, match="xsys's own"):
        store.update("set", "my_requests", 1, {})
    with pytest.raises(Conflict, match="xsys's own"):
        store.update("observe", "my_requests", 1, {})
    assert store.describe() == []


def test_python_helpers(client: Client, metrics_daemon: tuple[DaemonHandle, str]) -> None:
    jobs = Counter(client, "helper_jobs_total", "Jobs.", labelnames=["queue"])
    jobs.labels(queue="a").inc()
    jobs.labels("a").inc(2)
    temp = Gauge(client, "helper_temp_celsius", unit="celsius")
    temp.set(5)
    temp.inc()
    temp.dec(2)
    lat = Histogram(client, "helper_latency_seconds", buckets=[0.5, 10])
    with lat.time():
        pass

    @lat.time()
    def work() -> int:
        return 7

    assert work() == 7
    lat.observe(3)
    with pytest.raises(InvalidParams, match="only goes up"):
        jobs.labels("a").inc(-1)
    with pytest.raises(ValueError, match="labels"):
        jobs.inc()
    url = metrics_daemon[1]
    assert samples(url, "helper_jobs")[("helper_jobs_total", (("queue", "a"),))] == 3
    assert samples(url, "helper_temp_celsius")[("helper_temp_celsius", ())] == 4
    hist = samples(url, "helper_latency_seconds")
    assert hist[("helper_latency_seconds_count", ())] == 3
    assert hist[("helper_latency_seconds_bucket", (("le", "0.5"),))] == 2


def test_the_fast_exposition_matches_prometheus_clients() -> None:
    """``render_text`` (what /metrics serves) parses to the same families as
    prometheus_client's own formatting of the collector, escaping included."""
    store = MetricsService(MetricsConfig())
    odd = 'quote " backslash \\ newline \n done'
    store.update("inc", "esc_total", 2, {"v": odd, "w": ""}, "Help with \\ and \n.")
    store.update("set", "plain", -0.5, {})
    store.update("add", "plain", 1e-9, {})
    store.update("set", "big_bytes", 1e21, {"k": "ü"}, unit="bytes")
    for v in (0.0, 0.5, 3, 100):
        store.update("observe", "h_seconds", v, {"a": odd}, buckets=[0.5, 1, 5])
    store.update("observe", "h2", 0.01, {})
    collector = AppMetricsCollector(store)
    registry = CollectorRegistry()
    registry.register(collector)

    def parsed(text: str) -> list[tuple[str, str, str, list[Any]]]:
        return sorted((f.name, f.type, f.documentation,
                       sorted((s.name, sorted(s.labels.items()), s.value)
                              for s in f.samples))
                      for f in text_string_to_metric_families(text))

    fast = render_text(store)
    assert parsed(fast) == parsed(generate_latest(registry).decode())
    assert parsed(fast) and "esc_total" in fast
    # the gateway's body: the registry's own metrics once, the app metrics once
    body = exposition(registry, collector).decode()
    assert body.count("# TYPE esc_total counter") == 1


def test_the_daemon_registry_holds_the_collector() -> None:
    from xsys.config import Config
    from xsys.daemon import compose

    app, _router = compose(Config())
    app.services.metrics.update("set", "composed_gauge", 3, {})
    text = generate_latest(app.services.metrics_registry).decode()
    assert "composed_gauge 3.0" in text
