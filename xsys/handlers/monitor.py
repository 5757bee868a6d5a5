"""The ``monitor`` namespace: check states, alert history, live alert streams, test alerts
and silences. The work is done by ``xsys.monitor.service.MonitorService``
(``app.services["monitor"]``), started and stopped with the daemon and reconfigured on
reload (SIGHUP)."""

from __future__ import annotations

import fnmatch
import typing
from typing import Annotated, Any, Literal

from xsys.alerts.config import PROVIDER_NAMES
from xsys.alerts.metrics import metrics_for
from xsys.alerts.model import SEVERITY_RANK, Alert
from xsys.monitor.service import MonitorService
from xsys.protocol import InvalidParams, NotFound, Overloaded
from xsys.server.app import App
from xsys.server.context import Context, Subscription
from xsys.server.router import Doc, Range, Router

ProviderName = Literal["google_chat", "ntfy", "gotify", "smtp", "webhook", "alertmanager",
                       "console"]
assert set(PROVIDER_NAMES) == set(typing.get_args(ProviderName))


def history_item(entry: Any) -> dict[str, Any]:
    """One ``monitor.history`` row: the alert's fields plus ``deliveries`` and
    ``silenced_by``."""
    row: dict[str, Any] = entry.alert.to_wire()
    row["deliveries"] = [d.to_wire() for d in entry.deliveries.values()]
    row["silenced_by"] = entry.silenced_by
    return row


