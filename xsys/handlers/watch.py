"""The ``watch`` namespace: file-change subscriptions (issue 3, docs/protocol.md "Subscriptions").

``watch.add`` returns ``{"subscription": id, "paths": [...]}``; the daemon then pushes
``watch.event {subscription, events: [{type, path, dest_path?, is_dir, ts}], final?}`` in
batches, and ``watch.overflow {subscription, dropped, reason?, path?, exact?}`` whenever
events were lost (kernel queue overflow, a directory that could not be watched, a full
queue, a slow client): the subscriber should rescan. A watched directory that is deleted
ends its subscription with a final event (``final: true``). Subscriptions end with
``watch.remove`` or when their connection closes. Paths are confined to ``fs.roots``.
"""

from __future__ import annotations

import asyncio
import os
import stat
from typing import Annotated, Any, Literal

from xsys.fs.creds import as_peer
from xsys.fs.model import to_wire
from xsys.fs.sandbox import Sandbox
from xsys.protocol import InvalidParams, wire_str
from xsys.server.app import App
from xsys.server.context import Context, Peer, Subscription
from xsys.server.router import Doc, Range, Router
from xsys.watch.events import EventFilter
from xsys.watch.model import StreamRow, WatchList, WatchRemoved, WatchStarted
from xsys.watch.observer import GAPS_DETECTED
from xsys.watch.service import Root, Stream, StreamSpec, WatchService

EventName = Literal["created", "modified", "deleted", "moved"]
#: Seconds an ended subscription waits for its queued events to reach a slow client.
END_DRAIN_S = 30.0


class SubscriptionSink:
    """Adapts a connection ``Subscription`` to the service's ``Subscriber``."""

    def __init__(self, sub: Subscription) -> None:
        self.sub = sub
        self.id = sub.id

    def send_events(self, events: list[dict[str, Any]], final: bool) -> None:
        """Push ``watch.event``."""
        params: dict[str, Any] = {"events": events}
        if final:
            params["final"] = True
        self.sub.push("event", params, len(events) or 1)  # weight: events lost if dropped

    def send_overflow(self, dropped: int, reason: str, path: str | None, exact: bool) -> None:
        """Push ``watch.overflow``."""
        params: dict[str, Any] = {"dropped": dropped, "reason": reason, "exact": exact}
        if path is not None:
            params["path"] = path
        self.sub.push("overflow", params, max(dropped, 1))

    def end(self) -> None:
        """Close the subscription once its queued events have gone out (or after
        ``END_DRAIN_S``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + END_DRAIN_S

        def close_when_drained() -> None:
            if self.sub.queue and loop.time() < deadline:
                loop.call_later(0.05, close_when_drained)
            else:
                self.sub.close()

        close_when_drained()


def sandbox_of(app: App) -> Sandbox:
    """The fs namespace's sandbox (watch paths obey the same roots)."""
    sandbox: Sandbox = app.services.fs.sandbox
    return sandbox


def resolve_roots(sandbox: Sandbox, paths: list[str | bytes], recursive: bool,
                  peer: Peer | None = None) -> tuple[Root, ...]:
    """Resolve and check each path on descriptors, with the peer's file credentials (it
    must be able to reach the path itself): -32002 outside the roots or not permitted,
    -32001 missing. The watch is then set on the real path found."""
    peer = peer or Peer()
    roots: list[Root] = []
    with as_peer(peer.uid, peer.gid, peer.groups):
        for path in paths:
            with sandbox.locate(path) as loc:
                st = loc.lstat()
                is_dir = stat.S_ISDIR(st.st_mode)
                if is_dir:  # the peer must be able to list it, as inotify would let it
                    os.close(loc.open_dir())
                root = Root(path=loc.path, is_file=not is_dir, recursive=recursive and is_dir)
            if root not in roots:
                roots.append(root)
    return tuple(roots)


