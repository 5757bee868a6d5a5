"""The ``watch`` config section (``WatchConfig``): limits of the file-change
subscriptions. Owned by ``xsys.watch``; ground level (imports only the standard library),
so ``xsys.config`` assembles it into the root tree without cycles.
"""

from __future__ import annotations

from dataclasses import dataclass

from xsys.bounds import at_least


@dataclass(frozen=True)
class WatchConfig:
    """The watch namespace: file-change subscriptions (watchdog observer)."""

    max_subscriptions: int = 256
    """Live ``watch.add`` subscriptions in the whole daemon; above it -32005 (overloaded)."""
    max_batch_events: int = 1000
    """Most events in one ``watch.event`` notification; bigger bursts span several."""
    max_paths: int = 64
    """Most paths one ``watch.add`` may name."""
    max_pending_events: int = 65_536
    """Events buffered between the observer thread and the event loop (and per
    subscription while debouncing); past it events are dropped and the subscribers get
    ``watch.overflow`` with the count."""
    max_debounce_ms: int = 60_000
    """Largest ``debounce_ms`` a subscription may ask for."""

    def validate(self) -> None:
        """Raise ``ValueError`` when a limit is not positive."""
        at_least(self, ("max_subscriptions", "max_batch_events", "max_paths",
                        "max_pending_events", "max_debounce_ms"), 0, strictly=True)
