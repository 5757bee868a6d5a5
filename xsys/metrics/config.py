"""The ``metrics`` config section (``MetricsConfig``): limits of the app metrics that
local programs push over the socket (``metrics.*``). Owned by ``xsys.metrics``; ground
level (imports only the standard library), so ``xsys.config`` assembles it into the root
tree without cycles.
"""

from __future__ import annotations

from dataclasses import dataclass

from xsys.bounds import at_least


@dataclass(frozen=True)
class MetricsConfig:
    """App metrics (IPC namespace ``metrics``, exposed on ``/metrics``)."""

    max_series: int = 50_000
    """Series (one label-value combination of one metric) held in total, over every app
    metric; an update that would create one more is refused with -32004."""
    ttl_s: float = 0.0
    """Seconds after its last update at which a series expires (its app stopped
    updating it); a metric whose last series expired is forgotten (its name is free
    again). 0 = series never expire."""
    max_labels: int = 32
    """Most labels one metric may have."""
    max_label_value_chars: int = 1024
    """Longest label value (characters)."""
    max_help_chars: int = 1024
    """Longest ``help`` text (characters)."""
    max_buckets: int = 64
    """Most bucket bounds a histogram may declare."""
    max_batch_samples: int = 10_000
    """Most samples in one ``metrics.push``."""

    def validate(self) -> None:
        """Raise ``ValueError`` when a limit is not positive or ``ttl_s`` is negative."""
        at_least(self, ("max_series", "max_labels", "max_label_value_chars", "max_help_chars",
                        "max_buckets", "max_batch_samples"), 0, strictly=True)
        at_least(self, ("ttl_s",), 0)
