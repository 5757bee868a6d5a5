"""App metrics helpers in the style of ``prometheus_client``, over a blocking ``Client``:
each update is one ``metrics.*`` call to the daemon, which exposes the series on its
``/metrics`` (docs/metrics.md).

    from xsys.client import Client
    from xsys.client.metrics import Counter, Gauge, Histogram

    with Client() as c:
        jobs = Counter(c, "myapp_jobs_total", "Jobs done.", labelnames=["queue"])
        jobs.labels(queue="mail").inc()
        temp = Gauge(c, "myapp_temperature_celsius", unit="celsius")
        temp.set(21.5)
        latency = Histogram(c, "myapp_request_seconds", "Request latency.",
                            buckets=[0.01, 0.1, 1])
        with latency.time():              # or @latency.time() on a function
            handle()

``labels`` are constant labels sent with every update; ``labelnames`` are the names a
child gets from ``.labels(*values, **values)`` (a metric with ``labelnames`` is updated
through its children: calling ``inc()`` on the parent raises ``ValueError``, as
prometheus_client does). The daemon's errors (``xsys.protocol``: ``InvalidParams``,
``Conflict``, ``TooLarge``) reach the caller. The daemon declares a metric on its first
update: nothing is sent before. For many updates per second batch them with
``c.metrics.push(samples=[...])`` instead.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol, TypeVar

__all__ = ["Counter", "Gauge", "Histogram", "Timer"]

F = TypeVar("F", bound=Callable[..., Any])


class Caller(Protocol):
    """What the helpers need of a client: ``call(method, params)`` (``Client.call``)."""

    def call(self, method: str, params: Mapping[str, Any] | None = None,
             *args: Any, **kwargs: Any) -> Any: ...


class _Metric:
    op = ""

    def __init__(self, client: Caller, name: str, help: str = "", *,
                 labelnames: Sequence[str] = (), labels: Mapping[str, str] | None = None,
                 unit: str | None = None, _values: Mapping[str, str] | None = None,
                 _extra: Mapping[str, Any] | None = None) -> None:
        self.client = client
        self.name = name
        self.help = help
        self.unit = unit
        self.labelnames = tuple(labelnames)
        self.const_labels = dict(labels or {})
        self._values = _values
        self._extra = dict(_extra or {})
        self._children: dict[tuple[str, ...], Any] = {}

    def labels(self, *values: str, **kv: str) -> Any:
        """The child of these label values (positional in ``labelnames`` order, or by
        name); ``ValueError`` when they do not match ``labelnames``."""
        if not self.labelnames:
            raise ValueError(f"{self.name}: no labelnames declared")
        if values and kv:
            raise ValueError("labels: positional or keyword values, not both")
        if kv:
            if set(kv) != set(self.labelnames):
                raise ValueError(f"{self.name}: labels must be {list(self.labelnames)}")
            values = tuple(kv[n] for n in self.labelnames)
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: labels must be {list(self.labelnames)}")
        key = tuple(str(v) for v in values)
        child = self._children.get(key)
        if child is None:
            child = type(self)(self.client, self.name, self.help, labels=self.const_labels,
                               unit=self.unit, _values=dict(zip(self.labelnames, key,
                                                                strict=True)),
                               _extra=self._extra)
            self._children[key] = child
        return child

    def _send(self, op: str, value: float) -> Any:
        if self.labelnames and self._values is None:
            raise ValueError(f"{self.name}: has labelnames; update a child "
                             "(.labels(...)) instead")
        params: dict[str, Any] = {"name": self.name, "value": value}
        labels = {**self.const_labels, **(self._values or {})}
        if labels:
            params["labels"] = labels
        if self.help:
            params["help"] = self.help
        if self.unit:
            params["unit"] = self.unit
        params.update(self._extra)
        return self.client.call(f"metrics.{op}", params)


class Counter(_Metric):
    """A counter (the name ends in ``_total``): ``inc(amount=1)`` with amount >= 0."""

    def inc(self, amount: float = 1.0) -> float:
        """Add ``amount``; returns the new total."""
        value: float = self._send("inc", amount)["value"]
        return value


class Gauge(_Metric):
    """A gauge: ``set``, ``inc``, ``dec``, ``set_to_current_time``."""

    def set(self, value: float) -> float:
        """Set the value; returns it."""
        out: float = self._send("set", value)["value"]
        return out

    def inc(self, amount: float = 1.0) -> float:
        """Add ``amount``; returns the new value."""
        out: float = self._send("add", amount)["value"]
        return out

    def dec(self, amount: float = 1.0) -> float:
        """Subtract ``amount``; returns the new value."""
        return self.inc(-amount)

    def set_to_current_time(self) -> float:
        """Set the value to the current time (epoch s)."""
        return self.set(time.time())


class Histogram(_Metric):
    """A histogram: ``observe(value)`` and ``time()`` (seconds, a context manager and
    a decorator). ``buckets``: upper bounds, increasing (+Inf implied); None = the
    daemon's default (prometheus_client's)."""

    def __init__(self, client: Caller, name: str, help: str = "", *,
                 labelnames: Sequence[str] = (), labels: Mapping[str, str] | None = None,
                 unit: str | None = None, buckets: Sequence[float] | None = None,
                 _values: Mapping[str, str] | None = None,
                 _extra: Mapping[str, Any] | None = None) -> None:
        extra = dict(_extra or {})
        if buckets is not None:
            extra["buckets"] = [float(b) for b in buckets]
        super().__init__(client, name, help, labelnames=labelnames, labels=labels,
                         unit=unit, _values=_values, _extra=extra)

    def observe(self, value: float) -> tuple[int, float]:
        """Record ``value``; returns the series' (count, sum)."""
        out = self._send("observe", value)
        return int(out["count"]), float(out["sum"])

    def time(self) -> Timer:
        """Time a block (``with h.time():``) or a function (``@h.time()``) and observe
        the seconds it took (also when it raises)."""
        return Timer(self.observe)


class Timer(contextlib.ContextDecorator):
    """Measures wall-clock seconds (``time.perf_counter``) and hands them to
    ``observe``; usable as ``with`` and as a decorator (each call times itself)."""

    def __init__(self, observe: Callable[[float], Any]) -> None:
        self._observe = observe
        self._starts: list[float] = []

    def _recreate_cm(self) -> Timer:
        return Timer(self._observe)

    def __enter__(self) -> Timer:
        self._starts.append(time.perf_counter())
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._observe(max(time.perf_counter() - self._starts.pop(), 0.0))
