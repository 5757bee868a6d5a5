"""What ``GET /health``, ``/health/live`` and ``/health/ready`` answer (docs/health.md).

``/health`` lists checks, each ``{"status": "up"|"down"|"unknown"|"failed", "message",
"since", "latency_ms", "critical"}`` (``since``: epoch seconds of the last change of
status; ``latency_ms``: the last probe's, or null), and sums them up:

- ``failed`` (HTTP 503): a critical check is ``down`` or ``failed``;
- ``degraded`` (HTTP 200): otherwise, some check is ``down``, ``failed`` or
  ``unknown`` (a critical one that is ``unknown`` included: it is not known down);
- ``ok`` (HTTP 200): every check is ``up``.

The checks: the daemon's own ``sampler`` (critical: ``up`` while its last sample is
younger than ``max(5 * sys.sample_interval_s, 5 s)``, ``down`` once it has stalled,
``unknown`` before the first) and ``monitor`` (``up`` while its loop runs or when
``monitor.enabled`` is false, else ``down``), then the service checks of
``app.services.checks.health()`` when that service exists (same shape; their
``critical`` comes from their config). A service check named like a built-in one keeps
its name; the built-in one is then listed as ``xsys.<name>``.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from xsys import __version__

if TYPE_CHECKING:
    from xsys.server.app import App

log = logging.getLogger(__name__)

CheckState = Literal["up", "down", "unknown", "failed"]
Overall = Literal["ok", "degraded", "failed"]

#: A sample older than this many sampling intervals means the sampler stalled.
STALL_INTERVALS = 5
#: ... and never less than these seconds (short intervals jitter under load).
STALL_MIN_S = 5.0


class HealthCheck(TypedDict):
    """One check of ``/health``: its state, a human message, epoch seconds ``since`` its
    last change of state, the last probe's latency in ms (or None), and whether its
    failure fails the daemon (else it only degrades it)."""

    status: CheckState
    message: str
    since: float
    latency_ms: float | None
    critical: bool


class Health(TypedDict):
    """The body of ``GET /health``."""

    status: Overall
    checks: dict[str, HealthCheck]
    version: str
    uptime_s: float
    sample_age_s: float | None


def overall(checks: Mapping[str, Mapping[str, Any]]) -> Overall:
    """The sum of ``checks`` (each with ``status`` and ``critical``): ``failed`` when a
    critical one is down or failed, else ``degraded`` when any is not up, else ``ok``."""
    result: Overall = "ok"
    for check in checks.values():
        status = check.get("status")
        if status == "up":
            continue
        if check.get("critical") and status in ("down", "failed"):
            return "failed"
        result = "degraded"
    return result


def http_status(status: Overall) -> int:
    """200 for ``ok`` and ``degraded``, 503 for ``failed``."""
    return 503 if status == "failed" else 200


class HealthState:
    """The built-in checks of one gateway and when each last changed state.

    ``since`` of a check seen for the first time is the daemon's start when it is up,
    else the moment it was first seen so.
    """

    def __init__(self, app: App, clock: Any = time.time) -> None:
        self.app = app
        self.clock = clock
        self._seen: dict[str, tuple[CheckState, float]] = {}

    def _since(self, name: str, status: CheckState, now: float) -> float:
        seen = self._seen.get(name)
        if seen is not None and seen[0] == status:
            return seen[1]
        since = self.app.started_at if seen is None and status == "up" else now
        self._seen[name] = (status, since)
        return since

    def sample_age_s(self, now: float) -> float | None:
        """Seconds since the sampler's last sample, None before the first."""
        latest = self.app.services.sampler.latest
        return None if latest is None else max(0.0, now - latest.ts)

    def sampler(self, now: float) -> HealthCheck:
        """The sampler check (critical)."""
        age = self.sample_age_s(now)
        limit = max(STALL_INTERVALS * self.app.config.sys.sample_interval_s, STALL_MIN_S)
        status: CheckState
        if age is None:
            status, message = "unknown", "no sample yet"
        elif age < limit:
            status, message = "up", f"last sample {age:.1f}s ago"
        else:
            status, message = "down", (f"stalled: last sample {age:.1f}s ago "
                                       f"(limit {limit:g}s)")
        return {"status": status, "message": message,
                "since": self._since("sampler", status, now), "latency_ms": None,
                "critical": True}

    def monitor(self, now: float) -> HealthCheck:
        """The monitor check (not critical: without it alerts stop, serving goes on)."""
        info = self.app.services.monitor.status()
        status: CheckState
        if not info["enabled"]:
            status, message = "up", "disabled (monitor.enabled is false)"
        elif info["running"]:
            status, message = "up", "running"
        else:
            status, message = "down", "enabled but its loop is not running"
        return {"status": status, "message": message,
                "since": self._since("monitor", status, now), "latency_ms": None,
                "critical": False}

    async def service_checks(self, now: float) -> dict[str, HealthCheck]:
        """The checks of ``app.services.checks`` (none when that service is absent); a
        service that raises is reported as one ``checks`` entry in state ``unknown``."""
        service = getattr(self.app.services, "checks", None)
        if service is None:
            return {}
        try:
            found = service.health()
            if inspect.isawaitable(found):
                found = await found
            return {str(name): {"status": row["status"], "message": str(row["message"]),
                                "since": float(row["since"]),
                                "latency_ms": row.get("latency_ms"),
                                "critical": bool(row.get("critical", False))}
                    for name, row in found.items()}
        except Exception as exc:
            log.exception("the checks service failed to report its health")
            return {"checks": {"status": "unknown",
                               "message": f"the checks service failed: {exc!r}",
                               "since": now, "latency_ms": None, "critical": False}}

    async def report(self) -> Health:
        """The body of ``/health`` (see the module docstring)."""
        now = self.clock()
        checks = await self.service_checks(now)
        own = {"sampler": self.sampler(now), "monitor": self.monitor(now)}
        for name, check in own.items():
            checks["xsys." + name if name in checks else name] = check
        age = self.sample_age_s(now)
        return {"status": overall(checks), "checks": checks, "version": __version__,
                "uptime_s": round(now - self.app.started_at, 3),
                "sample_age_s": None if age is None else round(age, 3)}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """``/health/ready``: (ready, body). Ready once the config is loaded and the
        sampler has taken its first sample and is not stalled."""
        now = self.clock()
        sampler = self.sampler(now)
        reasons = []
        if self.app.config is None:
            reasons.append("the config is not loaded")
        if sampler["status"] != "up":
            reasons.append(f"sampler: {sampler['message']}")
        ok = not reasons
        body: dict[str, Any] = {"status": "ready" if ok else "not_ready",
                                "version": __version__}
        if reasons:
            body["reasons"] = reasons
        return ok, body
