"""The service checks of one daemon: a task per check probing on its interval, the state
machine (up, down, unknown, failed), restarts with backoff, and the views behind
``checks.*``, ``/health`` and ``xsys_check_*``.

Each check runs in its own task on the loop, on a fixed grid of ``interval_s`` (a slow
probe delays its own check only; missed slots are skipped, not bunched), bounded by its
``timeout_s``; blocking work (process lookups) goes to the runner's thread pool. State
changes go to the in-process listeners (``checks.subscribe``) and, every probe, the
alert level to ``report`` (the composition root feeds it to the monitor's rules, so
service alerts share its providers, silences and history):

- 0: up, unknown, or down for less than ``duration_s``;
- 1: down for ``duration_s`` or longer;
- 2: failed (restarts given up).

The service never sees the App: it takes a ``Runner`` (``run_blocking``, ``spawn``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from xsys.checks.config import CheckConfig
from xsys.checks.docker import DockerEngine, resolve_host
from xsys.checks.model import CheckHealth, ServiceCheck, State
from xsys.checks.probes import ProbeResult, fail, probe, run_argv
from xsys.protocol import NotFound, Overloaded

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Extra seconds past ``timeout_s`` before a probe with its own timeout (http, command,
#: docker) is abandoned by the service.
TIMEOUT_GRACE_S = 1.0

#: The alert value of each level (see the module docstring).
LEVEL_OK, LEVEL_DOWN, LEVEL_FAILED = 0.0, 1.0, 2.0

Report = Callable[[str, float, bool], None]
"""``report(name, level, critical)``: the alert level of a check after a probe."""
Forget = Callable[[str], None]
"""``forget(name)``: a check left the config (its alert resolves)."""
Listener = Callable[[ServiceCheck, State], None]
"""``listener(row, previous_state)`` on each state change (loop thread, must not block)."""


class Runner(Protocol):
    """What the checks need of the daemon (``xsys.server.app.App`` has it)."""

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in the bounded thread pool (may raise ``Overloaded``)."""
        ...

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        """A background task cancelled and awaited at shutdown."""
        ...


def target_of(cfg: CheckConfig) -> str:
    """What a check probes, for people: the address, URL, process, argv or container."""
    if cfg.tcp is not None:
        return cfg.tcp
    if cfg.http is not None:
        return cfg.http.url
    if cfg.process is not None:
        p = cfg.process
        return (f"name={p.name}" if p.name else f"cmdline~{p.cmdline}" if p.cmdline
                else f"pidfile={p.pidfile}")
    if cfg.command is not None:
        return " ".join(cfg.command.argv)
    assert cfg.docker is not None
    return f"container {cfg.docker.container}"


