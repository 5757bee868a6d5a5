"""Helpers shared by the fs and watch test suites: an in-process app with the fs/watch
handlers registered, a fake connection session that records what would be sent, and a
polling helper (no timing assertions: wait generously, then check)."""

from __future__ import annotations

import asyncio
import collections
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from xsys.config import Config, FsConfig, WatchConfig
from xsys.protocol import XsysError
from xsys.server.app import App
from xsys.server.context import Subscription
from xsys.server.dispatch import invoke
from xsys.server.router import Router


class FakeSession:
    """A ``Session`` that records notifications instead of writing frames.

    ``notifications``: every ``(method, params)`` sent, in order. Subscription events are
    queued like the real connection does (bounded by ``outbound_queue``, oldest dropped,
    then ``<ns>.overflow``) only while ``paused``; otherwise they are recorded at once.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, outbound_queue: int = 1024) -> None:
        self.loop = loop
        self.notifications: list[tuple[str, dict[str, Any]]] = []
        self.subscriptions: dict[str, Subscription] = {}
        self._outbound = outbound_queue
        self.paused = False

    @property
    def outbound_queue(self) -> int:
        return self._outbound

    def send_notification(self, method: str, params: dict[str, Any]) -> None:
        self.notifications.append((method, params))

    def enqueue_event(self, sub: Subscription, method: str, params: dict[str, Any],
                      weight: int = 1) -> None:
        if not self.paused:
            self.notifications.append((method, params))
            return
        sub.queue.append((method, params, weight))  # the connection queues (frame, weight)
        if len(sub.queue) > self._outbound:
            sub.dropped += sub.queue.popleft()[2]

    def resume(self) -> None:
        """Flush queued events (overflow notice first, as the connection does)."""
        self.paused = False
        for sub in list(self.subscriptions.values()):
            if sub.dropped:
                self.notifications.append((f"{sub.namespace}.overflow",
                                           {"subscription": sub.id, "dropped": sub.dropped}))
                sub.dropped = 0
            while sub.queue:
                method, params, _weight = sub.queue.popleft()
                self.notifications.append((method, params))

    def add_subscription(self, sub: Subscription) -> None:
        self.subscriptions[sub.id] = sub

    def remove_subscription(self, sub: Subscription) -> None:
        self.subscriptions.pop(sub.id, None)

    def find_subscription(self, sub_id: str) -> Subscription | None:
        return self.subscriptions.get(sub_id)

    def close(self) -> None:
        """What the connection does when the client goes away."""
        for sub in list(self.subscriptions.values()):
            sub.close()

    def methods(self) -> collections.Counter[str]:
        """How many notifications of each method were sent."""
        return collections.Counter(m for m, _ in self.notifications)

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
