"""The ``push`` config section (``PushConfig``): targets the daemon dials out to and
streams snapshots, alerts and check states to over WebSocket (``xsys.push``). Ground
level (the standard library and ``xsys.bounds``), so ``xsys.config`` assembles it into
the root tree without cycles.

    "push": {"targets": [{"name": "backend", "url": "wss://collector.example:8443/ingest",
                          "headers": {"Authorization": "Bearer T"}, "interval_s": 1,
                          "include": ["cpu", "memory", "disks", "network", "alerts"],
                          "format": "json", "tls": {"ca_file": "/etc/xsys/ca.pem"}}]}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from xsys.bounds import at_least

#: The snapshot sections of ``sys.subscribe`` (``xsys.live.SECTIONS``, which sits above
#: this module; tests/test_push.py checks the two agree).
SNAPSHOT_SECTIONS: tuple[str, ...] = ("cpu", "memory", "swap", "load", "disks", "disk_io",
                                      "network", "sensors", "processes", "monitor",
                                      "checks")
#: What ``include`` may name besides the snapshot sections of ``sys.subscribe``.
EXTRA_INCLUDES: frozenset[str] = frozenset({"alerts", "checks"})
#: The smallest ``interval_s`` (issue 15: "may be as low as 0.5").
MIN_INTERVAL_S = 0.5

Format = Literal["json", "msgpack", "aloy"]


@dataclass(frozen=True)
class PushTlsConfig:
    """TLS options of a ``wss://`` target (``ssl.SSLContext``)."""

    ca_file: str = ""
    """PEM file of the CAs that sign the backend's certificate ("": the system's)."""
    cert_file: str = ""
    """PEM client certificate (mutual TLS); needs ``key_file``."""
    key_file: str = ""
    """PEM private key of ``cert_file``."""
    server_hostname: str = ""
    """Name checked against the backend's certificate ("": the URL's host)."""
    verify: bool = True
    """Check the backend's certificate and name (false only for tests and labs)."""

    def validate(self) -> None:
        """Raise ``ValueError`` when a certificate comes without its key or the reverse."""
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("cert_file and key_file go together")


@dataclass(frozen=True)
class PushTargetConfig:
    """One backend."""

    url: str
    """``ws://`` or ``wss://`` URL of the backend's WebSocket endpoint."""
    name: str = ""
    """Label of the target in ``push.status`` and ``xsys_push_*{target}`` ("": the URL's
    host and port)."""
    headers: dict[str, str] = field(default_factory=dict)
    """Extra headers of the upgrade request (e.g. ``Authorization: Bearer T``)."""
    interval_s: float = 5.0
    """Seconds between two snapshots (>= 0.5)."""
    include: tuple[str, ...] = ("cpu", "memory", "swap", "load", "disks", "network",
                                "alerts")
    """Snapshot sections (as in ``sys.subscribe``) plus ``alerts`` (every alert the
    monitor sends) and ``checks`` (service check states, in each snapshot)."""
    format: Format = "json"
    """``json`` (text frames), ``msgpack`` (binary frames) or ``aloy`` (ALOY's flat
    snapshot ``{cpu_usage, memory_usage, disk_usage, net_sent, net_recv, ip}``, nothing
    else)."""
    tls: PushTlsConfig = field(default_factory=PushTlsConfig)
    """TLS options for ``wss://``."""
    buffer_max_messages: int = 10_000
    """Messages held while disconnected (oldest snapshots dropped first, alerts last)."""
    buffer_max_bytes: int = 16 * 1024 * 1024
    """Encoded bytes held while disconnected."""
    spill: bool = False
    """Keep the buffer across daemon restarts: written to
    ``<spill_dir>/<name>.msgpack`` at shutdown, read back at start."""
    reconnect_max_s: float = 60.0
    """Longest wait between two connection attempts (exponential backoff with jitter
    from about 1 s)."""
    heartbeat_s: float = 15.0
    """WebSocket ping period; a pong missing for half of it closes the connection (a
    half-open connection is detected within 1.5 x this)."""
    connect_timeout_s: float = 10.0
    """Seconds for the TCP, TLS and WebSocket handshakes."""
    send_timeout_s: float = 10.0
    """Seconds one message may wait to be written (a backend that does not read)."""

    def validate(self) -> None:
        """Raise ``ValueError`` for a URL that is not ws/wss, an unknown ``include``
        name, a bad interval or limit."""
        parts = urlsplit(self.url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError(f"url: must be a ws:// or wss:// URL, got {self.url!r}")
        valid = SNAPSHOT_SECTIONS + tuple(sorted(EXTRA_INCLUDES - set(SNAPSHOT_SECTIONS)))
        unknown = [name for name in self.include if name not in valid]
        if unknown:
            raise ValueError(f"include: unknown name {unknown[0]!r} (valid: "
                             f"{', '.join(valid)})")
        at_least(self, ("interval_s",), MIN_INTERVAL_S)
        at_least(self, ("buffer_max_messages", "buffer_max_bytes", "reconnect_max_s",
                        "heartbeat_s", "connect_timeout_s", "send_timeout_s"), 0,
                 strictly=True)

    @property
    def label(self) -> str:
        """``name``, or the URL's host[:port] when unnamed."""
        if self.name:
            return self.name
        parts = urlsplit(self.url)
        return parts.netloc.rsplit("@", 1)[-1]


@dataclass(frozen=True)
class PushConfig:
    """Push mode: the daemon dials out to ``targets``."""

    targets: tuple[PushTargetConfig, ...] = ()
    """Backends to stream to (none: push mode off)."""
    spill_dir: str = ""
    """Directory of the spill files of targets with ``spill`` ("": ``<state dir>/push``,
    i.e. ``/var/lib/xsys/push`` for root, ``~/.local/state/xsys/push`` otherwise)."""

    def validate(self) -> None:
        """Raise ``ValueError`` when two targets share a label."""
        seen: set[str] = set()
        for target in self.targets:
            if target.label in seen:
                raise ValueError(f"targets: two targets named {target.label!r} (set name)")
            seen.add(target.label)
