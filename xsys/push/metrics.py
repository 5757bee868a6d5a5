"""``xsys_push_*``: push mode's state on ``/metrics``, read from ``PushService`` at scrape
time (a prometheus_client custom collector)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from xsys.push.service import PushService


class PushCollector(Collector):
    """The families, each labelled ``target``: ``xsys_push_connected`` (1/0),
    ``xsys_push_buffered_messages``, ``xsys_push_buffered_bytes``,
    ``xsys_push_sent_total``, ``xsys_push_dropped_total``, ``xsys_push_reconnects_total``."""

    def __init__(self, service: Callable[[], PushService]) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        """One sample per target of each family (none without targets)."""
        targets = list(self.service().targets.values())
        connected = GaugeMetricFamily("xsys_push_connected",
                                      "Whether the push target is connected (1) or not (0).",
                                      labels=["target"])
        buffered = GaugeMetricFamily("xsys_push_buffered_messages",
                                     "Messages waiting to be sent to the push target.",
                                     labels=["target"])
        buffered_bytes = GaugeMetricFamily("xsys_push_buffered_bytes",
                                           "Encoded bytes waiting to be sent to the push "
                                           "target.", labels=["target"])
        sent = CounterMetricFamily("xsys_push_sent", "Messages written to the push target.",
                                   labels=["target"])
        dropped = CounterMetricFamily("xsys_push_dropped",
                                      "Messages dropped for the push target because its "
                                      "buffer was full.", labels=["target"])
        reconnects = CounterMetricFamily("xsys_push_reconnects",
                                         "Connections to the push target after the first.",
                                         labels=["target"])
        for t in targets:
            label = [t.label]
            connected.add_metric(label, 1.0 if t.connected else 0.0)
            buffered.add_metric(label, len(t.outbox))
            buffered_bytes.add_metric(label, t.outbox.bytes)
            sent.add_metric(label, t.sent)
            dropped.add_metric(label, t.outbox.dropped)
            reconnects.add_metric(label, t.reconnects)
        yield from (connected, buffered, buffered_bytes, sent, dropped, reconnects)
