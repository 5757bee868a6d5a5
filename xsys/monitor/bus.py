"""The alert bus: fan-out of every sent alert to in-process listeners (the IPC
``monitor.subscribe`` streams, tests). Listeners run on the event loop and must not block;
a failing listener is logged and the others still get the alert."""

from __future__ import annotations

import logging
from collections.abc import Callable

from xsys.alerts.model import Alert

log = logging.getLogger(__name__)

Listener = Callable[[Alert], None]


class AlertBus:
    """``subscribe(listener)`` returns the function that unsubscribes it;
    ``publish(alert)`` calls every listener (loop thread)."""

    def __init__(self) -> None:
        self._listeners: dict[int, Listener] = {}
        self._next = 0

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Add ``listener``; returns its unsubscribe function (idempotent)."""
        key = self._next
        self._next += 1
        self._listeners[key] = listener

        def unsubscribe() -> None:
            self._listeners.pop(key, None)

        return unsubscribe

    def __len__(self) -> int:
        return len(self._listeners)

    def publish(self, alert: Alert) -> None:
        """Hand ``alert`` to every listener."""
        for listener in list(self._listeners.values()):
            try:
                listener(alert)
            except Exception:
                log.exception("alert listener %r failed", listener)
