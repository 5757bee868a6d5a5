"""The ``monitor.alerts`` config section: alert delivery (per-provider lanes, retries,
circuit breaker) and one section per notification provider. Owned by ``xsys.alerts``;
ground level (imports only the standard library), so ``xsys.config`` assembles it into the
root tree without cycles.

Provider sections follow TinyMonitor's (github.com/Gu1llaum-3/tinymonitor) keys: routing by
``levels``/``rules``; xsys adds ``timeout`` and ``send_resolved`` to each, and the
``alertmanager`` and ``console`` providers. Durations are in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

#: Level names accepted in ``levels``/``rules`` (any case; TinyMonitor writes upper case).
LEVEL_NAMES = frozenset({"warning", "critical", "info"})


def _check_levels(levels: tuple[str, ...], where: str) -> None:
    for level in levels:
        if level.lower() not in LEVEL_NAMES:
            raise ValueError(f"{where}: unknown level {level!r} (expected WARNING or CRITICAL)")


#: The longest ``timeout`` a provider may have (s): a delivery attempt always ends, so a
#: provider that hangs is counted as failing and its circuit breaker can open.
MAX_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class ProviderConfig:
    """What every provider has: ``enabled``; routing like TinyMonitor: ``levels`` (the
    severities sent when there are no ``rules``) and ``rules`` (check name -> levels, with a
    ``default`` entry; a check without an entry and no ``default`` is not sent); ``timeout``
    (s) per attempt, in (0, ``MAX_TIMEOUT_S``]: every network call of a provider is bounded
    by it; ``send_resolved``: also send the resolved notification of an alert this
    provider received."""

    enabled: bool = False
    levels: tuple[str, ...] = ("WARNING", "CRITICAL")
    rules: dict[str, tuple[str, ...]] = field(default_factory=dict)
    timeout: float = 10.0
    send_resolved: bool = True

    def validate(self) -> None:
        """Raise ``ValueError`` for unknown level names, a non-positive timeout, or a
        missing required key of an enabled provider."""
        _check_levels(self.levels, "levels")
        for key, levels in self.rules.items():
            _check_levels(levels, f"rules.{key}")
        if not 0 < self.timeout <= MAX_TIMEOUT_S:
            raise ValueError(f"timeout: must be in (0, {MAX_TIMEOUT_S:g}] seconds, "
                             f"got {self.timeout}")
        if self.enabled:
            for key in self.required_keys():
                if not getattr(self, key):
                    raise ValueError(f"{key}: required when the provider is enabled")

    def required_keys(self) -> tuple[str, ...]:
        """Keys that must be non-empty when enabled."""
        return ()


@dataclass(frozen=True)
class GoogleChatConfig(ProviderConfig):
    """Google Chat incoming webhook (``webhook_url`` of a Space)."""

    webhook_url: str = ""

    def required_keys(self) -> tuple[str, ...]:
        return ("webhook_url",)


@dataclass(frozen=True)
class NtfyConfig(ProviderConfig):
    """ntfy: ``topic_url`` (``https://ntfy.sh/mytopic``), optional access ``token``."""

    topic_url: str = ""
    token: str = ""

    def required_keys(self) -> tuple[str, ...]:
        return ("topic_url",)


@dataclass(frozen=True)
class GotifyConfig(ProviderConfig):
    """Gotify: server base ``url`` and application ``token``."""

    url: str = ""
    token: str = ""

    def required_keys(self) -> tuple[str, ...]:
        return ("url", "token")


@dataclass(frozen=True)
class SmtpConfig(ProviderConfig):
    """E-mail: ``host``/``port``; ``use_tls`` = STARTTLS (TinyMonitor's meaning),
    ``use_ssl`` = implicit TLS (SMTPS, usually port 465); login when ``user`` is set;
    ``to_addrs`` a list or a comma-separated string; ``ca_file``: extra trusted CA (PEM)."""

    host: str = ""
    port: int = 587
    user: str = ""
    password: str = ""
    from_addr: str = ""
    to_addrs: tuple[str, ...] | str = ()
    use_tls: bool = True
    use_ssl: bool = False
    ca_file: str = ""

    def required_keys(self) -> tuple[str, ...]:
        return ("host", "from_addr", "to_addrs")

    def recipients(self) -> list[str]:
        """``to_addrs`` as a list (a comma-separated string is split)."""
        if isinstance(self.to_addrs, str):
            return [a.strip() for a in self.to_addrs.split(",") if a.strip()]
        return [a.strip() for a in self.to_addrs if a.strip()]

    def validate(self) -> None:
        super().validate()
        if self.use_tls and self.use_ssl:
            raise ValueError("use_tls (STARTTLS) and use_ssl (implicit TLS) exclude each other")


@dataclass(frozen=True)
class WebhookConfig(ProviderConfig):
    """Generic webhook: TinyMonitor's JSON payload sent to ``url`` with ``method`` and extra
    ``headers`` (``Content-Type: application/json`` unless given)."""

    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    method: Literal["POST", "PUT", "PATCH"] = "POST"

    def required_keys(self) -> tuple[str, ...]:
        return ("url",)


@dataclass(frozen=True)
class AlertmanagerConfig(ProviderConfig):
    """Prometheus Alertmanager: base ``url`` (``http://127.0.0.1:9093``); alerts are posted to
    ``<url>/api/v2/alerts``; ``labels`` are added to every alert; ``headers`` (e.g.
    Authorization) to every request; ``generator_url`` is the alerts' back-link."""

    url: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    generator_url: str = ""
    resend_interval: float = 60.0
    """Seconds between re-posts of the alerts still firing (Alertmanager resolves an
    alert whose ``endsAt``, 4 intervals ahead, passes without news)."""

    def required_keys(self) -> tuple[str, ...]:
        return ("url",)

    def validate(self) -> None:
        super().validate()
        if self.resend_interval <= 0:
            raise ValueError(f"resend_interval: must be > 0 seconds, got {self.resend_interval}")


@dataclass(frozen=True)
class ConsoleConfig(ProviderConfig):
    """Alerts written to the daemon's log (logger ``xsys.alerts.console``): firing warning
    at WARNING, critical at ERROR, resolved at INFO. Enabled by default."""

    enabled: bool = True


#: Seconds one public IP lookup may take (TinyMonitor's ``timeout=3``).
PUBLIC_IP_TIMEOUT_S = 3.0
#: Seconds a looked-up public IP (or a failed lookup) is reused.
PUBLIC_IP_TTL_S = 300.0

PROVIDER_NAMES = ("google_chat", "ntfy", "gotify", "smtp", "webhook", "alertmanager", "console")


@dataclass(frozen=True)
class AlertsConfig:
    """Alert delivery. Every provider has its own lane (see ``xsys.alerts.dispatcher``), so
    the limits below apply per provider:

    - ``workers``: deliveries to one provider in flight at once (its concurrency limit).
    - ``queue_size`` (count) and ``queue_max_bytes`` (bytes, msgpack size of the alerts):
      deliveries one provider holds waiting, including those waiting for a retry; beyond
      either, the oldest of the lowest severity is dropped and counted.
    - ``retries`` after the first attempt on connection errors, timeouts, 5xx and 429,
      ``backoff_s`` * 2^n later (capped at ``backoff_max_s``, with jitter) or after the
      server's ``Retry-After`` (capped at ``retry_after_max_s``); a retry waits on a timer,
      never in a worker.
    - Circuit breaker: after ``circuit_failures`` consecutive failed attempts a provider is
      paused (open) for ``circuit_open_s`` seconds; then one probe delivery goes out
      (half-open); its success closes the breaker, its failure opens it again.
    - ``drain_timeout_s``: how long shutdown waits for queued deliveries.
    - ``public_ip_url``: a URL answering the machine's public IP as plain text (e.g.
      ``https://api.ipify.org``, TinyMonitor's), asked at most every
      ``PUBLIC_IP_TTL_S`` seconds with a ``PUBLIC_IP_TIMEOUT_S`` timeout for the alerts'
      ``ip_public``; empty (default): no outside call, ``ip_public`` is ``"N/A"`` (what
      TinyMonitor shows when its lookup fails).

    Then one section per provider."""

    workers: int = 5
    queue_size: int = 100
    queue_max_bytes: int = 1 << 20
    retries: int = 3
    backoff_s: float = 1.0
    backoff_max_s: float = 30.0
    retry_after_max_s: float = 120.0
    circuit_failures: int = 5
    circuit_open_s: float = 60.0
    drain_timeout_s: float = 3.0
    public_ip_url: str = ""
    google_chat: GoogleChatConfig = field(default_factory=GoogleChatConfig)
    ntfy: NtfyConfig = field(default_factory=NtfyConfig)
    gotify: GotifyConfig = field(default_factory=GotifyConfig)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    webhook: WebhookConfig = field(default_factory=WebhookConfig)
    alertmanager: AlertmanagerConfig = field(default_factory=AlertmanagerConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the key for out-of-range pool, queue, retry, backoff
        or circuit-breaker settings."""
        if not 1 <= self.workers <= 256:
            raise ValueError(f"workers: must be in 1..256, got {self.workers}")
        if not 1 <= self.queue_size <= 1_000_000:
            raise ValueError(f"queue_size: must be in 1..1000000, got {self.queue_size}")
        if not 1024 <= self.queue_max_bytes <= 1 << 30:
            raise ValueError(f"queue_max_bytes: must be in 1024..{1 << 30}, "
                             f"got {self.queue_max_bytes}")
        if not 0 <= self.retries <= 100:
            raise ValueError(f"retries: must be in 0..100, got {self.retries}")
        if not 1 <= self.circuit_failures <= 1000:
            raise ValueError(f"circuit_failures: must be in 1..1000, "
                             f"got {self.circuit_failures}")
        if not 0 < self.circuit_open_s <= 86400:
            raise ValueError(f"circuit_open_s: must be in (0, 86400] seconds, "
                             f"got {self.circuit_open_s}")
        for name in ("backoff_s", "backoff_max_s", "retry_after_max_s", "drain_timeout_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0 seconds")
        if self.public_ip_url and not self.public_ip_url.startswith(("http://", "https://")):
            raise ValueError(f"public_ip_url: expected an http(s) URL, "
                             f"got {self.public_ip_url!r}")

    def providers(self) -> dict[str, ProviderConfig]:
        """Every provider section by name (enabled or not)."""
        return {name: getattr(self, name) for name in PROVIDER_NAMES}
