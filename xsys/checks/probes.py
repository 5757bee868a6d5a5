"""The probes: one coroutine per kind, each answering whether a service is up.

Every probe returns a ``ProbeResult`` (``ok``, ``fail`` with the reason, or ``unknown``
when the answer cannot be had, such as no Docker engine) and is bounded by the check's
``timeout_s`` by its caller (``xsys.checks.service``). Nothing here blocks the loop: the
process lookups run through the runner's thread pool (``run_blocking``); commands run as
child processes without a shell, killed at the timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import psutil

from xsys.checks.config import (
    CheckConfig,
    CommandProbe,
    DockerProbe,
    HttpProbe,
    ProcessProbe,
    split_host_port,
)
from xsys.checks.docker import DockerEngine, EngineError, EngineUnavailable

if TYPE_CHECKING:
    import aiohttp

T = TypeVar("T")

Outcome = Literal["ok", "fail", "unknown"]

#: Bytes of a failing command's stderr kept for the error message.
STDERR_TAIL_BYTES = 512

#: Seconds a command's stderr is still read after it exited (see ``run_argv``).
STDERR_GRACE_S = 0.2


@dataclass(frozen=True)
class ProbeResult:
    """One probe's answer: ``outcome`` (ok|fail|unknown) and, unless ok, ``error`` (why)."""

    outcome: Outcome
    error: str = ""


OK = ProbeResult("ok")


def fail(error: str) -> ProbeResult:
    """A failed probe with its reason."""
    return ProbeResult("fail", error)


class ProbeRuntime(Protocol):
    """What probes need: ``run_blocking`` (the thread pool), an ``http`` session and the
    ``engine(host)`` of a Docker host."""

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in the thread pool."""
        ...

    def http(self) -> aiohttp.ClientSession:
        """The shared HTTP session of the checks."""
        ...

    def engine(self, host: str) -> DockerEngine:
        """The Docker engine client for the probe's ``host`` (resolved)."""
        ...


async def probe_tcp(address: str) -> ProbeResult:
    """``address`` (``host:port``) accepts a TCP connection (closed at once)."""
    host, port = split_host_port(address)
    try:
        _reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        return fail(f"connect {address}: {exc.strerror or exc}")
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return OK


async def probe_http(cfg: HttpProbe, session: aiohttp.ClientSession,
                     timeout_s: float) -> ProbeResult:
    """GET ``cfg.url``: status in range, body and headers as ``HttpProbe`` says."""


    import aiohttp

    try:
        async with session.get(cfg.url, allow_redirects=False,
                               timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            lo, hi = cfg.status
            if not lo <= resp.status <= hi:
                return fail(f"HTTP {resp.status}, expected {lo}..{hi}")
            for name, want in cfg.header.items():
                got = resp.headers.get(name)
                if got is None:
                    return fail(f"no {name} header")
                if want not in got:
                    return fail(f"header {name}: {got!r} does not contain {want!r}")
            if cfg.body_contains:
                body = await resp.content.read(cfg.max_body_bytes)
                if cfg.body_contains.encode() not in body:
                    return fail(f"body does not contain {cfg.body_contains!r}")
    except aiohttp.ClientError as exc:
        return fail(f"GET {cfg.url}: {exc or type(exc).__name__}")
    return OK


def find_process(cfg: ProcessProbe) -> str | None:
    """Blocking: ``None`` when a matching live process exists, else why not."""
    if cfg.pidfile:
        try:
            with open(cfg.pidfile, encoding="ascii") as f:
                text = f.read(64).strip()
        except OSError as exc:
            return f"pidfile {cfg.pidfile}: {exc.strerror}"
        if not text.isdigit():
            return f"pidfile {cfg.pidfile}: no pid in it"
        pid = int(text)
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return f"pid {pid} (from {cfg.pidfile}) is a zombie"
        except psutil.Error:
            return f"pid {pid} (from {cfg.pidfile}) is not running"
        return None
    pattern = re.compile(cfg.cmdline) if cfg.cmdline else None
    for proc in psutil.process_iter(["name", "cmdline", "status"]):
        info = proc.info
        if info.get("status") == psutil.STATUS_ZOMBIE:
            continue
        argv = info.get("cmdline") or []
        if pattern is not None:
            if pattern.search(" ".join(argv)):
                return None
            continue
        names = {info.get("name") or ""} | {os.path.basename(a) for a in argv[:2]}
        if cfg.name in names:
            return None
    if pattern is not None:
        return f"no process matches cmdline {cfg.cmdline!r}"
    return f"no process named {cfg.name!r}"


async def probe_process(cfg: ProcessProbe, runtime: ProbeRuntime) -> ProbeResult:
    """A process of ``cfg`` is alive (looked up in the thread pool)."""
    why = await runtime.run_blocking(find_process, cfg)
    return OK if why is None else fail(why)


async def run_argv(argv: tuple[str, ...], timeout_s: float,
                   capture_stderr: bool = True) -> tuple[int | None, str]:
    """Run ``argv`` (no shell, stdin and stdout to /dev/null) in a session of its own;
    returns (exit code, the tail of its stderr). At ``timeout_s`` its process group is
    killed and the code is None. The program is done when it exits, even when something
    it started still holds its stderr (that is read for ``STDERR_GRACE_S`` more, then
    let go). ``capture_stderr=False`` (restart commands, which may leave a daemon
    behind): stderr goes to /dev/null. Raises ``OSError`` when it cannot start."""
    loop = asyncio.get_running_loop()
    read_fd, write_fd = os.pipe() if capture_stderr else (-1, -1)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=write_fd if capture_stderr else asyncio.subprocess.DEVNULL,
            start_new_session=True)
    except BaseException:
        if capture_stderr:
            os.close(read_fd)
            os.close(write_fd)
        raise
    tail = b""
    transport: asyncio.ReadTransport | None = None
    reader_task: asyncio.Future[None] | None = None
    if capture_stderr:
        os.close(write_fd)
        stream = asyncio.StreamReader(limit=STDERR_TAIL_BYTES * 8)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(stream), os.fdopen(read_fd, "rb", 0))

        async def drain() -> None:
            nonlocal tail
            while chunk := await stream.read(4096):
                tail = (tail + chunk)[-STDERR_TAIL_BYTES:]

        reader_task = asyncio.ensure_future(drain())
    code: int | None = None
    try:
        code = await asyncio.wait_for(proc.wait(), timeout_s)
    except asyncio.TimeoutError:
        _kill(proc)
        await proc.wait()
    except asyncio.CancelledError:
        _kill(proc)  # reaped by asyncio's child watcher
        raise
    finally:
        if reader_task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(reader_task), STDERR_GRACE_S)
            reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader_task
        if transport is not None:
            transport.close()
    return code, tail.decode("utf-8", "replace").strip()


