"""E-mail through SMTP (RFC 5321) with the stdlib: ``smtplib`` in the daemon's thread pool
(never on the event loop). STARTTLS (``use_tls``, RFC 3207) or implicit TLS (``use_ssl``,
SMTPS), an optional login, and a ``multipart/alternative`` message with a plain-text and
an HTML part. ``to_addrs`` may be a list or a comma-separated string (TinyMonitor)."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from xsys.alerts import render
from xsys.alerts.model import Alert
from xsys.alerts.providers.base import DeliveryError, Provider
from xsys.monitor.settings import SmtpConfig

RunBlocking = Callable[[Callable[[], None]], Awaitable[None]]


async def _to_thread(fn: Callable[[], None]) -> None:
    await asyncio.to_thread(fn)


class SmtpProvider(Provider):
    """Sends alerts by e-mail. ``run_blocking``: how to run the blocking SMTP dialogue
    (``App.run_blocking``; a plain thread by default)."""

    config: SmtpConfig

    def __init__(self, config: SmtpConfig, run_blocking: RunBlocking | None = None) -> None:
        super().__init__("smtp", config)
        self._run_blocking = run_blocking or _to_thread

    def build(self, alert: Alert) -> EmailMessage:
        """The message: subject ``[CRITICAL] cpu on host - 95.0%``, text and HTML parts."""
        cfg = self.config
        msg = EmailMessage()
        msg["Subject"] = (f"[{alert.level}] {alert.component} on {alert.host.hostname} - "
                          f"{alert.value_text}")
        msg["From"] = cfg.from_addr
        msg["To"] = ", ".join(cfg.recipients())
        msg["Date"] = formatdate(alert.created_at, localtime=True)
        msg["Message-ID"] = make_msgid(domain=alert.host.hostname or None)
        msg["X-Xsys-Alert-Id"] = alert.id
        msg.set_content(render.text(alert))
        msg.add_alternative(render.html_body(alert), subtype="html")
        return msg

    def _tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.config.ca_file or None)

    def deliver(self, msg: EmailMessage) -> None:
        """The blocking SMTP dialogue; raises ``DeliveryError`` for SMTP replies (4xx
        retryable, 5xx not) and lets connection errors (``OSError``) through."""
        cfg = self.config
        try:
            client: smtplib.SMTP
            if cfg.use_ssl:
                client = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout,
                                          context=self._tls_context())
            else:
                client = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
            with client:
                client.ehlo()
                if cfg.use_tls:
                    client.starttls(context=self._tls_context())
                    client.ehlo()
                if cfg.user:
                    client.login(cfg.user, cfg.password)
                client.send_message(msg, cfg.from_addr, cfg.recipients())
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"recipients refused: {exc.recipients}",
                                retryable=False) from exc
        except smtplib.SMTPResponseException as exc:
            text = exc.smtp_error.decode("utf-8", "replace") if isinstance(
                exc.smtp_error, bytes) else str(exc.smtp_error)
            raise DeliveryError(f"SMTP {exc.smtp_code}: {text}",
                                retryable=400 <= exc.smtp_code < 500,
                                status_code=exc.smtp_code) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryError(f"SMTP server: {exc}", retryable=False) from exc
        except smtplib.SMTPServerDisconnected as exc:
            raise ConnectionError(f"SMTP server disconnected: {exc}") from exc

    async def send(self, alert: Alert) -> None:
        """Send the e-mail from the thread pool (see ``deliver``)."""
        msg = self.build(alert)
        await self._run_blocking(lambda: self.deliver(msg))
