"""Running a method: validation, then the handler by its kind (inline on the loop,
blocking in the pool, async as a coroutine). Shared by the socket connection, the HTTP
mirror and tests."""

from __future__ import annotations

import asyncio
from typing import Any

from xsys.protocol import InvalidParams
from xsys.server.app import App
from xsys.server.context import Context, Peer, Session
from xsys.server.router import MethodSpec, Router


def split_progress(params: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Remove the reserved ``progress`` flag from ``params``; raises ``InvalidParams`` when
    it is not a boolean."""
    if "progress" not in params:
        return params, False
    params = dict(params)
    flag = params.pop("progress")
    if not isinstance(flag, bool):
        raise InvalidParams("parameter 'progress': expected bool",
                            {"param": "progress", "expected": "bool"})
    return params, flag


def prepare(router: Router, method: str,
            params: dict[str, Any]) -> tuple[MethodSpec, dict[str, Any], bool]:
    """Look ``method`` up and validate ``params``: (spec, handler kwargs, progress wanted).
    Raises ``MethodNotFound`` and ``InvalidParams``."""
    spec = router.get(method)
    if not params and not spec.params:  # the common parameterless call: nothing to check
        return spec, {}, False
    clean, want_progress = split_progress(params)
    return spec, router.bind(spec, clean), want_progress


async def warmed(app: App) -> None:
    """Return once ``app.warming`` (the daemon's first sample, taken just after READY) is
    done; at once when it is (or there is none). Every request waits here first."""
    warming = app.warming
    if warming is not None and not warming.done():
        await asyncio.shield(warming)


async def run_spec(app: App, spec: MethodSpec, ctx: Context, kwargs: dict[str, Any]) -> Any:
    """Run ``spec``'s handler with validated ``kwargs`` according to its kind (first
    waiting for ``app.warming``, the daemon's first sample, when it is still pending)."""
    await warmed(app)
    if spec.kind == "async":
        return await spec.handler(ctx, **kwargs)
    if spec.kind == "blocking":
        return await app.run_blocking(spec.handler, ctx, **kwargs)
    return spec.handler(ctx, **kwargs)


async def invoke(
    app: App,
    router: Router,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    request_id: int | None = None,
    peer: Peer | None = None,
    session: Session | None = None,
) -> Any:
    """Validate and run ``method`` with ``params``; raises the handler's ``XsysError``s,
    ``MethodNotFound`` and ``InvalidParams``."""
    spec, kwargs, want_progress = prepare(router, method, params or {})
    ctx = Context(app, method, request_id, peer, session, want_progress)
    return await run_spec(app, spec, ctx, kwargs)
