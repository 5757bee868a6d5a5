"""``WatchService``: file-change subscriptions over one shared watchdog observer.

Threads and queues, from the kernel to a subscriber:

- watchdog's threads (inotify reader, emitter, observer) call ``_Handler.dispatch`` with
  each event; it appends ``(watch, event, ts)`` to the service's inbox (bounded by
  ``watch.max_pending_events``; past it events are counted as dropped) and, when the inbox
  was empty, wakes the loop once with ``call_soon_threadsafe``.
- on the loop, ``_drain`` routes inbox events (in chunks, so the loop stays responsive) to
  the ``Stream`` of every subscription attached to that watch; a stream filters them
  (scope, event types, directories, patterns), coalesces them when debouncing, and sends
  batches of at most ``watch.max_batch_events`` through its ``Subscriber``.
- gaps (kernel queue overflow, sub-watches that could not be added, inbox drops) reach
  subscribers as overflow notices; the connection adds its own when a client reads slowly.

One observer watch per path is shared by every subscription on it (a file is watched
through its directory); a non-recursive watch is upgraded in place when a recursive
subscriber arrives. Observer calls that block (scheduling walks the tree, unscheduling
joins threads) run on one dedicated control thread, in order.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers.api import BaseObserver, ObservedWatch

from xsys.protocol import NotFound, Overloaded, error_from_oserror
from xsys.watch.config import WatchConfig
from xsys.watch.events import (
    CREATED,
    DELETED,
    MOVED,
    WATCHDOG_EVENTS,
    Coalescer,
    EventFilter,
    WatchEvent,
    from_watchdog,
)
from xsys.watch.model import StreamInfo, WatchInfo
from xsys.watch.observer import GapEvent, make_observer

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Inbox events routed per loop callback before yielding to other work.
DRAIN_CHUNK = 2000
#: Paths per watch remembered to drop duplicate "created" events.
CREATED_MEMORY = 8192
#: Overflow reason when the service's own inbox was full.
DAEMON_QUEUE = "daemon_queue"


class Subscriber(Protocol):
    """Where a stream's output goes (the handler adapts a connection ``Subscription``)."""

    id: str

    def send_events(self, events: list[dict[str, Any]], final: bool) -> None:
        """Push one ``watch.event`` batch; ``final`` on the last one of an ended stream."""

    def send_overflow(self, dropped: int, reason: str, path: str | None, exact: bool) -> None:
        """Push ``watch.overflow``: at least ``dropped`` events were lost."""

    def end(self) -> None:
        """The stream ended by itself (every watched root was deleted)."""


@dataclass(frozen=True)
class Root:
    """One watched path: ``path`` (resolved, absolute), ``is_file`` (watched through its
    directory), ``recursive`` (directories only)."""

    path: str
    is_file: bool
    recursive: bool

    @property
    def watch_path(self) -> str:
        """The directory the observer watches for this root."""
        return os.path.dirname(self.path) if self.is_file else self.path

    def in_scope(self, ev: WatchEvent) -> bool:
        """Whether ``ev`` (either of its paths) concerns this root."""
        for p in (ev.path, ev.dest_path):
            if p is None:
                continue
            if self.is_file:
                if p == self.path:
                    return True
            elif p == self.path or (self.recursive and p.startswith(self.path + os.sep)) \
                    or (not self.recursive and os.path.dirname(p) == self.path):
                return True
        return False


@dataclass(frozen=True)
class StreamSpec:
    """What one subscription asked for (already validated and resolved)."""

    roots: tuple[Root, ...]
    filter: EventFilter
    debounce_ms: int
    recursive: bool
    patterns: tuple[str, ...] = ()
    ignore_patterns: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    include_dirs: bool = False
    owner: Any = field(default=None, compare=False)


