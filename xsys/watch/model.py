"""The watch namespace's results, as declared to clients (``rpc.methods``): TypedDicts whose
keys are the wire names. Paths are ``WirePath`` (str here, str or bin on the wire) or
already wire values (``str | bytes``)."""

from __future__ import annotations

from typing import TypedDict

from xsys.fs.model import WirePath


class WatchStarted(TypedDict):
    """``watch.add``: the ``subscription`` id (its ``watch.event`` and ``watch.overflow``
    notifications carry it) and the real ``paths`` watched, symlinks resolved."""

    subscription: str
    paths: list[str | bytes]


class WatchRemoved(TypedDict):
    """``watch.remove``: the ``subscription`` ended (``removed`` is always true)."""

    subscription: str
    removed: bool


class StreamInfo(TypedDict):
    """A live subscription: its ``subscription`` id, the ``paths`` asked for and the
    ``live_paths`` still watched (a deleted directory drops out), what it asked for
    (``recursive``, ``patterns``, ``ignore_patterns``, ``events``, ``debounce_ms``,
    ``include_dirs``), ``created_at`` (epoch s), events ``delivered`` and ``overflows``
    reported."""

    subscription: str
    paths: list[WirePath]
    live_paths: list[WirePath]
    recursive: bool
    patterns: list[str]
    ignore_patterns: list[str]
    events: list[str]
    debounce_ms: int
    include_dirs: bool
    created_at: float
    delivered: int
    overflows: int


class StreamRow(StreamInfo):
    """A ``watch.list`` subscription: ``StreamInfo`` and ``own`` (the caller's: only those
    can be removed)."""

    own: bool


class WatchInfo(TypedDict):
    """One shared observer watch: the directory ``path``, ``recursive``, and how many
    ``subscriptions`` use it."""

    path: WirePath
    recursive: bool
    subscriptions: int


class WatchList(TypedDict):
    """``watch.list``: every live ``subscriptions`` in the daemon and the observer
    ``watches`` they share."""

    subscriptions: list[StreamRow]
    watches: list[WatchInfo]
