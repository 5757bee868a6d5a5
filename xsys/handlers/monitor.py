"""The ``monitor`` namespace: check states, alert history, live alert streams, test alerts
and silences. Each method is one call into ``xsys.monitor.service.MonitorService``
(``Services.monitor``), which the composition root (``xsys.daemon``) creates and starts,
stops and reconfigures with the daemon (SIGHUP reload)."""

from __future__ import annotations

import typing
from typing import Annotated, Literal

from xsys.alerts.config import PROVIDER_NAMES
from xsys.alerts.model import Alert
from xsys.monitor.model import (
    MonitorChecks,
    MonitorHistory,
    MonitorStatus,
    MonitorSubscribed,
    MonitorTest,
    MonitorUnsubscribed,
    Silences,
    Unsilenced,
)
from xsys.monitor.service import MonitorService
from xsys.monitor.silences import SilenceRecord
from xsys.server.app import App
from xsys.server.context import Context, Subscription
from xsys.server.router import Doc, Range, Router

ProviderName = Literal["google_chat", "ntfy", "gotify", "smtp", "webhook", "alertmanager",
                       "console"]
assert set(PROVIDER_NAMES) == set(typing.get_args(ProviderName))

#: The longest silence (s).
MAX_SILENCE_S = 366 * 86400


def _monitor(ctx: Context) -> MonitorService:
    """The daemon's ``MonitorService`` (``Services.monitor``)."""
    service: MonitorService = ctx.app.services.monitor
    return service


def status(ctx: Context) -> MonitorStatus:
    """Every check component with its state, value, threshold and since when.

    Returns ``{"enabled", "running", "refresh_s", "repeat_interval_s", "ticks",
    "skipped_ticks", "last_tick_at", "last_tick_ms", "last_collect_ms", "errors"
    {check: message}, "firing" (count), "checks": [{"check", "component", "state"
    (ok|warning|critical, the firing level), "pending" (level waiting out its
    duration, or null), "value", "unit", "threshold", "warning", "critical",
    "duration_s", "changed_at" (when the state began), "started_at", "last_sent_at",
    "updated_at", "silenced"}], "silences": [...], "providers": [names],
    "provider_status": [{"name", "state" (closed|open|half_open: the provider's circuit
    breaker), "queued", "queued_bytes", "in_flight", "consecutive_failures",
    "delivered_total", "failed_total", "dropped_total", "next_attempt_at" (epoch s or
    null), "last_error"}], "subscribers": int, "queue": {"depth", "in_flight" (all
    providers), "capacity", "capacity_bytes", "workers" (per provider), "dropped"}}``.
    """
    return _monitor(ctx).status()


def checks(ctx: Context) -> MonitorChecks:
    """The configured checks and their thresholds.

    Returns ``{"checks": [{"check", "enabled", "unit"?, "warning"?, "critical"?,
    "duration_s"?, "hysteresis"? (fraction), "components"?}]}`` for cpu, memory, swap,
    filesystem, inodes, load, io, network, reboot and boot.
    """
    return {"checks": _monitor(ctx).checks()}


def history(
    ctx: Context,
    limit: Annotated[int, Range(1, 100_000), Doc("newest alerts at most")] = 50,
    check: Annotated[str | None, Doc("only this check")] = None,
    component: Annotated[str | None, Doc("only this component")] = None,
) -> MonitorHistory:
    """Recent alerts, newest first, with their delivery results.

    Returns ``{"alerts": [{<alert fields: id, check, component, severity, status,
    value, unit, threshold, started_at, ...>, "deliveries": [{"provider", "status"
    (pending|sent|failed|dropped), "attempts", "error", "status_code", "updated_at"}],
    "silenced_by": silence id or null}], "size": int, "capacity": int}``.
    """
    return _monitor(ctx).history_page(limit, check, component)


