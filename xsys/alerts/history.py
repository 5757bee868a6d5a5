"""The delivery record: the bounded ring of recent alerts, each with the silence that held
it back and its delivery result per provider. The dispatcher writes the deliveries; the
monitor adds the entries and serves them as ``monitor.history``."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, TypedDict

from xsys.alerts.model import Alert, AlertRecord

DeliveryStatus = Literal["pending", "sent", "failed", "dropped"]


class DeliveryRecord(TypedDict):
    """One provider's delivery on the wire: ``provider``, ``status``
    (pending|sent|failed|dropped), ``attempts``, the last ``error`` and ``status_code``,
    ``updated_at`` (epoch s)."""

    provider: str
    status: DeliveryStatus
    attempts: int
    error: str | None
    status_code: int | None
    updated_at: float


class HistoryRecord(AlertRecord):
    """One ``monitor.history`` row: the alert (``AlertRecord``), its ``deliveries`` and
    ``silenced_by`` (the id of the silence that held it back, or None)."""

    deliveries: list[DeliveryRecord]
    silenced_by: str | None


@dataclass
class Delivery:
    """One provider's delivery of one alert: ``status`` pending|sent|failed|dropped,
    ``attempts``, the last ``error`` (text) and HTTP ``status_code`` if any, ``updated_at``
    (epoch s)."""

    provider: str
    status: DeliveryStatus = "pending"
    attempts: int = 0
    error: str | None = None
    status_code: int | None = None
    updated_at: float = 0.0

    def to_wire(self) -> DeliveryRecord:
        """``{provider, status, attempts, error, status_code, updated_at}``."""
        return {"provider": self.provider, "status": self.status, "attempts": self.attempts,
                "error": self.error, "status_code": self.status_code,
                "updated_at": self.updated_at}


@dataclass
class HistoryEntry:
    """An alert, the silence that held it back (if any) and its deliveries by provider."""

    alert: Alert
    silenced_by: str | None = None
    deliveries: dict[str, Delivery] = field(default_factory=dict)

    def delivery(self, provider: str) -> Delivery:
        """The delivery record of ``provider`` (created pending)."""
        d = self.deliveries.get(provider)
        if d is None:
            d = self.deliveries[provider] = Delivery(provider)
        return d

    def to_wire(self) -> HistoryRecord:
        """One ``monitor.history`` row: the alert's fields (``Alert.to_wire``) plus
        ``deliveries`` (``[Delivery.to_wire()]``) and ``silenced_by``."""
        return {**self.alert.to_wire(),
                "deliveries": [d.to_wire() for d in self.deliveries.values()],
                "silenced_by": self.silenced_by}


class History:
    """The last ``size`` alerts (oldest evicted first)."""

    def __init__(self, size: int = 500) -> None:
        self._ring: collections.deque[HistoryEntry] = collections.deque(maxlen=size)

    def resize(self, size: int) -> None:
        """Change the capacity, keeping the newest entries."""
        if size != self._ring.maxlen:
            self._ring = collections.deque(self._ring, maxlen=size)

    def add(self, alert: Alert, silenced_by: str | None = None) -> HistoryEntry:
        """Record ``alert`` and return its entry."""
        entry = HistoryEntry(alert, silenced_by)
        self._ring.append(entry)
        return entry

    def __len__(self) -> int:
        return len(self._ring)

    def __iter__(self) -> Iterator[HistoryEntry]:
        return iter(self._ring)

    def recent(self, limit: int = 50, check: str | None = None,
               component: str | None = None) -> list[HistoryEntry]:
        """Newest first, at most ``limit``, optionally only one check/component."""
        out: list[HistoryEntry] = []
        for entry in reversed(self._ring):
            if check is not None and entry.alert.check != check:
                continue
            if component is not None and entry.alert.component != component:
                continue
            out.append(entry)
            if len(out) >= limit:
                break
        return out
