"""The ``push`` namespace: the state of push mode's targets (``xsys.push``,
``Services.push``, which the composition root builds, starts, stops and reconfigures)."""

from __future__ import annotations

from typing import cast

from xsys.push.model import PushStatus
from xsys.push.service import PushService
from xsys.server.app import App
from xsys.server.context import Context
from xsys.server.router import Router


def status(ctx: Context) -> PushStatus:
    """Every push target: connected, since, last error, buffered, sent, dropped,
    reconnects.

    Returns ``{"targets": [{"target", "url", "format", "interval_s", "connected",
    "since" (epoch s or null), "last_error", "last_error_at", "buffered",
    "buffered_bytes", "sent", "dropped", "reconnects", "next_seq"}]}`` (empty without
    ``push.targets``).
    """
    service: PushService = ctx.app.services.push
    return cast(PushStatus, service.status())


def register(router: Router, app: App) -> None:
    """Declare the push methods."""
    app.capabilities.append("push")
    router.add("push.status", status, kind="inline", safe=True)
