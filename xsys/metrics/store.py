"""The app metrics store: counters, gauges and histograms that local programs update over
the socket (``metrics.*``), validated against Prometheus' rules and bounded.

One ``MetricsService`` holds every app metric (a *family*: one name, one type, one label-name
set) and its *series* (one per label-value combination). Updates run on the event loop
(cheap: a family and a series are found by dict lookups; names and labels are validated
once, when first seen, with compiled regexes); ``snapshot`` runs in the scrape's worker
thread; a lock keeps the two apart (held per update batch and per family copied).

Errors (``xsys.protocol``):

- -32602 ``InvalidParams``: a name or label name that breaks Prometheus' rules (metric
  ``[a-zA-Z_:][a-zA-Z0-9_:]*``, label ``[a-zA-Z_][a-zA-Z0-9_]*`` not starting with
  ``__``; ``le`` is reserved on histograms), a counter whose name does not end in
  ``_total``, a unit the name does not end with, a value that is not a finite number
  (NaN and infinities refused), a negative counter increment, bad buckets, too many
  labels or too long a label value or help text;
- -32007 ``Conflict``: a name already registered with another type, label-name set, unit
  or buckets, or a name that collides with xsys's own metrics (the ``xsys_``, ``node_``,
  ``process_`` and ``python_`` prefixes, any name the daemon's registry declares) or with
  the exposed names of another app metric (``x_count`` beside a histogram ``x``...);
- -32004 ``TooLarge``: the update would create a series past ``max_series``.

A rejected update (one call, or a whole ``metrics.push`` batch) changes nothing.
"""

from __future__ import annotations

import bisect
import math
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, Literal

if sys.version_info >= (3, 11):
    from typing import NotRequired, TypedDict
else:  # typing.TypedDict of 3.10 does not know NotRequired
    from typing_extensions import NotRequired, TypedDict

from xsys.metrics.config import MetricsConfig
from xsys.protocol import Conflict, InvalidParams, TooLarge

MetricType = Literal["counter", "gauge", "histogram"]
Op = Literal["inc", "set", "add", "observe"]

#: The metric type each operation updates.
OP_TYPES: dict[str, MetricType] = {"inc": "counter", "set": "gauge", "add": "gauge",
                                   "observe": "histogram"}
METRIC_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
UNIT_RE = re.compile(r"[a-zA-Z0-9_]+")
#: Name prefixes that belong to the daemon's own metrics.
RESERVED_PREFIXES = ("xsys_", "node_", "process_", "python_")
#: prometheus_client's default histogram buckets (upper bounds, seconds); +Inf implied.
DEFAULT_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5,
                                      0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
_INF = math.inf


class MetricInfo(TypedDict):
    """One app metric in ``metrics.list``: its ``name`` (as exposed), ``type``, ``help``,
    ``unit`` ("" when none), label names (``labels``), how many ``series`` it holds, the
    histogram's bucket upper bounds (``buckets``, without +Inf) and when it was last
    updated (``updated_at``, epoch s)."""

    name: str
    type: MetricType
    help: str
    unit: str
    labels: list[str]
    series: int
    buckets: NotRequired[list[float]]
    updated_at: float


@dataclass
class Family:
    """One app metric: ``name``, ``type``, ``help``, ``unit``, ``labelnames`` (the order
    series keys use), histogram ``bounds`` (with +Inf last), its ``series`` (label values
    -> value; for a histogram ``[count per bucket..., sum]``) and ``touched`` (label
    values -> monotonic time of the last update)."""

    name: str
    type: MetricType
    help: str
    unit: str
    labelnames: tuple[str, ...]
    bounds: tuple[float, ...] = ()
    series: dict[tuple[str, ...], Any] = field(default_factory=dict)
    touched: dict[tuple[str, ...], float] = field(default_factory=dict)
    exposed: frozenset[str] = frozenset()
    updated_at: float = 0.0
    #: label values -> their rendered text (``a="x",b="y",``), filled by the exposition
    rendered: dict[tuple[str, ...], str] = field(default_factory=dict)


