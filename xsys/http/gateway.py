"""The aiohttp gateway (enabled by ``http.enabled``), on the daemon's loop:

- ``GET /metrics``: Prometheus text exposition: node_exporter's host metrics as
  node_exporter reports them (``xsys.http.node``, docs/node_exporter.md), the daemon's
  own ``xsys_*`` metrics (requests: ``xsys.http.requests``), the monitor's alert
  metrics and prometheus_client's ``process_*``/``python_*``, all from the app's
  ``CollectorRegistry`` (collected in the thread pool).
- ``GET /health``: ``{"status": "ok"|"degraded"|"failed", "checks": {...}, "version",
  "uptime_s", "sample_age_s"}``, 503 when failed (``xsys.http.health``);
  ``GET /health/live``: 200 while the process serves; ``GET /health/ready``: 200 once
  the config is loaded and the sampler warm, else 503.
- ``GET /`` (the live dashboard, ``xsys/http/static``), ``GET /ws`` (WebSocket streams,
  ``xsys.http.ws``), ``GET /system/infos`` (``xsys.http.dashboard``).
- ``POST /api/v1/<method>`` (only with ``http.api: true``): the same router as the socket;
  JSON body = params; answers ``{"result": ...}`` or ``{"error": {code, message, data}}``
  with an HTTP status per error code. Binary results are base64 strings. ``GET`` works
  for safe methods (query parameters as strings).

Checks, in order (docs/security.md):

1. every endpoint: an ``Origin`` header that is not this listener -> 403 (CSRF);
2. ``/metrics``, ``/health*``: basic auth when the web config has ``basic_auth_users``
   -> 401 ``WWW-Authenticate: Basic``;
3. every path but ``/metrics`` and ``/health*``: ``Host`` not this listener -> 403 (DNS
   rebinding);
4. the dashboard paths (``/``, ``/static/*``, ``/ws``, ``/system/infos``,
   ``add_live_routes``): the token as a bearer header, ``?token=`` or the session cookie
   -> else 401;
5. the API: ``Authorization: Bearer``
   missing or wrong (``hmac.compare_digest``) -> 401 ``WWW-Authenticate: Bearer``; a
   body that is not ``application/json`` -> 415; invalid or too deep JSON -> 400; a
   method that is not safe without ``http.allow_write`` -> 403 (-32002); ``GET`` of an
   unsafe method -> 405.

HTTP has no peer credentials: API requests act as the daemon's own user (the token file
is readable only by that user). API requests are counted in ``App.request_stats`` like
the socket's (from the start of the handler to the answer, refusals included).
"""

from __future__ import annotations

import base64
import logging
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from xsys import __version__
from xsys.http.guard import Listener, parse_json
from xsys.http.health import HealthState, http_status
from xsys.http.node import NodeCollector
from xsys.http.requests import RequestCollector
from xsys.http.token import tokens_equal
from xsys.http.webconfig import BasicAuth, WebConfig
from xsys.http.ws import WsSession
from xsys.metrics import exposition
from xsys.protocol import (
    InternalError,
    InvalidParams,
    InvalidRequest,
    Overloaded,
    PermissionDenied,
    TooLarge,
    Unauthorized,
    XsysError,
)
from xsys.server.context import Context, Peer
from xsys.server.dispatch import prepare, run_spec, warmed
from xsys.server.stats import UNKNOWN_METHOD

if TYPE_CHECKING:
    import ssl
    from collections.abc import Awaitable, Callable, Iterator

    from xsys.server.app import App
    from xsys.server.listener import Server
    from xsys.server.router import Router

log = logging.getLogger(__name__)

#: HTTP status for each protocol error code.
HTTP_STATUS = {
    -32700: 400, -32600: 400, -32601: 404, -32602: 400, -32603: 500, -32001: 404,
    -32002: 403, -32003: 409, -32004: 413, -32005: 503, -32006: 403, -32007: 409,
}
#: JSON bodies at least this large are decoded in the thread pool, not on the loop.
POOL_PARSE_BYTES = 64 * 1024
_API_PREFIX = "/api/v1/"
#: What basic auth (when configured) guards; the API has its bearer token instead.
_EXPORTER_PATHS = frozenset({"/metrics", "/health", "/health/live", "/health/ready"})


