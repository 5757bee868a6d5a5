"""Notification providers, one module each, and ``build_providers`` that makes the enabled
ones from the ``monitor.alerts`` config."""

from __future__ import annotations

from xsys.alerts.providers.alertmanager import AlertmanagerProvider
from xsys.alerts.providers.base import DeliveryError, HttpClient, Provider
from xsys.alerts.providers.console import ConsoleProvider
from xsys.alerts.providers.google_chat import GoogleChatProvider
from xsys.alerts.providers.gotify import GotifyProvider
from xsys.alerts.providers.ntfy import NtfyProvider
from xsys.alerts.providers.smtp import RunBlocking, SmtpProvider
from xsys.alerts.providers.webhook import WebhookProvider
from xsys.monitor.settings import AlertsConfig

__all__ = [
    "AlertmanagerProvider",
    "ConsoleProvider",
    "DeliveryError",
    "GoogleChatProvider",
    "GotifyProvider",
    "HttpClient",
    "NtfyProvider",
    "Provider",
    "SmtpProvider",
    "WebhookProvider",
    "build_providers",
]


def build_providers(config: AlertsConfig, http: HttpClient,
                    run_blocking: RunBlocking | None = None) -> dict[str, Provider]:
    """The enabled providers by name, in the order of ``PROVIDER_NAMES``."""
    makers: dict[str, Provider] = {}
    if config.google_chat.enabled:
        makers["google_chat"] = GoogleChatProvider(config.google_chat, http)
    if config.ntfy.enabled:
        makers["ntfy"] = NtfyProvider(config.ntfy, http)
    if config.gotify.enabled:
        makers["gotify"] = GotifyProvider(config.gotify, http)
    if config.smtp.enabled:
        makers["smtp"] = SmtpProvider(config.smtp, run_blocking)
    if config.webhook.enabled:
        makers["webhook"] = WebhookProvider(config.webhook, http)
    if config.alertmanager.enabled:
        makers["alertmanager"] = AlertmanagerProvider(config.alertmanager, http)
    if config.console.enabled:
        makers["console"] = ConsoleProvider(config.console)
    return makers
