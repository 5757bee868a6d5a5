"""Push mode (issue 15): the daemon dials out to WebSocket backends and streams snapshots,
alerts and check states to them (``PushService``; config section ``push``,
``xsys.push.config``; ``push.status`` over IPC; ``xsys_push_*`` metrics)."""

from __future__ import annotations

from xsys.push.config import PushConfig, PushTargetConfig, PushTlsConfig
from xsys.push.service import PushService

__all__ = ["PushConfig", "PushService", "PushTargetConfig", "PushTlsConfig"]
