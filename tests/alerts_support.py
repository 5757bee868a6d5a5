"""Helpers for the monitor/alert tests: a recording local HTTP server (real aiohttp), a
real SMTP server (aiosmtpd), self-signed TLS material (openssl CLI), and alert makers."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import shutil
import ssl
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.launcher import free_port
from xsys.alerts.model import Alert, HostContext, fingerprint, new_alert_id

HOST = HostContext("testhost", ("192.0.2.10", "2001:db8::10"), (0.5, 0.4, 0.3), 93784.0)


def make_alert(check: str = "cpu", component: str | None = None, severity: str = "critical",
               status: str = "firing", value: float = 95.5, unit: str = "percent",
               threshold: float | None = 90.0, started_at: float | None = None,
               test: bool = False) -> Alert:
    """An alert as the rules would make it."""
    now = time.time()
    comp = component or check
    return Alert(id=new_alert_id(), check=check, component=comp,
                 severity=severity,  # type: ignore[arg-type]
                 status=status,  # type: ignore[arg-type]
                 value=value, unit=unit, threshold=threshold,
                 started_at=started_at if started_at is not None else now - 60, host=HOST,
                 created_at=now, ended_at=now if status == "resolved" else None,
                 fingerprint=fingerprint(check, comp, HOST.hostname), test=test)


@dataclass
class Request:
    """One request the recorder received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Behaviour:
    """How the recorder answers a path: a list of (status, headers, delay_s) used in turn
    (the last one repeats)."""

    answers: list[tuple[int, dict[str, str], float]] = field(
        default_factory=lambda: [(200, {}, 0.0)])
    calls: int = 0

    def next(self) -> tuple[int, dict[str, str], float]:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        return answer


class Recorder:
    """A real aiohttp server on 127.0.0.1 recording every request; ``set(path, ...)``
    scripts the answers of a path; ``wait(n)`` waits for n requests on a path."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.behaviour: dict[str, Behaviour] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._event = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set(self, path: str, *answers: tuple[int, dict[str, str], float]) -> None:
        self.behaviour[path] = Behaviour(list(answers))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(Request(request.method, request.path, dict(request.headers),
                                     body, time.monotonic()))
        self._event.set()
        status, headers, delay = self.behaviour.get(request.path, Behaviour()).next()
        if delay:
            await asyncio.sleep(delay)
        return web.Response(status=status, headers=headers, text="ok" if status < 300 else
                            f"error {status}")

    async def start(self) -> Recorder:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def on(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    async def wait(self, path: str, n: int = 1, timeout: float = 10.0) -> list[Request]:
        deadline = time.monotonic() + timeout
        while len(self.on(path)) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{len(self.on(path))} of {n} requests on {path}; got "
                                     f"{[(r.method, r.path) for r in self.requests]}")
            self._event.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._event.wait(), min(left, 0.5))
        return self.on(path)



def refused_url() -> str:
    """A URL on a port nothing listens on (connection refused)."""
    return f"http://127.0.0.1:{free_port()}/refused"


def self_signed(directory: Path) -> tuple[Path, Path] | None:
    """(cert, key) for localhost/127.0.0.1 made with the openssl CLI; None without it."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30)
    return cert, key


def server_tls(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


class SmtpSink:
    """A real SMTP server (aiosmtpd) collecting messages; optional STARTTLS/implicit TLS
    and AUTH (user ``alice`` / password ``secret``)."""

    def __init__(self, tls: ssl.SSLContext | None = None, implicit_tls: bool = False,
                 auth: bool = False) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        self.messages: list[tuple[str, list[str], EmailMessage]] = []
        #: The raw DATA of each message, as received.
        self.raw: list[bytes] = []
        self.logins: list[str] = []
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
                sink.raw.append(bytes(envelope.content))
                sink.messages.append((envelope.mail_from, list(envelope.rcpt_tos), msg))
                return "250 OK"

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                          data: Any) -> Any:
            if isinstance(data, LoginPassword) and data.login == b"alice" \
                    and data.password == b"secret":
                sink.logins.append(data.login.decode())
                return AuthResult(success=True)
            return AuthResult(success=False, handled=False)

        self.port = free_port()
        kwargs: dict[str, Any] = {"hostname": "127.0.0.1", "port": self.port}
        if implicit_tls:
            kwargs["ssl_context"] = tls
        elif tls is not None:
            kwargs["tls_context"] = tls
            kwargs["require_starttls"] = False
        if auth:
            kwargs["authenticator"] = authenticator
            kwargs["auth_require_tls"] = tls is not None
        self.controller = Controller(Handler(), **kwargs)

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


class Timer:
    """One scheduled callback of ``Timers``."""

    def __init__(self, delay: float, callback: Callable[[], None]) -> None:
        self.delay = delay
        self.callback = callback
        self.cancelled = False
        self.fired = False

    def cancel(self) -> None:
        self.cancelled = True


class Timers:
    """An injected ``call_later`` for the dispatcher: records every timer's delay; the test
    fires them (``fire``) instead of waiting. With ``auto=True`` each timer fires on the
    next loop iteration (no real wait), in order."""

    def __init__(self, auto: bool = False) -> None:
        self.auto = auto
        self.timers: list[Timer] = []

    def __call__(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(delay, callback)
        self.timers.append(timer)
        if self.auto:
            asyncio.get_running_loop().call_soon(self._fire, timer)
        return timer

    @property
    def delays(self) -> list[float]:
        return [t.delay for t in self.timers]

    def pending(self) -> list[Timer]:
        return [t for t in self.timers if not t.cancelled and not t.fired]

    def _fire(self, timer: Timer) -> None:
        if not timer.cancelled and not timer.fired:
            timer.fired = True
            timer.callback()

    def fire(self) -> int:
        """Run every pending timer now; returns how many ran."""
        due = self.pending()
        for timer in due:
            self._fire(timer)
        return len(due)


class Hang:
    """A real aiohttp server whose every request hangs (never answers) until ``stop``;
    ``count`` requests received, ``event`` set on each."""

    def __init__(self) -> None:
        self.count = 0
        self.event = asyncio.Event()
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.count += 1
        self.event.set()
        await self._release.wait()
        return web.Response(status=200)

    async def start(self) -> Hang:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()


async def eventually(check: Callable[[], bool], timeout: float = 10.0,
                     step: float = 0.02) -> None:
    """Wait until ``check()`` is true (polling), or fail."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(step)


def run_async(coro: Awaitable[Any]) -> Any:
    return asyncio.get_event_loop().run_until_complete(coro)
