"""Google Chat incoming webhooks (https://developers.google.com/workspace/chat/
quickstart/webhooks): ``POST`` a message JSON to the Space's webhook URL; the alert is a
``cardsV2`` card (https://developers.google.com/workspace/chat/api/reference/rest/v1/cards)
with a header, an incident section whose value is coloured by severity, and a collapsible
machine-context section, as TinyMonitor drew it."""

from __future__ import annotations

import html
import re
from typing import Any

from xsys.alerts import tinymonitor
from xsys.alerts.config import GoogleChatConfig
from xsys.alerts.model import Alert
from xsys.alerts.providers.base import HttpClient, HttpProvider
from xsys.alerts.render import local_time

#: (icon, colour) by level.
STYLE = {
    "CRITICAL": ("\U0001f6a8", "#FF0000"),
    "WARNING": ("\u26a0\ufe0f", "#FFA500"),
    "RESOLVED": ("\u2705", "#008000"),
}


def card_id(hostname: str, component: str) -> str:
    """``xsys-<host>-<component>`` with only the characters a cardId allows."""
    return "xsys-" + re.sub(r"[^a-zA-Z0-9_-]", "_", f"{hostname}-{component}")


class GoogleChatProvider(HttpProvider):
    """Posts alert cards to a Google Chat Space (``webhook_url``)."""

    config: GoogleChatConfig

    def __init__(self, config: GoogleChatConfig, http: HttpClient) -> None:
        super().__init__("google_chat", config, http)

    def build(self, alert: Alert) -> dict[str, Any]:
        """The message JSON (``text`` fallback plus one ``cardsV2`` card)."""
        e = html.escape
        icon, colour = STYLE.get(alert.level, ("\u2139\ufe0f", "#000000"))
        h = alert.host
        widgets = [
            {"decoratedText": {"topLabel": "Monitored Component",
                               "text": f"<b>{e(alert.component)}</b>",
                               "startIcon": {"knownIcon": "MEMBERSHIP"}}},
            {"decoratedText": {"topLabel": "Current Value",
                               "text": f'<font color="{colour}"><b>{e(alert.value_text)}'
                                       "</b></font>",
                               "startIcon": {"knownIcon": "DESCRIPTION"}}},
            {"decoratedText": {"topLabel": "Alert Level",
                               "text": f'<font color="{colour}"><b>{alert.level}</b></font>',
                               "startIcon": {"knownIcon": "STAR"}}},
            {"decoratedText": {"topLabel": "Threshold", "text": e(alert.threshold_text),
                               "startIcon": {"knownIcon": "BOOKMARK"}}},
        ]
        context = [
            {"textParagraph": {"text": f"<b>Addresses:</b> {e(', '.join(h.addresses) or '-')}"}},
            {"textParagraph": {"text": f"<b>Load:</b> {h.load_text}<br>"
                                       f"<b>Uptime:</b> {h.uptime_text}"}},
            {"textParagraph": {"text": f'<font color="#808080">Alert Time: '
                                       f"{local_time(alert.created_at)}</font>"}},
        ]
        return {
            "text": f"{icon} {alert.title} on {h.hostname}: {alert.value_text}",
            "cardsV2": [{
                "cardId": card_id(h.hostname, alert.component),
                "card": {
                    "header": {"title": f"{icon} {alert.title}",
                               "subtitle": f"Server : {h.hostname}"},
                    "sections": [
                        {"header": "Incident Details", "widgets": widgets},
                        {"header": "Machine Context", "collapsible": True,
                         "uncollapsibleWidgetsCount": 2, "widgets": context},
                    ],
                },
            }],
        }

    async def send(self, alert: Alert) -> None:
        """POST the card; raises ``DeliveryError`` on a non-2xx."""
        if alert.tinymonitor:
            await self.request("POST", self.config.webhook_url,
                               data=tinymonitor.dumps(tinymonitor.google_chat_card(alert)),
                               headers={"Content-Type": "application/json"})
            return
        await self.request("POST", self.config.webhook_url, json=self.build(alert),
                           headers={"Content-Type": "application/json; charset=UTF-8"})