def register(router: Router, app: App) -> None:
    """Declare the monitor methods and start/stop/reload the monitor with the daemon."""
    service = MonitorService(app, sampler=app.services.get("sampler"),
                             metrics=metrics_for(app.services))
    app.services["monitor"] = service

    async def start() -> None:
        await service.start()

    async def stop() -> None:
        budget = min(app.config.monitor.alerts.drain_timeout_s,
                     max(0.1, app.config.server.shutdown_timeout_s * 0.6))
        await service.stop(budget)

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
    app.on_reload.append(lambda old, new: service.reload(new.monitor))
    if "monitor" not in app.capabilities:
        app.capabilities.append("monitor")

    @router.method("monitor.status", kind="inline", safe=True)
    def status(ctx: Context) -> dict[str, Any]:
        """Every check component with its state, value, threshold and since.

        Returns ``{"enabled", "running", "refresh" (s), "repeat_interval" (s), "ticks",
        "skipped_ticks", "last_tick_at", "last_tick_ms", "last_collect_ms", "errors"
        {check: message}, "firing" (count), "checks": [{"check", "component", "state"
        (ok|warning|critical, the firing level), "pending" (level waiting out its
        duration, or null), "value", "unit", "threshold", "warning", "critical",
        "duration", "since", "started_at", "last_sent_at", "updated_at", "silenced"}],
        "silences": [...], "providers": [names], "provider_status": [{"name", "state"
        (closed|open|half_open: the provider's circuit breaker), "queued", "queued_bytes",
        "inflight", "consecutive_failures", "delivered_total", "failed_total",
        "dropped_total", "next_attempt_at" (epoch s or null), "last_error"}],
        "subscribers": int, "queue": {"depth", "in_flight" (all providers), "capacity",
        "capacity_bytes", "workers" (per provider), "dropped"}}``.
        """
        return service.status()

    @router.method("monitor.checks", kind="inline", safe=True)
    def checks(ctx: Context) -> dict[str, Any]:
        """The configured checks and their thresholds.

        Returns ``{"checks": [{"check", "enabled", "unit"?, "warning"?, "critical"?,
        "duration"? (s), "hysteresis"? (fraction), "components"?}]}`` for cpu, memory,
        swap, filesystem, inodes, load, io, network, reboot and boot.
        """
        return {"checks": service.checks()}

    @router.method("monitor.history", kind="inline", safe=True)
    def history(
        ctx: Context,
        limit: Annotated[int, Range(1, 100_000), Doc("newest alerts at most")] = 50,
        check: Annotated[str | None, Doc("only this check")] = None,
        component: Annotated[str | None, Doc("only this component")] = None,
    ) -> dict[str, Any]:
        """Recent alerts, newest first, with their delivery results.

        Returns ``{"alerts": [{<alert fields: id, check, component, severity, status,
        value, unit, threshold, started_at, ...>, "deliveries": [{"provider", "status"
        (pending|sent|failed|dropped), "attempts", "error", "status_code", "updated_at"}],
        "silenced_by": silence id or null}], "size": int, "capacity": int}``.
        """
        entries = service.history.recent(limit, check, component)
        return {"alerts": [history_item(e) for e in entries], "size": len(service.history),
                "capacity": service.config.history_size}

    @router.method("monitor.subscribe", kind="inline", streams="monitor.alert")
    def subscribe(
        ctx: Context,
        check: Annotated[str | None, Doc("only checks matching this glob")] = None,
        component: Annotated[str | None, Doc("only components matching this glob")] = None,
        severity: Annotated[Literal["warning", "critical"] | None,
                            Doc("only this severity and above")] = None,
    ) -> dict[str, Any]:
        """Stream alerts as they are sent: ``monitor.alert`` notifications.

        Returns ``{"subscription": id}``; then pushes ``{"method": "monitor.alert",
        "params": {"subscription": id, "alert": {<alert fields>}}}`` for every alert that
        is not silenced, until ``monitor.unsubscribe`` or the connection closes.
        """
        sub = ctx.subscribe("monitor")
        floor = SEVERITY_RANK[severity] if severity else 0

        def listener(alert: Alert) -> None:
            if check is not None and not fnmatch.fnmatchcase(alert.check, check):
                return
            if component is not None and not fnmatch.fnmatchcase(alert.component, component):
                return
            if SEVERITY_RANK[alert.severity] < floor:
                return
            sub.push("alert", {"alert": alert.to_wire()})

        unsubscribe = service.subscribe(listener)

        def closed(_: Subscription) -> None:
            unsubscribe()

        sub.on_close(closed)
        sub.info.update(check=check, component=component, severity=severity)
        return {"subscription": sub.id}

    @router.method("monitor.unsubscribe", kind="inline")
    def unsubscribe(
        ctx: Context,
        subscription: Annotated[str, Doc("id from monitor.subscribe")],
    ) -> dict[str, Any]:
        """End a ``monitor.subscribe`` stream; -32001 when it is not one of this
        connection's. Returns ``{"subscription": id, "closed": true}``."""
        ctx.subscription(subscription, "monitor").close()
        return {"subscription": subscription, "closed": True}

    @router.method("monitor.test", kind="async")
    async def test(
        ctx: Context,
        provider: Annotated[ProviderName | None,
                            Doc("one provider; default every enabled one")] = None,
    ) -> dict[str, Any]:
        """Send a test alert through one or every enabled provider (one attempt each).

        Returns ``{"alert": {<the test alert>}, "results": [{"provider", "ok", "error",
        "status_code", "duration_ms"}]}``; -32001 when ``provider`` is not enabled.
        """
        alert, results = await service.test(provider)
        return {"alert": alert.to_wire(), "results": results}

    @router.method("monitor.silence", kind="inline")
    def silence(
        ctx: Context,
        check: Annotated[str | None, Doc("check name or glob (cpu, filesystem, ...)")] = None,
        component: Annotated[str | None, Doc("component name or glob (filesystem:/var*)")]
        = None,
        duration: Annotated[float | None, Range(0.001, 366 * 86400),
                            Doc("seconds the silence lasts (default 3600)")] = None,
        comment: Annotated[str, Doc("why")] = "",
        duration_s: Annotated[float | None, Range(0.001, 366 * 86400),
                              Doc("same as duration")] = None,
    ) -> dict[str, Any]:
        """Silence alerts of a check and/or component pattern for a while (Alertmanager
        style: states still change, notifications are held back).

        Returns the silence ``{"silence": id, "id", "check", "component", "starts_at",
        "ends_at", "comment", "created_by"}``; -32602 when neither ``check`` nor
        ``component`` is given.
        """
        if not check and not component:
            raise InvalidParams("monitor.silence needs a check or a component pattern",
                                {"param": "check", "reason": "check or component required"})
        seconds = duration if duration is not None else duration_s
        created_by = f"uid:{ctx.peer.uid}" if ctx.peer.uid is not None else ""
        try:
            s = service.silence(check, component, 3600.0 if seconds is None else seconds,
                                comment, created_by)
        except OverflowError as exc:
            raise Overloaded(str(exc)) from exc
        except ValueError as exc:
            raise InvalidParams(str(exc), {"param": "duration"}) from exc
        return {"silence": s.id, **s.to_wire()}

    @router.method("monitor.unsilence", kind="inline")
    def unsilence(
        ctx: Context,
        silence: Annotated[str | None, Doc("silence id")] = None,
        id: Annotated[str | None, Doc("same as silence")] = None,
        check: Annotated[str | None, Doc("remove the silences with this check pattern")]
        = None,
        component: Annotated[str | None,
                             Doc("remove the silences with this component pattern")] = None,
    ) -> dict[str, Any]:
        """Remove silences by id, or by their check/component patterns.

        Returns ``{"removed": [ids]}``; -32001 when nothing matched, -32602 when no
        selector is given.
        """
        sid = silence or id
        if sid:
            gone = service.silences.remove(sid)
            if gone is None:
                raise NotFound(f"no silence {sid!r}", {"silence": sid})
            return {"removed": [gone.id]}
        if check is None and component is None:
            raise InvalidParams("monitor.unsilence needs a silence id, a check or a component",
                                {"param": "silence"})
        removed = service.silences.remove_matching(check, component)
        if not removed:
            raise NotFound("no silence matches", {"check": check, "component": component})
        return {"removed": [s.id for s in removed]}

    @router.method("monitor.silences", kind="inline", safe=True)
    def silences(ctx: Context) -> dict[str, Any]:
        """Active silences: ``{"silences": [{"id", "check", "component", "starts_at",
        "ends_at", "comment", "created_by"}]}``."""
        return {"silences": [s.to_wire() for s in service.silences.list()]}
