"""Generic webhook: TinyMonitor's JSON document (docs/alerts/webhook.md of
Gu1llaum-3/tinymonitor) ``{timestamp, alert: {level, component, value, title, message},
host: {hostname, ip_private, ip_public, uptime, load_average}}``, sent with the configured
``method`` and ``headers``. xsys adds fields (alert ``id``, ``check``, ``severity``,
``status``, ``unit``, ``threshold``, ``started_at``, ``fingerprint``; host ``addresses``,
``uptime_s``) and never removes TinyMonitor's. ``ip_public`` is ``"N/A"`` unless
``alerts.public_ip_url`` is set. An alert made under ``monitor.compat: tinymonitor`` is sent
exactly as TinyMonitor sends it, xsys's fields only under a top-level ``xsys`` object
(``xsys.alerts.tinymonitor``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from xsys.alerts import tinymonitor
from xsys.alerts.config import WebhookConfig
from xsys.alerts.model import Alert
from xsys.alerts.providers.base import HttpClient, HttpProvider


def payload(alert: Alert) -> dict[str, Any]:
    """The JSON document for ``alert``."""
    h = alert.host
    return {
        "timestamp": dt.datetime.fromtimestamp(alert.created_at).astimezone().isoformat(),
        "alert": {
            "level": alert.level,
            "component": alert.component,
            "value": alert.value_text,
            "title": alert.title,
            "message": alert.message,
            "id": alert.id,
            "fingerprint": alert.fingerprint,
            "check": alert.check,
            "severity": alert.severity,
            "status": alert.status,
            "unit": alert.unit,
            "raw_value": alert.value,
            "threshold": alert.threshold,
            "started_at": alert.started_at,
            "ended_at": alert.ended_at,
            "test": alert.test,
        },
        "host": {
            "hostname": h.hostname,
            "ip_private": h.ip_private,
            "ip_public": h.ip_public,
            "uptime": h.uptime_text,
            "load_average": h.load_text,
            "addresses": list(h.addresses),
            "uptime_s": h.uptime_s,
        },
    }


class WebhookProvider(HttpProvider):
    """Sends TinyMonitor's webhook document to ``url``."""

    config: WebhookConfig

    def __init__(self, config: WebhookConfig, http: HttpClient) -> None:
        super().__init__("webhook", config, http)

    async def send(self, alert: Alert) -> None:
        """POST (or ``method``) the webhook document; raises ``DeliveryError`` on a non-2xx."""
        headers = dict(self.config.headers)
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
        if alert.tinymonitor:
            await self.request(self.config.method, self.config.url,
                               data=tinymonitor.dumps(tinymonitor.webhook_document(alert)),
                               headers=headers)
            return
        await self.request(self.config.method, self.config.url, json=payload(alert),
                           headers=headers)
