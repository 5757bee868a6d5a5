"""The ``Alert`` value: what the monitor's state machine produces on a transition and what
the dispatcher hands to every provider, the IPC subscribers and the history.

Vocabulary is Prometheus/Alertmanager's: an alert has a ``severity`` (warning, critical)
and a ``status`` (firing, resolved); ``started_at`` is when the incident began firing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import os
import time
from dataclasses import dataclass, field, replace
from typing import Literal, TypedDict

from xsys.units import format_duration, format_value

Severity = Literal["warning", "critical"]
Status = Literal["firing", "resolved"]

SEVERITY_RANK: dict[str, int] = {"ok": 0, "warning": 1, "critical": 2}

_seq = itertools.count(1)
_prefix = f"{os.getpid():x}{int(time.time()) & 0xFFFFFF:06x}"


def new_alert_id() -> str:
    """A short id unique within this daemon's lifetime (``<pid+start>-<seq>``)."""
    return f"{_prefix}-{next(_seq)}"


def fingerprint(check: str, component: str, hostname: str) -> str:
    """Stable id of one alerting series (same check/component/host -> same value), 16 hex
    chars, like Alertmanager's label fingerprint."""
    raw = f"{hostname}\x00{check}\x00{component}".encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def iso8601(ts: float) -> str:
    """Epoch seconds -> RFC 3339 / ISO 8601 UTC with milliseconds (``...Z``)."""
    return (dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"))


class HostRecord(TypedDict):
    """An alert's ``host`` on the wire: ``hostname``, ``addresses`` (non-loopback IPs of
    the up interfaces), ``load`` ([1, 5, 15]-minute averages), ``uptime_s``."""

    hostname: str
    addresses: list[str]
    load: list[float]
    uptime_s: float


class AlertRecord(TypedDict):
    """An alert on the wire (``monitor.alert``, ``monitor.history``, ``monitor.test``):
    the ``Alert`` fields (``id``, ``fingerprint``, ``check``, ``component``, ``severity``,
    ``status``, ``value`` in ``unit``, ``threshold``, ``started_at``/``ended_at``/
    ``created_at`` epoch s, ``repeat``, ``test``, ``host``) plus the rendered ``title``,
    ``message`` and ``value_text``."""

    id: str
    fingerprint: str
    check: str
    component: str
    severity: Severity
    status: Status
    value: float
    unit: str
    value_text: str
    threshold: float | None
    started_at: float
    ended_at: float | None
    created_at: float
    repeat: bool
    test: bool
    title: str
    message: str
    host: HostRecord


@dataclass(frozen=True)
class HostContext:
    """The machine an alert is about: ``hostname``, ``addresses`` (non-loopback IPs of the
    up interfaces), ``load`` (1/5/15-minute averages), ``uptime_s`` (seconds since boot),
    ``ip_route`` (the source address of the default IPv4 route, TinyMonitor's
    ``ip_private``; empty when not looked up) and ``ip_public`` (``"N/A"`` unless
    ``alerts.public_ip_url`` is set and answered)."""

    hostname: str
    addresses: tuple[str, ...] = ()
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)
    uptime_s: float = 0.0
    ip_route: str = ""
    ip_public: str = "N/A"

    @property
    def ip_private(self) -> str:
        """TinyMonitor's ``ip_private``: ``ip_route``, else the first address, else
        ``127.0.0.1`` (what TinyMonitor shows when it has no route)."""
        return self.ip_route or (self.addresses[0] if self.addresses else "127.0.0.1")

    @property
    def uptime_hm(self) -> str:
        """TinyMonitor's uptime text: whole hours and minutes, ``"26h 3m"``."""
        hours, rest = divmod(self.uptime_s, 3600)
        return f"{int(hours)}h {int(rest // 60)}m"

    @property
    def load_text(self) -> str:
        """``"0.52, 0.40, 0.31"``."""
        return ", ".join(f"{v:.2f}" for v in self.load)

    @property
    def uptime_text(self) -> str:
        """``"3d 4h 2m"``."""
        return format_duration(self.uptime_s)

    def to_wire(self) -> HostRecord:
        """``{hostname, addresses, load: [1, 5, 15], uptime_s}``."""
        return {"hostname": self.hostname, "addresses": list(self.addresses),
                "load": list(self.load), "uptime_s": self.uptime_s}


