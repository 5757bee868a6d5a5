"""E-mail through SMTP (RFC 5321) with the stdlib: ``smtplib`` in the daemon's thread pool
(never on the event loop). STARTTLS (``use_tls``, RFC 3207) or implicit TLS (``use_ssl``,
SMTPS), an optional login, and a ``multipart/alternative`` message with a plain-text and
an HTML part. ``to_addrs`` may be a list or a comma-separated string (TinyMonitor)."""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
import socket
import ssl
from collections.abc import Awaitable, Callable
from email.message import EmailMessage, Message
from email.utils import formatdate, make_msgid

from xsys.alerts import render, tinymonitor
from xsys.alerts.config import SmtpConfig
from xsys.alerts.model import Alert
from xsys.alerts.providers.base import DeliveryError, Provider

RunBlocking = Callable[[Callable[[], None]], Awaitable[None]]


async def _to_thread(fn: Callable[[], None]) -> None:
    await asyncio.to_thread(fn)


class SmtpProvider(Provider):
    """Sends alerts by e-mail. ``run_blocking``: how to run the blocking SMTP dialogue
    (``App.run_blocking``; a plain thread by default). An attempt holds a thread of that
    pool, so at most ``max_concurrency`` run at once; one that outlives its timeout (a
    server dripping bytes within each socket timeout) has its socket shut down, which ends
    the thread's dialogue at once."""

    config: SmtpConfig
    max_concurrency = 2

    def __init__(self, config: SmtpConfig, run_blocking: RunBlocking | None = None) -> None:
        super().__init__("smtp", config)
        self._run_blocking = run_blocking or _to_thread

    def build(self, alert: Alert) -> Message:
        """The message: subject ``[CRITICAL] cpu on host - 95.0%``, text and HTML parts;
        for a ``tinymonitor`` alert TinyMonitor's message (one HTML part)."""
        cfg = self.config
        if alert.tinymonitor:
            return tinymonitor.email_message(alert, cfg.from_addr, cfg.recipients())
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

    def deliver(self, msg: Message, opened: list[smtplib.SMTP] | None = None) -> None:
        """The blocking SMTP dialogue; raises ``DeliveryError`` for SMTP replies (4xx
        retryable, 5xx not) and lets connection errors (``OSError``) through. The client
        is appended to ``opened`` once created (so ``send`` can abort it)."""
        cfg = self.config
        try:
            client: smtplib.SMTP
            if cfg.use_ssl:
                client = smtplib.SMTP_SSL(context=self._tls_context(), timeout=cfg.timeout)
            else:
                client = smtplib.SMTP(timeout=cfg.timeout)
            # connect() separately (so ``send`` can reach the socket while the greeting is
            # read); TLS verifies against ``_host``, which only the constructor sets
            client._host = cfg.host  # type: ignore[attr-defined]
            if opened is not None:
                opened.append(client)
            with client:
                client.connect(cfg.host, cfg.port)
                client.ehlo()
                if cfg.use_tls:
                    client.starttls(context=self._tls_context())
                    client.ehlo()
                if cfg.user:
                    client.login(cfg.user, cfg.password)
                if isinstance(msg, EmailMessage):
                    client.send_message(msg, cfg.from_addr, cfg.recipients())
                else:  # TinyMonitor's message, sent as TinyMonitor sends it
                    client.sendmail(cfg.from_addr, cfg.recipients(), msg.as_string())
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
        """Send the e-mail from the thread pool (see ``deliver``); when cancelled (the
        dispatcher's timeout), shut the connection down so the thread stops too."""
        msg = self.build(alert)
        opened: list[smtplib.SMTP] = []
        try:
            await self._run_blocking(lambda: self.deliver(msg, opened))
        except asyncio.CancelledError:
            for client in opened:
                _abort(client)
            raise


def _abort(client: smtplib.SMTP) -> None:
    """Shut down ``client``'s socket from another thread: a recv blocked in it returns."""
    sock = getattr(client, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