@dataclass(frozen=True)
class FamilySnapshot:
    """A family copied for one scrape: ``series`` is a list of (label values, value) or,
    for a histogram, (label values, cumulative bucket counts, sum)."""

    name: str
    type: MetricType
    help: str
    unit: str
    labelnames: tuple[str, ...]
    bounds: tuple[float, ...]
    series: list[tuple[Any, ...]]
    rendered: dict[tuple[str, ...], str]


def exposed_names(kind: MetricType, name: str) -> frozenset[str]:
    """The sample names a metric named ``name`` of type ``kind`` puts on ``/metrics``
    (and that no other metric may use)."""
    if kind == "counter":
        base = name[:-len("_total")]
        return frozenset({base, name, base + "_created"})
    if kind == "histogram":
        return frozenset({name, name + "_bucket", name + "_sum", name + "_count",
                          name + "_created"})
    return frozenset({name})


def _bad(index: int | None, message: str, **data: Any) -> InvalidParams:
    if index is not None:
        return InvalidParams(f"samples[{index}]: {message}", {"index": index, **data})
    return InvalidParams(message, data or None)


def _conflict(index: int | None, message: str, **data: Any) -> Conflict:
    if index is not None:
        return Conflict(f"samples[{index}]: {message}", {"index": index, **data})
    return Conflict(message, data or None)


def _number(value: Any, index: int | None) -> float:
    """``value`` as a finite float; -32602 otherwise."""
    tp = type(value)
    if tp is not float and tp is not int:
        raise _bad(index, f"value: expected a number, got {tp.__name__}", param="value")
    try:
        v = float(value)
    except OverflowError:  # an int beyond a double (JSON through the REST mirror)
        raise _bad(index, "value: out of the range of a double", param="value") from None
    if v - v != 0.0:  # NaN or an infinity
        raise _bad(index, f"value: must be finite, got {v!r}", param="value", got=str(v))
    return v


class _Retry(Exception):
    """Series expired while an update was validated: validate it again."""


