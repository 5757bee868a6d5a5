"""File-change events as subscribers see them, their conversion from watchdog's events,
and the per-subscription filter (event types, directories, gitignore-style patterns)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import watchdog.events
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
)

from xsys.protocol import InvalidParams, wire_str

if TYPE_CHECKING:
    from pathspec import GitIgnoreSpec

CREATED, MODIFIED, DELETED, MOVED = "created", "modified", "deleted", "moved"
#: Event types a subscription can ask for.
EVENT_TYPES: tuple[str, ...] = (CREATED, MODIFIED, DELETED, MOVED)

#: watchdog event classes the observer emits for us. Directory "modified" events (a child
#: changed) are left out: the child's own event says more.
#: Attribute changes are their own classes from watchdog 7 on (Python 3.11+); watchdog 6
#: (the one for Python 3.10) reports them as modifications.
WATCHDOG_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent, DirCreatedEvent, FileModifiedEvent,
    *(getattr(watchdog.events, name) for name in ("FileAttribEvent", "DirAttribEvent")
      if hasattr(watchdog.events, name)),
    FileDeletedEvent, DirDeletedEvent, FileMovedEvent, DirMovedEvent,
]

_TYPES = {"created": CREATED, "modified": MODIFIED, "attrib": MODIFIED, "deleted": DELETED,
          "moved": MOVED}


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change: ``type`` (created | modified | deleted | moved), absolute ``path``,
    ``dest_path`` (moves only), ``is_dir``, ``ts`` (epoch seconds when the daemon saw it)."""

    type: str
    path: str
    is_dir: bool
    ts: float
    dest_path: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """``{type, path, dest_path?, is_dir, ts}``; a path that is not valid UTF-8 goes
        as bin (``xsys.protocol.wire_str``)."""
        out: dict[str, Any] = {"type": self.type, "path": wire_str(self.path),
                               "is_dir": self.is_dir, "ts": self.ts}
        if self.dest_path is not None:
            out["dest_path"] = wire_str(self.dest_path)
        return out


def from_watchdog(event: FileSystemEvent, ts: float) -> WatchEvent | None:
    """The ``WatchEvent`` for a watchdog event, or None for kinds we do not report
    (opened, closed, directory modified)."""
    kind = _TYPES.get(event.event_type)
    if kind is None:
        return None
    if kind == MODIFIED and event.is_directory and event.event_type != "attrib":
        return None
    dest = os.fsdecode(event.dest_path) if kind == MOVED and event.dest_path else None
    if kind == MOVED and dest is None:
        return None
    return WatchEvent(type=kind, path=os.fsdecode(event.src_path), is_dir=event.is_directory,
                      ts=ts, dest_path=dest)


def _compile(param: str, lines: Sequence[str] | None) -> GitIgnoreSpec | None:
    if not lines:
        return None
    try:
        import pathspec  # only subscriptions with patterns pay for it (idle RSS)

        return pathspec.GitIgnoreSpec.from_lines(lines)
    except Exception as exc:  # pathspec raises a few unrelated types on bad patterns
        raise InvalidParams(f"parameter {param!r}: {exc}", {"param": param}) from None