@dataclass(frozen=True)
class Alert:
    """One notification about a check's component.

    - ``id``: unique per notification; ``fingerprint``: stable per (host, check, component).
    - ``check`` (``cpu``, ``filesystem``...), ``component`` (``cpu``, ``filesystem:/``...).
    - ``severity``: warning|critical (for a resolved alert: the level that was firing).
    - ``status``: firing|resolved.
    - ``value`` in ``unit`` (``percent``, ``bytes_per_second``, ``load``, ``load_per_cpu``,
      ``bool``); ``threshold``: the crossed threshold of ``severity`` (same unit).
    - ``started_at``: when the incident began (epoch s); ``ended_at``: when it resolved.
    - ``created_at``: when this notification was made; ``host``: ``HostContext``.
    - ``repeat``: a re-send of an unchanged firing alert; ``test``: from ``monitor.test``.
    - ``tinymonitor``: made under ``monitor.compat: tinymonitor``: the component is
      TinyMonitor's (``CPU``, ``DISK:/``...), ``text`` its value text (``"91.3%"``,
      ``"R: 1.0KB/s W: 2.5MB/s"``), and the title, message and provider bodies are
      TinyMonitor's (``xsys.alerts.tinymonitor``).
    """

    id: str
    check: str
    component: str
    severity: Severity
    status: Status
    value: float
    unit: str
    threshold: float | None
    started_at: float
    host: HostContext
    created_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    fingerprint: str = ""
    repeat: bool = False
    test: bool = False
    tinymonitor: bool = False
    text: str = ""

    # -------------------------------------------------------------- rendering

    @property
    def level(self) -> str:
        """TinyMonitor's level word: ``WARNING``/``CRITICAL``, or ``RESOLVED``."""
        return "RESOLVED" if self.status == "resolved" else self.severity.upper()

    @property
    def value_text(self) -> str:
        """The value with its unit for humans (``91.3%``, ``12.0 MiB/s``); ``text`` when
        the collector gave one (TinyMonitor's value texts)."""
        return self.text or format_value(self.value, self.unit)

    @property
    def threshold_text(self) -> str:
        """The threshold with its unit, or ``-``."""
        return "-" if self.threshold is None else format_value(self.threshold, self.unit)

    @property
    def title(self) -> str:
        """One line: ``ALERT CRITICAL : cpu`` / ``RESOLVED : cpu`` (TinyMonitor's form)."""
        if self.test:
            return f"TEST ALERT {self.severity.upper()} : {self.component}"
        if self.status == "resolved":
            return f"RESOLVED : {self.component}"
        return f"ALERT {self.severity.upper()} : {self.component}"

    @property
    def message(self) -> str:
        """One sentence describing the alert (TinyMonitor's, without the threshold, for a
        ``tinymonitor`` alert)."""
        if self.tinymonitor and self.status == "firing":
            return (f"Component {self.component} is in state {self.severity.upper()}. "
                    f"Value: {self.value_text}")
        if self.status == "resolved":
            return (f"Component {self.component} is back to normal (was {self.severity.upper()})."
                    f" Value: {self.value_text}")
        return (f"Component {self.component} is in state {self.severity.upper()}. "
                f"Value: {self.value_text} (threshold {self.threshold_text})")

    def resolved(self, value: float, now: float, alert_id: str | None = None) -> Alert:
        """The resolved counterpart of this firing alert."""
        return replace(self, id=alert_id or new_alert_id(), status="resolved", value=value,
                       created_at=now, ended_at=now, repeat=False)

    def to_wire(self) -> AlertRecord:
        """The alert as a plain map (IPC, history, JSON): every field, ``host`` nested,
        plus ``title``, ``message`` and ``value_text``."""
        return {
            "id": self.id,
            "fingerprint": self.fingerprint,
            "check": self.check,
            "component": self.component,
            "severity": self.severity,
            "status": self.status,
            "value": self.value,
            "unit": self.unit,
            "value_text": self.value_text,
            "threshold": self.threshold,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "created_at": self.created_at,
            "repeat": self.repeat,
            "test": self.test,
            "title": self.title,
            "message": self.message,
            "host": self.host.to_wire(),
        }
