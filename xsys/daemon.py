"""The composition root: the only module that knows every part of the daemon.

It loads the config, builds the app (thread pool, hooks), the host sampler and every
service into one typed ``Services``, declares every method on the router, and starts the
listeners (the Unix socket and, when enabled, the HTTP gateway). It handles the signals
(SIGTERM/SIGINT: graceful stop; SIGHUP: reload) and shuts everything down.

Handlers reach a service as ``ctx.app.services.<name>`` (``Services`` below); a service
never sees the App, only what it is given here.


Shutdown has one deadline, ``server.shutdown_timeout_s`` after the signal: requests in
flight get most of it, shutdown hooks and the thread pool the rest. Under ``serve`` (the
``xsys serve`` process) a worker job still stuck at the deadline is logged and the process
leaves at once without joining it (``os._exit``), and a watchdog thread does the same
``EXIT_GRACE_S`` after the deadline whatever else hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from xsys import __version__
from xsys.alerts.metrics import AlertMetrics
from xsys.checks.metrics import ChecksCollector
from xsys.checks.service import ChecksService
from xsys.config import (
    Config,
    ConfigError,
    LoadedConfig,
    load_config,
    looks_like_tinymonitor,
    to_dict,
)
from xsys.fs.service import FsService
from xsys.handlers import register_all
from xsys.host import Sampler
from xsys.http import install as install_http
from xsys.http.token import state_dir
from xsys.live import SnapshotHub
from xsys.metrics import AppMetricsCollector, MetricsService
from xsys.monitor.config import convert_tinymonitor
from xsys.monitor.service import MonitorService
from xsys.proc.service import ProcService
from xsys.protocol import default_socket_path
from xsys.push.metrics import PushCollector
from xsys.push.service import PushService
from xsys.server import systemd
from xsys.server.app import App
from xsys.server.listener import DaemonAlreadyRunning, Server
from xsys.server.logs import setup_logging
from xsys.server.memory import tune_malloc
from xsys.server.router import Router
from xsys.watch.service import WatchService

log = logging.getLogger(__name__)

#: Seconds past the shutdown deadline after which the watchdog ends the process.
EXIT_GRACE_S = 2.0


def exit_now(code: int) -> None:
    """Flush the log handlers and leave the process at once with ``code``, without
    joining threads (a stuck worker would otherwise hold the exit forever)."""
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    os._exit(code)


def arm_exit_watchdog(after_s: float) -> threading.Timer:
    """Start a daemon thread that, unless the process has exited by then, logs the threads
    still alive and ends it with exit code 1 ``after_s`` seconds from now."""

    def expire() -> None:
        alive = [t.name for t in threading.enumerate()
                 if t is not threading.current_thread() and t.is_alive()]
        log.error("shutdown still not finished %.1fs after the signal; exiting without "
                  "joining threads: %s", after_s, ", ".join(alive) or "none")
        exit_now(1)

    timer = threading.Timer(after_s, expire)
    timer.daemon = True
    timer.name = "xsys-exit-watchdog"
    timer.start()
    return timer


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else k))
        return out
    return {prefix: tree}


def _names(registry: CollectorRegistry) -> list[str]:
    """The metric names ``registry``'s described collectors expose (app metrics may not
    take them; the undescribed ones use the reserved prefixes, ``xsys.metrics.store``)."""
    return list(getattr(registry, "_names_to_collectors", {}))


@dataclass
class Services:
    """Every service of one daemon, typed (handlers: ``ctx.app.services.fs``...).

    - ``sampler``: the host sampler (``sys.*`` percentages and rates, the monitor).
    - ``fs``: the sandboxed file service (rebuilt when ``fs`` or the frame limit changes on
      reload).
    - ``watch``: file-change subscriptions.
    - ``monitor``: the monitor (checks, rules, alert delivery).
    - ``metrics_registry``: the Prometheus registry behind ``/metrics``; ``alert_metrics``:
      the monitor's metric objects on it (kept across monitor reloads).
    - ``metrics``: the app metrics (``metrics.*``); ``metrics_collector``: their
      collector on ``metrics_registry`` (``/metrics`` renders them by its fast path,
      ``xsys.metrics.exposition``).
    - ``checks``: the service checks (``checks.*``, ``/health``, ``xsys_check_*``); their
      alerts go through the monitor (``MonitorService.observe``).
    - ``live``: the snapshot hub (``sys.subscribe``, ``/ws``, push mode: live snapshot
      streams over ``sampler``; ``xsys.live``).
    - ``proc``: the supervised worker groups (``proc.*``); a failed group raises a
      critical alert through the monitor (``MonitorService.observe``, check ``proc``,
      component ``proc:<name>``).
    - ``daemon``: the running ``Daemon`` (None when only composed, as in tests).
    """

    sampler: Sampler
    fs: FsService
    watch: WatchService
    monitor: MonitorService
    metrics_registry: CollectorRegistry
    alert_metrics: AlertMetrics
    checks: ChecksService
    metrics: MetricsService
    metrics_collector: AppMetricsCollector
    live: SnapshotHub
    proc: ProcService
    push: PushService = field(init=False)
    daemon: Daemon | None = None


def build_services(app: App) -> Services:
    """The services of ``app``, nothing started yet, wired to its life: the sampler starts
    first (``Daemon.run``); the monitor starts and stops with the app's hooks (its drain
    budget within ``server.shutdown_timeout_s``) and is reconfigured on reload; the fs
    service is rebuilt on a reload that changes its config; watches stop at shutdown."""
    cfg = app.config
    registry = CollectorRegistry()
    metrics = AlertMetrics(registry)
    sampler = Sampler(cfg.sys.sample_interval_s)
    app_metrics = MetricsService(cfg.metrics, reserved=lambda: _names(registry))
    services = Services(sampler=sampler,
                        fs=FsService(cfg.fs, cfg.server.max_frame_bytes),
                        watch=WatchService(cfg.watch),
                        monitor=MonitorService(app, sampler=sampler, metrics=metrics),
                        metrics_registry=registry, alert_metrics=metrics,
                        checks=_build_checks(app, monitor_of=lambda: services.monitor),
                        metrics=app_metrics, metrics_collector=AppMetricsCollector(app_metrics),
                        live=SnapshotHub(sampler, app, lambda: app.config.sys,
                                         monitor_states=lambda: _monitor_states(services),
                                         check_states=lambda: {
                                             "checks": services.checks.status()}),
                        proc=_build_proc(app, monitor_of=lambda: services.monitor))
    registry.register(services.metrics_collector)

    def reload_fs(old: Config, new: Config) -> None:
        if old.fs != new.fs or old.server.max_frame_bytes != new.server.max_frame_bytes:
            services.fs = FsService(new.fs, new.server.max_frame_bytes)

    async def stop_monitor() -> None:
        budget = min(app.config.monitor.alerts.drain_timeout_s,
                     max(0.1, app.config.server.shutdown_timeout_s * 0.6))
        await services.monitor.stop(budget)

    app.on_reload.append(reload_fs)
    app.on_reload.append(lambda old, new: services.metrics.reconfigure(new.metrics))
    app.on_reload.append(lambda old, new: services.monitor.reload(new.monitor))
    app.on_startup.append(services.monitor.start)
    app.on_shutdown.append(stop_monitor)
    app.on_shutdown.append(services.watch.stop)
    registry.register(ChecksCollector(services.checks))
    app.on_reload.append(lambda old, new: services.checks.reload(new.checks))
    app.on_startup.append(services.checks.start)  # after the monitor; stops before it
    app.on_shutdown.append(services.checks.stop)
    app.on_shutdown.append(services.live.stop)

    async def stop_proc() -> None:
        await services.proc.stop(max(0.1, app.config.server.shutdown_timeout_s * 0.6))

    app.on_reload.append(lambda old, new: services.proc.reload(new.proc))
    app.on_startup.append(services.proc.start)  # after the monitor; stops before it
    app.on_shutdown.append(stop_proc)
    _add_push(app, services)
    return services


def _add_push(app: App, services: Services) -> None:
    """Push mode: its targets start after the monitor and the hub (their sources) and stop
    before them (spilling what is unsent); a reload restarts only changed targets."""

    def subscribe_alerts(listener: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        return services.monitor.subscribe(lambda alert: listener(dict(alert.to_wire())))

    services.push = PushService(app.config.push, services.live, subscribe_alerts,
                                state_dir())
    services.metrics_registry.register(PushCollector(lambda: services.push))

    def reload_push(old: Config, new: Config) -> None:
        if old.push != new.push:
            app.spawn(services.push.reload(new.push), "xsys-push-reload")

    app.on_reload.append(reload_push)
    app.on_startup.append(services.push.start)
    app.on_shutdown.append(services.push.stop)


def _monitor_states(services: Services) -> dict[str, Any]:
    """The live ``monitor`` section: ``{"firing": count, "checks": [monitor.status
    rows]}``."""
    engine = services.monitor.engine
    return {"firing": len(engine.firing()), "checks": engine.status_rows()}


def _build_proc(app: App, monitor_of: Callable[[], MonitorService]) -> ProcService:
    """The supervisor, its failed groups fed to the monitor's rules as check ``proc``,
    component ``proc:<name>``, unit ``proc_failed`` (1: failed, critical)."""

    def alert(name: str, error: str | None) -> None:
        if error is None:
            monitor_of().forget("proc", f"proc:{name}")
        else:
            monitor_of().observe("proc", f"proc:{name}", 1.0, "proc_failed", None, 1.0)

    return ProcService(app.config.proc, app, alert=alert)


def _build_checks(app: App, monitor_of: Callable[[], MonitorService]) -> ChecksService:
    """The service checks, their alert levels fed to the monitor's rules as check
    ``service``, component ``service:<name>`` (unit ``check_state``: 1 down, 2 failed; a
    critical check's down is critical, else warning; failed is always critical)."""

    def report(name: str, level: float, critical: bool) -> None:
        warning, crit = (None, 1.0) if critical else (1.0, 2.0)
        monitor_of().observe("service", f"service:{name}", level, "check_state", warning,
                             crit)

    def forget(name: str) -> None:
        monitor_of().forget("service", f"service:{name}")

    return ChecksService(app.config.checks, app, report=report, forget=forget)


def compose(config: Config, config_file: str | None = None) -> tuple[App, Router]:
    """Build an app with its ``Services`` and a router with every method declared (nothing
    started): what the daemon serves, and what tests and the docs generators use. The
    result schemas are computed on first read (``rpc.methods``), not here."""
    app = App(config, config_file)
    app.services = build_services(app)
    router = Router(lazy_results=True)
    register_all(router, app)
    return app, router


class Daemon:
    """One daemon: ``await Daemon(loaded).run()`` serves until ``stop()`` or a signal."""

    def __init__(
        self,
        loaded: LoadedConfig,
        config_file: str | None = None,
        overrides: Mapping[str, Any] | None = None,
        exit_watchdog: bool = False,
    ) -> None:
        self.loaded = loaded
        self.exit_watchdog = exit_watchdog
        self.config_file = config_file
        self.overrides = dict(overrides or {})
        self.app, self.router = compose(loaded.config, config_file)
        self.services: Services = self.app.services
        self.services.daemon = self
        self.server = Server(self.app, self.router)
        self.socket_path = loaded.config.server.socket or default_socket_path()
        self._stop = asyncio.Event()
        self.ready = asyncio.Event()
        #: Called (loop thread) right after READY is sent.
        self.ready_hooks: list[Callable[[], None]] = []

    def stop(self) -> None:
        """Ask the daemon to shut down gracefully (idempotent, loop thread)."""
        self._stop.set()

    def reload(self) -> bool:
        """Re-read the config cascade (SIGHUP). On error keep the old config, log, and
        return False. Settings that need a restart (socket, workers) are logged; the
        connections of peers no longer allowed are closed (``Server``'s reload callback);
        limits read per connection apply to new connections."""
        systemd.notify("RELOADING=1", f"MONOTONIC_USEC={systemd.monotonic_usec()}",
                       "STATUS=reloading the config")
        try:
            loaded = load_config(self.config_file, overrides=self.overrides)
        except ConfigError as exc:
            log.error("config reload failed, keeping the old config: %s", exc)
            systemd.notify("READY=1", f"STATUS=config reload failed, kept the old one: {exc}")
            return False
        old = _flatten(to_dict(self.app.config))
        new = _flatten(to_dict(loaded.config))
        changed = sorted(k for k in new if old.get(k) != new[k])
        for key in changed:
            if key in ("server.socket", "server.workers", "server.group"):
                log.warning("%s changed; it takes effect after a restart", key)
        self.loaded = loaded
        self.app.reload(loaded.config)
        setup_logging(loaded.config.server.log_level, loaded.config.server.log_format)
        log.info("config reloaded; changed keys: %s", ", ".join(changed) or "none")
        systemd.notify("READY=1", f"STATUS={self._status()}")
        return True

    def _status(self) -> str:
        """The one-line ``STATUS=`` text for the service manager."""
        return (f"serving on {self.server.path or self.socket_path}, "
                f"{len(self.server.connections)} connection(s)")

    async def _watchdog(self, interval_s: float) -> None:
        """Send ``WATCHDOG=1`` (and a fresh ``STATUS=``) every ``interval_s`` / 2 seconds
        while the loop runs: a stalled loop misses pings and systemd restarts the daemon."""
        while True:
            systemd.notify("WATCHDOG=1", f"STATUS={self._status()}")
            await asyncio.sleep(interval_s / 2)

    async def run(self) -> int:
        """Serve until stopped; returns the process exit code (0 clean, 1 startup error)."""
        loop = asyncio.get_running_loop()
        app = self.app
        install_http(app, self.router, self.server)
        try:
            passed = systemd.listen_sockets() if sys.platform != "win32" else []
            await self.services.sampler.start(app, wait=False)
            # the first sample comes ~0.25 s after READY; requests wait for it
            app.warming = self.services.sampler.first_sampled
            await app.start()
            await self.server.start(self.socket_path, passed[0] if passed else None)
        except DaemonAlreadyRunning as exc:
            log.error("%s", exc)
            await app.stop(1.0)
            return 1
        except (OSError, KeyError, ValueError) as exc:
            log.error("cannot start: %s", exc)
            await app.stop(1.0)
            return 1
        installed = []
        if sys.platform != "win32":
            for sig, handler in ((signal.SIGTERM, self.stop), (signal.SIGINT, self.stop),
                                 (signal.SIGHUP, self.reload)):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, handler)
                    installed.append(sig)
        log.info("xsys %s ready on %s (pid %d, %d methods)", __version__, self.socket_path,
                 app.pid, len(self.router.names()))
        self.ready.set()
        systemd.notify("READY=1", f"STATUS={self._status()}", f"MAINPID={os.getpid()}")
        for hook in self.ready_hooks:
            hook()
        interval = systemd.watchdog_interval_s()
        watchdog = (loop.create_task(self._watchdog(interval), name="xsys-sd-watchdog")
                    if interval else None)
        try:
            await self._stop.wait()
        finally:
            timeout = app.config.server.shutdown_timeout_s
            log.info("shutting down (deadline %gs)", timeout)
            systemd.notify("STOPPING=1", "STATUS=shutting down")
            if watchdog is not None:
                watchdog.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watchdog
            if self.exit_watchdog:
                arm_exit_watchdog(timeout + EXIT_GRACE_S)
            deadline = loop.time() + timeout
            # in-flight requests get the deadline less a share kept for hooks and the pool
            await self.server.stop(max(timeout - min(1.0, timeout / 4), 0.0))
            await app.stop(max(deadline - loop.time(), 0.0))
            for sig in installed:
                loop.remove_signal_handler(sig)
            log.info("stopped")
        return 0


