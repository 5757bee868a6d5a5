"""The daemon's shared state: effective config, the bounded thread pool for blocking work,
the services (typed by the composition root), and the start/stop/reload hooks."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from xsys.config import Config
from xsys.protocol import Overloaded
from xsys.server.stats import RequestStats

log = logging.getLogger(__name__)
T = TypeVar("T")

Hook = Callable[[], Awaitable[None]]


class App:
    """Everything handlers share. One per daemon (tests may run several in one process).

    - ``config``: the effective ``Config`` (replaced on SIGHUP reload).
    - ``run_blocking(fn, *args)``: run ``fn`` in the bounded pool (``server.workers``
      threads); raises ``Overloaded`` when more than ``workers * 32`` jobs wait. Running
      jobs are tracked so that ``stop`` can name those stuck past the deadline
      (``stuck_jobs``) instead of waiting for them.
    - ``services``: the daemon's services, set by the composition root
      (``xsys.daemon.Services``: ``services.fs``, ``services.sampler``...); this layer
      does not know their types.
    - ``on_startup`` / ``on_shutdown``: async hooks run in order at start and in reverse at
      stop; ``on_reload``: ``callback(old, new)`` after a config reload.
    - ``request_stats``: counts and latencies of the requests answered (the socket and
      the HTTP mirror; ``xsys.server.stats``).
    """

    def __init__(self, config: Config, config_file: str | None = None) -> None:
        self.config = config
        self.config_file = config_file
        self.started_at = time.time()
        self.pid = os.getpid()
        self.executor = ThreadPoolExecutor(
            max_workers=max(1, config.server.workers), thread_name_prefix="xsys-worker"
        )
        self.max_pending = max(1, config.server.workers) * 32
        self.pending = 0
        self.services: Any = {}
        self.on_startup: list[Hook] = []
        self.on_shutdown: list[Hook] = []
        self.on_reload: list[Callable[[Config, Config], None]] = []
        self.background: set[asyncio.Task[Any]] = set()
        self.capabilities: list[str] = []
        self.request_stats = RequestStats()
        # job id -> (function, its first argument, monotonic start) while in a worker
        self._running: dict[int, tuple[Callable[..., Any], Any, float]] = {}
        self._job_ids = itertools.count()
        self._drained: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: While not done, requests wait for it before their handler runs
        #: (``xsys.server.dispatch.run_spec``): the daemon sets it to the sampler's first
        #: sample, taken after READY (``Daemon.run``). None: nothing to wait for.
        self.warming: asyncio.Future[Any] | None = None

    async def run_blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run blocking ``fn(*args, **kwargs)`` in the pool and await its result."""
        if self.pending >= self.max_pending:
            raise Overloaded(
                f"{self.pending} blocking jobs already queued; retry later",
                {"pending": self.pending, "limit": self.max_pending},
            )
        loop = asyncio.get_running_loop()
        call = functools.partial(self._job, next(self._job_ids), contextvars.copy_context(),
                                 fn, args, kwargs)
        self.pending += 1
        try:
            return await loop.run_in_executor(self.executor, call)
        finally:
            self.pending -= 1

    def _job(self, job_id: int, context: contextvars.Context, fn: Callable[..., T],
             args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        """One pool job, in the worker thread: tracked in ``_running`` while it runs."""
        running = self._running
        running[job_id] = (fn, args[0] if args else None, time.monotonic())
        try:
            return context.run(fn, *args, **kwargs)
        finally:
            del running[job_id]
            drained = self._drained
            if drained is not None and not running and self._loop is not None:
                with contextlib.suppress(RuntimeError):  # loop closed while the job was stuck
                    self._loop.call_soon_threadsafe(drained.set)

    def stuck_jobs(self) -> list[str]:
        """The pool jobs still running, one line each: method (when the job serves a
        request), peer, function and seconds it has run."""
        now = time.monotonic()
        lines = []
        for fn, first, started in list(self._running.values()):
            name = getattr(fn, "__qualname__", repr(fn))
            method = getattr(first, "method", None)
            peer = getattr(first, "peer", None)
            who = (f"{method} from pid={peer.pid} uid={peer.uid}: " if method and peer
                   else "")
            lines.append(f"{who}{name} running for {now - started:.1f}s")
        return lines

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        """Start a background task that is cancelled and awaited at shutdown; a crash is
        logged with its traceback."""
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        task.set_name(name)
        self.background.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self.background.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("background task %s crashed", name, exc_info=t.exception())

        task.add_done_callback(done)
        return task

    async def start(self) -> None:
        """Run the startup hooks in registration order."""
        for hook in self.on_startup:
            await hook()

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Within ``timeout_s`` in all: run shutdown hooks in reverse order, cancel and
        await background tasks, shut the thread pool down (queued jobs are cancelled) and
        wait for its running jobs. Jobs still running at the deadline are logged and left
        behind (``stuck_jobs``; the daemon's process then exits without joining them)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        for hook in reversed(self.on_shutdown):
            try:
                await asyncio.wait_for(hook(), max(deadline - loop.time(), 0.001))
            except asyncio.TimeoutError:
                log.error("shutdown hook %r did not finish before the deadline", hook)
            except Exception:
                log.exception("shutdown hook %r failed", hook)
        tasks = list(self.background)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=max(deadline - loop.time(), 0.001))
        self._loop = loop
        self._drained = asyncio.Event()
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self._running:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._drained.wait(), max(deadline - loop.time(), 0.001))
        for line in self.stuck_jobs():
            log.error("worker job stuck at shutdown, left behind: %s", line)

    def reload(self, new: Config) -> None:
        """Swap in ``new`` config and notify the reload callbacks."""
        old, self.config = self.config, new
        for cb in self.on_reload:
            try:
                cb(old, new)
            except Exception:
                log.exception("reload callback %r failed", cb)
