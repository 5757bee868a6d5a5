"""The daemon's own request metrics for ``/metrics``, read from ``App.request_stats``
(``xsys.server.stats``) at scrape time:

- ``xsys_requests_total{method,code}``: requests answered, socket and HTTP mirror;
  ``code`` is ``"0"`` for a result, else the error code sent (``"-32601"``...);
  ``method`` is ``"unknown"`` for a method that does not exist and ``"invalid"`` for a
  message rejected before its method was read.
- ``xsys_request_duration_seconds{method}``: a histogram of the seconds from a request's
  arrival to its answer (buckets ``xsys.server.stats.BUCKETS_S``), every code together.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import accumulate

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from xsys.server.stats import BUCKETS_S, RequestStats

_BOUNDS = [repr(b) for b in BUCKETS_S] + ["+Inf"]  # Go's float format for these values


class RequestCollector(Collector):
    """``xsys_requests_total`` and ``xsys_request_duration_seconds`` from ``stats``."""

    def __init__(self, stats: RequestStats) -> None:
        self.stats = stats

    def describe(self) -> Iterator[Metric]:
        """The two families without samples (registration checks names with this)."""
        yield CounterMetricFamily("xsys_requests", "", labels=["method", "code"])
        yield HistogramMetricFamily("xsys_request_duration_seconds", "", labels=["method"])

    def collect(self) -> Iterator[Metric]:
        """One sample per (method, code) and one histogram per method."""
        rows = self.stats.snapshot()
        total = CounterMetricFamily(
            "xsys_requests", "Requests answered by the daemon (socket and HTTP API), by "
            "method and code (0 = a result, else the error code).", labels=["method", "code"])
        by_method: dict[str, list[float]] = {}
        for (method, code), row in sorted(rows.items()):
            total.add_metric([method, str(code)], sum(row[:-1]))
            merged = by_method.get(method)
            if merged is None:
                by_method[method] = list(row)
            else:
                for i, value in enumerate(row):
                    merged[i] += value
        yield total
        hist = HistogramMetricFamily(
            "xsys_request_duration_seconds", "Seconds from a request's arrival to its "
            "answer (socket and HTTP API), by method.", labels=["method"])
        for method, row in by_method.items():
            cumulative = list(accumulate(row[:-1]))
            hist.add_metric([method], list(zip(_BOUNDS, cumulative, strict=True)),
                            sum_value=row[-1])
        yield hist
