"""Notification providers, one module each, and ``build_providers`` that makes the enabled
ones from the ``monitor.alerts`` config."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from xsys.alerts.providers.base import DeliveryError, HttpClient, Provider
from xsys.monitor.settings import AlertsConfig

if TYPE_CHECKING:
    from xsys.alerts.providers.alertmanager import AlertmanagerProvider
    from xsys.alerts.providers.console import ConsoleProvider
    from xsys.alerts.providers.google_chat import GoogleChatProvider
    from xsys.alerts.providers.gotify import GotifyProvider
    from xsys.alerts.providers.ntfy import NtfyProvider
    from xsys.alerts.providers.smtp import RunBlocking, SmtpProvider
    from xsys.alerts.providers.webhook import WebhookProvider

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

_LAZY = {
    "AlertmanagerProvider": "alertmanager", "ConsoleProvider": "console",
    "GoogleChatProvider": "google_chat", "GotifyProvider": "gotify",
    "NtfyProvider": "ntfy", "SmtpProvider": "smtp", "WebhookProvider": "webhook",
}


def __getattr__(name: str) -> Any:
    """Provider classes load on first use, so an idle daemon does not import aiohttp,
    smtplib or email unless a provider that needs them is enabled."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(name)
    return getattr(importlib.import_module(f"xsys.alerts.providers.{module}"), name)


def build_providers(config: AlertsConfig, http: HttpClient,
                    run_blocking: RunBlocking | None = None) -> dict[str, Provider]:
    """The enabled providers by name, in the order of ``PROVIDER_NAMES``. Each provider's
    module (and so aiohttp, smtplib...) is imported only when that provider is enabled."""
    makers: dict[str, Provider] = {}
    if config.google_chat.enabled:
        from xsys.alerts.providers.google_chat import GoogleChatProvider

        makers["google_chat"] = GoogleChatProvider(config.google_chat, http)
    if config.ntfy.enabled:
        from xsys.alerts.providers.ntfy import NtfyProvider

        makers["ntfy"] = NtfyProvider(config.ntfy, http)
    if config.gotify.enabled:
        from xsys.alerts.providers.gotify import GotifyProvider

        makers["gotify"] = GotifyProvider(config.gotify, http)
    if config.smtp.enabled:
        from xsys.alerts.providers.smtp import SmtpProvider

        makers["smtp"] = SmtpProvider(config.smtp, run_blocking)
    if config.webhook.enabled:
        from xsys.alerts.providers.webhook import WebhookProvider

        makers["webhook"] = WebhookProvider(config.webhook, http)
    if config.alertmanager.enabled:
        from xsys.alerts.providers.alertmanager import AlertmanagerProvider

        makers["alertmanager"] = AlertmanagerProvider(config.alertmanager, http)
    if config.console.enabled:
        from xsys.alerts.providers.console import ConsoleProvider

        makers["console"] = ConsoleProvider(config.console)
    return makers
