"""Contract with watchdog's internals that ``xsys.watch.observer`` subclasses (the inotify
watch group and emitter, to report kernel queue overflows and failed sub-watches).

pyproject.toml pins the watchdog range these were checked against; when a new watchdog
changes any of them, this fails loudly instead of the daemon silently losing its gap
reports (``xsys.watch.observer`` would fall back to the plain observer)."""

from __future__ import annotations

import inspect
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the hooks are for watchdog's inotify backend")


def test_the_pinned_range_is_the_installed_one() -> None:
    from importlib.metadata import version

    major, minor = (int(x) for x in version("watchdog").split(".")[:2])
    assert (major, minor) >= (7, 1) and major < 8, version("watchdog")


def test_watch_group_internals() -> None:
    from watchdog.observers.inotify import InotifyWatchGroup

    assert callable(InotifyWatchGroup.on_queue_overflow)
    assert list(inspect.signature(InotifyWatchGroup._add_callback).parameters) == [
        "self", "path"]
    init = inspect.signature(InotifyWatchGroup.__init__).parameters
    for name in ("path", "is_recursive", "event_mask", "follow_symlink"):
        assert name in init, name
    source = inspect.getsource(InotifyWatchGroup)
    for attr in ("_inotify_fd", "_callback", "_id", "_active_callbacks_by_path",
                 "_active_callbacks_by_watch", "_move_event_grouper"):
        assert attr in source, attr


def test_emitter_and_fd_internals() -> None:
    from watchdog.observers.api import BaseObserver
    from watchdog.observers.inotify import InotifyEmitter
    from watchdog.observers.inotify_c import InotifyFD

    assert callable(InotifyEmitter.on_thread_start)
    assert callable(InotifyEmitter.get_event_mask_from_filter)
    from watchdog.observers.api import EventEmitter

    source = inspect.getsource(InotifyEmitter) + inspect.getsource(EventEmitter)
    for attr in ("_inotify_fd", "_inotify", "_event_queue", "watch"):
        assert attr in source, attr
    assert "inotify_fd" in inspect.signature(InotifyEmitter.__init__).parameters
    assert list(inspect.signature(InotifyFD.add_callback).parameters) == [
        "self", "path", "mask", "callback", "id_"]
    assert callable(InotifyFD.remove_callbacks) and callable(InotifyFD.handle_event)
    assert callable(InotifyFD.start)
    base = inspect.signature(BaseObserver.__init__).parameters
    assert "emitter_class" in base and "kwargs" in base  # forwards inotify_fd


def test_the_hooked_observer_is_in_use() -> None:
    from xsys.watch.observer import GAPS_DETECTED, make_observer

    assert GAPS_DETECTED
    observer = make_observer()
    assert type(observer).__name__ == "HookedInotifyObserver"