def subscribe(
    ctx: Context,
    check: Annotated[str | None, Doc("only checks matching this glob")] = None,
    component: Annotated[str | None, Doc("only components matching this glob")] = None,
    severity: Annotated[Literal["warning", "critical"] | None,
                        Doc("only this severity and above")] = None,
) -> MonitorSubscribed:
    """Stream alerts as they are sent: ``monitor.alert`` notifications.

    Returns ``{"subscription": id}``; then pushes ``{"method": "monitor.alert",
    "params": {"subscription": id, "alert": {<alert fields>}}}`` for every alert that
    is not silenced, until ``monitor.unsubscribe`` or the connection closes.
    """
    sub = ctx.subscribe("monitor")

    def push(alert: Alert) -> None:
        sub.push("alert", {"alert": alert.to_wire()})

    unsubscribe = _monitor(ctx).subscribe(push, check, component, severity)

    def closed(_: Subscription) -> None:
        unsubscribe()

    sub.on_close(closed)
    sub.info.update(check=check, component=component, severity=severity)
    return {"subscription": sub.id}


def unsubscribe(
    ctx: Context,
    subscription: Annotated[str, Doc("id from monitor.subscribe")],
) -> MonitorUnsubscribed:
    """End a ``monitor.subscribe`` stream; -32001 when it is not one of this
    connection's. Returns ``{"subscription": id, "closed": true}``."""
    ctx.subscription(subscription, "monitor").close()
    return {"subscription": subscription, "closed": True}


async def test(
    ctx: Context,
    provider: Annotated[ProviderName | None,
                        Doc("one provider; default every enabled one")] = None,
) -> MonitorTest:
    """Send a test alert through one or every enabled provider (one attempt each).

    ``monitor.subscribe`` streams receive it too (``"test": true``, check and component
    ``test``). Returns ``{"alert": {<the test alert>}, "results": [{"provider", "ok", "error",
    "status_code", "duration_ms"}]}``; -32001 when ``provider`` is not enabled.
    """
    alert, results = await _monitor(ctx).test(provider)
    return {"alert": alert.to_wire(), "results": results}


def silence(
    ctx: Context,
    check: Annotated[str | None, Doc("check name or glob (cpu, filesystem, ...)")] = None,
    component: Annotated[str | None, Doc("component name or glob (filesystem:/var*)")]
    = None,
    duration_s: Annotated[float, Range(0.001, MAX_SILENCE_S),
                          Doc("seconds the silence lasts")] = 3600.0,
    comment: Annotated[str, Doc("why")] = "",
) -> SilenceRecord:
    """Silence alerts of a check and/or component pattern for a while (Alertmanager
    style: states still change, notifications are held back).

    Returns the silence ``{"id", "check", "component", "starts_at", "ends_at",
    "comment", "created_by"}``; -32602 when neither ``check`` nor ``component`` is
    given or ``check`` matches no check (data ``valid``: the check names), -32005 when
    too many silences are active.
    """
    created_by = f"uid:{ctx.peer.uid}" if ctx.peer.uid is not None else ""
    return _monitor(ctx).silence(check, component, duration_s, comment, created_by).to_wire()


def unsilence(
    ctx: Context,
    silence: Annotated[str | None, Doc("silence id")] = None,
    check: Annotated[str | None, Doc("remove the silences with this check pattern")] = None,
    component: Annotated[str | None,
                         Doc("remove the silences with this component pattern")] = None,
) -> Unsilenced:
    """Remove silences by id, or by their check/component patterns.

    Returns ``{"removed": [ids]}``; -32001 when nothing matched, -32602 when no
    selector is given.
    """
    return {"removed": [s.id for s in _monitor(ctx).unsilence(silence, check, component)]}


def silences(ctx: Context) -> Silences:
    """Active silences: ``{"silences": [{"id", "check", "component", "starts_at",
    "ends_at", "comment", "created_by"}]}``."""
    return {"silences": [s.to_wire() for s in _monitor(ctx).silences.list()]}


def register(router: Router, app: App) -> None:
    """Declare the monitor methods (on ``Services.monitor``, which the composition root
    builds, starts, stops and reconfigures)."""
    app.capabilities.append("monitor")
    router.add("monitor.status", status, kind="inline", safe=True)
    router.add("monitor.checks", checks, kind="inline", safe=True)
    router.add("monitor.history", history, kind="inline", safe=True)
    router.add("monitor.subscribe", subscribe, kind="inline", streams="monitor.alert")
    router.add("monitor.unsubscribe", unsubscribe, kind="inline")
    router.add("monitor.test", test, kind="async")
    router.add("monitor.silence", silence, kind="inline")
    router.add("monitor.unsilence", unsilence, kind="inline")
    router.add("monitor.silences", silences, kind="inline", safe=True)
