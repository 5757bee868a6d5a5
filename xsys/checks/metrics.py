"""The ``xsys_check_*`` metrics on ``/metrics``, read from the checks at scrape time:

- ``xsys_check_up{check}``: 1 when the check is up, else 0 (down, unknown, failed);
- ``xsys_check_latency_seconds{check}``: the last probe's duration (absent before one);
- ``xsys_check_restarts_total{check}``: restarts run since the daemon started;
- ``xsys_check_state_since_seconds{check}``: when the current state began (Unix time, as
  ``process_start_time_seconds``; ``time() - it`` is its age).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from xsys.checks.model import ServiceCheck


class StatusSource(Protocol):
    """What the collector reads: ``status()`` (``ChecksService.status``)."""

    def status(self) -> list[ServiceCheck]:
        """Every check's row."""
        ...


class ChecksCollector(Collector):
    """The ``xsys_check_*`` families of ``source``'s checks (``ChecksService``), read at
    each scrape (in the thread pool, as every ``/metrics`` collection)."""

    def __init__(self, source: StatusSource) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        rows = self.source.status()
        up = GaugeMetricFamily("xsys_check_up", "Whether the service check is up (1) or "
                               "not (0: down, unknown or failed)", labels=["check"])
        latency = GaugeMetricFamily("xsys_check_latency_seconds",
                                    "Duration of the last probe of the service check",
                                    labels=["check"])
        restarts = CounterMetricFamily("xsys_check_restarts",
                                       "Restarts run by the service check",
                                       labels=["check"])
        since = GaugeMetricFamily("xsys_check_state_since_seconds",
                                  "Unix time when the service check's current state began",
                                  labels=["check"])
        for row in rows:
            name = row["name"]
            up.add_metric([name], 1.0 if row["state"] == "up" else 0.0)
            if row["latency_ms"] is not None:
                latency.add_metric([name], row["latency_ms"] / 1000)
            restarts.add_metric([name], float(row["restarts"]))
            since.add_metric([name], row["since"])
        yield up
        yield latency
        yield restarts
        yield since
