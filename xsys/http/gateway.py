"""The aiohttp gateway (enabled by ``http.enabled``), on the daemon's loop:

- ``GET /metrics``: Prometheus text exposition: node_exporter-named host metrics
  (``xsys.http.node``), the daemon's own ``xsys_*`` metrics and the monitor's alert
  metrics, all from the app's ``CollectorRegistry`` (collected in the thread pool).
- ``GET /health``: ``{"status": "ok"|"degraded", "version", "uptime_s",
  "sample_age_s"}``; 503 when the sampler has stalled for 5 intervals.
- ``POST /api/v1/<method>`` (only with ``http.api: true``): the same router as the socket;
  JSON body = params; answers ``{"result": ...}`` or ``{"error": {code, message, data}}``
  with an HTTP status per error code. Binary results are base64 strings. HTTP has no peer
  credentials, so the mirror is off by default and binds to loopback.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from xsys import __version__
from xsys.http.node import NodeCollector
from xsys.protocol import InternalError, InvalidParams, InvalidRequest, XsysError
from xsys.server.dispatch import invoke

if TYPE_CHECKING:
    from collections.abc import Iterator

    from xsys.server.app import App
    from xsys.server.listener import Server
    from xsys.server.router import Router

log = logging.getLogger(__name__)

#: HTTP status for each protocol error code.
HTTP_STATUS = {
    -32700: 400, -32600: 400, -32601: 404, -32602: 400, -32603: 500, -32001: 404,
    -32002: 403, -32003: 409, -32004: 413, -32005: 503, -32006: 403, -32007: 409,
}


def registry_of(app: App) -> CollectorRegistry:
    """The app's shared ``CollectorRegistry`` (created on first use)."""
    reg = app.services.get("metrics_registry")
    if not isinstance(reg, CollectorRegistry):
        reg = CollectorRegistry()
        app.services["metrics_registry"] = reg
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


def build_app(app: App, router: Router, server: Server | None = None) -> web.Application:
    """The aiohttp application for ``app``'s router (see module docstring)."""
    registry = registry_of(app)
    registry.register(NodeCollector())
    registry.register(DaemonCollector(app, server))
    web_app = web.Application(client_max_size=app.config.server.max_frame_bytes)

    async def metrics(_request: web.Request) -> web.Response:
        body = await app.run_blocking(generate_latest, registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health(_request: web.Request) -> web.Response:
        sampler = app.services.get("sampler")
        latest = getattr(sampler, "latest", None)
        age = time.time() - latest.ts if latest is not None else None
        interval = app.config.sys.sample_interval_s
        ok = age is not None and age < max(5 * interval, 5.0)
        body = {"status": "ok" if ok else "degraded", "version": __version__,
                "uptime_s": round(time.time() - app.started_at, 3),
                "sample_age_s": None if age is None else round(age, 3)}
        return web.json_response(body, status=200 if ok else 503)

    async def api(request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            if not app.config.http.api:
                raise InvalidRequest("the REST mirror is disabled (set http.api: true)")
            params: Any = {}
            if request.can_read_body:
                try:
                    params = await request.json()
                except (json.JSONDecodeError, UnicodeDecodeError):
                    raise InvalidRequest("the body must be a JSON object") from None
            if request.method == "GET":
                params = dict(request.query)
            if not isinstance(params, dict):
                raise InvalidParams("the body must be a JSON object of parameters")
            result = await invoke(app, router, method, params)
        except XsysError as exc:
            return web.json_response({"error": exc.to_wire()},
                                     status=HTTP_STATUS.get(exc.code, 500))
        except Exception as exc:
            log.exception("%s via HTTP failed", method)
            err = InternalError(f"internal error in {method}: {type(exc).__name__}")
            return web.json_response({"error": err.to_wire()}, status=500)
        return web.json_response({"result": _jsonable(result)})

    web_app.router.add_get("/metrics", metrics)
    web_app.router.add_get("/health", health)
    web_app.router.add_post("/api/v1/{method}", api)
    return web_app


async def start_gateway(app: App, router: Router, server: Server | None = None
                        ) -> web.AppRunner:
    """Serve the gateway on ``http.host``:``http.port``; returns the runner to clean up.
    Raises ``OSError`` when the port cannot be bound."""
    cfg = app.config.http
    runner = web.AppRunner(build_app(app, router, server), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, cfg.host, cfg.port)
    await site.start()
    app.capabilities.append("http")
    log.info("HTTP gateway on http://%s:%d (/metrics, /health%s)", cfg.host, cfg.port,
             ", /api/v1" if cfg.api else "")
    return runner