def _install_uvloop() -> bool:
    if sys.platform == "win32":
        return False
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def tinymonitor_search_paths(cwd: Path | None = None) -> list[Path]:
    """Where ``xsys serve --tinymonitor`` looks for a config.json, in TinyMonitor's order
    (src/tinymonitor/config.py): ``./config.json`` (the working directory),
    ``~/.config/tinymonitor/config.json``, ``/etc/tinymonitor/config.json``."""
    return [(cwd or Path.cwd()) / "config.json",
            Path("~/.config/tinymonitor/config.json").expanduser(),
            Path("/etc/tinymonitor/config.json")]


def find_tinymonitor_config(cwd: Path | None = None) -> Path | None:
    """The first of ``tinymonitor_search_paths`` that exists (as TinyMonitor: a file found
    ends the search), or None."""
    for path in tinymonitor_search_paths(cwd):
        if path.exists():
            return path
    return None


def serve(
    config_file: str | None = None,
    socket_path: str | None = None,
    log_level: str | None = None,
    log_format: str | None = None,
    use_uvloop: bool = True,
    tinymonitor: bool = False,
) -> int:
    """Run the daemon in the foreground (the ``xsys serve`` command); returns the exit code.

    Flags override the config cascade; a config error prints one line and returns 2.
    ``tinymonitor`` (``--tinymonitor``): without ``config_file``, the first of
    ``tinymonitor_search_paths()`` that exists is used, or TinyMonitor's defaults when none
    does; the file (given or found) must be a TinyMonitor config. When the caller turned
    the garbage collector off for the start-up (``xsys serve`` does), it is turned back
    on once READY is sent.
    """
    gc_paused = not gc.isenabled()
    overrides: dict[str, Any] = {}
    if tinymonitor:
        found = config_file or find_tinymonitor_config()
        if found is None:
            print("xsys: no TinyMonitor config.json found (searched "
                  f"{', '.join(str(p) for p in tinymonitor_search_paths())}); "
                  "using TinyMonitor's defaults", file=sys.stderr)
            overrides.update(convert_tinymonitor({}))
        else:
            print(f"xsys: loading TinyMonitor config from {found}", file=sys.stderr)
            try:
                data = json.loads(Path(found).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                print(f"xsys: config error: {found}: {exc}", file=sys.stderr)
                return 2
            if not isinstance(data, dict) or not looks_like_tinymonitor(data):
                print(f"xsys: config error: {found}: not a TinyMonitor config.json",
                      file=sys.stderr)
                return 2
            config_file = str(found)
    if socket_path:
        overrides.setdefault("server", {})["socket"] = socket_path
    if log_level:
        overrides.setdefault("server", {})["log_level"] = log_level.upper()
    if log_format:
        overrides.setdefault("server", {})["log_format"] = log_format
    try:
        loaded = load_config(config_file, overrides=overrides)
    except ConfigError as exc:
        print(f"xsys: config error: {exc}", file=sys.stderr)
        return 2
    cfg = loaded.config.server
    setup_logging(cfg.log_level, cfg.log_format)
    tune_malloc()
    uv = use_uvloop and _install_uvloop()
    log.debug("event loop: %s", "uvloop" if uv else "asyncio")

    async def main() -> int:
        daemon = Daemon(loaded, config_file, overrides, exit_watchdog=True)
        if gc_paused:
            daemon.ready_hooks.append(gc.enable)
        code = await daemon.run()
        stuck = daemon.app.stuck_jobs()
        if stuck:  # joining them (the pool's and the interpreter's exit do) would hang
            log.error("exiting without waiting for %d stuck worker jobs", len(stuck))
            exit_now(code)
        return code

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return 0