class MetricsService:
    """Every app metric of one daemon (see the module doc for the rules and errors).

    ``reserved`` returns names the daemon's registry already exposes (checked when a new
    metric is declared, besides ``RESERVED_PREFIXES``). ``clock`` is monotonic seconds.
    """

    def __init__(self, config: MetricsConfig,
                 reserved: Callable[[], Iterable[str]] = tuple,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.reserved = reserved
        self.clock = clock
        self.families: dict[str, Family] = {}
        #: exposed sample name -> the family that owns it
        self.owners: dict[str, str] = {}
        self.series_count = 0
        self.lock = threading.Lock()
        #: monotonic time before which no series can expire (the oldest update + ttl_s)
        self._next_expiry = -math.inf

    def reconfigure(self, config: MetricsConfig) -> None:
        """Take a reloaded config: new limits apply to the next update; series above a
        lowered ``max_series`` stay until they expire."""
        with self.lock:
            self.config = config
            self._next_expiry = -math.inf

    # ------------------------------------------------------------------ validation

    def _check_name(self, kind: MetricType, name: Any, unit: str,
                    index: int | None) -> None:
        if type(name) is not str or METRIC_NAME_RE.fullmatch(name) is None:
            raise _bad(index, f"name {name!r}: not a Prometheus metric name "
                       "([a-zA-Z_:][a-zA-Z0-9_:]*)", param="name")
        if kind == "counter" and (not name.endswith("_total") or name == "_total"):
            raise _bad(index, f"name {name!r}: a counter's name must end in _total",
                       param="name")
        if kind != "counter" and name.endswith("_total"):
            raise _bad(index, f"name {name!r}: only a counter's name may end in _total",
                       param="name")
        if unit:
            if UNIT_RE.fullmatch(unit) is None:
                raise _bad(index, f"unit {unit!r}: letters, digits and _ only",
                           param="unit")
            base = name[:-len("_total")] if kind == "counter" else name
            if not base.endswith("_" + unit):
                raise _bad(index, f"name {name!r}: must end in _{unit} (its unit)"
                           + (" before _total" if kind == "counter" else ""), param="unit")
        if name.startswith(RESERVED_PREFIXES):
            raise _conflict(index, f"name {name!r}: the prefixes "
                            f"{', '.join(RESERVED_PREFIXES)} belong to xsys's own metrics",
                            name=name, reason="reserved")

    def _check_labels(self, kind: MetricType, labels: Mapping[str, Any],
                      index: int | None) -> tuple[str, ...]:
        if len(labels) > self.config.max_labels:
            raise _bad(index, f"labels: at most {self.config.max_labels}", param="labels")
        for key in labels:
            if type(key) is not str or LABEL_NAME_RE.fullmatch(key) is None:
                raise _bad(index, f"label name {key!r}: not a Prometheus label name "
                           "([a-zA-Z_][a-zA-Z0-9_]*)", param="labels")
            if key.startswith("__"):
                raise _bad(index, f"label name {key!r}: names starting with __ are "
                           "reserved", param="labels")
            if kind == "histogram" and key == "le":
                raise _bad(index, "label name 'le': reserved for histogram buckets",
                           param="labels")
        return tuple(sorted(labels))

    def _check_values(self, labelvalues: tuple[Any, ...], index: int | None) -> None:
        limit = self.config.max_label_value_chars
        for v in labelvalues:
            if type(v) is not str:
                raise _bad(index, f"label value {v!r}: must be a string", param="labels")
            if len(v) > limit:
                raise _bad(index, f"label value: at most {limit} characters",
                           param="labels")

    def _bounds(self, buckets: Sequence[Any] | None, index: int | None) -> tuple[float, ...]:
        if buckets is None:
            return (*DEFAULT_BUCKETS, _INF)
        if type(buckets) not in (list, tuple):
            raise _bad(index, "buckets: expected a list of numbers", param="buckets")
        out: list[float] = []
        for b in buckets:
            if type(b) is not float and type(b) is not int:
                raise _bad(index, f"buckets: {b!r} is not a number", param="buckets")
            try:
                out.append(float(b))
            except OverflowError:
                raise _bad(index, "buckets: out of the range of a double",
                           param="buckets") from None
        if out and out[-1] == _INF:  # +Inf is implied; accepted when given last
            out.pop()
        if not out:
            raise _bad(index, "buckets: at least one finite upper bound", param="buckets")
        if len(out) > self.config.max_buckets:
            raise _bad(index, f"buckets: at most {self.config.max_buckets}",
                       param="buckets")
        for prev, cur in zip([-_INF, *out], out, strict=False):
            if cur - cur != 0.0:
                raise _bad(index, "buckets: bounds must be finite (+Inf is implied)",
                           param="buckets")
            if not cur > prev:
                raise _bad(index, "buckets: bounds must increase strictly",
                           param="buckets")
        return (*out, _INF)

    def _declare(self, kind: MetricType, name: Any, labels: Mapping[str, Any],
                 help_text: str | None, unit: str | None, buckets: Sequence[Any] | None,
                 index: int | None, pending: Mapping[str, Family]) -> Family:
        """A new ``Family`` for a name not registered yet (not stored: the caller stores
        it once the whole update is valid)."""
        unit = unit or ""
        if type(unit) is not str:
            raise _bad(index, "unit: expected a string", param="unit")
        self._check_name(kind, name, unit, index)
        help_text = help_text or ""
        if type(help_text) is not str:
            raise _bad(index, "help: expected a string", param="help")
        if len(help_text) > self.config.max_help_chars:
            raise _bad(index, f"help: at most {self.config.max_help_chars} characters",
                       param="help")
        labelnames = self._check_labels(kind, labels, index)
        bounds = self._bounds(buckets, index) if kind == "histogram" else ()
        exposed = exposed_names(kind, name)
        taken = set(self.reserved())
        for other in exposed:
            owner = self.owners.get(other)
            if owner is None:
                owner = next((f.name for f in pending.values() if other in f.exposed), None)
            if owner is not None:
                raise _conflict(index, f"name {name!r}: its sample {other!r} is already "
                                f"exposed by the app metric {owner!r}", name=name,
                                reason="exposed", owner=owner)
            if other in taken:
                raise _conflict(index, f"name {name!r}: {other!r} is one of xsys's own "
                                "metrics", name=name, reason="reserved")
        return Family(name=name, type=kind, help=help_text, unit=unit,
                      labelnames=labelnames, bounds=bounds, exposed=exposed)

    def _check_family(self, fam: Family, kind: MetricType, unit: str | None,
                      buckets: Sequence[Any] | None, index: int | None) -> None:
        if fam.type != kind:
            raise _conflict(index, f"metric {fam.name!r} is a {fam.type}, not a {kind}",
                            name=fam.name, type=fam.type)
        if unit and unit != fam.unit:
            raise _conflict(index, f"metric {fam.name!r} has unit {fam.unit!r}, "
                            f"not {unit!r}", name=fam.name, unit=fam.unit)
        if buckets is not None and kind == "histogram" and \
                self._bounds(buckets, index) != fam.bounds:
            raise _conflict(index, f"metric {fam.name!r} was declared with other buckets",
                            name=fam.name, buckets=list(fam.bounds[:-1]))

    def _key(self, fam: Family, labels: Mapping[str, Any], index: int | None,
             ) -> tuple[str, ...]:
        try:
            if len(labels) != len(fam.labelnames):
                raise KeyError
            return tuple([labels[n] for n in fam.labelnames])
        except (KeyError, TypeError):
            names = sorted(map(str, labels)) if isinstance(labels, dict) else labels
            raise _conflict(index, f"metric {fam.name!r} has the labels "
                            f"{list(fam.labelnames)}, not {names}", name=fam.name,
                            labels=list(fam.labelnames)) from None

    def _present(self, series: Mapping[tuple[str, ...], Any], key: tuple[Any, ...],
                 index: int | None) -> bool:
        try:
            return key in series
        except TypeError:  # an unhashable label value
            self._check_values(key, index)
            raise

    # ------------------------------------------------------------------ updates

    def update(self, op: str, name: str, value: Any, labels: Mapping[str, Any] | None,
               help_text: str | None = None, unit: str | None = None,
               buckets: Sequence[Any] | None = None) -> Any:
        """Apply one ``op`` (inc|set|add|observe) to the series ``labels`` of ``name``,
        declaring the metric on first use; returns the series' new value (counter,
        gauge) or ``(count, sum)`` (histogram). Raises as the module doc says; on error
        nothing changed."""
        with self.lock:
            try:
                return self._update(op, name, value, labels, help_text, unit, buckets, True)
            except _Retry:  # series expired to make room: validate again
                return self._update(op, name, value, labels, help_text, unit, buckets, False)

    def _update(self, op: str, name: str, value: Any, labels: Mapping[str, Any] | None,
                help_text: str | None, unit: str | None, buckets: Sequence[Any] | None,
                retry: bool) -> Any:
        kind = OP_TYPES[op]
        labels = {} if labels is None else labels
        v = _number(value, None)
        if op == "inc" and v < 0:
            raise _bad(None, f"value: a counter only goes up (inc by {v!r})",
                       param="value")
        fam = self.families.get(name)
        new_fam = fam is None
        if fam is None:
            fam = self._declare(kind, name, labels, help_text, unit, buckets, None, {})
        elif fam.type != kind or unit or buckets is not None:
            self._check_family(fam, kind, unit, buckets, None)
        key = self._key(fam, labels, None)
        series = fam.series
        if not self._present(series, key, None):
            self._check_values(key, None)
            if self.series_count >= self.config.max_series:
                if retry and self._expire_locked(self.clock()):
                    raise _Retry
                raise self._full()
            if new_fam:
                self._store(fam)
            series[key] = [0] * len(fam.bounds) + [0.0] if kind == "histogram" else 0.0
            self.series_count += 1
            self._created_at(self.clock())
        elif help_text and help_text != fam.help and type(help_text) is str and \
                len(help_text) <= self.config.max_help_chars:
            fam.help = help_text
        now = self.clock()
        fam.touched[key] = now
        fam.updated_at = now
        if kind == "histogram":
            state = series[key]
            state[bisect.bisect_left(fam.bounds, v)] += 1
            state[-1] += v
            return sum(state[:-1]), state[-1]
        if op == "set":
            series[key] = v
        else:
            series[key] += v
        return series[key]

    def _full(self, index: int | None = None) -> TooLarge:
        limit = self.config.max_series
        where = f"samples[{index}]: " if index is not None else ""
        data: dict[str, Any] = {"max_series": limit}
        if index is not None:
            data["index"] = index
        return TooLarge(f"{where}too many metric series (metrics.max_series = {limit})",
                        data)

    def _store(self, fam: Family) -> None:
        self.families[fam.name] = fam
        for n in fam.exposed:
            self.owners[n] = fam.name

    def push(self, samples: Sequence[Any]) -> tuple[int, int]:
        """Apply many samples (``{"op", "name", "value", "labels"?, "help"?, "unit"?,
        "buckets"?}`` maps) all or nothing: every sample is validated first, and the
        first bad one rejects the batch (its index in the message and in the error's
        ``data.index``). Returns (samples applied, series created)."""
        if len(samples) > self.config.max_batch_samples:
            raise InvalidParams(f"parameter 'samples': at most "
                                f"{self.config.max_batch_samples}",
                                {"param": "samples", "max": self.config.max_batch_samples})
        with self.lock:
            try:
                return self._push(samples, True)
            except _Retry:  # series expired to make room: validate again
                return self._push(samples, False)

    def _push(self, samples: Sequence[Any], retry: bool) -> tuple[int, int]:
        families = self.families
        pending: dict[str, Family] = {}
        new_keys: dict[str, set[tuple[str, ...]]] = {}
        plan: list[tuple[Family, tuple[str, ...], str, float]] = []
        append = plan.append
        for i, s in enumerate(samples):
            if type(s) is not dict:
                raise _bad(i, "expected a map {op, name, value, labels}")
            op = s.get("op")
            kind = OP_TYPES.get(op) if type(op) is str else None
            if kind is None:
                raise _bad(i, f"op: expected one of inc, set, add, observe, got {op!r}",
                           param="op")
            name = s.get("name")
            labels = s.get("labels")
            if labels is None:
                labels = {}
            elif type(labels) is not dict:
                raise _bad(i, "labels: expected a map of strings", param="labels")
            v = _number(s.get("value"), i)
            if v < 0 and op == "inc":
                raise _bad(i, f"value: a counter only goes up (inc by {v!r})",
                           param="value")
            fam = families.get(name) if type(name) is str else None
            if fam is None:
                fam = pending.get(name) if type(name) is str else None
                if fam is None:
                    fam = self._declare(kind, name, labels, s.get("help"), s.get("unit"),
                                        s.get("buckets"), i, pending)
                    pending[fam.name] = fam
            if fam.type != kind or "unit" in s or "buckets" in s:
                self._check_family(fam, kind, s.get("unit"), s.get("buckets"), i)
            key = self._key(fam, labels, i)
            if not self._present(fam.series, key, i):
                seen = new_keys.setdefault(fam.name, set())
                if key not in seen:
                    self._check_values(key, i)
                    seen.add(key)
                    if self.series_count + sum(map(len, new_keys.values())) > \
                            self.config.max_series:
                        if retry and self._expire_locked(self.clock()):
                            raise _Retry
                        raise self._full(i)
            append((fam, key, op, v))  # type: ignore[arg-type]  # op: a valid str
        # valid: apply
        for fam in pending.values():
            self._store(fam)
        created = 0
        for name, keys in new_keys.items():
            fam = families[name]
            zero_hist = fam.type == "histogram"
            for key in keys:
                fam.series[key] = [0] * len(fam.bounds) + [0.0] if zero_hist else 0.0
            created += len(keys)
        self.series_count += created
        if created:
            self._created_at(self.clock())
        now = self.clock()
        for fam, key, op, v in plan:
            fam.touched[key] = now
            fam.updated_at = now
            if op == "inc" or op == "add":
                fam.series[key] += v
            elif op == "set":
                fam.series[key] = v
            else:
                state = fam.series[key]
                state[bisect.bisect_left(fam.bounds, v)] += 1
                state[-1] += v
        for s in samples:  # a later help text replaces the earlier one
            h = s.get("help")
            if h and type(h) is str and len(h) <= self.config.max_help_chars:
                families[s["name"]].help = h
        return len(plan), created

    # ------------------------------------------------------------------ expiry, reads

    def _created_at(self, now: float) -> None:
        """A series was created at ``now``: it may expire at ``now + ttl_s``."""
        due = now + self.config.ttl_s
        if due < self._next_expiry:
            self._next_expiry = due

    def _expire_locked(self, now: float) -> int:
        ttl = self.config.ttl_s
        if ttl <= 0 or now < self._next_expiry:  # nothing can have expired yet
            return 0
        cutoff = now - ttl
        removed = 0
        oldest = math.inf
        for fam in list(self.families.values()):
            touched = fam.touched
            old = [k for k, t in touched.items() if t <= cutoff]
            for k in old:
                del touched[k]
                del fam.series[k]
                fam.rendered.pop(k, None)
            removed += len(old)
            if touched:
                oldest = min(oldest, min(touched.values()))
            else:
                del self.families[fam.name]
                for n in fam.exposed:
                    self.owners.pop(n, None)
        self.series_count -= removed
        # updates only move times later: no series expires before this
        self._next_expiry = oldest + ttl
        return removed

    def expire(self) -> int:
        """Drop the series not updated for ``ttl_s`` (and metrics left without series);
        returns how many series went. Any thread."""
        with self.lock:
            return self._expire_locked(self.clock())

    def snapshot(self) -> list[FamilySnapshot]:
        """Every metric with its series, for one scrape (expired series dropped first).
        Runs in a worker thread; holds the lock one family at a time."""
        self.expire()
        with self.lock:
            fams = list(self.families.values())
        out: list[FamilySnapshot] = []
        for fam in fams:
            with self.lock:
                if fam.type == "histogram":
                    rows: list[tuple[Any, ...]] = [(k, s[:-1], s[-1])
                                                   for k, s in fam.series.items()]
                else:
                    rows = list(fam.series.items())
                help_text = fam.help
            if fam.type == "histogram":
                rows = [(k, list(accumulate(counts)), total) for k, counts, total in rows]
            out.append(FamilySnapshot(name=fam.name, type=fam.type, help=help_text,
                                      unit=fam.unit, labelnames=fam.labelnames,
                                      bounds=fam.bounds, series=rows,
                                      rendered=fam.rendered))
        return out

    def describe(self) -> list[MetricInfo]:
        """``metrics.list``'s rows, sorted by name (expired series dropped first)."""
        now_wall = time.time()
        with self.lock:
            now = self.clock()
            self._expire_locked(now)
            rows: list[MetricInfo] = []
            for fam in sorted(self.families.values(), key=lambda f: f.name):
                row: MetricInfo = {"name": fam.name, "type": fam.type, "help": fam.help,
                                   "unit": fam.unit, "labels": list(fam.labelnames),
                                   "series": len(fam.series),
                                   "updated_at": now_wall - (now - fam.updated_at)}
                if fam.type == "histogram":
                    row["buckets"] = list(fam.bounds[:-1])
                rows.append(row)
            return rows
