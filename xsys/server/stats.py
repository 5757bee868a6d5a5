"""The daemon's own request statistics: per (method, code) a count and a latency
histogram, recorded on the loop into plain lists (a few hundred nanoseconds a request:
no locks, no ``prometheus_client`` objects on the hot path). ``xsys.http.requests``
turns them into ``xsys_requests_total{method,code}`` and
``xsys_request_duration_seconds{method}`` at scrape time.

Both the socket (``xsys.server.connection``) and the HTTP REST mirror record here.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable

#: Upper bounds (seconds, inclusive) of the latency histogram's buckets; a last ``+Inf``
#: bucket follows. Finer than prometheus_client's defaults: an IPC round trip is tens of
#: microseconds.
BUCKETS_S: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0,
)

#: The ``method`` label of a request whose method does not exist (a client could send
#: any string: the label set stays bounded by the router's names).
UNKNOWN_METHOD = "unknown"
#: The ``method`` label of a message rejected before its method was read (not a map, a
#: bad id, undecodable bytes).
INVALID_MESSAGE = "invalid"


class RequestStats:
    """Counts and latency histograms of answered requests, keyed by (method, code).

    ``code`` is 0 for a result, else the error code sent. A row is a list of
    ``len(BUCKETS_S) + 2`` numbers: the count per bucket (not cumulative; the last
    bucket is ``+Inf``) then the sum of durations in seconds. Results are kept by method
    (``ok``), errors by (method, code) (``errors``). Written only on the loop's thread;
    ``snapshot`` may be called from any thread (copies under the GIL).
    """

    __slots__ = ("errors", "ok")

    def __init__(self) -> None:
        self.ok: dict[str, list[float]] = {}
        self.errors: dict[tuple[str, int], list[float]] = {}

    def record(self, method: str, code: int, duration_s: float) -> None:
        """Count one request of ``method`` answered with ``code`` after ``duration_s``."""
        if code == 0:
            row = self.ok.get(method)
            if row is None:
                row = self.ok[method] = [0.0] * (len(BUCKETS_S) + 2)
        else:
            key = (method, code)
            row = self.errors.get(key)
            if row is None:
                row = self.errors[key] = [0.0] * (len(BUCKETS_S) + 2)
        row[bisect_left(BUCKETS_S, duration_s)] += 1
        row[-1] += duration_s

    def record_results(self, methods: list[str], duration_s: float) -> None:
        """Count requests answered with a result, one per entry of ``methods``, each
        after ``duration_s`` (a pipelined read: its requests were read, and their answers
        written, together)."""
        if not methods:
            return
        first = methods[0]
        groups: Iterable[tuple[str, int]]
        if methods.count(first) == len(methods):  # the usual pipeline: one method
            groups = ((first, len(methods)),)
        else:
            groups = Counter(methods).items()
        index = bisect_left(BUCKETS_S, duration_s)
        ok = self.ok
        for method, count in groups:
            row = ok.get(method)
            if row is None:
                row = ok[method] = [0.0] * (len(BUCKETS_S) + 2)
            row[index] += count
            row[-1] += duration_s * count

    def snapshot(self) -> dict[tuple[str, int], list[float]]:
        """A copy of every row by (method, code) (safe to read while the loop keeps
        recording)."""
        rows = {(method, 0): list(row) for method, row in self.ok.copy().items()}
        rows.update((key, list(row)) for key, row in self.errors.copy().items())
        return rows

    def count(self, method: str, code: int | None = None) -> int:
        """Requests of ``method`` answered (with ``code`` only, when given)."""
        return int(sum(sum(row[:-1]) for (m, c), row in self.snapshot().items()
                       if m == method and (code is None or c == code)))
