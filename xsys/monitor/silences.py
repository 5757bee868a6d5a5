"""Silences, like Alertmanager's: a matcher on the check and/or component (shell-style glob
patterns, ``filesystem:/var*``), a time window and a comment. While a silence is active the
alerts it matches change state as usual but are not sent; silences expire by themselves."""

from __future__ import annotations

import fnmatch
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict

_ids = itertools.count(1)


class SilenceRecord(TypedDict):
    """A silence on the wire: ``id``, ``check``/``component`` glob patterns (None: any),
    ``starts_at``/``ends_at`` (epoch s), ``comment``, ``created_by`` (``uid:1000``, or
    empty)."""

    id: str
    check: str | None
    component: str | None
    starts_at: float
    ends_at: float
    comment: str
    created_by: str


@dataclass(frozen=True)
class Silence:
    """``id``; ``check``/``component``: glob patterns (None = any; at least one is set);
    ``starts_at``/``ends_at`` (epoch s); ``comment``; ``created_by`` (e.g. ``uid:1000``)."""

    id: str
    check: str | None
    component: str | None
    starts_at: float
    ends_at: float
    comment: str = ""
    created_by: str = ""

    def matches(self, check: str, component: str) -> bool:
        """True when both given patterns match (case-sensitive globs)."""
        if self.check is not None and not fnmatch.fnmatchcase(check, self.check):
            return False
        return self.component is None or fnmatch.fnmatchcase(component, self.component)

    def active(self, now: float) -> bool:
        """True within ``[starts_at, ends_at)``."""
        return self.starts_at <= now < self.ends_at

    def to_wire(self) -> SilenceRecord:
        """``{id, check, component, starts_at, ends_at, comment, created_by}``."""
        return {"id": self.id, "check": self.check, "component": self.component,
                "starts_at": self.starts_at, "ends_at": self.ends_at,
                "comment": self.comment, "created_by": self.created_by}


class Silences:
    """The set of silences; ``clock`` gives epoch seconds (injectable for tests). At most
    ``limit`` live silences are kept (``add`` raises ``OverflowError`` beyond)."""

    def __init__(self, clock: Callable[[], float], limit: int = 1000) -> None:
        self._clock = clock
        self._items: dict[str, Silence] = {}
        self.limit = limit

    def add(self, check: str | None, component: str | None, duration_s: float,
            comment: str = "", created_by: str = "") -> Silence:
        """Create a silence from now for ``duration_s`` seconds; raises ``ValueError`` when
        neither pattern is given or the duration is not positive."""
        if not check and not component:
            raise ValueError("a silence needs a check or a component pattern")
        if duration_s <= 0:
            raise ValueError("the duration must be positive")
        self.expire()
        if len(self._items) >= self.limit:
            raise OverflowError(f"{self.limit} silences already active")
        now = self._clock()
        silence = Silence(f"silence-{next(_ids)}", check or None, component or None, now,
                          now + duration_s, comment, created_by)
        self._items[silence.id] = silence
        return silence

    def remove(self, silence_id: str) -> Silence | None:
        """Remove and return the silence ``silence_id`` (None when unknown)."""
        return self._items.pop(silence_id, None)

    def remove_matching(self, check: str | None, component: str | None) -> list[Silence]:
        """Remove the silences whose patterns equal the given ones (None matches any)."""
        gone = [s for s in self._items.values()
                if (check is None or s.check == check)
                and (component is None or s.component == component)]
        for s in gone:
            del self._items[s.id]
        return gone

    def expire(self) -> None:
        """Drop silences past their end."""
        now = self._clock()
        for sid in [sid for sid, s in self._items.items() if s.ends_at <= now]:
            del self._items[sid]

    def match(self, check: str, component: str, now: float | None = None) -> Silence | None:
        """The first active silence matching ``check``/``component``, if any."""
        at = self._clock() if now is None else now
        for s in self._items.values():
            if s.active(at) and s.matches(check, component):
                return s
        return None

    def list(self) -> list[Silence]:
        """Live silences, oldest first."""
        self.expire()
        return sorted(self._items.values(), key=lambda s: s.starts_at)
