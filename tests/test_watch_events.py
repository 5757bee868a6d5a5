"""Watch event conversion, filtering (gitignore-style patterns) and debounce coalescing."""

from __future__ import annotations

import pytest
import watchdog.events
from hypothesis import given
from hypothesis import strategies as st
from watchdog.events import (
    DirCreatedEvent,
    DirModifiedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileMovedEvent,
)

from xsys.protocol import InvalidParams
from xsys.watch.events import Coalescer, EventFilter, WatchEvent, from_watchdog, merge

ROOT = "/w"


def ev(kind: str, path: str, dest: str | None = None, is_dir: bool = False,
       ts: float = 1.0) -> WatchEvent:
    return WatchEvent(kind, path, is_dir, ts, dest)


def test_from_watchdog() -> None:
    assert from_watchdog(FileCreatedEvent("/w/a"), 2.0) == ev("created", "/w/a", ts=2.0)
    attrib = getattr(watchdog.events, "FileAttribEvent", None)  # watchdog 7+ (Python 3.11+)
    if attrib is not None:
        assert from_watchdog(attrib("/w/a"), 2.0).type == "modified"  # type: ignore[union-attr]
    assert from_watchdog(DirModifiedEvent("/w"), 2.0) is None
    assert from_watchdog(FileClosedEvent("/w/a"), 2.0) is None
    moved = from_watchdog(FileMovedEvent("/w/a", "/w/b"), 2.0)
    assert moved == ev("moved", "/w/a", "/w/b", ts=2.0)
    assert moved.to_wire() == {"type": "moved", "path": "/w/a", "dest_path": "/w/b",
                               "is_dir": False, "ts": 2.0}
    assert "dest_path" not in ev("created", "/w/a").to_wire()
    assert from_watchdog(DirCreatedEvent("/w/d"), 2.0).is_dir  # type: ignore[union-attr]


def test_patterns_are_gitignore_style() -> None:
    f = EventFilter(patterns=["*.py", "docs/"], ignore_patterns=["build/", "test_*.py",
                                                                  "!test_keep.py"])
    ok = [p for p in ("/w/a.py", "/w/sub/b.py", "/w/docs/x.md", "/w/build/c.py",
                      "/w/test_x.py", "/w/test_keep.py", "/w/a.txt")
          if f.apply(ev("modified", p), ROOT)]
    assert ok == ["/w/a.py", "/w/sub/b.py", "/w/docs/x.md", "/w/test_keep.py"]
    anchored = EventFilter(patterns=["/top.txt"])
    assert anchored.apply(ev("created", "/w/top.txt"), ROOT)
    assert not anchored.apply(ev("created", "/w/sub/top.txt"), ROOT)


def test_dirs_and_event_subsets() -> None:
    d = ev("created", "/w/d", is_dir=True)
    assert EventFilter().apply(d, ROOT) == []
    assert EventFilter(include_dirs=True).apply(d, ROOT) == [d]
    only_created = EventFilter(events=["created"])
    assert only_created.apply(ev("modified", "/w/a"), ROOT) == []
    assert only_created.apply(ev("created", "/w/a"), ROOT) == [ev("created", "/w/a")]
    # a move splits into deleted + created when "moved" is not wanted
    split = EventFilter(events=["created", "deleted"]).apply(ev("moved", "/w/a", "/w/b"), ROOT)
    assert split == [ev("deleted", "/w/a"), ev("created", "/w/b")]
    # a move passes the patterns when either side matches
    f = EventFilter(patterns=["*.txt"])
    assert f.apply(ev("moved", "/w/a.tmp", "/w/a.txt"), ROOT)
    assert not f.apply(ev("moved", "/w/a.tmp", "/w/b.tmp"), ROOT)
    with pytest.raises(InvalidParams):
        EventFilter(events=["opened"])


def test_merge_rules() -> None:
    assert merge(ev("created", "/a"), ev("modified", "/a")).type == "created"
    assert merge(ev("deleted", "/a"), ev("created", "/a")).type == "modified"
    assert merge(ev("modified", "/a"), ev("deleted", "/a")).type == "deleted"
    assert merge(ev("created", "/a"), ev("deleted", "/a")).type == "deleted"
    assert merge(ev("modified", "/a", ts=1), ev("modified", "/a", ts=5)).ts == 5


def test_coalescer_keeps_order_and_moves() -> None:
    c = Coalescer(capacity=100)
    for e in (ev("created", "/a"), ev("modified", "/b"), ev("modified", "/a"),
              ev("moved", "/a", "/c"), ev("created", "/a"), ev("modified", "/b")):
        assert c.add(e)
    out = c.take()
    assert [(e.type, e.path) for e in out] == [("created", "/a"), ("modified", "/b"),
                                               ("moved", "/a"), ("created", "/a")]
    assert len(c) == 0


def test_coalescer_capacity() -> None:
    c = Coalescer(capacity=2)
    assert c.add(ev("created", "/a")) and c.add(ev("created", "/b"))
    assert c.add(ev("modified", "/a"))  # merging needs no room
    assert not c.add(ev("created", "/c"))


kinds = st.sampled_from(["created", "modified", "deleted"])
paths = st.sampled_from(["/a", "/b", "/c"])


@given(st.lists(st.tuples(kinds, paths), max_size=60))
def test_coalescer_one_event_per_path_and_final_state(seq: list[tuple[str, str]]) -> None:
    c = Coalescer(capacity=1000)
    for i, (kind, path) in enumerate(seq):
        c.add(ev(kind, path, ts=float(i)))
    out = c.take()
    assert len({e.path for e in out}) == len(out)  # one event per path
    last = {path: kind for kind, path in seq}
    for e in out:
        # the coalesced event says whether the path exists at the end
        assert (e.type == "deleted") == (last[e.path] == "deleted")