class Stream:
    """One subscription's live state on the loop: filtering, batching or debouncing,
    overflow accounting and its end. Created by ``WatchService.add``; events are held
    until ``release()`` so none can overtake the ``watch.add`` response."""

    def __init__(self, spec: StreamSpec, subscriber: Subscriber, loop: asyncio.AbstractEventLoop,
                 capacity: int, batch_size: int) -> None:
        self.spec = spec
        self.subscriber = subscriber
        self.id = subscriber.id
        self.created_at = time.time()
        self.live_roots = {r.path for r in spec.roots}
        self.delivered = 0
        self.overflows = 0
        self.closed = False
        self._loop = loop
        self._capacity = capacity
        self._batch_size = batch_size
        self._coalescer = Coalescer(capacity) if spec.debounce_ms > 0 else None
        self._batch: list[WatchEvent] = []
        self._timer: asyncio.TimerHandle | None = None
        self._held = True
        self._lost = 0
        self._lost_reason = ""
        self._lost_path: str | None = None
        self._lost_exact = True
        self._ending = False

    # ------------------------------------------------------------------ input

    def offer(self, ev: WatchEvent, root: Root) -> None:
        """Filter ``ev`` (seen under ``root``) and queue what passes."""
        base = os.path.dirname(root.path) if root.is_file else root.path
        for out in self.spec.filter.apply(ev, base):
            self._queue(out)

    def _queue(self, ev: WatchEvent) -> None:
        if self.closed:
            return
        if self._coalescer is not None:
            if not self._coalescer.add(ev):
                if self._held:
                    self.lose(1, DAEMON_QUEUE, ev.path)
                    return
                self.flush()
                self._coalescer.add(ev)
            if self._timer is None and not self._held:
                self._timer = self._loop.call_later(self.spec.debounce_ms / 1000, self._on_timer)
            return
        if len(self._batch) >= self._capacity:
            self.lose(1, DAEMON_QUEUE, ev.path)
            return
        self._batch.append(ev)

    def lose(self, dropped: int, reason: str, path: str | None, exact: bool = True) -> None:
        """Record lost events; the subscriber learns at the next flush."""
        self._lost += dropped
        self._lost_reason = self._lost_reason or reason
        self._lost_path = self._lost_path or path
        self._lost_exact = self._lost_exact and exact

    def gap(self, gap: GapEvent) -> None:
        """Events were lost below ``gap.path`` (kernel overflow, failed sub-watch): deliver
        what is queued, then the overflow notice."""
        self.flush()
        self.lose(max(1, gap.lost), gap.reason, gap.path, exact=False)
        self._send_lost()

    def root_deleted(self, root: Root, ev: WatchEvent) -> None:
        """A watched directory (or a watched file's directory) is gone: queue the final
        event (unfiltered) for a directory root; end the stream when no root is left."""
        if not root.is_file:
            if self._coalescer is not None:
                self._coalescer.add(ev)
            else:
                self._batch.append(ev)
        self.live_roots.discard(root.path)
        if not self.live_roots:
            self._ending = True
            if not self._held:
                self._finish()

    # ------------------------------------------------------------------ output

    def release(self) -> None:
        """Start delivering (called once the ``watch.add`` response is out)."""
        if not self._held or self.closed:
            return
        self._held = False
        if self._ending:
            self._finish()
            return
        if self._coalescer is not None and len(self._coalescer):
            self._timer = self._loop.call_later(self.spec.debounce_ms / 1000, self._on_timer)
        else:
            self.flush()

    def after_drain(self) -> None:
        """End of a drain round: a non-debouncing stream sends its batch now."""
        if self._coalescer is None and not self._held:
            self.flush()

    def _on_timer(self) -> None:
        self._timer = None
        self.flush()

    def flush(self, final: bool = False) -> None:
        """Send everything queued (in batches), the loss notice first if any."""
        if self.closed or self._held:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._coalescer is not None:
            events = self._coalescer.take()
        else:
            events, self._batch = self._batch, []
        self._send_lost()
        size = self._batch_size
        chunks = [events[i:i + size] for i in range(0, len(events), size)] or (
            [[]] if final else [])
        for i, chunk in enumerate(chunks):
            self.subscriber.send_events([e.to_wire() for e in chunk],
                                        final and i == len(chunks) - 1)
        self.delivered += len(events)

    def _send_lost(self) -> None:
        if self._lost and not self._held and not self.closed:
            self.overflows += 1
            self.subscriber.send_overflow(self._lost, self._lost_reason, self._lost_path,
                                          self._lost_exact)
            self._lost, self._lost_reason, self._lost_path = 0, "", None
            self._lost_exact = True

    def _finish(self) -> None:
        self.flush(final=True)
        self.closed = True
        self.subscriber.end()

    def close(self) -> None:
        """Stop for good (client unsubscribed or left): nothing more is sent."""
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._batch = []
        if self._coalescer is not None:
            self._coalescer.take()

    def describe(self) -> StreamInfo:
        """The ``watch.list`` row of this stream (without ``own``)."""
        s = self.spec
        return {"subscription": self.id, "paths": [r.path for r in s.roots],
                "live_paths": sorted(self.live_roots), "recursive": s.recursive,
                "patterns": list(s.patterns), "ignore_patterns": list(s.ignore_patterns),
                "events": list(s.events), "debounce_ms": s.debounce_ms,
                "include_dirs": s.include_dirs, "created_at": self.created_at,
                "delivered": self.delivered, "overflows": self.overflows}


