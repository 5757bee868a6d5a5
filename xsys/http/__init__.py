"""The HTTP gateway: Prometheus ``/metrics``, ``/health`` and the REST mirror of the
router (``POST /api/v1/<method>``), served by aiohttp on the same loop (see
``xsys.http.gateway``). aiohttp is imported only when ``http.enabled``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xsys.server.app import App
    from xsys.server.listener import Server
    from xsys.server.router import Router


def install(app: App, router: Router, server: Server | None = None) -> None:
    """Start the gateway at startup and stop it at shutdown when ``http.enabled``."""
    state: dict[str, Any] = {}

    async def start() -> None:
        if not app.config.http.enabled:
            return
        from xsys.http.gateway import start_gateway

        state["runner"] = await start_gateway(app, router, server)

    async def stop() -> None:
        runner = state.pop("runner", None)
        if runner is not None:
            await runner.cleanup()

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
