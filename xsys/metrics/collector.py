"""The Prometheus side of the app metrics: a ``prometheus_client`` collector that exposes
every series of a ``MetricsService`` on ``/metrics`` under its own name (no prefix forced)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from xsys.metrics.store import MetricsService


class AppMetricsCollector(Collector):
    """Yields one metric family per app metric (counters, gauges, histograms with their
    cumulative buckets, ``_sum`` and ``_count``); runs in the scrape's worker thread."""

    def __init__(self, store: MetricsService) -> None:
        self.store = store
        self._le: dict[tuple[float, ...], list[str]] = {}

    def collect(self) -> Iterator[Metric]:
        """The metric families of the store's current snapshot."""
        for snap in self.store.snapshot():
            labels = list(snap.labelnames)
            metric: CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily
            if snap.type == "counter":
                metric = CounterMetricFamily(snap.name, snap.help, labels=labels,
                                             unit=snap.unit)
                for key, value in snap.series:
                    metric.add_metric(key, value)
            elif snap.type == "gauge":
                metric = GaugeMetricFamily(snap.name, snap.help, labels=labels,
                                           unit=snap.unit)
                for key, value in snap.series:
                    metric.add_metric(key, value)
            else:
                le = self._le.get(snap.bounds)
                if le is None:
                    le = self._le[snap.bounds] = [
                        floatToGoString(b)  # type: ignore[no-untyped-call]
                        for b in snap.bounds]
                metric = HistogramMetricFamily(snap.name, snap.help, labels=labels,
                                               unit=snap.unit)
                for key, cum, total in snap.series:
                    metric.add_metric(key, list(zip(le, cum, strict=True)), total)
            yield metric
