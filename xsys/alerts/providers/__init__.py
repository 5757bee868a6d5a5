"""Notification providers, one module each, and ``build_providers`` that makes the enabled
ones from the ``monitor.alerts`` config."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from xsys.alerts.config import AlertsConfig
from xsys.alerts.providers.base import DeliveryError, HttpClient, Provider

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


#: Provider name -> (class name, what its constructor takes after the config).
_BUILD = {
    "google_chat": ("GoogleChatProvider", "http"),
    "ntfy": ("NtfyProvider", "http"),
    "gotify": ("GotifyProvider", "http"),
    "smtp": ("SmtpProvider", "run_blocking"),
    "webhook": ("WebhookProvider", "http"),
    "alertmanager": ("AlertmanagerProvider", "http"),
    "console": ("ConsoleProvider", ""),
}


def build_providers(config: AlertsConfig, http: HttpClient,
                    run_blocking: RunBlocking | None = None) -> dict[str, Provider]:
    """The enabled providers by name, in the order of ``PROVIDER_NAMES``. Each provider's
    module (and so aiohttp, smtplib...) is imported only when that provider is enabled."""
    extra: dict[str, Any] = {"http": http, "run_blocking": run_blocking}
    made: dict[str, Provider] = {}
    for name, (class_name, needs) in _BUILD.items():
        cfg = getattr(config, name)
        if not cfg.enabled:
            continue
        cls = __getattr__(class_name)
        made[name] = cls(cfg, extra[needs]) if needs else cls(cfg)
    return made
