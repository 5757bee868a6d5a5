"""ntfy (https://docs.ntfy.sh/publish/): ``POST`` the message body to the topic URL with
the ``Title``, ``Priority`` (1..5), ``Tags`` (comma-separated emoji short codes) and
``Markdown: yes`` headers, and ``Authorization: Bearer <token>`` for a protected topic.
Non-ASCII titles are sent RFC 2047-encoded, which ntfy decodes."""

from __future__ import annotations

from email.header import Header

from xsys.alerts import render, tinymonitor
from xsys.alerts.config import NtfyConfig
from xsys.alerts.model import Alert
from xsys.alerts.providers.base import HttpClient, HttpProvider

#: (priority, tags) by level, as TinyMonitor mapped them (5 = max, 3 = default).
PRIORITIES = {
    "CRITICAL": ("5", "rotating_light,critical"),
    "WARNING": ("3", "warning"),
    "RESOLVED": ("3", "white_check_mark,resolved"),
}


def header_value(value: str) -> str:
    """``value`` itself when ASCII, else its RFC 2047 ``=?utf-8?b?...?=`` form."""
    try:
        value.encode("ascii")
        return value
    except UnicodeEncodeError:
        return Header(value, "utf-8").encode()


class NtfyProvider(HttpProvider):
    """Publishes alerts to an ntfy topic (``topic_url``, optional ``token``)."""

    config: NtfyConfig

    def __init__(self, config: NtfyConfig, http: HttpClient) -> None:
        super().__init__("ntfy", config, http)

    def build(self, alert: Alert) -> tuple[dict[str, str], bytes]:
        """The request headers and UTF-8 Markdown body for ``alert``."""
        priority, tags = PRIORITIES.get(alert.level, ("3", "information_source"))
        headers = {
            "Title": header_value(alert.title),
            "Priority": priority,
            "Tags": tags,
            "Markdown": "yes",
            "Content-Type": "text/markdown; charset=utf-8",
        }
        if self.config.token:
            headers["Authorization"] = f"Bearer {self.config.token}"
        return headers, render.markdown(alert).encode("utf-8")

    async def send(self, alert: Alert) -> None:
        """Publish to the topic; raises ``DeliveryError`` on a non-2xx."""
        if alert.tinymonitor:  # TinyMonitor's request: no Content-Type header
            headers, body = tinymonitor.ntfy_request(alert, self.config.token)
            headers["Title"] = header_value(headers["Title"])
            await self.request("POST", self.config.topic_url, data=body, headers=headers,
                               skip_auto_headers=("Content-Type",))
            return
        headers, body = self.build(alert)
        await self.request("POST", self.config.topic_url, data=body, headers=headers)
