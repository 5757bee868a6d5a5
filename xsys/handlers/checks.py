"""The ``checks`` namespace: service checks' states, probing one now, and the stream of
state changes. Each method is one call into ``xsys.checks.service.ChecksService``
(``Services.checks``), which the composition root (``xsys.daemon``) builds, starts, stops
and reconfigures with the daemon (SIGHUP reload)."""

from __future__ import annotations

import fnmatch
from typing import Annotated

from xsys.checks.model import (
    ChecksStatus,
    ChecksSubscribed,
    ChecksUnsubscribed,
    ServiceCheck,
    State,
)
from xsys.checks.service import ChecksService
from xsys.server.app import App
from xsys.server.context import Context, Subscription
from xsys.server.router import Doc, Router


def _checks(ctx: Context) -> ChecksService:
    """The daemon's ``ChecksService`` (``Services.checks``)."""
    service: ChecksService = ctx.app.services.checks
    return service


def status(ctx: Context) -> ChecksStatus:
    """Every service check with its state, since when, latency, last error and restarts.

    Returns ``{"checks": [{"name", "probe" (tcp|http|process|command|docker), "target",
    "state" (up|down|unknown|failed), "since" (epoch s), "last_error", "latency_ms",
    "last_run_at", "consecutive_failures", "restarts", "critical", "interval_s"}]}``.
    """
    return {"checks": _checks(ctx).status()}


async def run(
    ctx: Context,
    name: Annotated[str, Doc("the check's name")],
) -> ServiceCheck:
    """Probe one check now (its restart action runs if due) and return its row.

    Returns the check's ``checks.status`` row after the probe; -32001 when no check has
    that name.
    """
    return await _checks(ctx).run(name)


def subscribe(
    ctx: Context,
    name: Annotated[str | None, Doc("only checks whose name matches this glob")] = None,
) -> ChecksSubscribed:
    """Stream the checks' state changes: ``checks.change`` notifications.

    Returns ``{"subscription": id}``; then pushes ``{"method": "checks.change",
    "params": {"subscription": id, "check": {<the check's status row>}, "previous":
    state}}`` on each change of state, until ``checks.unsubscribe`` or the connection
    closes.
    """
    sub = ctx.subscribe("checks")

    def push(row: ServiceCheck, previous: State) -> None:
        if name is None or fnmatch.fnmatchcase(row["name"], name):
            sub.push("change", {"check": row, "previous": previous})

    unsubscribe = _checks(ctx).subscribe(push)

    def closed(_: Subscription) -> None:
        unsubscribe()

    sub.on_close(closed)
    sub.info.update(name=name)
    return {"subscription": sub.id}


def unsubscribe(
    ctx: Context,
    subscription: Annotated[str, Doc("id from checks.subscribe")],
) -> ChecksUnsubscribed:
    """End a ``checks.subscribe`` stream; -32001 when it is not one of this
    connection's. Returns ``{"subscription": id, "closed": true}``."""
    ctx.subscription(subscription, "checks").close()
    return {"subscription": subscription, "closed": True}


def register(router: Router, app: App) -> None:
    """Declare the checks methods (on ``Services.checks``, which the composition root
    builds, starts, stops and reconfigures)."""
    app.capabilities.append("checks")
    router.add("checks.status", status, kind="inline", safe=True)
    router.add("checks.run", run, kind="async")
    router.add("checks.subscribe", subscribe, kind="inline", streams="checks.change")
    router.add("checks.unsubscribe", unsubscribe, kind="inline")
