"""The ``metrics`` namespace: app metrics pushed over the socket and exposed on
``/metrics`` (issue 9). Each method is one call into ``xsys.metrics.MetricsService``
(``Services.metrics``), which the composition root builds and registers on the daemon's
Prometheus registry.

Names are the exposed names (a counter's ends in ``_total``); names, labels and values
follow Prometheus' rules (-32602 with the reason; NaN and infinities refused); a name
keeps one type, one label-name set, one unit and one bucket layout (-32007 on a change;
-32007 too for a name that collides with xsys's own metrics or another app metric's
samples); the number of series is bounded by ``metrics.max_series`` (-32004 past it);
series not updated for ``metrics.ttl_s`` expire. A refused call changes nothing.
"""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from xsys.metrics.store import MetricInfo, MetricsService
from xsys.server.app import App
from xsys.server.context import Context
from xsys.server.router import Doc, Router

Name = Annotated[str, Doc("the exposed metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)")]
Labels = Annotated[dict[str, Any] | None, Doc("label name -> value (strings); the "
                                              "metric's label names never change")]
Help = Annotated[str | None, Doc("the metric's HELP text (a later one replaces it)")]
Unit = Annotated[str | None, Doc("the metric's unit; the name must end in _<unit> "
                                 "(before _total)")]


class MetricValue(TypedDict):
    """``metrics.inc``/``set``/``add``: the series' ``value`` after the update."""

    value: float


class HistogramObserved(TypedDict):
    """``metrics.observe``: the series' observation ``count`` and ``sum`` after it."""

    count: int
    sum: float


class MetricsPushed(TypedDict):
    """``metrics.push``: ``samples`` applied (all of them) and ``created`` series."""

    samples: int
    created: int


class MetricsList(TypedDict):
    """``metrics.list``: every app metric (``metrics``), the ``series`` held in total,
    the configured ``max_series`` and ``ttl_s`` (0: series never expire)."""

    metrics: list[MetricInfo]
    series: int
    max_series: int
    ttl_s: float


def _service(ctx: Context) -> MetricsService:
    """The daemon's ``MetricsService`` (``Services.metrics``)."""
    service: MetricsService = ctx.app.services.metrics
    return service


def inc(ctx: Context, name: Name,
        value: Annotated[float, Doc("amount to add (>= 0)")] = 1.0,
        labels: Labels = None, help: Help = None, unit: Unit = None) -> MetricValue:
    """Increase a counter (declared on first use; the name ends in ``_total``).

    Returns ``{"value"}`` (the new total). -32602: bad name, label or value (negative,
    NaN, infinite); -32007: the name has another type, label set or unit, or collides
    with xsys's own metrics; -32004: a new series past ``metrics.max_series``.
    """
    return {"value": _service(ctx).update("inc", name, value, labels, help, unit)}


def set_(ctx: Context, name: Name, value: Annotated[float, Doc("the new value")],
         labels: Labels = None, help: Help = None, unit: Unit = None) -> MetricValue:
    """Set a gauge (declared on first use).

    Returns ``{"value"}``. Errors as ``metrics.inc``.
    """
    return {"value": _service(ctx).update("set", name, value, labels, help, unit)}


def add(ctx: Context, name: Name,
        value: Annotated[float, Doc("amount to add (may be negative)")],
        labels: Labels = None, help: Help = None, unit: Unit = None) -> MetricValue:
    """Add to a gauge (declared on first use; a negative value subtracts).

    Returns ``{"value"}`` (the new value). Errors as ``metrics.inc``.
    """
    return {"value": _service(ctx).update("add", name, value, labels, help, unit)}


def observe(ctx: Context, name: Name,
            value: Annotated[float, Doc("the observation (e.g. a latency in seconds)")],
            labels: Labels = None, help: Help = None, unit: Unit = None,
            buckets: Annotated[list[float] | None,
                               Doc("bucket upper bounds, increasing (+Inf implied); "
                                   "default prometheus_client's .005 .. 10")] = None,
            ) -> HistogramObserved:
    """Record an observation in a histogram (declared on first use, with ``buckets``).

    Returns ``{"count", "sum"}`` of the series. Errors as ``metrics.inc``; -32007 too
    when ``buckets`` differ from the declared ones; -32602 for bad buckets.
    """
    count, total = _service(ctx).update("observe", name, value, labels, help, unit,
                                        buckets)
    return {"count": count, "sum": total}


def push(ctx: Context,
         samples: Annotated[list[Any],
                            Doc("[{op: inc|set|add|observe, name, value, labels?, help?, "
                                "unit?, buckets?}]")],
         ) -> MetricsPushed:
    """Apply many updates in one frame, all or nothing.

    Every sample is validated first; the first bad one rejects the whole batch with the
    error it would get alone, its message starting ``samples[<index>]`` and its
    ``data.index`` set. Returns ``{"samples", "created"}`` (samples applied, series
    created); -32602 too for more than ``metrics.max_batch_samples`` samples.
    """
    applied, created = _service(ctx).push(samples)
    return {"samples": applied, "created": created}


def list_(ctx: Context) -> MetricsList:
    """What is registered: every app metric with its type, help, unit, label names and
    series count.

    Returns ``{"metrics": [{"name", "type" (counter|gauge|histogram), "help", "unit",
    "labels", "series", "buckets"? (histograms), "updated_at"}], "series", "max_series",
    "ttl_s"}``.
    """
    service = _service(ctx)
    rows = service.describe()
    cfg = service.config
    return {"metrics": rows, "series": sum(r["series"] for r in rows),
            "max_series": cfg.max_series, "ttl_s": cfg.ttl_s}


def register(router: Router, app: App) -> None:
    """Declare the metrics methods (on ``Services.metrics``, built by the composition
    root, which registers its collector on the daemon's Prometheus registry)."""
    app.capabilities.append("metrics")
    router.add("metrics.inc", inc, kind="inline")
    router.add("metrics.set", set_, kind="inline")
    router.add("metrics.add", add, kind="inline")
    router.add("metrics.observe", observe, kind="inline")
    router.add("metrics.push", push, kind="inline")
    router.add("metrics.list", list_, kind="inline", safe=True)