class EventFilter:
    """Which events one subscription wants.

    - ``events``: the subset of ``EVENT_TYPES``; a ``moved`` event is split into
      ``deleted`` (src) and ``created`` (dest) when ``moved`` is not wanted but those are.
    - ``include_dirs``: whether events about directories themselves are reported.
    - ``patterns`` / ``ignore_patterns``: gitignore-style globs matched against the path
      relative to the watched root (``*.py``, ``build/``, ``/top-only``, ``!keep.log``).
      An event passes when it matches ``patterns`` (if any) and not ``ignore_patterns``;
      a move passes when either of its paths does.
    Raises ``InvalidParams`` for an unknown event type or a bad pattern.
    """

    def __init__(self, events: Sequence[str] | None = None,
                 patterns: Sequence[str] | None = None,
                 ignore_patterns: Sequence[str] | None = None,
                 include_dirs: bool = False) -> None:
        wanted = tuple(events) if events else EVENT_TYPES
        bad = [e for e in wanted if e not in EVENT_TYPES]
        if bad:
            raise InvalidParams(f"parameter 'events': unknown event type {bad[0]!r}",
                                {"param": "events", "expected": list(EVENT_TYPES)})
        self.events = frozenset(wanted)
        self.include_dirs = include_dirs
        self.patterns = _compile("patterns", patterns)
        self.ignore = _compile("ignore_patterns", ignore_patterns)

    def path_passes(self, path: str, root: str, is_dir: bool) -> bool:
        """Whether ``path`` (absolute) passes the patterns relative to ``root``."""
        if self.patterns is None and self.ignore is None:
            return True
        rel = os.path.relpath(path, root)
        if rel == "." or rel.startswith(".." + os.sep) or rel == "..":
            return self.patterns is None
        if os.sep != "/":
            rel = rel.replace(os.sep, "/")
        if is_dir:
            rel += "/"
        if self.patterns is not None and not self.patterns.match_file(rel):
            return False
        return not (self.ignore is not None and self.ignore.match_file(rel))

    def apply(self, ev: WatchEvent, root: str) -> list[WatchEvent]:
        """The events to deliver for ``ev`` seen under ``root`` (zero, one, or two for a
        split move)."""
        if ev.is_dir and not self.include_dirs:
            return []
        if ev.type != MOVED:
            if ev.type in self.events and self.path_passes(ev.path, root, ev.is_dir):
                return [ev]
            return []
        assert ev.dest_path is not None
        src_ok = self.path_passes(ev.path, root, ev.is_dir)
        dst_ok = self.path_passes(ev.dest_path, root, ev.is_dir)
        if MOVED in self.events:
            return [ev] if src_ok or dst_ok else []
        out = []
        if DELETED in self.events and src_ok:
            out.append(WatchEvent(DELETED, ev.path, ev.is_dir, ev.ts))
        if CREATED in self.events and dst_ok:
            out.append(WatchEvent(CREATED, ev.dest_path, ev.is_dir, ev.ts))
        return out


def merge(old: WatchEvent, new: WatchEvent) -> WatchEvent:
    """Coalesce two events for one path (debouncing): the newer type wins, except that
    created+modified stays ``created`` and deleted+created becomes ``modified`` (the file
    was replaced). Never called for moves."""
    kind = new.type
    if old.type == CREATED and new.type == MODIFIED:
        kind = CREATED
    elif old.type == DELETED and new.type == CREATED:
        kind = MODIFIED
    return WatchEvent(kind, new.path, new.is_dir, new.ts)


class Coalescer:
    """Pending events of one debouncing subscription: events for the same path merge
    (``merge``) in place, keeping first-seen order; a move is never merged and ends the
    merging of both its paths (later events for them queue after it). Holds at most
    ``capacity`` events (``add`` returns False when full: flush first)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._pending: dict[int, WatchEvent] = {}
        self._index: dict[str, int] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, ev: WatchEvent) -> bool:
        """Queue or merge ``ev``; False (nothing done) when full and ``ev`` is new."""
        if ev.type != MOVED:
            key = self._index.get(ev.path)
            if key is not None:
                self._pending[key] = merge(self._pending[key], ev)
                return True
        if len(self._pending) >= self.capacity:
            return False
        self._seq += 1
        self._pending[self._seq] = ev
        if ev.type == MOVED:
            self._index.pop(ev.path, None)
            if ev.dest_path is not None:
                self._index.pop(ev.dest_path, None)
        else:
            self._index[ev.path] = self._seq
        return True

    def take(self) -> list[WatchEvent]:
        """Every pending event in order; the coalescer is empty afterwards."""
        out = list(self._pending.values())
        self._pending.clear()
        self._index.clear()
        return out
