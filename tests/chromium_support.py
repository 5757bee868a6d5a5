"""Headless Debian ``chromium`` driven over the DevTools protocol (CDP) with aiohttp's
WebSocket client: no Playwright, no browser download. Used by tests/test_dashboard.py and
bench/dashboard.py.

``async with Chromium.launch(workdir) as browser:`` starts ``chromium --headless`` on a
free debugging port (profile and log in ``workdir``) and attaches to its page;
``browser.send(method, **params)`` runs one CDP command, ``evaluate(expr)`` returns a
JavaScript value, ``wait_for(expr)`` polls an expression until it is truthy,
``console_errors`` collects console errors, uncaught exceptions and error log entries,
``responses`` the network responses (``Network`` domain). ``ChromiumUnavailable`` says why
the browser cannot run (not installed, does not start) so callers can skip.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

#: Debian's package names its binary ``chromium``; other distributions differ.
CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
#: Seconds the browser may take to open its debugging port.
START_TIMEOUT_S = 60.0
#: Seconds one CDP command may take.
COMMAND_TIMEOUT_S = 60.0


class ChromiumUnavailable(RuntimeError):
    """Chromium is not installed or does not start here (the message says which)."""


def find_chromium() -> str:
    """The browser's path; raises ``ChromiumUnavailable``."""
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    raise ChromiumUnavailable("Debian's chromium is not installed (`make test-deps` "
                              "installs it: apt-get install chromium)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Chromium:
    """One headless browser process and a CDP session on its first page."""

    def __init__(self, proc: subprocess.Popen[bytes], log_path: Path,
                 session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.proc = proc
        self.log_path = log_path
        self._session = session
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self.console_errors: list[str] = []
        self.responses: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    @contextlib.asynccontextmanager
    async def launch(cls, workdir: Path, width: int = 1280,
                     height: int = 1000) -> AsyncIterator[Chromium]:
        """Start the browser (see the module docstring); stops it on exit."""
        binary = find_chromium()
        port = _free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        log_path = workdir / "chromium.log"
        args = [binary, "--headless=new", f"--remote-debugging-port={port}",
                "--remote-debugging-address=127.0.0.1", f"--user-data-dir={workdir / 'profile'}",
                "--no-first-run", "--no-default-browser-check", "--disable-gpu",
                "--disable-extensions", "--disable-background-networking", "--disable-sync",
                "--disable-component-update", "--disable-dev-shm-usage", "--mute-audio",
                f"--window-size={width},{height}", "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run as root otherwise
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True)
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        browser: Chromium | None = None
        try:
            page_url = await cls._page_url(proc, port, session, log_path)
            ws = await session.ws_connect(page_url, max_msg_size=0)
            browser = cls(proc, log_path, session, ws)
            for domain in ("Page", "Runtime", "Log", "Network"):
                await browser.send(f"{domain}.enable")
            yield browser
        finally:
            if browser is not None:
                await browser.close()
            await session.close()
            _stop(proc)

    @staticmethod
    async def _page_url(proc: subprocess.Popen[bytes], port: int,
                        session: aiohttp.ClientSession, log_path: Path) -> str:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise ChromiumUnavailable(f"chromium exited with {proc.returncode}: {tail}")
            try:
                async with session.get(f"http://127.0.0.1:{port}/json/list") as r:
                    targets = await r.json()
                pages = [t for t in targets if t.get("type") == "page"]
                if pages:
                    return str(pages[0]["webSocketDebuggerUrl"])
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                pass
            await asyncio.sleep(0.2)
        raise ChromiumUnavailable(f"chromium did not open its debugging port within "
                                  f"{START_TIMEOUT_S:.0f} s")

    async def _read(self) -> None:
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if "id" in data:
                fut = self._pending.pop(data["id"], None)
                if fut is not None and not fut.done():
                    if "error" in data:
                        fut.set_exception(RuntimeError(f"CDP error: {data['error']}"))
                    else:
                        fut.set_result(data.get("result", {}))
                continue
            self._event(data.get("method", ""), data.get("params", {}))
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(RuntimeError("the DevTools connection closed"))

    def _event(self, method: str, params: dict[str, Any]) -> None:
        self.events.append({"method": method, "params": params})
        if method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            text = " ".join(str(a.get("value", a.get("description", "")))
                            for a in params.get("args", []))
            self.console_errors.append(f"console.error: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            exc = details.get("exception", {})
            self.console_errors.append(
                f"exception: {exc.get('description') or details.get('text')}")
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            if entry.get("level") == "error":
                self.console_errors.append(f"log: {entry.get('text')} {entry.get('url', '')}")
        elif method == "Network.loadingFinished":
            self.responses.append({"requestId": params.get("requestId"),
                                   "encodedDataLength": params.get("encodedDataLength", 0)})
        elif method == "Network.responseReceived":
            resp = params.get("response", {})
            self.responses.append({"requestId": params.get("requestId"),
                                   "url": resp.get("url"), "status": resp.get("status")})

    async def send(self, method: str, **params: Any) -> Any:
        """Run one CDP command; its result (raises ``RuntimeError`` for a CDP error)."""
        msg_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = fut
        await self._ws.send_str(json.dumps({"id": msg_id, "method": method,
                                            "params": params}))
        return await asyncio.wait_for(fut, COMMAND_TIMEOUT_S)

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of ``expression`` in the page (None when it throws)."""
        result = await self.send("Runtime.evaluate", expression=expression,
                                 returnByValue=True)
        if "exceptionDetails" in result:
            return None
        return result.get("result", {}).get("value")

    async def wait_for(self, expression: str, timeout_s: float = 30.0) -> Any:
        """Poll ``expression`` every 50 ms until it is truthy; its value. Raises
        ``TimeoutError`` with the last value."""
        deadline = time.monotonic() + timeout_s
        value: Any = None
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.05)
        raise TimeoutError(f"{expression!r} still {value!r} after {timeout_s} s")

    async def navigate(self, url: str) -> None:
        """Load ``url`` and wait for its ``load`` event."""
        self.events.clear()
        await self.send("Page.navigate", url=url)
        await self.wait_for("document.readyState === 'complete' && location.href !== "
                            "'about:blank'")

    async def screenshot(self, path: Path) -> Path:
        """Save a PNG of the page at ``path``."""
        result = await self.send("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(result["data"]))
        return path

    async def close(self) -> None:
        """Close the CDP connection (the process is stopped by ``launch``)."""
        await self._ws.close()
        self._reader.cancel()
        with contextlib.suppress(BaseException):
            await self._reader


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait(timeout=10)