def register(router: Router, app: App) -> None:
    """Declare watch.add, watch.remove and watch.list (on ``Services.watch``, built and
    stopped by the composition root)."""
    service: WatchService = app.services.watch
    app.capabilities.append("watch")
    if GAPS_DETECTED:
        app.capabilities.append("watch.kernel_overflow")

    @router.method("watch.add", kind="async", streams="watch.event")
    async def add(
        ctx: Context,
        paths: Annotated[list[str | bytes], Doc("files or directories to watch (bin for a "
                                                "name that is not valid UTF-8)")],
        recursive: Annotated[bool, Doc("watch subdirectories too")] = False,
        patterns: Annotated[list[str] | None, Doc("gitignore-style globs to include "
                                                  "(relative to the watched path)")] = None,
        ignore_patterns: Annotated[list[str] | None, Doc("gitignore-style globs to "
                                                         "exclude")] = None,
        events: Annotated[list[EventName] | None, Doc("event types wanted (default: "
                                                      "all)")] = None,
        debounce_ms: Annotated[int, Range(0, None), Doc("coalesce repeated events for "
                                                        "one path over this window")] = 0,
        include_dirs: Annotated[bool, Doc("report events about directories "
                                          "themselves")] = False,
    ) -> WatchStarted:
        """Subscribe to changes under paths: ``{subscription, paths}``.

        Then ``watch.event {subscription, events: [{type: created|modified|deleted|moved,
        path, dest_path?, is_dir, ts}], final?}`` arrive in batches, and ``watch.overflow
        {subscription, dropped, reason, exact, path?}`` when events were lost (rescan).
        ``debounce_ms`` > 0 merges events for one path within the window (created then
        modified stays created). Errors: -32002 outside fs roots, -32001 missing path,
        -32005 too many subscriptions or the OS watch limit, -32602 bad pattern.
        """
        cfg = app.config.watch
        if not paths:
            raise InvalidParams("parameter 'paths': at least one path", {"param": "paths"})
        if len(paths) > cfg.max_paths:
            raise InvalidParams(f"parameter 'paths': at most {cfg.max_paths}",
                                {"param": "paths", "max": cfg.max_paths})
        if debounce_ms > cfg.max_debounce_ms:
            raise InvalidParams(f"parameter 'debounce_ms': at most {cfg.max_debounce_ms}",
                                {"param": "debounce_ms", "max": cfg.max_debounce_ms})
        event_filter = EventFilter(events, patterns, ignore_patterns, include_dirs)
        roots = await app.run_blocking(resolve_roots, sandbox_of(app), paths, recursive,
                                       ctx.peer)
        spec = StreamSpec(roots=roots, filter=event_filter, debounce_ms=debounce_ms,
                          recursive=recursive, patterns=tuple(patterns or ()),
                          ignore_patterns=tuple(ignore_patterns or ()),
                          events=tuple(sorted(event_filter.events)),
                          include_dirs=include_dirs, owner=ctx.session)
        sub = ctx.subscribe("watch")
        try:
            stream = await service.add(spec, SubscriptionSink(sub))
        except BaseException:
            sub.close()
            raise
        sub.info = {"paths": [wire_str(r.path) for r in roots]}
        sub.on_close(lambda _s: service.remove(stream))
        if sub.closed:  # the connection closed while the watches were being added
            service.remove(stream)
        _release_after_response(stream)
        return {"subscription": sub.id, "paths": [wire_str(r.path) for r in roots]}

    @router.method("watch.remove", kind="inline")
    def remove(ctx: Context,
               subscription: Annotated[str, Doc("id returned by watch.add")]) -> WatchRemoved:
        """End one of this connection's subscriptions: ``{subscription, removed: true}``.

        Errors: -32001 no such subscription on this connection.
        """
        sub = ctx.subscription(subscription, "watch")
        sub.close()
        return {"subscription": subscription, "removed": True}

    @router.method("watch.list", kind="inline")
    def list_(ctx: Context) -> WatchList:
        """Every live watch subscription in the daemon and the shared observer watches.

        Returns ``{subscriptions: [{subscription, paths, live_paths, recursive, patterns,
        ignore_patterns, events, debounce_ms, include_dirs, created_at, delivered,
        overflows, own}], watches: [{path, recursive, subscriptions}]}``; ``own`` marks the
        caller's own subscriptions (only those can be removed).
        """
        rows: list[StreamRow] = []
        for stream in service.streams.values():
            own = ctx.session is not None and stream.spec.owner is ctx.session
            rows.append({**stream.describe(), "own": own})
        answer: WatchList = {"subscriptions": rows, "watches": service.watches()}
        wired: WatchList = to_wire(answer)  # paths that are not UTF-8 as bin
        return wired


def _release_after_response(stream: Stream) -> None:
    """Start delivering once the ``watch.add`` response has been written: the task's done
    callback (which writes it) is queued behind our first hop, so two hops land after."""
    loop = asyncio.get_running_loop()
    loop.call_soon(loop.call_soon, stream.release)
