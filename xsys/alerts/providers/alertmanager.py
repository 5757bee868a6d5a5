"""Prometheus Alertmanager (https://prometheus.io/docs/alerting/latest/clients/, API v2
``POST /api/v2/alerts``): a JSON array of alerts with ``labels`` (``alertname``,
``severity``, ``instance``, plus ``check``, ``component``, ``job="xsys"`` and the configured
ones), ``annotations`` (summary, description, value, threshold), ``startsAt``, ``endsAt``
and ``generatorURL``. Labels identify an alert, so the Alertmanager of a fleet groups,
routes and deduplicates them centrally.

Alertmanager expects clients to re-send active alerts: an alert whose ``endsAt`` passes
is resolved by Alertmanager. So a firing alert carries ``endsAt = now + 4 *
resend_interval`` and this provider re-posts the alerts still firing every
``resend_interval`` seconds (as Prometheus does) until their resolved notification."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from xsys.alerts.config import AlertmanagerConfig
from xsys.alerts.model import Alert, iso8601
from xsys.alerts.providers.base import HttpClient, HttpProvider

log = logging.getLogger(__name__)


def alertname(alert: Alert) -> str:
    """``XsysCpu``, ``XsysFilesystem``... (CamelCase, like Prometheus rule names)."""
    return "Xsys" + "".join(part.capitalize() for part in alert.check.split("_"))


class AlertmanagerProvider(HttpProvider):
    """Posts alerts to an Alertmanager (``url``, extra ``labels``/``headers``)."""

    config: AlertmanagerConfig

    def __init__(self, config: AlertmanagerConfig, http: HttpClient) -> None:
        super().__init__("alertmanager", config, http)
        self.active: dict[str, Alert] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def endpoint(self) -> str:
        """``<url>/api/v2/alerts``."""
        base = self.config.url.rstrip("/")
        return base if base.endswith("/api/v2/alerts") else f"{base}/api/v2/alerts"

    def build(self, alert: Alert, now: float | None = None) -> dict[str, Any]:
        """One ``postableAlert`` for ``alert``."""
        at = time.time() if now is None else now
        labels = {
            "alertname": alertname(alert),
            "severity": alert.severity,
            "instance": alert.host.hostname,
            "check": alert.check,
            "component": alert.component,
            "job": "xsys",
        }
        labels.update(self.config.labels)
        item: dict[str, Any] = {
            "labels": labels,
            "annotations": {
                "summary": alert.title,
                "description": alert.message,
                "value": alert.value_text,
                "threshold": alert.threshold_text,
                "alert_id": alert.id,
            },
            "startsAt": iso8601(alert.started_at),
        }
        if alert.status == "resolved":
            item["endsAt"] = iso8601(alert.ended_at or at)
        else:
            item["endsAt"] = iso8601(at + 4 * self.config.resend_interval)
        if self.config.generator_url:
            item["generatorURL"] = self.config.generator_url
        return item

    async def post(self, alerts: list[Alert]) -> None:
        """Post ``alerts`` in one request."""
        headers = {"Content-Type": "application/json", **self.config.headers}
        now = time.time()
        await self.request("POST", self.endpoint, json=[self.build(a, now) for a in alerts],
                           headers=headers)

    async def send(self, alert: Alert) -> None:
        """Post the alert; remember firing ones for re-sending, forget resolved ones."""
        await self.post([alert])
        if alert.test:
            return
        if alert.status == "firing":
            # a firing alert at another severity has other labels: drop the old one
            for key in [k for k, a in self.active.items() if a.fingerprint == alert.fingerprint]:
                del self.active[key]
            self.active[f"{alert.fingerprint}:{alert.severity}"] = alert
        else:
            self.active.pop(f"{alert.fingerprint}:{alert.severity}", None)
        if self.active and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._refresh())

    async def _refresh(self) -> None:
        try:
            while self.active:
                await asyncio.sleep(self.config.resend_interval)
                alerts = list(self.active.values())
                if not alerts:
                    break
                try:
                    await self.post(alerts)
                except Exception as exc:  # next round retries; the dispatcher owns alerts
                    log.warning("alertmanager: re-sending %d active alerts failed: %s",
                                len(alerts), exc)
        finally:
            self._task = None

    async def close(self) -> None:
        """Cancel and await the re-sending task."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
