"""Daemon lifecycle: load config, build the app and router, start services and the
listener, handle signals (SIGTERM/SIGINT: graceful stop; SIGHUP: reload), shut down."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Mapping
from typing import Any

from xsys import __version__
from xsys.config import ConfigError, LoadedConfig, load_config, to_dict
from xsys.handlers import register_all
from xsys.http import install as install_http
from xsys.monitor.sampler import Sampler
from xsys.protocol import default_socket_path
from xsys.server.app import App
from xsys.server.listener import DaemonAlreadyRunning, Server
from xsys.server.logs import setup_logging
from xsys.server.router import Router

log = logging.getLogger(__name__)


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else k))
        return out
    return {prefix: tree}


class Daemon:
    """One daemon: ``await Daemon(loaded).run()`` serves until ``stop()`` or a signal."""

    def __init__(
        self,
        loaded: LoadedConfig,
        config_file: str | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self.loaded = loaded
        self.config_file = config_file
        self.overrides = dict(overrides or {})
        self.app = App(loaded.config, config_file)
        self.router = Router()
        self.server = Server(self.app, self.router)
        self.socket_path = loaded.config.server.socket or default_socket_path()
        self._stop = asyncio.Event()
        self.ready = asyncio.Event()

    def stop(self) -> None:
        """Ask the daemon to shut down gracefully (idempotent, loop thread)."""
        self._stop.set()

    def reload(self) -> bool:
        """Re-read the config cascade (SIGHUP). On error keep the old config, log, and
        return False. Settings that need a restart (socket, workers) are logged."""
        try:
            loaded = load_config(self.config_file, overrides=self.overrides)
        except ConfigError as exc:
            log.error("config reload failed, keeping the old config: %s", exc)
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
        return True

    async def run(self) -> int:
        """Serve until stopped; returns the process exit code (0 clean, 1 startup error)."""
        loop = asyncio.get_running_loop()
        app = self.app
        sampler = Sampler(app.config.sys.sample_interval_s)
        app.services["sampler"] = sampler
        app.services["daemon"] = self
        register_all(self.router, app)
        install_http(app, self.router, self.server)
        try:
            await sampler.start(app)
            await app.start()
            await self.server.start(self.socket_path)
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
        try:
            await self._stop.wait()
        finally:
            log.info("shutting down")
            timeout = app.config.server.shutdown_timeout_s
            await self.server.stop(timeout)
            await app.stop(timeout)
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


def serve(
    config_file: str | None = None,
    socket_path: str | None = None,
    log_level: str | None = None,
    log_format: str | None = None,
    use_uvloop: bool = True,
) -> int:
    """Run the daemon in the foreground (the ``xsys serve`` command); returns the exit code.

    Flags override the config cascade; a config error prints one line and returns 2.
    """
    overrides: dict[str, Any] = {}
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
    uv = use_uvloop and _install_uvloop()
    log.debug("event loop: %s", "uvloop" if uv else "asyncio")

    async def main() -> int:
        daemon = Daemon(loaded, config_file, overrides)
        return await daemon.run()

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return 0
