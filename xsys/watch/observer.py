"""The watchdog observer, with the gaps watchdog keeps to itself made visible.

On Linux, watchdog's inotify emitter learns of a kernel queue overflow (``IN_Q_OVERFLOW``,
read by ``InotifyFD.handle_event``, which calls ``InotifyWatchGroup.on_queue_overflow``)
and of subdirectory watches it could not add (``InotifyWatchGroup._add_callback`` swallows
the ``OSError`` for anything but the root: watch limit reached, permission denied, or a
directory created and changed faster than its watch could be added). In both cases
events are lost, and watchdog only logs. ``HookedInotifyObserver`` subclasses the watch
group and emitter so that each of these puts a ``GapEvent`` into the observer's event
queue, where the event handler of every affected watch receives it like any other event.

Elsewhere (macOS, Windows, BSD) the platform observer is used as is: no gap detection.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from watchdog.observers import Observer
from watchdog.observers.api import DEFAULT_OBSERVER_TIMEOUT, BaseObserver

log = logging.getLogger(__name__)

# watchdog logs every inotify event at DEBUG; under a daemon at DEBUG that costs more than
# the events themselves. Keep its loggers at INFO unless someone configured them.
for _name in ("watchdog", "watchdog.observers.inotify_move_event_grouper"):
    if logging.getLogger(_name).level == logging.NOTSET:
        logging.getLogger(_name).setLevel(logging.INFO)

#: ``GapEvent.reason`` values.
KERNEL_QUEUE = "kernel_queue"
WATCH_FAILED = "watch_failed"


class GapEvent:
    """Events under ``path`` were lost for ``reason`` (``kernel_queue``: the kernel's
    inotify queue overflowed; ``watch_failed``: a subdirectory could not be watched, with
    ``errno`` naming why); ``lost`` is a lower bound (the kernel does not count what it
    drops). Never equal to another, so watchdog's repeat-skipping queue keeps each one."""

    __slots__ = ("errno", "lost", "path", "reason")

    def __init__(self, path: str, reason: str, errno_name: str | None = None,
                 lost: int = 1) -> None:
        self.path = path
        self.reason = reason
        self.errno = errno_name
        self.lost = lost

    def __repr__(self) -> str:
        return f"GapEvent({self.path!r}, {self.reason!r}, {self.errno!r}, {self.lost})"


def _pending_count(group: Any) -> int:
    """Events a watch group holds back (watchdog discards them on overflow); 0 when this
    watchdog keeps them elsewhere."""
    try:
        return len(group._move_event_grouper._queue._queue)
    except (AttributeError, TypeError):
        return 0


def _build_hooked() -> Callable[[], BaseObserver] | None:
    """Define the hooked inotify classes, or None when this watchdog lacks the hooks."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        from watchdog.observers.inotify import (
            InotifyEmitter,
            InotifyObserver,
            InotifyWatchGroup,
        )
        from watchdog.observers.inotify_c import InotifyFD
    except ImportError as exc:  # watchdog 6 (Python 3.10) has other internals
        log.debug("inotify hooks unavailable (%s); using watchdog's default observer, "
                  "which does not report kernel queue overflows", exc)
        return None
    except Exception:  # unsupported libc and the like
        log.warning("inotify unavailable; using watchdog's default observer", exc_info=True)
        return None
    if not hasattr(InotifyWatchGroup, "on_queue_overflow") or not hasattr(
            InotifyWatchGroup, "_add_callback"):
        log.warning("this watchdog version has no inotify overflow hook; kernel queue "
                    "overflows will not be reported to subscribers")
        return None

    @dataclass
    class HookedWatchGroup(InotifyWatchGroup):
        """An inotify watch group that reports overflows and failed sub-watches."""

        on_gap: Any = field(default=None)

        def on_queue_overflow(self) -> None:
            discarded = _pending_count(self)
            super().on_queue_overflow()
            if self.on_gap is not None:
                # the kernel lost at least one event; watchdog discards what it held back
                self.on_gap(os.fsdecode(self.path), KERNEL_QUEUE, None, 1 + discarded)

        def _add_callback(self, path: bytes) -> None:
            try:
                wd = self._inotify_fd.add_callback(path, self.event_mask, self._callback,
                                                   self._id)
            except OSError as exc:
                if path == self.path:
                    raise
                if exc.errno not in (errno.ENOENT, errno.ENOTDIR) and self.on_gap is not None:
                    self.on_gap(os.fsdecode(path), WATCH_FAILED,
                                errno.errorcode.get(exc.errno or 0, str(exc.errno)), 1)
                return
            if wd == -1:  # watchdog tolerates EACCES by returning -1: nothing is watched
                self._inotify_fd.remove_callbacks([(wd, self._id)])
                if path == self.path:
                    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES),
                                          os.fsdecode(path))
                if self.on_gap is not None:
                    self.on_gap(os.fsdecode(path), WATCH_FAILED, "EACCES", 1)
                return
            self._active_callbacks_by_path[path] = wd
            self._active_callbacks_by_watch[wd] = path

    class HookedEmitter(InotifyEmitter):
        """An inotify emitter whose watch group turns gaps into ``GapEvent``s."""

        def on_thread_start(self) -> None:
            self._inotify = HookedWatchGroup(
                self._inotify_fd,
                os.fsencode(self.watch.path),
                is_recursive=self.watch.is_recursive,
                event_mask=self.get_event_mask_from_filter(),
                follow_symlink=self.watch.follow_symlink,
                on_gap=self._gap,
            )

        def _gap(self, path: str, reason: str, errno_name: str | None, lost: int) -> None:
            log.warning("events lost under %s (%s%s, at least %d)", path, reason,
                        f", {errno_name}" if errno_name else "", lost)
            self._event_queue.put((GapEvent(path, reason, errno_name, lost), self.watch))

    class HookedInotifyObserver(InotifyObserver):
        """``InotifyObserver`` with ``HookedEmitter``s (see the module docstring)."""

        def __init__(self, *, timeout: float = DEFAULT_OBSERVER_TIMEOUT) -> None:
            self._inotify_fd = InotifyFD()
            self._inotify_fd.start()
            BaseObserver.__init__(self, HookedEmitter, timeout=timeout,
                                  inotify_fd=self._inotify_fd)

    return HookedInotifyObserver


_HOOKED: Callable[[], BaseObserver] | None = _build_hooked()

#: Whether kernel overflows and failed sub-watches are detected on this platform.
GAPS_DETECTED = _HOOKED is not None


def make_observer() -> BaseObserver:
    """A new (not started) observer: the hooked inotify one where available."""
    if _HOOKED is not None:
        return _HOOKED()
    factory: Any = Observer  # typed as BaseObserver; really the platform's subclass
    observer: BaseObserver = factory()
    return observer
