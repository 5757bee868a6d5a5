"""The ``rpc`` namespace: discovery and liveness (docs/protocol.md, "Discovery")."""

from __future__ import annotations

import time
from typing import TypedDict

from xsys import PROTOCOL_VERSION, __version__
from xsys.server.app import App
from xsys.server.context import Context
from xsys.server.router import MethodList, Router


class Hello(TypedDict):
    """``rpc.hello``: ``protocol`` version, ``server`` name (``xsys``), its ``version``,
    ``pid``, every method name, the ``capabilities`` (namespaces and optional features)
    and ``max_frame_bytes`` (the largest frame the daemon accepts)."""

    protocol: int
    server: str
    version: str
    pid: int
    methods: list[str]
    capabilities: list[str]
    max_frame_bytes: int


class Pong(TypedDict):
    """``rpc.ping``: ``pong`` (always true) and ``ts``, the server's time (epoch s)."""

    pong: bool
    ts: float


def register(router: Router, app: App) -> None:
    """Declare rpc.hello, rpc.ping and rpc.methods."""

    @router.method("rpc.hello", kind="inline", safe=True)
    def hello(ctx: Context) -> Hello:
        """Protocol version, server name and version, pid, method names and capabilities.

        Returns ``{"protocol": 1, "server": "xsys", "version": str, "pid": int,
        "methods": [str], "capabilities": [str]}``.
        """
        return {
            "protocol": PROTOCOL_VERSION,
            "server": "xsys",
            "version": __version__,
            "pid": app.pid,
            "methods": router.names(),
            "capabilities": sorted(set(app.capabilities)),
            "max_frame_bytes": app.config.server.max_frame_bytes,
        }

    @router.method("rpc.ping", kind="inline", safe=True)
    def ping(ctx: Context) -> Pong:
        """Liveness check: ``{"pong": true, "ts": <server time, epoch seconds>}``."""
        return {"pong": True, "ts": time.time()}

    @router.method("rpc.methods", kind="inline", safe=True)
    def methods(ctx: Context) -> MethodList:
        """Every method with its parameter schema, result schema and one-line summary.

        Returns ``{"methods": [{"name", "summary", "description"?, "params": [{"name",
        "type", "required", "default"?, "nullable"?, "choices"?, "min"?, "max"?,
        "summary"}], "result"?, "streams"?, "progress"?, "safe"?}]}``, generated from the
        handlers; ``result`` describes the result (``xsys.server.router.result_schema``).
        """
        return {"methods": [spec.describe() for spec in router.specs()]}
