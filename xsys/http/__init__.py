"""The HTTP gateway: Prometheus ``/metrics``, ``/health`` and the REST mirror of the
router (``/api/v1/<method>``), served by aiohttp on the same loop (see
``xsys.http.gateway``; the threat model and guarantees are in docs/security.md).
aiohttp, PyYAML and bcrypt are imported only when ``http.enabled``.

At start (``install``): the web config file is read and its TLS files loaded, the bearer
token file is created or checked (``xsys.http.token``) when the gateway is on without an
explicit ``http.token`` (the token guards the REST mirror and the dashboard, ``/ws``,
``/system/infos``); any problem stops the daemon with one ``cannot start: ...`` line
(exit 1). On SIGHUP ``http.token``, ``http.api``, ``http.allow_write`` apply at once (they are read
per request) and the web config's users and headers are re-read in the thread pool (a bad
file is logged and the old settings stay); TLS settings, ``host``, ``port`` and
``token_file`` need a restart.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xsys.config import Config
    from xsys.http.config import HttpConfig
    from xsys.http.gateway import GatewayState
    from xsys.http.webconfig import WebConfig
    from xsys.server.app import App
    from xsys.server.listener import Server
    from xsys.server.router import Router

log = logging.getLogger(__name__)

#: Keys whose change needs a restart of the gateway.
_RESTART_KEYS = ("enabled", "host", "port", "token_file")


def _needs_file_token(cfg: HttpConfig) -> bool:
    # the token guards the REST mirror and the dashboard (/, /ws, /system/infos)
    return cfg.enabled and not cfg.token


async def _load_token(app: App, cfg: HttpConfig) -> str:
    from xsys.http.token import load_or_create_token, token_file_path

    path = token_file_path(cfg.token_file)
    token, created = await app.run_blocking(load_or_create_token, path)
    if created:
        log.info("generated the HTTP API token in %s (show it with `xsys http token`)", path)
    return token


async def _load_web(app: App, cfg: HttpConfig) -> WebConfig | None:
    if not cfg.web_config_file:
        return None
    from xsys.http.webconfig import load_web_config

    return await app.run_blocking(load_web_config, cfg.web_config_file)


def _apply_web(app: App, state: GatewayState, web: WebConfig | None) -> None:
    from xsys.http.webconfig import BasicAuth

    state.web = web
    state.headers = dict(web.headers) if web else {}
    users = web.users if web else {}
    state.basic_auth = BasicAuth(users, app.run_blocking) if users else None


def install(app: App, router: Router, server: Server | None = None) -> None:
    """Start the gateway at startup and stop it at shutdown when ``http.enabled``; re-read
    its files on reload. Startup raises ``ValueError`` (``TokenFileError``,
    ``WebConfigError``) or ``OSError``, which the daemon reports as ``cannot start``."""
    runtime: dict[str, Any] = {}

    async def prepare() -> None:
        # first startup hook: a bad token or web config file stops the daemon before the
        # other services (monitor, watch) start
        cfg = app.config.http
        if not cfg.enabled:
            return
        from xsys.http.gateway import GatewayState
        from xsys.http.guard import Listener
        from xsys.http.webconfig import ssl_context

        web = await _load_web(app, cfg)
        ctx = None
        if web is not None and web.tls is not None:
            ctx = await app.run_blocking(ssl_context, web.tls, web.path)
        scheme = "https" if ctx is not None else "http"
        state = GatewayState(listener=Listener(cfg.host, scheme, cfg.allowed_hosts),
                             ssl_context=ctx)
        _apply_web(app, state, web)
        if _needs_file_token(cfg):
            state.file_token = await _load_token(app, cfg)
        runtime["state"] = state

    async def start() -> None:
        # last startup hook: serve once every service is up
        if "state" not in runtime:
            return
        from xsys.http.gateway import start_gateway

        runtime["runner"] = await start_gateway(app, router, runtime["state"], server)

    async def stop() -> None:
        runner = runtime.pop("runner", None)
        if runner is not None:
            await runner.cleanup()

    async def reload_files(old: HttpConfig, new: HttpConfig) -> None:
        from xsys.http.guard import Listener

        state: GatewayState = runtime["state"]
        if new.allowed_hosts != old.allowed_hosts:
            state.listener = Listener(old.host, state.listener.scheme, new.allowed_hosts)
        try:
            web = await _load_web(app, new)
        except (ValueError, OSError) as exc:
            log.error("http.web_config_file reload failed, keeping the old one: %s", exc)
        else:
            if (web.tls if web else None) != (state.web.tls if state.web else None):
                log.warning("http.web_config_file: TLS settings take effect after a restart")
            _apply_web(app, state, web)
        if _needs_file_token(new) and state.file_token is None:
            try:
                state.file_token = await _load_token(app, new)
            except (ValueError, OSError) as exc:
                log.error("http token file: %s", exc)

    def on_reload(old: Config, new: Config) -> None:
        if "state" not in runtime:
            return
        for key in _RESTART_KEYS:
            if getattr(old.http, key) != getattr(new.http, key):
                log.warning("http.%s changed; it takes effect after a restart", key)
        app.spawn(reload_files(old.http, new.http), "http-reload")

    app.on_startup.insert(0, prepare)
    app.on_startup.append(start)
    app.on_shutdown.append(stop)
    app.on_reload.append(on_reload)
