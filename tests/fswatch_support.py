"""Helpers shared by the fs and watch test suites: an in-process app with the fs/watch
handlers registered, a real connection on a recording transport, and a
polling helper (no timing assertions: wait generously, then check)."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from xsys.config import Config
from xsys.fs.config import FsConfig
from xsys.protocol import FrameDecoder, XsysError, unpackb
from xsys.server.app import App
from xsys.server.context import Subscription
from xsys.server.dispatch import invoke
from xsys.server.router import Router
from xsys.watch.config import WatchConfig


class RecordingTransport(asyncio.Transport):
    """A transport that keeps what the connection writes (``out``) and reports the write
    buffer the test sets (``unsent``)."""

    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.closing = False
        self.reading = True
        self.unsent = 0  # what get_write_buffer_size reports (the client is not reading)

    def write(self, data: Any) -> None:
        self.out += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def get_write_buffer_size(self) -> int:
        return self.unsent

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def messages(self) -> list[Any]:
        """Every frame written so far, decoded."""
        return [unpackb(f) for f in FrameDecoder().feed(bytes(self.out))]


class FakeSession:
    """A real ``server.connection.Connection`` on a ``RecordingTransport``: subscriptions,
    their bounded queues, overflow notices and progress go through the production code,
    and what it writes is decoded into ``notifications``.

    ``notifications``: every ``(method, params)`` notification written so far, in order
    (a list: tests may ``clear()`` it). ``paused = True`` makes the transport report a
    full write buffer to the connection (``pause_writing``), so events queue and overflow
    as for a slow client; ``resume()`` lets them flow (``resume_writing``).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, outbound_queue: int | None = None,
                 app: App | None = None) -> None:
        from xsys.server.connection import Connection
        from xsys.server.listener import Server

        cfg = Config()
        if outbound_queue is not None:
            cfg = dataclasses.replace(cfg, server=dataclasses.replace(
                cfg.server, outbound_queue=outbound_queue))
        self.loop = loop
        self.transport = RecordingTransport()
        self.connection = Connection(Server(app or App(cfg), Router()))
        if outbound_queue is not None:
            self.connection._outbound_queue = outbound_queue
        self.connection.connection_made(self.transport)
        self._decoder = FrameDecoder()
        self._notes: list[tuple[str, dict[str, Any]]] = []

    @property
    def notifications(self) -> list[tuple[str, dict[str, Any]]]:
        """The notifications written so far (decoded from the transport)."""
        if self.transport.out:
            for frame in self._decoder.feed(bytes(self.transport.out)):
                msg = unpackb(frame)
                if "id" not in msg:
                    self._notes.append((msg["method"], msg["params"]))
            self.transport.out.clear()
        return self._notes

    @property
    def paused(self) -> bool:
        """Whether the connection believes the client stopped reading."""
        return bool(self.connection._write_paused)

    @paused.setter
    def paused(self, value: bool) -> None:
        if value:
            self.connection.pause_writing()
        else:
            self.connection.resume_writing()

    def resume(self) -> None:
        """The client reads again: queued events (overflow notice first) are written."""
        self.connection.resume_writing()

    @property
    def subscriptions(self) -> dict[str, Subscription]:
        """The connection's live subscriptions."""
        subs: dict[str, Subscription] = self.connection.subscriptions
        return subs

    def find_subscription(self, sub_id: str) -> Subscription | None:
        """The connection's live subscription ``sub_id``."""
        return self.connection.find_subscription(sub_id)

    def close(self) -> None:
        """The client goes away (``connection_lost``)."""
        self.connection.connection_lost(None)

    def methods(self) -> collections.Counter[str]:
        """How many notifications of each method were sent."""
        return collections.Counter(m for m, _ in self.notifications)

    def __getattr__(self, name: str) -> Any:
        # the rest of the ``Session`` protocol (``enqueue_event``, ``send_notification``,
        # ``add_subscription``...) is the real connection's
        return getattr(self.connection, name)

    def events(self, sub_id: str | None = None) -> list[dict[str, Any]]:
        """Every event of ``watch.event`` notifications (of ``sub_id`` if given)."""
        out: list[dict[str, Any]] = []
        for method, params in self.notifications:
            if method == "watch.event" and (sub_id is None or params["subscription"] == sub_id):
                out.extend(params["events"])
        return out


def make_app(roots: tuple[str, ...], *, modules: tuple[str, ...] = ("fs",),
             fs: dict[str, Any] | None = None, watch: dict[str, Any] | None = None,
             ) -> tuple[App, Router]:
    """An ``App`` whose fs roots are ``roots``, with the given handler modules."""
    import importlib

    config = Config(fs=FsConfig(roots=roots, **(fs or {})), watch=WatchConfig(**(watch or {})))
    from xsys.daemon import build_services

    app = App(config)
    app.services = build_services(app)
    router = Router()
    for name in modules:
        importlib.import_module(f"xsys.handlers.{name}").register(router, app)
    return app, router


async def call(app: App, router: Router, method: str, session: Any = None,
               request_id: int | None = None, **params: Any) -> Any:
    """``dispatch.invoke`` with keyword params."""
    return await invoke(app, router, method, params, session=session, request_id=request_id)


async def call_error(app: App, router: Router, method: str, **params: Any) -> XsysError:
    """Call expecting an error; returns it (fails the test if the call succeeds)."""
    try:
        result = await invoke(app, router, method, params)
    except XsysError as exc:
        return exc
    raise AssertionError(f"{method} succeeded unexpectedly: {result!r}")


async def wait_for(predicate: Callable[[], bool], timeout: float = 20.0,
                   interval: float = 0.02) -> bool:
    """Poll ``predicate`` on the loop until true or ``timeout`` s; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(interval)
    return predicate()


def wait_sync(predicate: Callable[[], bool], timeout: float = 20.0,
              interval: float = 0.02) -> bool:
    """``wait_for`` for blocking tests."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@pytest.fixture(scope="module")
def shared_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One daemon for a whole test module (starting one per test costs seconds on a busy
    machine): fs.roots = a module temp dir, monitor off. Tests work in ``workdir``."""
    from tests.conftest import DaemonHandle

    base = tmp_path_factory.mktemp("shared")
    sock_dir = tempfile.mkdtemp(prefix="xsys-m-")  # Unix socket paths must stay short
    (base / "daemon").mkdir()
    (base / "home").mkdir()
    config = {"server": {"socket": os.path.join(sock_dir, "xsys.sock"), "log_level": "INFO"},
              "fs": {"roots": [str(base)], "max_read_bytes": 4096},
              "monitor": {"enabled": False}}
    env = {k: v for k, v in os.environ.items() if not k.startswith("XSYS_")}
    env["HOME"] = str(base / "home")
    env.pop("XDG_RUNTIME_DIR", None)
    handle = DaemonHandle(base / "daemon", config, env)
    handle.start()
    handle.root = base  # type: ignore[attr-defined]
    try:
        yield handle
    finally:
        handle.stop()
        shutil.rmtree(sock_dir, ignore_errors=True)


@pytest.fixture
def workdir(shared_daemon: Any, request: pytest.FixtureRequest) -> Path:
    """A fresh directory for this test inside the shared daemon's root."""
    path: Path = shared_daemon.root / request.node.name[:60]
    path.mkdir()
    return path
