"""The watch namespace against a real daemon process: bursts, debounce, the end of a
subscription (deleted directory, client gone). Generous polling, no timing assertions."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fswatch_support import shared_daemon, wait_sync, workdir

__all__ = ["shared_daemon", "workdir"]  # fixtures used by this module
from xsys.client import Subscription


def collect(sub: Subscription, until: Callable[[list[dict[str, Any]]], bool],
            timeout: float = 60.0) -> list[dict[str, Any]]:
    """Notifications of ``sub`` until ``until(all so far)`` or ``timeout`` s."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(got):
        n = sub.next(0.5)
        if n is not None:
            got.append(n)
    return got


def created(notes: list[dict[str, Any]]) -> set[str]:
    return {e["path"] for n in notes if n["method"] == "watch.event" for e in n["events"]
            if e["type"] == "created"}


def overflowed(notes: list[dict[str, Any]]) -> bool:
    return any(n["method"] == "watch.overflow" for n in notes)


def test_burst_of_2000_creations_all_delivered_or_overflow(shared_daemon: Any,
                                                           workdir: Path) -> None:
    d = shared_daemon
    root = workdir / "burst"
    root.mkdir()
    expected: set[str] = set()
    with d.client() as c:
        sub = c.subscribe("watch.add", paths=[str(root)], recursive=True)
        # 20 subdirectories, each filled right after it is made (faster than its watch)
        for i in range(20):
            sub_dir = root / f"d{i:02}"
            sub_dir.mkdir()
            for j in range(100):
                p = sub_dir / f"f{j:03}"
                os.close(os.open(p, os.O_CREAT | os.O_WRONLY))
                expected.add(str(p))
        notes = collect(sub, lambda got: expected <= created(got) or overflowed(got))
        missing = expected - created(notes)
        assert not missing or overflowed(notes), f"{len(missing)} events lost silently"
        if overflowed(notes):
            notice = next(n for n in notes if n["method"] == "watch.overflow")
            assert notice["dropped"] >= 1


def test_debounce_coalesces_over_the_socket(shared_daemon: Any, workdir: Path) -> None:
    d = shared_daemon
    root = workdir / "deb"
    root.mkdir()
    files = [root / "a.txt", root / "b.txt"]
    with d.client() as c:
        raw = c.subscribe("watch.add", paths=[str(root)])
        slow = c.subscribe("watch.add", paths=[str(root)], debounce_ms=1000)
        for i in range(60):  # interleaved, so no two consecutive events are identical
            with open(files[i % 2], "a") as f:
                f.write(f"{i}\n")
        raw_notes = collect(raw, lambda got: sum(len(n["events"]) for n in got) >= 40,
                            timeout=30)
        slow_notes = collect(slow, lambda got: bool(got), timeout=30)
        slow_notes += collect(slow, lambda got: False, timeout=1.0)  # anything later
    raw_events = [e for n in raw_notes for e in n["events"]]
    slow_events = [e for n in slow_notes for e in n.get("events", [])]
    assert len(raw_events) >= 40
    assert 2 <= len(slow_events) < 10
    assert [e["type"] for e in slow_events[:2]] == ["created", "created"]
    assert {e["path"] for e in slow_events} == {str(f) for f in files}


def test_deleted_directory_ends_with_final_event(shared_daemon: Any, workdir: Path) -> None:
    d = shared_daemon
    root = workdir / "doomed"
    (root / "inner").mkdir(parents=True)
    (root / "inner" / "f").write_text("x")
    with d.client() as c, d.client() as observer:
        sub = c.subscribe("watch.add", paths=[str(root)], recursive=True)
        shutil.rmtree(root)
        notes = collect(sub, lambda got: any(n.get("final") for n in got), timeout=30)
        final = notes[-1]
        assert final.get("final") is True
        assert final["events"][-1]["type"] == "deleted"
        assert final["events"][-1]["path"] == str(root)
        assert wait_sync(lambda: observer.call("watch.list")["subscriptions"] == [])


def test_subscriptions_vanish_when_the_client_disconnects(shared_daemon: Any,
                                                          workdir: Path) -> None:
    d = shared_daemon
    root = workdir / "w"
    root.mkdir()
    with d.client() as other:
        c = d.client()
        subs = [c.subscribe("watch.add", paths=[str(root)], recursive=r).id
                for r in (False, True)]
        listing = other.call("watch.list")
        assert {s["subscription"] for s in listing["subscriptions"]} == set(subs)
        assert not any(s["own"] for s in listing["subscriptions"])
        assert len(listing["watches"]) == 1
        c.close()
        assert wait_sync(lambda: other.call("watch.list") == {"subscriptions": [],
                                                              "watches": []})
        # a fresh subscription on the same path works after the shared watch went away
        sub = other.subscribe("watch.add", paths=[str(root)])
        (root / "again").write_text("x")
        notes = collect(sub, lambda got: str(root / "again") in created(got), timeout=30)
        assert str(root / "again") in created(notes)
        sub.close()
        assert wait_sync(lambda: other.call("watch.list")["subscriptions"] == [])


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Python 3.10 runs watchdog 6 with the "
                    "plain observer, which does not report kernel overflows (docs/files.md)")
def test_real_kernel_queue_overflow_is_reported(daemon_factory: Callable[..., Any],
                                                tmp_path: Path) -> None:
    """Stop the daemon (SIGSTOP) while more files appear than the kernel's inotify queue
    holds: the queue must overflow, and the subscriber must hear of it."""
    try:
        limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    except (OSError, ValueError):
        pytest.skip("no inotify here")
    if limit > 100_000:
        pytest.skip(f"max_queued_events={limit}: too many files for a unit test")
    d = daemon_factory()
    root = tmp_path / "flood"
    root.mkdir()
    with d.client() as c:
        sub = c.subscribe("watch.add", paths=[str(root)])
        d.signal(signal.SIGSTOP)
        try:
            for i in range(limit + 500):
                os.close(os.open(root / f"f{i:06}", os.O_CREAT | os.O_WRONLY))
        finally:
            d.signal(signal.SIGCONT)
        notes = collect(sub, overflowed, timeout=60)
        notice = next(n for n in notes if n["method"] == "watch.overflow")
        assert notice["reason"] == "kernel_queue" and notice["dropped"] >= 1
        assert notice["exact"] is False
        # the watch was rebuilt: later changes arrive again
        (root / "after").write_text("x")
        later = collect(sub, lambda got: str(root / "after") in created(got), timeout=60)
        assert str(root / "after") in created(later)