@dataclass
class CheckState:
    """The mutable state of one check (loop thread)."""

    config: CheckConfig
    state: State = "unknown"
    since: float = 0.0
    last_error: str | None = None
    latency_s: float | None = None
    last_run_at: float | None = None
    failures: int = 0
    restarts: int = 0
    restart_times: collections.deque[float] = field(default_factory=collections.deque)
    next_restart_at: float = 0.0
    backoff_s: float = 0.0
    reported_level: float = LEVEL_OK
    task: asyncio.Task[None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def to_wire(self) -> ServiceCheck:
        """The ``checks.status`` row."""
        c = self.config
        return {"name": c.name, "probe": c.probe,  # type: ignore[typeddict-item]
                "target": target_of(c), "state": self.state, "since": self.since,
                "last_error": self.last_error,
                "latency_ms": None if self.latency_s is None else self.latency_s * 1000,
                "last_run_at": self.last_run_at, "consecutive_failures": self.failures,
                "restarts": self.restarts, "critical": c.critical,
                "interval_s": c.interval_s}


class ChecksService:
    """The checks of ``configs`` (see the module docstring). ``runner``: the thread pool
    and background tasks; ``report``/``forget``: the alert hook (None: no alerts);
    ``clock``: epoch seconds."""

    def __init__(self, configs: tuple[CheckConfig, ...], runner: Runner,
                 report: Report | None = None, forget: Forget | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.runner = runner
        self.report = report
        self.forget = forget
        self.clock = clock
        now = clock()
        self.checks: dict[str, CheckState] = {
            c.name: CheckState(c, since=now, backoff_s=_first_backoff(c)) for c in configs}
        self._listeners: dict[int, Listener] = {}
        self._next_listener = 0
        self._session: aiohttp.ClientSession | None = None
        self._engines: dict[str, DockerEngine] = {}
        self.started = False

    # ------------------------------------------------------------------ probe runtime

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """The runner's thread pool (probes use it)."""
        return await self.runner.run_blocking(fn, *args)

    def http(self) -> aiohttp.ClientSession:
        """The shared HTTP session of the http probes (made on first use)."""

        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": "xsys-checks"},
                connector=aiohttp.TCPConnector(limit=0, force_close=True))
        return self._session

    def engine(self, host: str) -> DockerEngine:
        """The Docker engine client of ``host`` (``resolve_host``), one per address."""
        address = resolve_host(host)
        eng = self._engines.get(address)
        if eng is None:
            eng = self._engines[address] = DockerEngine(address)
        return eng

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start one task per check (each probes at once, then every ``interval_s``)."""
        if self.started:
            return
        self.started = True
        for st in self.checks.values():
            self._start_task(st)
        if self.checks:
            log.info("checks started: %s", ", ".join(self.checks))

    def _start_task(self, st: CheckState) -> None:
        st.task = self.runner.spawn(self._loop(st), f"check-{st.config.name}")

    async def stop(self) -> None:
        """Cancel and await every check's task; close the HTTP and Docker sessions."""
        self.started = False
        tasks = [st.task for st in self.checks.values() if st.task is not None]
        for st in self.checks.values():
            st.task = None
        await _cancel(tasks)
        if self._session is not None:
            await self._session.close()
            self._session = None
        for eng in self._engines.values():
            await eng.close()
        self._engines.clear()

    def reload(self, configs: tuple[CheckConfig, ...]) -> None:
        """Apply a new ``checks`` list (loop thread): unchanged checks go on as they were;
        a changed one keeps its state and restarts its task; removed ones stop (their
        alert resolves); new ones start."""
        wanted = {c.name: c for c in configs}
        stale: list[asyncio.Task[None]] = []
        for name in [n for n in self.checks if n not in wanted]:
            st = self.checks.pop(name)
            if st.task is not None:
                stale.append(st.task)
            if self.forget is not None:
                self.forget(name)
        now = self.clock()
        ordered: dict[str, CheckState] = {}
        for name, cfg in wanted.items():
            existing = self.checks.get(name)
            if existing is None:
                st = CheckState(cfg, since=now, backoff_s=_first_backoff(cfg))
                if self.started:
                    self._start_task(st)
            else:
                st = existing
            if existing is not None and st.config != cfg:
                st.config = cfg
                st.backoff_s = _first_backoff(cfg)
                if st.task is not None:
                    stale.append(st.task)
                if self.started:
                    self._start_task(st)
            ordered[name] = st
        self.checks = ordered
        for task in stale:
            task.cancel()
        log.info("checks reconfigured: %s", ", ".join(self.checks) or "none")

    # ------------------------------------------------------------------ running

    async def _loop(self, st: CheckState) -> None:
        """Probe at once, then on the grid of multiples of ``interval_s`` of the loop's
        clock: checks of one interval wake together (one wakeup for all of them: what
        keeps 100 checks cheap), each probing concurrently."""
        loop = asyncio.get_running_loop()
        next_at = math.floor(loop.time() / st.config.interval_s) * st.config.interval_s
        while True:
            try:
                await self._run(st)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("check %s: probe round failed", st.config.name)
            interval = st.config.interval_s
            next_at += interval
            now = loop.time()
            if next_at <= now:
                next_at += (math.floor((now - next_at) / interval) + 1) * interval
            await asyncio.sleep(next_at - now)

    async def run(self, name: str) -> ServiceCheck:
        """Probe ``name`` now (after a probe of it in flight) and return its row.
        Raises ``NotFound`` for a name that is not configured."""
        st = self.checks.get(name)
        if st is None:
            raise NotFound(f"no check {name!r} (checks: {', '.join(self.checks) or 'none'})",
                           {"name": name, "checks": list(self.checks)})
        await self._run(st)
        return st.to_wire()

    async def _run(self, st: CheckState) -> None:
        async with st.lock:
            result, latency = await self._probe(st.config)
            previous = st.state
            self._apply(st, result, latency)
            if result.outcome == "fail" and st.config.restart is not None:
                await self._maybe_restart(st)
            if st.state != previous:
                self._changed(st, previous)
            self._report(st)

    async def _probe(self, cfg: CheckConfig) -> tuple[ProbeResult, float]:
        own_timeout = cfg.tcp is None and cfg.process is None
        limit = cfg.timeout_s + (TIMEOUT_GRACE_S if own_timeout else 0.0)
        started = time.perf_counter()
        try:
            result = await asyncio.wait_for(probe(cfg, self), limit)
        except asyncio.TimeoutError:
            result = fail(f"timed out after {cfg.timeout_s:g}s")
        except Overloaded:
            result = ProbeResult("unknown", "the daemon's thread pool is busy")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("check %s: the %s probe raised", cfg.name, cfg.probe)
            result = fail(f"probe error: {exc!r}")
        return result, time.perf_counter() - started

    def _apply(self, st: CheckState, result: ProbeResult, latency_s: float) -> None:
        now = self.clock()
        st.last_run_at = now
        st.latency_s = latency_s
        cfg = st.config
        if result.outcome == "ok":
            st.failures = 0
            st.last_error = None
            st.backoff_s = _first_backoff(cfg)
            st.next_restart_at = 0.0
            self._set(st, "up", now)
            return
        st.last_error = result.error
        if result.outcome == "unknown":
            if st.state != "failed":
                self._set(st, "unknown", now)
            return
        st.failures += 1
        if st.failures >= cfg.retries and st.state not in ("down", "failed"):
            self._set(st, "down", now)

    @staticmethod
    def _set(st: CheckState, state: State, now: float) -> None:
        if st.state != state:
            st.state = state
            st.since = now

    async def _maybe_restart(self, st: CheckState) -> None:
        cfg = st.config
        rcfg = cfg.restart
        assert rcfg is not None
        if st.state == "failed" or st.failures < rcfg.restart_after:
            return
        now = self.clock()
        if now < st.next_restart_at:
            return
        while st.restart_times and st.restart_times[0] <= now - rcfg.restart_window_s:
            st.restart_times.popleft()
        if len(st.restart_times) >= rcfg.max_restarts:
            self._set(st, "failed", now)
            log.error("check %s: still failing after %d restarts within %gs; giving up "
                      "(state failed): %s", cfg.name, len(st.restart_times),
                      rcfg.restart_window_s, st.last_error)
            return
        st.restart_times.append(now)
        st.restarts += 1
        st.next_restart_at = now + st.backoff_s
        st.backoff_s = min(max(st.backoff_s * 2, rcfg.backoff_s), rcfg.backoff_max_s)
        log.warning("check %s: restart %d (%d within %gs) after %d failures: %s", cfg.name,
                    st.restarts, len(st.restart_times), rcfg.restart_window_s, st.failures,
                    st.last_error)
        error = await self._restart(cfg)
        if error:
            log.error("check %s: restart failed: %s", cfg.name, error)
        else:
            log.info("check %s: restart done", cfg.name)

    async def _restart(self, cfg: CheckConfig) -> str | None:
        """Run the restart action; returns why it failed, or None."""
        rcfg = cfg.restart
        assert rcfg is not None
        try:
            if rcfg.command:
                # stderr to /dev/null: a daemon it starts must not write into a pipe
                # that is closed later (SIGPIPE)
                code, _ = await run_argv(rcfg.command, rcfg.timeout_s, capture_stderr=False)
                if code is None:
                    return f"{rcfg.command[0]} did not finish within {rcfg.timeout_s:g}s"
                if code != 0:
                    return f"{rcfg.command[0]} exited with {code}"
                return None
            assert cfg.docker is not None
            await asyncio.wait_for(
                self.engine(cfg.docker.host).restart(cfg.docker.container, rcfg.timeout_s),
                rcfg.timeout_s + TIMEOUT_GRACE_S)
        except asyncio.TimeoutError:
            return f"timed out after {rcfg.timeout_s:g}s"
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return str(exc) or type(exc).__name__
        return None

    def _report(self, st: CheckState) -> None:
        if self.report is None:
            return
        level = LEVEL_OK
        if st.state == "failed":
            level = LEVEL_FAILED
        elif st.state == "down" and self.clock() - st.since >= st.config.duration_s:
            level = LEVEL_DOWN
        if level == LEVEL_OK and st.reported_level == LEVEL_OK:
            return  # nothing firing, nothing to resolve: the rule would do nothing
        st.reported_level = level
        try:
            self.report(st.config.name, level, st.config.critical)
        except Exception:
            log.exception("check %s: reporting its alert level failed", st.config.name)

    def _changed(self, st: CheckState, previous: State) -> None:
        cfg = st.config
        lvl = logging.INFO if st.state == "up" else logging.WARNING
        log.log(lvl, "check %s: %s -> %s%s", cfg.name, previous, st.state,
                f" ({st.last_error})" if st.last_error and st.state != "up" else "")
        row = st.to_wire()
        for listener in list(self._listeners.values()):
            try:
                listener(row, previous)
            except Exception:
                log.exception("check listener %r failed", listener)

    # ------------------------------------------------------------------ views

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(row, previous_state)`` on every state change; returns the
        unsubscribe function (idempotent)."""
        key = self._next_listener
        self._next_listener += 1
        self._listeners[key] = listener

        def unsubscribe() -> None:
            self._listeners.pop(key, None)

        return unsubscribe

    @property
    def subscribers(self) -> int:
        """Listeners subscribed now."""
        return len(self._listeners)

    def status(self) -> list[ServiceCheck]:
        """Every check's row, in config order."""
        return [st.to_wire() for st in list(self.checks.values())]

    def health(self) -> dict[str, CheckHealth]:
        """Every check for ``/health``: name -> ``{status, message, since, latency_ms,
        critical}`` (``message``: the last error, or ``""``)."""
        out: dict[str, CheckHealth] = {}
        for st in list(self.checks.values()):
            out[st.config.name] = {
                "status": st.state, "message": st.last_error or "", "since": st.since,
                "latency_ms": None if st.latency_s is None else round(st.latency_s * 1000, 3),
                "critical": st.config.critical}
        return out


def _first_backoff(cfg: CheckConfig) -> float:
    return cfg.restart.backoff_s if cfg.restart is not None else 0.0


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
