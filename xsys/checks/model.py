"""The checks namespace's results, as declared to clients (``rpc.methods``), and the
``/health`` view of one check."""

from __future__ import annotations

from typing import Literal, TypedDict

#: A check's state: ``up``; ``down`` (``retries`` consecutive probes failed); ``unknown``
#: (not probed yet, or the probe could not tell: no Docker engine); ``failed`` (down and
#: its restarts given up after ``max_restarts`` within ``restart_window_s``).
State = Literal["up", "down", "unknown", "failed"]

Probe = Literal["tcp", "http", "process", "command", "docker"]


class ServiceCheck(TypedDict):
    """One service check: ``name``, its ``probe`` kind and ``target`` (address, URL,
    process, argv or container), ``state`` and ``since`` (epoch s it began),
    ``last_error`` (the last failed or unknown probe's reason, None after a success),
    ``latency_ms`` of the last probe (None before one), ``last_run_at`` (epoch s),
    ``consecutive_failures``, ``restarts`` (restarts run since the daemon started),
    ``critical``, ``interval_s``."""

    name: str
    probe: Probe
    target: str
    state: State
    since: float
    last_error: str | None
    latency_ms: float | None
    last_run_at: float | None
    consecutive_failures: int
    restarts: int
    critical: bool
    interval_s: float


class ChecksStatus(TypedDict):
    """``checks.status``: every configured check, in config order."""

    checks: list[ServiceCheck]


class ChecksSubscribed(TypedDict):
    """``checks.subscribe``: the id of the ``checks.change`` stream."""

    subscription: str


class ChecksUnsubscribed(TypedDict):
    """``checks.unsubscribe``: the stream ended."""

    subscription: str
    closed: bool


class CheckHealth(TypedDict):
    """One check as ``/health`` shows it: ``status`` (the state), ``message`` (the last
    error, or ``""``), ``since`` (epoch s), ``latency_ms`` (None before a probe),
    ``critical``."""

    status: State
    message: str
    since: float
    latency_ms: float | None
    critical: bool