class _Watch:
    """One observer watch (a directory, maybe recursive) and the streams attached to it."""

    def __init__(self, path: str, recursive: bool) -> None:
        self.path = path
        self.recursive = recursive
        self.observed: ObservedWatch | None = None
        self.attachments: dict[Stream, list[Root]] = {}
        self.retired = False
        self._created: collections.OrderedDict[str, None] = collections.OrderedDict()

    def duplicate(self, ev: WatchEvent) -> bool:
        """Whether ``ev`` repeats a ``created`` already reported with no deletion or move
        since. watchdog reports a new directory's content twice when files appear between
        adding its watch and rescanning it; a path cannot really be created twice in a
        row. Bounded memory: the oldest paths are forgotten first."""
        seen = self._created
        if ev.type == CREATED:
            if ev.path in seen:
                return True
            seen[ev.path] = None
            if len(seen) > CREATED_MEMORY:
                seen.popitem(last=False)
        elif ev.type in (DELETED, MOVED):
            seen.pop(ev.path, None)
            if ev.dest_path is not None:
                seen.pop(ev.dest_path, None)
        return False


class _Handler(FileSystemEventHandler):
    """Runs in watchdog's observer thread: hands each event to the service's inbox."""

    def __init__(self, service: WatchService, watch: _Watch) -> None:
        self.service = service
        self.watch = watch

    def dispatch(self, event: FileSystemEvent | GapEvent) -> None:
        self.service._from_thread(self.watch, event)