def _kill(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the process group of ``proc`` (its own session) and ``proc`` itself."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()


async def probe_command(cfg: CommandProbe, timeout_s: float) -> ProbeResult:
    """``cfg.argv`` exits 0 within ``timeout_s``."""
    try:
        code, err = await run_argv(cfg.argv, timeout_s)
    except OSError as exc:
        return fail(f"cannot run {cfg.argv[0]}: {exc.strerror or exc}")
    if code is None:
        return fail(f"{cfg.argv[0]} did not finish within {timeout_s:g}s (killed)")
    if code != 0:
        detail = f": {err.splitlines()[-1]}" if err else ""
        return fail(f"{cfg.argv[0]} exited with {code}{detail}")
    return OK


async def probe_docker(cfg: DockerProbe, runtime: ProbeRuntime,
                       timeout_s: float) -> ProbeResult:
    """The container runs and, with a healthcheck, is healthy; no engine = unknown."""


    import aiohttp

    try:
        state = await runtime.engine(cfg.host).inspect(cfg.container, timeout_s)
    except EngineUnavailable as exc:
        return ProbeResult("unknown", str(exc))
    except EngineError as exc:
        if exc.status == 404:
            return fail(f"no container {cfg.container!r}")
        return fail(f"Docker engine: HTTP {exc.status}: {exc}")
    except (aiohttp.ClientError, ValueError) as exc:
        return ProbeResult("unknown", f"Docker engine: {exc or type(exc).__name__}")
    if not state.running:
        return fail(f"container {cfg.container} is {state.status or 'not running'}")
    if state.health is not None and state.health != "healthy":
        return fail(f"container {cfg.container} is {state.health}")
    return OK


def probe(check: CheckConfig, runtime: ProbeRuntime) -> Awaitable[ProbeResult]:
    """The probe coroutine of ``check`` (not yet bounded by its timeout)."""
    if check.tcp is not None:
        return probe_tcp(check.tcp)
    if check.http is not None:
        return probe_http(check.http, runtime.http(), check.timeout_s)
    if check.process is not None:
        return probe_process(check.process, runtime)
    if check.command is not None:
        return probe_command(check.command, check.timeout_s)
    assert check.docker is not None
    return probe_docker(check.docker, runtime, check.timeout_s)
