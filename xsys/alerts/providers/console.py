"""The console/log provider: every alert as one line in the daemon's log (logger
``xsys.alerts.console``): critical at ERROR, warning at WARNING, resolved at INFO."""

from __future__ import annotations

import logging

from xsys.alerts.config import ConsoleConfig
from xsys.alerts.model import Alert
from xsys.alerts.providers.base import Provider

log = logging.getLogger("xsys.alerts.console")


class ConsoleProvider(Provider):
    """Logs alerts (never fails)."""

    def __init__(self, config: ConsoleConfig) -> None:
        super().__init__("console", config)

    async def send(self, alert: Alert) -> None:
        """Log the alert (never fails)."""
        level = (logging.INFO if alert.status == "resolved"
                 else logging.ERROR if alert.severity == "critical" else logging.WARNING)
        log.log(level, "%s: %s [id=%s host=%s]", alert.title, alert.message, alert.id,
                alert.host.hostname,
                extra={"alert_id": alert.id, "check": alert.check,
                       "component": alert.component, "severity": alert.severity,
                       "status": alert.status})