@dataclass
class GatewayState:
    """What the running gateway knows beyond ``app.config.http`` (which it re-reads per
    request, so a SIGHUP reload of ``token``/``allow_write``/``api`` applies at once):

    - ``listener``: the authorities that name it (Host/Origin checks);
    - ``file_token``: the token from ``http.token_file`` (None until loaded);
    - ``web``: the parsed web config file, ``basic_auth`` its checker (None = no auth),
      ``ssl_context`` when serving HTTPS.
    """

    listener: Listener
    file_token: str | None = None
    web: WebConfig | None = None
    basic_auth: BasicAuth | None = None
    ssl_context: ssl.SSLContext | None = None
    headers: dict[str, str] = field(default_factory=dict)


def registry_of(app: App) -> CollectorRegistry:
    """The daemon's shared ``CollectorRegistry`` (``Services.metrics_registry``)."""
    reg: CollectorRegistry = app.services.metrics_registry
    return reg


class DaemonCollector(Collector):
    """``xsys_info{version}``, ``xsys_uptime_seconds``, ``xsys_connections``,
    ``xsys_threadpool_pending``."""

    def __init__(self, app: App, server: Server | None) -> None:
        self.app = app
        self.server = server

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("xsys_info", "xsys daemon version.", labels=["version"])
        info.add_metric([__version__], 1.0)
        yield info
        up = GaugeMetricFamily("xsys_uptime_seconds", "Seconds since the daemon started.")
        up.add_metric([], time.time() - self.app.started_at)
        yield up
        conns = GaugeMetricFamily("xsys_connections", "Open socket connections.")
        conns.add_metric([], len(self.server.connections) if self.server else 0)
        yield conns
        pending = GaugeMetricFamily("xsys_threadpool_pending",
                                    "Blocking jobs queued or running in the pool.")
        pending.add_metric([], self.app.pending)
        yield pending


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _error(exc: XsysError, status: int | None = None,
           headers: dict[str, str] | None = None) -> web.Response:
    """The JSON error answer for ``exc``; its code is kept as ``response["xsys_code"]``
    for the request metrics."""
    response = web.json_response({"error": exc.to_wire()},
                                 status=status or HTTP_STATUS.get(exc.code, 500),
                                 headers=headers)
    response["xsys_code"] = exc.code
    return response


def _local_address(request: web.Request) -> tuple[str | None, int]:
    """The (address, port) the connection arrived on."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        return str(sockname[0]), int(sockname[1])
    return None, -1


def daemon_peer() -> Peer:
    """The credentials HTTP requests act with: the daemon's own (HTTP has no peer)."""
    return Peer(pid=None, uid=os.geteuid(), gid=os.getegid(), groups=tuple(os.getgroups()))