class WatchService:
    """Subscriptions to file changes (see the module docstring). ``add``/``remove`` and
    ``list`` run on the event loop; ``stop`` at shutdown stops and joins the observer."""

    def __init__(self, config: WatchConfig,
                 observer_factory: Callable[[], BaseObserver] = make_observer) -> None:
        self.config = config
        self._observer_factory = observer_factory
        self._observer: BaseObserver | None = None
        self._ctl = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="xsys-watch")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()
        self._watches: dict[str, _Watch] = {}
        self._streams: dict[str, Stream] = {}
        self._adding = 0
        self._inbox: collections.deque[tuple[_Watch, Any, float]] = collections.deque()
        self._inbox_dropped: dict[_Watch, int] = {}
        self._inbox_lock = threading.Lock()
        self._drain_scheduled = False
        self._stopped = False

    # ------------------------------------------------------------------ public (loop)

    @property
    def streams(self) -> dict[str, Stream]:
        """Live streams by subscription id."""
        return self._streams

    def watches(self) -> list[WatchInfo]:
        """The shared observer watches: ``[{path, recursive, subscriptions}]``."""
        return [{"path": w.path, "recursive": w.recursive, "subscriptions": len(w.attachments)}
                for w in self._watches.values()]

    async def add(self, spec: StreamSpec, subscriber: Subscriber) -> Stream:
        """Attach a new stream for ``spec``; raises -32005 at ``max_subscriptions`` (or the
        OS watch limit), -32001 when a path vanished, and OS errors as protocol errors."""
        if self._stopped:
            raise Overloaded("the watch service is shutting down")
        live = len(self._streams) + self._adding
        if live >= self.config.max_subscriptions:
            raise Overloaded(f"{live} watch subscriptions already (limit "
                             f"{self.config.max_subscriptions})",
                             {"limit": self.config.max_subscriptions})
        self._loop = asyncio.get_running_loop()
        stream = Stream(spec, subscriber, self._loop, self.config.max_pending_events,
                        self.config.max_batch_events)
        self._adding += 1
        try:
            async with self._lock:
                for root in spec.roots:
                    watch = await self._watch_for(root)
                    watch.attachments.setdefault(stream, []).append(root)
        except BaseException:
            self.remove(stream)
            raise
        finally:
            self._adding -= 1
        if stream.closed:  # the subscriber went away while the watches were being added
            self.remove(stream)
        else:
            self._streams[stream.id] = stream  # listed only once every path is watched
        return stream

    def remove(self, stream: Stream) -> None:
        """Detach and close ``stream``; watches left without streams are unscheduled."""
        stream.close()
        self._streams.pop(stream.id, None)
        for watch in list(self._watches.values()):
            if watch.attachments.pop(stream, None) is not None and not watch.attachments:
                self._retire(watch)

    async def stop(self) -> None:
        """Close every stream, stop and join the observer and the control thread."""
        self._stopped = True
        for stream in list(self._streams.values()):
            stream.close()
        self._streams.clear()
        self._watches.clear()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._ctl, self._stop_observer)
        await loop.run_in_executor(None, self._ctl.shutdown, True)

    # ------------------------------------------------------------------ watches

    async def _watch_for(self, root: Root) -> _Watch:
        path = root.watch_path
        recursive = root.recursive and not root.is_file
        current = self._watches.get(path)
        if current is not None and (current.recursive or not recursive):
            return current
        new = _Watch(path, recursive)
        try:
            await self._control(self._schedule, new)
        except BaseException:
            # failed, or the request was cancelled while the control thread schedules it:
            # unscheduling is queued behind, on the same thread, so nothing leaks
            self._retire(new)
            raise
        if current is not None:  # upgrade: the recursive watch takes over
            for stream, roots in current.attachments.items():
                new.attachments.setdefault(stream, []).extend(roots)
            current.attachments.clear()
            self._retire(current)
        self._watches[path] = new
        return new

    def _retire(self, watch: _Watch) -> None:
        if watch.retired:
            return
        watch.retired = True
        if self._watches.get(watch.path) is watch:
            del self._watches[watch.path]
        if not self._stopped:
            self._ctl.submit(self._unschedule, watch)

    async def _control(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._ctl, fn, *args)

    # ------------------------------------------------------------------ control thread

    def _schedule(self, watch: _Watch) -> None:
        if self._observer is None:
            self._observer = self._observer_factory()
            self._observer.start()
        try:
            watch.observed = self._observer.schedule(_Handler(self, watch), watch.path,
                                                     recursive=watch.recursive,
                                                     event_filter=WATCHDOG_EVENTS)
        except FileNotFoundError:
            raise NotFound(f"no such file or directory: {watch.path}",
                           {"errno": "ENOENT", "path": watch.path}) from None
        except OSError as exc:
            raise error_from_oserror(exc, watch.path) from None

    def _unschedule(self, watch: _Watch) -> None:
        if self._observer is None or watch.observed is None:
            return
        try:
            self._observer.unschedule(watch.observed)
        except KeyError:
            pass  # already gone
        except Exception:
            log.exception("unscheduling the watch on %s failed", watch.path)

    def _stop_observer(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(10)

    # ------------------------------------------------------------------ events

    def _from_thread(self, watch: _Watch, event: Any) -> None:
        """Observer thread: queue one event for the loop (bounded; drops are counted)."""
        ts = time.time()
        with self._inbox_lock:
            if len(self._inbox) >= self.config.max_pending_events:
                self._inbox_dropped[watch] = self._inbox_dropped.get(watch, 0) + 1
            else:
                self._inbox.append((watch, event, ts))
            if self._drain_scheduled:
                return
            self._drain_scheduled = True
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
            loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        """Loop: route up to ``DRAIN_CHUNK`` inbox events, then flush touched streams."""
        with self._inbox_lock:
            n = min(len(self._inbox), DRAIN_CHUNK)
            items = [self._inbox.popleft() for _ in range(n)]
            dropped, self._inbox_dropped = self._inbox_dropped, {}
            more = bool(self._inbox)
            if not more:
                self._drain_scheduled = False
        if more and self._loop is not None:
            self._loop.call_soon(self._drain)
        touched: set[Stream] = set()
        for watch, event, ts in items:
            try:
                self._route(watch, event, ts, touched)
            except Exception:
                log.exception("routing %r failed", event)
        for watch, count in dropped.items():
            log.warning("watch inbox full: dropped %d events under %s", count, watch.path)
            for stream in list(watch.attachments):
                stream.lose(count, DAEMON_QUEUE, watch.path)
                touched.add(stream)
        for stream in touched:
            if dropped:
                stream.flush()
            else:
                stream.after_drain()

    def _route(self, watch: _Watch, event: Any, ts: float, touched: set[Stream]) -> None:
        if watch.retired and not watch.attachments:
            return
        if isinstance(event, GapEvent):
            for stream in list(watch.attachments):
                stream.gap(event)
            return
        ev = from_watchdog(event, ts)
        if ev is None:
            return
        if ev.type == DELETED and ev.path == watch.path:
            self._watch_deleted(watch, ev, touched)
            return
        if watch.duplicate(ev):
            return
        for stream, roots in list(watch.attachments.items()):
            for root in roots:
                if root.in_scope(ev):
                    stream.offer(ev, root)
                    touched.add(stream)
                    break

    def _watch_deleted(self, watch: _Watch, ev: WatchEvent, touched: set[Stream]) -> None:
        """The watched directory itself is gone: final events, then retire the watch."""
        final = WatchEvent(DELETED, watch.path, True, ev.ts)
        for stream, roots in list(watch.attachments.items()):
            for root in roots:
                stream.root_deleted(root, final)
            touched.add(stream)
            if stream.closed:
                self._streams.pop(stream.id, None)
        watch.attachments.clear()
        self._retire(watch)
