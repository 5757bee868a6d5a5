"""The shared helpers of the benchmarks (bench/*.py): ``percentile`` and ``report``.

``percentile(values, q)``: the sample nearest to the ``q``-quantile's linear position,
i.e. ``sorted(values)[round(q * (n - 1))]`` (index clamped to ``0..n-1``; Python's
``round``, half to even). No interpolation: the result is always one of the samples, in
their unit. ``q`` is a fraction (0.5 = median, 0.99 = p99). An empty list gives NaN.

(``bench/ts_client.mjs`` is JavaScript and keeps its own, the textbook nearest rank
``sorted[ceil(q * n) - 1]``.)
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T", int, float)


def percentile(values: Iterable[T], q: float) -> T | float:
    """The ``q``-quantile (``q`` in 0..1) of ``values`` by nearest position (see the
    module docstring), in the unit of ``values``; NaN when ``values`` is empty. Sorts a
    copy (already sorted input costs only the copy)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def report(rows: Sequence[tuple[str, str, str]], results: Mapping[str, Any],
           json_out: str | Path, title: str = "") -> None:
    """Print ``rows`` (name, value, note) as an aligned table under ``title`` (a blank
    line when empty), then write ``results`` as JSON to ``json_out`` (its folder made)."""
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    print(f"{title}\n" if title else "")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>{vwidth}}  {note}")
    out = Path(json_out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {out}")