def build_app(app: App, router: Router, state: GatewayState,
              server: Server | None = None) -> web.Application:
    """The aiohttp application for ``app``'s router guarded by ``state`` (see module
    docstring)."""
    registry = registry_of(app)
    node = NodeCollector()
    registry.register(node)
    registry.register(DaemonCollector(app, server))
    registry.register(RequestCollector(app.request_stats))
    # the daemon's own process_* and python_* (prometheus_client's standard collectors)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    health_state = HealthState(app)
    known_methods = frozenset(router.names())  # the label set of the request metrics
    peer = daemon_peer()

    @web.middleware
    async def guard(request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
        try:
            response = await _guarded(request, handler)
        except web.HTTPException as exc:  # aiohttp's own 404/405/413...
            decorate(request, exc)
            raise
        decorate(request, response)
        return response

    def decorate(request: web.Request, response: web.StreamResponse) -> None:
        for name, value in state.headers.items():
            response.headers.setdefault(name, value)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if request.path.startswith(_API_PREFIX) or request.path.startswith("/health"):
            response.headers.setdefault("Cache-Control", "no-store")

    async def _guarded(request: web.Request,
                       handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                       ) -> web.StreamResponse:
        await warmed(app)  # /health, /ready, /metrics too: after the first sample
        addr, port = _local_address(request)
        origin = request.headers.get("Origin")
        if origin is not None and not state.listener.origin_matches(origin, addr, port):
            return _error(PermissionDenied(
                "cross-origin request refused: the Origin is not this gateway",
                {"origin": origin, "reason": "foreign_origin"}))
        if request.path not in _EXPORTER_PATHS:
            host = request.headers.get("Host", "")
            if not state.listener.matches(host, addr, port):
                return _error(PermissionDenied(
                    "the Host header does not name this gateway (add it to "
                    "http.allowed_hosts if it is yours)",
                    {"host": host, "reason": "foreign_host"}))
        elif request.path in _EXPORTER_PATHS and state.basic_auth is not None:
            try:
                ok = await state.basic_auth.check(request.headers.get("Authorization"))
            except BasicAuth.Busy:
                return web.Response(status=429, text="Too Many Requests\n",
                                    headers={"Retry-After": "1"})
            if not ok:
                return web.Response(status=401, text="Unauthorized\n",
                                    headers={"WWW-Authenticate": 'Basic realm="xsys"'})
        return await handler(request)

    web_app = web.Application(client_max_size=app.config.server.max_frame_bytes,
                              middlewares=[guard])

    def render_metrics() -> bytes:
        """node_exporter's families (rendered by ``NodeCollector.render_text``), then
        the registry's other collectors and the app metrics (``exposition``)."""
        head = node.render_text().encode()
        with node.excluded():
            return head + exposition(registry, app.services.metrics_collector)

    async def metrics(_request: web.Request) -> web.Response:
        body = await app.run_blocking(render_metrics)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health(_request: web.Request) -> web.Response:
        body = await health_state.report()
        return web.json_response(body, status=http_status(body["status"]))

    async def live(_request: web.Request) -> web.Response:
        return web.json_response({"status": "live", "version": __version__})

    async def ready(_request: web.Request) -> web.Response:
        ok, body = health_state.ready()
        return web.json_response(body, status=200 if ok else 503)

    def check_token(request: web.Request) -> web.Response | None:
        expected = app.config.http.token or state.file_token
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        given = given.strip()
        if expected and scheme.lower() == "bearer" and tokens_equal(given, expected):
            return None
        challenge = 'Bearer realm="xsys"'
        if given:
            challenge += ', error="invalid_token"'
        return _error(Unauthorized("a valid bearer token is required "
                                   "(Authorization: Bearer <token>; see `xsys http token`)"),
                      status=401, headers={"WWW-Authenticate": challenge})

    async def read_params(request: web.Request) -> Any:
        if not request.body_exists:
            return dict(request.query) if request.method == "GET" else {}
        if request.content_type != "application/json" or (
                request.charset not in (None, "utf-8", "utf8")):
            raise _Refusal(_error(InvalidRequest(
                "a request body must be Content-Type: application/json (UTF-8)",
                {"content_type": request.headers.get("Content-Type", "")}), status=415))
        if request.method == "GET":
            raise InvalidRequest("GET takes its parameters from the query string; "
                                 "POST a JSON body instead")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            limit = app.config.server.max_frame_bytes
            raise TooLarge(f"the body is larger than {limit} bytes",
                           {"limit_bytes": limit}) from None
        if len(body) >= POOL_PARSE_BYTES:
            return await app.run_blocking(parse_json, body)
        return parse_json(body)

    async def api(request: web.Request) -> web.Response:
        started = time.perf_counter()
        response = await answer(request)
        method = request.match_info["method"]
        code = response.get("xsys_code", 0)
        app.request_stats.record(method if method in known_methods else UNKNOWN_METHOD,
                                 code, time.perf_counter() - started)
        return response

    async def answer(request: web.Request) -> web.Response:
        method = request.match_info["method"]
        cfg = app.config.http
        try:
            if not cfg.api:
                raise InvalidRequest("the REST mirror is disabled (set http.api: true)")
            refused = check_token(request)
            if refused is not None:
                return refused
            params = await read_params(request)
            if not isinstance(params, dict):
                raise InvalidParams("the body must be a JSON object of parameters")
            spec = router.get(method)
            if spec.streams:
                raise InvalidRequest(f"{method} streams notifications; use the socket",
                                     {"method": method, "streams": spec.streams})
            if not spec.safe and request.method == "GET":
                return _error(InvalidRequest(f"{method} is not a safe method; use POST",
                                             {"method": method}),
                              status=405, headers={"Allow": "POST"})
            if not spec.safe and not cfg.allow_write:
                raise PermissionDenied(
                    f"{method} changes state; the HTTP mirror runs only safe (read-only) "
                    "methods unless http.allow_write is true",
                    {"method": method, "reason": "unsafe_method",
                     "setting": "http.allow_write"})
            spec, kwargs, want_progress = prepare(router, method, params)
            ctx = Context(app, method, None, peer, None, want_progress)
            result = await run_spec(app, spec, ctx, kwargs)
        except _Refusal as refusal:
            return refusal.response
        except XsysError as exc:
            return _error(exc)
        except Exception as exc:
            log.exception("%s via HTTP failed", method)
            return _error(InternalError(f"internal error in {method}: {type(exc).__name__}"))
        return web.json_response({"result": _jsonable(result)})

    add_live_routes(web_app, app, router, state, peer, registry)
    web_app.router.add_get("/metrics", metrics)
    web_app.router.add_get("/health", health)
    web_app.router.add_get("/health/live", live)
    web_app.router.add_get("/health/ready", ready)
    web_app.router.add_get(_API_PREFIX + "{method}", api, allow_head=False)
    web_app.router.add_post(_API_PREFIX + "{method}", api)
    return web_app


class WebSocketCollector(Collector):
    """``xsys_websocket_connections`` (open ``/ws`` sockets) and
    ``xsys_websocket_messages_dropped_total`` (messages lost to a socket's queue bound or
    replaced by a newer snapshot, since the start)."""

    def __init__(self, sessions: set[WsSession], closed_dropped: list[int]) -> None:
        self.sessions = sessions
        self.closed_dropped = closed_dropped

    def collect(self) -> Iterator[Metric]:
        open_ = GaugeMetricFamily("xsys_websocket_connections", "Open /ws WebSockets.")
        open_.add_metric([], len(self.sessions))
        yield open_
        dropped = CounterMetricFamily(
            "xsys_websocket_messages_dropped", "Messages /ws sockets dropped (queue bound "
            "or snapshot conflation).")
        dropped.add_metric([], self.closed_dropped[0] + sum(s.dropped for s in
                                                             list(self.sessions)))
        yield dropped


def add_live_routes(web_app: web.Application, app: App, router: Router,
                    state: GatewayState, peer: Peer, registry: CollectorRegistry) -> None:
    """The dashboard ``GET /`` (``?token=`` sets the cookie), its ``/static/<file>``,
    ``GET /ws`` and ``GET /system/infos``; all need the token (bearer header, ``?token=``
    or the cookie, ``xsys.http.dashboard``). Registers ``WebSocketCollector``."""
    from xsys.http import dashboard
    from xsys.http.ws import HEARTBEAT_S, MAX_MESSAGE_BYTES

    assets: dict[str, dashboard.Asset] = {}
    sockets: set[web.WebSocketResponse] = set()
    sessions: set[WsSession] = set()
    closed_dropped = [0]
    registry.register(WebSocketCollector(sessions, closed_dropped))

    def token() -> str | None:
        return app.config.http.token or state.file_token

    def allowed(request: web.Request) -> bool:
        _, port = _local_address(request)
        return dashboard.authenticated(
            token(), request.headers.get("Authorization", ""), request.query.get("token"),
            request.cookies.get(dashboard.cookie_name(port)))

    def unauthorized(request: web.Request) -> web.Response:
        if request.path == "/" or request.path.startswith("/static/"):
            return web.Response(
                status=401, content_type="text/plain",
                text="401: open the dashboard with the URL `xsys dashboard` prints "
                     "(it carries the token once and sets a cookie)\n")
        return _error(Unauthorized("a valid token is required (Authorization: Bearer "
                                   "<token> or ?token=<token>; see `xsys http token`)"),
                      status=401, headers={"WWW-Authenticate": 'Bearer realm="xsys"'})

    async def asset(request: web.Request, name: str) -> web.StreamResponse:
        if not assets:
            assets.update(await app.run_blocking(dashboard.load_assets))
        item = assets.get(name)
        if item is None:
            raise web.HTTPNotFound()
        headers = {"ETag": item.etag, "Cache-Control": "no-cache",
                   "Content-Security-Policy": dashboard.CSP, "Referrer-Policy": "no-referrer",
                   "X-Frame-Options": "DENY"}
        if request.headers.get("If-None-Match") == item.etag:
            return web.Response(status=304, headers=headers)
        response = web.Response(body=item.body, headers=headers,
                                content_type=item.content_type.split(";")[0],
                                charset="utf-8" if "charset" in item.content_type else None)
        if len(item.body) > 1024:
            response.enable_compression()
        return response

    async def index(request: web.Request) -> web.StreamResponse:
        given = request.query.get("token")
        expected = token()
        if given is not None and not (expected and tokens_equal(given, expected)):
            return unauthorized(request)  # a wrong token is refused even with a cookie
        if not allowed(request):
            return unauthorized(request)
        if given is not None:
            _, port = _local_address(request)
            response = web.HTTPSeeOther("/", headers={"Cache-Control": "no-store",
                                                      "Referrer-Policy": "no-referrer"})
            response.set_cookie(dashboard.cookie_name(port),
                                dashboard.cookie_value(token() or ""), path="/",
                                httponly=True, samesite="Strict",
                                secure=state.ssl_context is not None,
                                max_age=dashboard.COOKIE_MAX_AGE_S)
            return response
        return await asset(request, "index.html")

    async def static(request: web.Request) -> web.StreamResponse:
        if not allowed(request):
            return unauthorized(request)
        return await asset(request, request.match_info["name"])

    async def infos(request: web.Request) -> web.Response:
        if not allowed(request):
            return unauthorized(request)
        body = await app.run_blocking(dashboard.system_infos)
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    async def ws(request: web.Request) -> web.StreamResponse:
        if not allowed(request):
            return unauthorized(request)
        limit = app.config.server.max_connections
        if len(sockets) >= limit:
            return _error(Overloaded(f"too many WebSockets open (server.max_connections "
                                     f"= {limit})", {"limit": limit}))
        sock = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=MAX_MESSAGE_BYTES,
                                     compress=False)
        await sock.prepare(request)
        sockets.add(sock)
        try:
            session = WsSession(app, router, sock, peer,
                                lambda: getattr(app.services, "live", None),
                                request.transport)
            sessions.add(session)
            try:
                await session.run()
            finally:
                sessions.discard(session)
                closed_dropped[0] += session.dropped
        finally:
            sockets.discard(sock)
            if not sock.closed:
                await sock.close()
        return sock

    async def close_sockets(_app: web.Application) -> None:
        for sock in list(sockets):
            await sock.close(code=1001, message=b"daemon shutting down")

    web_app.on_shutdown.append(close_sockets)
    web_app.router.add_get("/", index)
    web_app.router.add_get("/static/{name}", static)
    web_app.router.add_get("/ws", ws)
    web_app.router.add_get("/system/infos", infos)


class _Refusal(Exception):
    """Carries a finished error response out of a helper."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


async def start_gateway(app: App, router: Router, state: GatewayState,
                        server: Server | None = None) -> web.AppRunner:
    """Serve the gateway on ``http.host``:``http.port`` (HTTPS when ``state`` has an
    ``ssl_context``); returns the runner to clean up. Raises ``OSError`` when the port
    cannot be bound."""
    cfg = app.config.http
    runner = web.AppRunner(build_app(app, router, state, server), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, cfg.host, cfg.port, ssl_context=state.ssl_context)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    app.capabilities.append("http")
    scheme = "https" if state.ssl_context is not None else "http"
    log.info("HTTP gateway on %s://%s:%d (/metrics, /health%s%s)", scheme, cfg.host,
             cfg.port, ", /api/v1" if cfg.api else "",
             ", basic auth" if state.basic_auth is not None else "")
    return runner
