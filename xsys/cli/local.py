"""``xsys --local ...``: the ``sys`` and ``fs`` methods run in the CLI's own process, with
the caller's own rights, through the daemon's own handlers and router (so parameters,
checks, errors and results are the daemon's). ``--root DIR`` (repeatable) confines fs
commands to DIR exactly as the daemon's ``fs.roots`` do (the same descriptor sandbox);
without it the sandbox root is ``/``. Results go through the wire encoding (msgpack) and
back, so ``--json`` prints the same either way.

Everything heavy is imported when a ``LocalClient`` is made, never at CLI start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from xsys.protocol import XsysError

#: Namespaces ``--local`` serves.
LOCAL_NAMESPACES = ("sys", "fs")


class NeedsDaemon(XsysError):
    """A command that ``--local`` cannot serve (watch, monitor, checks...)."""

    code = -32601


class _Session:
    """What a request's ``Context`` needs to report progress: the loop and a sink."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_progress: Any) -> None:
        self.loop = loop
        self.on_progress = on_progress

    def send_notification(self, method: str, params: dict[str, Any]) -> None:
        """Progress goes to the caller's callback."""
        if self.on_progress is not None and method.endswith(".progress"):
            self.on_progress(params)


class LocalClient:
    """The ``Client`` surface the CLI uses (``call``, ``subscribe``, ``close``), served in
    process. ``roots``: the fs sandbox roots (default ``/``). ``subscribe`` and methods
    outside ``LOCAL_NAMESPACES`` raise ``NeedsDaemon``."""

    def __init__(self, roots: Sequence[str] = (), timeout: float | None = None) -> None:
        from xsys.config import Config
        from xsys.daemon import build_services
        from xsys.fs.config import FsConfig
        from xsys.handlers import fs as fs_handlers
        from xsys.handlers import system as sys_handlers
        from xsys.server.app import App
        from xsys.server.router import Router

        config = Config(fs=FsConfig(roots=tuple(roots) or ("/",)))
        self.app = App(config)
        self.app.services = build_services(self.app)
        self.router = Router()
        sys_handlers.register(self.router, self.app)
        fs_handlers.register(self.router, self.app)
        self.timeout = timeout
        self.loop = asyncio.new_event_loop()
        self._ids = itertools.count(1)
        self._sampled = False

    def call(self, method: str, params: Mapping[str, Any] | None = None, *,
             timeout: Any = None, on_progress: Any = None, **kwargs: Any) -> Any:
        """Run ``method`` here; returns what the daemon would (after a msgpack round
        trip); raises the same typed errors."""
        from xsys.protocol import packb, unpackb
        from xsys.server.context import Context
        from xsys.server.dispatch import prepare, run_spec

        ns = method.partition(".")[0]
        if ns not in LOCAL_NAMESPACES:
            raise NeedsDaemon(f"{method} needs the daemon: --local runs only sys and fs "
                              "commands", {"method": method})
        if ns == "sys" and not self._sampled:
            sampler = self.app.services.sampler
            sampler.prime()
            sampler.sample_now(min_span_s=0.25)  # percentages over a real interval
            self._sampled = True
        merged = {**(params or {}), **kwargs}
        if on_progress is not None:
            merged["progress"] = True

        async def run() -> Any:
            spec, kw, want = prepare(self.router, method, merged)
            session = _Session(asyncio.get_running_loop(), on_progress)
            ctx = Context(self.app, method, next(self._ids), None, session,  # type: ignore[arg-type]
                          want)
            return await run_spec(self.app, spec, ctx, kw)

        result = self.loop.run_until_complete(run())
        return unpackb(packb(result))

    def subscribe(self, method: str, params: Mapping[str, Any] | None = None,
                  **kwargs: Any) -> Any:
        """Streams need the daemon."""
        raise NeedsDaemon(f"{method} needs the daemon (subscriptions are not available "
                          "with --local)", {"method": method})

    def close(self) -> None:
        """Stop the worker threads and the loop."""
        if self.loop.is_closed():
            return
        with contextlib.suppress(Exception):  # best effort at exit
            self.loop.run_until_complete(self.app.stop(1.0))
        self.loop.close()
