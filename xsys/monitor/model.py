"""The monitor namespace's results, as declared to clients (``rpc.methods``): TypedDicts
whose keys are the wire names. The rows they hold are declared beside the code that makes
them: ``CheckStatus`` (``rules``), ``SilenceRecord`` (``silences``), ``AlertRecord``
(``xsys.alerts.model``), ``HistoryRecord`` (``xsys.alerts.history``) and
``ProviderStatus`` (``xsys.alerts.dispatcher``)."""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    from typing import NotRequired, TypedDict
else:  # typing.TypedDict of 3.10 does not know NotRequired
    from typing_extensions import NotRequired, TypedDict

from xsys.alerts.dispatcher import ProviderStatus
from xsys.alerts.history import HistoryRecord
from xsys.alerts.model import AlertRecord
from xsys.monitor.rules import CheckStatus
from xsys.monitor.silences import SilenceRecord


class QueueStatus(TypedDict):
    """The delivery queue (all providers): jobs waiting (``depth``) and attempts
    ``in_flight``, the configured ``capacity`` (jobs) and ``capacity_bytes``, ``workers``
    per provider, and jobs ``dropped`` since the start."""

    depth: int
    in_flight: int
    capacity: int
    capacity_bytes: int
    workers: int
    dropped: int


class MonitorStatus(TypedDict):
    """``monitor.status``: whether the monitor is ``enabled`` and ``running``, its
    ``refresh_s`` (seconds between ticks) and ``repeat_interval_s`` (between re-sends of a
    firing alert; negative: once per incident), ``ticks`` and ``skipped_ticks``, the last
    tick (``last_tick_at`` epoch s, ``last_tick_ms``, ``last_collect_ms``), collector
    ``errors`` (name -> message), ``firing`` (components not ok), every component's
    ``checks`` row, the active ``silences``, the enabled ``providers`` and their
    ``provider_status``, alert stream ``subscribers`` and the delivery ``queue``."""

    enabled: bool
    running: bool
    refresh_s: float
    repeat_interval_s: float
    ticks: int
    skipped_ticks: int
    last_tick_at: float | None
    last_tick_ms: float | None
    last_collect_ms: float | None
    errors: dict[str, str]
    checks: list[CheckStatus]
    firing: int
    silences: list[SilenceRecord]
    providers: list[str]
    provider_status: list[ProviderStatus]
    subscribers: int
    queue: QueueStatus


class CheckConfig(TypedDict):
    """One configured check in ``monitor.checks``: ``check`` and ``enabled``; when
    enabled also its ``unit``, ``warning``/``critical`` lines (None: that level is off),
    ``duration_s``, ``hysteresis`` (fraction of a line) and the ``components`` seen."""

    check: str
    enabled: bool
    unit: NotRequired[str]
    warning: NotRequired[float | None]
    critical: NotRequired[float | None]
    duration_s: NotRequired[float]
    hysteresis: NotRequired[float]
    components: NotRequired[list[str]]


class MonitorChecks(TypedDict):
    """``monitor.checks``: every check, configured or not."""

    checks: list[CheckConfig]


class MonitorHistory(TypedDict):
    """``monitor.history``: the ``alerts`` asked for, newest first, with their deliveries;
    ``size`` alerts held and the ring's ``capacity``."""

    alerts: list[HistoryRecord]
    size: int
    capacity: int


class MonitorSubscribed(TypedDict):
    """``monitor.subscribe``: the ``subscription`` id its ``monitor.alert`` notifications
    carry."""

    subscription: str


class MonitorUnsubscribed(TypedDict):
    """``monitor.unsubscribe``: the ``subscription`` ended (``closed`` is always true)."""

    subscription: str
    closed: bool


class ProviderAttempt(TypedDict):
    """One provider's attempt in ``monitor.test``: ``provider``, ``ok``, the ``error``
    text and ``status_code`` (HTTP/SMTP) if any, ``duration_ms``."""

    provider: str
    ok: bool
    error: str | None
    status_code: int | None
    duration_ms: float


class MonitorTest(TypedDict):
    """``monitor.test``: the test ``alert`` sent and one attempt per provider
    (``results``)."""

    alert: AlertRecord
    results: list[ProviderAttempt]


class Unsilenced(TypedDict):
    """``monitor.unsilence``: the ids of the silences ``removed``."""

    removed: list[str]


class Silences(TypedDict):
    """``monitor.silences``: the active ``silences``."""

    silences: list[SilenceRecord]
