"""Wire shapes of the ``push`` namespace (result schemas: tests/test_results.py)."""

from __future__ import annotations

from typing import TypedDict


class PushTargetStatus(TypedDict):
    """One target of ``push.status``."""

    target: str
    """The target's name (``name``, or the URL's host:port)."""
    url: str
    format: str
    """json, msgpack or aloy."""
    interval_s: float
    connected: bool
    since: float | None
    """When the current connection was made (epoch s); None when disconnected."""
    last_error: str | None
    """Why the last attempt or connection failed (e.g. the backend's 401)."""
    last_error_at: float | None
    buffered: int
    """Messages waiting to be sent (replayed in seq order on reconnect)."""
    buffered_bytes: int
    sent: int
    """Messages written since the daemon started (hello frames not counted)."""
    dropped: int
    """Messages dropped because the buffer was full, since the daemon started."""
    reconnects: int
    """Connections made after the first one."""
    next_seq: int
    """The seq the next message will carry."""


class PushStatus(TypedDict):
    """``push.status``: every configured target, in config order."""

    targets: list[PushTargetStatus]
