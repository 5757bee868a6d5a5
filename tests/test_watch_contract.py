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


def _watchdog_version() -> tuple[int, int]:
    from importlib.metadata import version

    major, minor = (int(x) for x in version("watchdog").split(".")[:2])
    return major, minor


#: Python 3.10 gets watchdog 6 (7 needs 3.11): the plain observer, without the hooks.
needs_watchdog_7 = pytest.mark.skipif(
    sys.version_info < (3, 11),
    reason="Python 3.10 runs watchdog 6 with the plain observer (no kernel-overflow hooks; "
           "docs/files.md)")


def test_the_pinned_range_is_the_installed_one() -> None:
    low = (7, 1) if sys.version_info >= (3, 11) else (6, 0)
    assert low <= _watchdog_version() < (8, 0), _watchdog_version()


@needs_watchdog_7
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


@needs_watchdog_7
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


@needs_watchdog_7
def test_the_hooked_observer_is_in_use() -> None:
    from xsys.watch.observer import GAPS_DETECTED, make_observer

    assert GAPS_DETECTED
    observer = make_observer()
    assert type(observer).__name__ == "HookedInotifyObserver"
