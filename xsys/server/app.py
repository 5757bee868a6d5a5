"""The daemon's shared state: effective config, the bounded thread pool for blocking work,
services by name, and the start/stop/reload hooks that handler modules register."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from xsys.config import Config
from xsys.protocol import Overloaded

log = logging.getLogger(__name__)
T = TypeVar("T")

Hook = Callable[[], Awaitable[None]]


class App:
    """Everything handlers share. One per daemon (tests may run several in one process).

    - ``config``: the effective ``Config`` (replaced on SIGHUP reload).
    - ``run_blocking(fn, *args)``: run ``fn`` in the bounded pool (``server.workers``
      threads); raises ``Overloaded`` when more than ``workers * 32`` jobs wait.
    - ``services``: name -> object, for services shared between namespaces
      (``"sampler"``, ``"monitor"``...).
    - ``on_startup`` / ``on_shutdown``: async hooks run in order at start and in reverse at
      stop; ``on_reload``: ``callback(old, new)`` after a config reload.
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
        self.services: dict[str, Any] = {}
        self.on_startup: list[Hook] = []
        self.on_shutdown: list[Hook] = []
        self.on_reload: list[Callable[[Config, Config], None]] = []
        self.background: set[asyncio.Task[Any]] = set()
        self.capabilities: list[str] = []

    async def run_blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run blocking ``fn(*args, **kwargs)`` in the pool and await its result."""
        if self.pending >= self.max_pending:
            raise Overloaded(
                f"{self.pending} blocking jobs already queued; retry later",
                {"pending": self.pending, "limit": self.max_pending},
            )
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        self.pending += 1
        try:
            return await loop.run_in_executor(self.executor, call)
        finally:
            self.pending -= 1

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
        """Run shutdown hooks in reverse order, cancel and await background tasks, then
        shut the thread pool down (waiting for running jobs)."""
        for hook in reversed(self.on_shutdown):
            try:
                await asyncio.wait_for(hook(), timeout_s)
            except Exception:
                log.exception("shutdown hook %r failed", hook)
        tasks = list(self.background)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)
        await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(self.executor.shutdown, wait=True, cancel_futures=True)
        )

    def reload(self, new: Config) -> None:
        """Swap in ``new`` config and notify the reload callbacks."""
        old, self.config = self.config, new
        for cb in self.on_reload:
            try:
                cb(old, new)
            except Exception:
                log.exception("reload callback %r failed", cb)
