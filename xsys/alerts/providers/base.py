"""What every notification provider shares: routing by ``levels``/``rules`` (TinyMonitor's
``should_send``), the ``DeliveryError`` that tells the dispatcher whether to retry, and the
shared aiohttp session and response handling of the HTTP providers."""

from __future__ import annotations

import abc
import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from xsys import __version__
from xsys.alerts.config import ProviderConfig
from xsys.alerts.model import Alert

if TYPE_CHECKING:  # aiohttp is imported when an HTTP provider first sends
    import aiohttp

log = logging.getLogger(__name__)

USER_AGENT = f"xsys/{__version__}"

#: Rule keys tried after the check's own name (TinyMonitor normalised ``I/O`` to ``i/o``;
#: xsys's extra checks fall back to the TinyMonitor section closest to them).
RULE_FALLBACKS: dict[str, tuple[str, ...]] = {
    "io": ("i/o",),
    "inodes": ("filesystem",),
    "swap": ("memory",),
    "boot": ("reboot",),
}


class DeliveryError(Exception):
    """A delivery attempt failed. ``retryable``: worth another attempt (connection error,
    timeout, 5xx, 429); ``status_code``: the HTTP status if any; ``retry_after``: seconds
    the server asked to wait (``Retry-After``)."""

    def __init__(self, message: str, *, retryable: bool, status_code: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status_code = status_code
        self.retry_after = retry_after


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP-date (RFC 9110
    section 10.2.3); None when absent or unparsable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        import email.utils

        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    ref = dt.datetime.now(dt.timezone.utc).timestamp() if now is None else now
    return max(0.0, when.timestamp() - ref)


class Provider(abc.ABC):
    """A notification target. ``name`` (``ntfy``...), ``config`` (its ``ProviderConfig``).
    ``send(alert)`` makes one attempt and raises ``DeliveryError`` (or a connection /
    timeout error, which the dispatcher treats as retryable) on failure.
    ``max_concurrency``: a cap on this provider's attempts in flight below the
    dispatcher's ``workers`` (None: no own cap)."""

    max_concurrency: int | None = None

    def __init__(self, name: str, config: ProviderConfig) -> None:
        self.name = name
        self.config = config

    @property
    def timeout(self) -> float:
        """Seconds one attempt may take."""
        return self.config.timeout

    def levels_for(self, check: str) -> frozenset[str]:
        """The severities (lower case) this provider takes for ``check``: ``levels`` when
        there are no ``rules``; else the rule of the check (or its fallback key), else the
        ``default`` rule, else none (TinyMonitor's ``should_send``)."""
        rules = self.config.rules
        if not rules:
            return frozenset(level.lower() for level in self.config.levels)
        for key in (check, *RULE_FALLBACKS.get(check, ())):
            if key in rules:
                return frozenset(level.lower() for level in rules[key])
        return frozenset(level.lower() for level in rules.get("default", ()))

    def accepts(self, alert: Alert) -> bool:
        """Routing: the alert's severity is among ``levels_for(check)``; resolved alerts
        only with ``send_resolved`` (they carry the severity that fired, so they reach
        the providers that got the firing alert)."""
        if not self.config.enabled:
            return False
        if alert.status == "resolved" and not self.config.send_resolved:
            return False
        return alert.severity in self.levels_for(alert.check)

    @abc.abstractmethod
    async def send(self, alert: Alert) -> None:
        """Deliver ``alert`` once."""

    async def close(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Release resources (nothing by default)."""


class HttpClient:
    """The one aiohttp ``ClientSession`` shared by the HTTP providers, opened on first use
    (it must be created on the running loop) and closed by ``close()``.

    The connector has no pool-wide connection limit: a shared limit would let a provider
    that hangs hold every connection and starve the others. Connections are bounded by the
    dispatcher instead (``workers`` attempts in flight per provider), and every request by
    its provider's ``timeout`` (``DEFAULT_TIMEOUT_S`` when a caller gives none)."""

    #: Total seconds of a request made without an explicit timeout.
    DEFAULT_TIMEOUT_S = 30.0

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        """The shared session (created on first call)."""
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": USER_AGENT},
                connector=aiohttp.TCPConnector(limit=0),
                timeout=aiohttp.ClientTimeout(total=self.DEFAULT_TIMEOUT_S),
            )
        return self._session

    async def close(self) -> None:
        """Close the session (idempotent)."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


class HttpProvider(Provider):
    """A provider speaking HTTP through the shared ``HttpClient``."""

    def __init__(self, name: str, config: ProviderConfig, http: HttpClient) -> None:
        super().__init__(name, config)
        self.http = http

    async def request(self, method: str, url: str, *, json: Any = None,
                      data: bytes | None = None,
                      headers: dict[str, str] | None = None,
                      skip_auto_headers: tuple[str, ...] = ()) -> int:
        """One HTTP request bounded by the provider's ``timeout``; returns the status of a
        2xx answer, raises ``DeliveryError`` otherwise (retryable on 5xx and 429, with
        ``Retry-After``), turns ``aiohttp.ClientError`` into a retryable
        ``DeliveryError`` and lets ``TimeoutError`` through (retryable).
        ``skip_auto_headers``: headers aiohttp must not add (``Content-Type`` of a bytes
        body, for a request that carries none)."""
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=self.timeout)
        try:
            async with self.http.session().request(
                    method, url, json=json, data=data, headers=headers, timeout=timeout,
                    skip_auto_headers=skip_auto_headers or None) as resp:
                body = await resp.read()
                status, retry_header = resp.status, resp.headers.get("Retry-After")
        except aiohttp.ClientError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}", retryable=True) from exc
        if 200 <= status < 300:
            return status
        text = body[:300].decode("utf-8", "replace").strip()
        raise DeliveryError(f"HTTP {status}: {text}" if text else f"HTTP {status}",
                            retryable=status >= 500 or status == 429, status_code=status,
                            retry_after=parse_retry_after(retry_header))
