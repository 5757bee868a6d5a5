"""Gotify (https://gotify.net/api-docs, ``POST /message``): the application token in the
``X-Gotify-Key`` header and a JSON body ``{title, message, priority, extras}``, with
``extras["client::display"]["contentType"] = "text/markdown"`` so clients render the
Markdown (https://gotify.net/docs/msgextras)."""

from __future__ import annotations

from typing import Any

from xsys.alerts import render, tinymonitor
from xsys.alerts.config import GotifyConfig
from xsys.alerts.model import Alert
from xsys.alerts.providers.base import HttpClient, HttpProvider

#: Gotify priorities (0..10) by level, as TinyMonitor mapped them.
PRIORITIES = {"CRITICAL": 8, "WARNING": 5, "RESOLVED": 2}


def message_url(url: str) -> str:
    """``<url>/message`` (unchanged when it already ends with ``/message``)."""
    url = url.rstrip("/")
    return url if url.endswith("/message") else f"{url}/message"


class GotifyProvider(HttpProvider):
    """Pushes alerts to a Gotify server (``url``, application ``token``)."""

    config: GotifyConfig

    def __init__(self, config: GotifyConfig, http: HttpClient) -> None:
        super().__init__("gotify", config, http)

    def build(self, alert: Alert) -> dict[str, Any]:
        """The JSON body for ``alert``."""
        return {
            "title": alert.title,
            "message": render.markdown(alert, line_end="  \n"),
            "priority": PRIORITIES.get(alert.level, 2),
            "extras": {
                "client::display": {"contentType": "text/markdown"},
                "xsys::alert": {"id": alert.id, "check": alert.check,
                                "component": alert.component, "severity": alert.severity,
                                "status": alert.status, "fingerprint": alert.fingerprint},
            },
        }

    async def send(self, alert: Alert) -> None:
        """POST ``<url>/message``; raises ``DeliveryError`` on a non-2xx."""
        if alert.tinymonitor:
            await self.request("POST", message_url(self.config.url),
                               data=tinymonitor.dumps(tinymonitor.gotify_message(alert)),
                               headers={"X-Gotify-Key": self.config.token,
                                        "Content-Type": "application/json"})
            return
        await self.request("POST", message_url(self.config.url), json=self.build(alert),
                           headers={"X-Gotify-Key": self.config.token})
