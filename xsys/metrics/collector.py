"""The Prometheus side of the app metrics: every series of a ``MetricsService`` on
``/metrics`` under its own name (no prefix forced).

- ``AppMetricsCollector``: a ``prometheus_client`` collector (registered on the daemon's
  ``Services.metrics_registry``), so anything that reads the registry sees the app metrics;
- ``exposition(registry, collector)``: what the HTTP gateway serves: ``generate_latest`` of
  the registry for the daemon's own metrics, and the app metrics rendered by
  ``render_text``, which formats each series with label text cached per series (about
  10x faster than prometheus_client's generic formatter: 10,000 app series, ~45,000
  sample lines with histograms, scrape in tens of milliseconds; bench/metrics.py).

Both run in the scrape's worker thread.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from xsys.metrics.store import FamilySnapshot, MetricsService

_LE_CACHE: dict[tuple[float, ...], list[str]] = {}


def _le(bounds: tuple[float, ...]) -> list[str]:
    le = _LE_CACHE.get(bounds)
    if le is None:
        le = _LE_CACHE[bounds] = [floatToGoString(b)  # type: ignore[no-untyped-call]
                                  for b in bounds]
    return le


class AppMetricsCollector(Collector):
    """Yields one metric family per app metric (counters, gauges, histograms with their
    cumulative buckets, ``_sum`` and ``_count``); nothing inside ``excluded()`` (when
    ``exposition`` renders them itself)."""

    def __init__(self, service: MetricsService) -> None:
        self.service = service
        self._local = threading.local()

    @contextlib.contextmanager
    def excluded(self) -> Iterator[None]:
        """Within this block (this thread), ``collect`` yields nothing."""
        self._local.off = True
        try:
            yield
        finally:
            self._local.off = False

    def collect(self) -> Iterator[Metric]:
        """The metric families of the service's current snapshot."""
        if getattr(self._local, "off", False):
            return
        for snap in self.service.snapshot():
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
                le = _le(snap.bounds)
                metric = HistogramMetricFamily(snap.name, snap.help, labels=labels,
                                               unit=snap.unit)
                for key, cum, total in snap.series:
                    metric.add_metric(key, list(zip(le, cum, strict=True)), total)
            yield metric


def _escape_value(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _label_text(snap: FamilySnapshot, key: tuple[str, ...]) -> str:
    """``a="x",b="y",`` for one series (cached on its family)."""
    text = snap.rendered.get(key)
    if text is None:
        text = "".join(f'{n}="{_escape_value(v)}",'
                       for n, v in zip(snap.labelnames, key, strict=True))
        snap.rendered[key] = text
    return text


def _num(v: float) -> str:
    return repr(v) if type(v) is float else str(v)


def render_text(service: MetricsService) -> str:
    """The app metrics in the Prometheus text format 0.0.4 (HELP, TYPE, samples)."""
    out: list[str] = []
    add = out.append
    for snap in service.snapshot():
        help_text = snap.help.replace("\\", "\\\\").replace("\n", "\\n")
        name = snap.name
        add(f"# HELP {name} {help_text}\n# TYPE {name} {snap.type}\n")
        if snap.type != "histogram":
            for key, value in snap.series:
                lab = _label_text(snap, key) if key else ""
                add(f"{name}{{{lab[:-1]}}} {value!r}\n" if lab else f"{name} {value!r}\n")
            continue
        le = _le(snap.bounds)
        bucket, count, sum_ = name + "_bucket{", name + "_count", name + "_sum"
        for key, cum, total in snap.series:
            lab = _label_text(snap, key) if key else ""
            add("".join([f'{bucket}{lab}le="{b}"}} {c}\n' for b, c in zip(le, cum,
                                                                              strict=True)]))
            braces = f"{{{lab[:-1]}}}" if lab else ""
            add(f"{count}{braces} {cum[-1]}\n{sum_}{braces} {_num(total)}\n")
    return "".join(out)


def exposition(registry: CollectorRegistry, collector: AppMetricsCollector) -> bytes:
    """The ``/metrics`` body: ``generate_latest(registry)`` without the app metrics
    (``collector`` is excluded there), then its service's app metrics by
    ``render_text``."""
    with collector.excluded():
        head = generate_latest(registry)
    return head + render_text(collector.service).encode()
