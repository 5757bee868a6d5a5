"""App metrics: counters, gauges and histograms that local programs push to the daemon over
the socket (IPC namespace ``metrics``) and that Prometheus scrapes from ``/metrics``.

``MetricsService`` (``store.py``) validates and holds them; ``AppMetricsCollector``
(``collector.py``) exposes them; the section ``metrics`` of the config (``config.py``)
bounds them. The composition root builds the store into ``Services.metrics`` and
registers the collector on ``Services.metrics_registry``.
"""

from xsys.metrics.collector import AppMetricsCollector, exposition, render_text
from xsys.metrics.config import MetricsConfig
from xsys.metrics.store import DEFAULT_BUCKETS, MetricInfo, MetricsService

__all__ = ["DEFAULT_BUCKETS", "AppMetricsCollector", "MetricInfo", "MetricsConfig",
           "MetricsService", "exposition", "render_text"]
