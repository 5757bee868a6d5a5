"""Prometheus metrics of the monitor and alert delivery, registered once per daemon
in its ``CollectorRegistry`` (the composition root's ``Services.metrics_registry``).

- ``xsys_alerts_sent_total{provider}``, ``xsys_alerts_failed_total{provider}``,
  ``xsys_alerts_dropped_total{provider}`` (queue full or undelivered at shutdown),
  ``xsys_alert_delivery_retries_total{provider}``;
- ``xsys_alert_queue_depth`` (deliveries waiting, all providers together),
  ``xsys_alert_provider_queue_depth{provider}`` (waiting for one provider, retries
  included), ``xsys_alert_provider_inflight{provider}`` (attempts running);
- ``xsys_alert_circuit_state{provider}`` (0 closed, 1 half-open, 2 open),
  ``xsys_alert_circuit_opens_total{provider}`` (times the breaker opened);
- ``xsys_monitor_alerts_total{check,severity,status}`` (notifications produced),
  ``xsys_monitor_check_level{check,component}`` (0 ok, 1 warning, 2 critical),
  ``xsys_monitor_ticks_total``, ``xsys_monitor_tick_duration_seconds`` (last tick).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class AlertMetrics:
    """The metric objects, bound to one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.sent = Counter("xsys_alerts_sent_total", "Alert notifications delivered",
                            ["provider"], registry=registry)
        self.failed = Counter("xsys_alerts_failed_total",
                              "Alert notifications that failed after all retries",
                              ["provider"], registry=registry)
        self.dropped = Counter("xsys_alerts_dropped_total",
                               "Alert notifications dropped (provider queue full or "
                               "undelivered at shutdown)",
                               ["provider"], registry=registry)
        self.retries = Counter("xsys_alert_delivery_retries_total",
                               "Delivery attempts after a first failure", ["provider"],
                               registry=registry)
        self.queue_depth = Gauge("xsys_alert_queue_depth",
                                 "Deliveries waiting in the dispatcher queues (all providers)",
                                 registry=registry)
        self.provider_queue_depth = Gauge("xsys_alert_provider_queue_depth",
                                          "Deliveries waiting for one provider (retries "
                                          "included)", ["provider"], registry=registry)
        self.provider_inflight = Gauge("xsys_alert_provider_inflight",
                                       "Delivery attempts running for one provider",
                                       ["provider"], registry=registry)
        self.circuit_state = Gauge("xsys_alert_circuit_state",
                                   "Circuit breaker of a provider (0 closed, 1 half-open, "
                                   "2 open)", ["provider"], registry=registry)
        self.circuit_opens = Counter("xsys_alert_circuit_opens_total",
                                     "Times a provider's circuit breaker opened",
                                     ["provider"], registry=registry)
        self.alerts = Counter("xsys_monitor_alerts_total",
                              "Alert notifications produced by the monitor",
                              ["check", "severity", "status"], registry=registry)
        self.check_level = Gauge("xsys_monitor_check_level",
                                 "Firing level of a check component (0 ok, 1 warning, "
                                 "2 critical)", ["check", "component"], registry=registry)
        self.ticks = Counter("xsys_monitor_ticks_total", "Monitor evaluation ticks",
                             registry=registry)
        self.tick_seconds = Gauge("xsys_monitor_tick_duration_seconds",
                                  "Wall time of the last monitor tick", registry=registry)

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (0.0 when absent), for tests and status output."""
        v = self.registry.get_sample_value(name, labels or None)
        return 0.0 if v is None else float(v)
