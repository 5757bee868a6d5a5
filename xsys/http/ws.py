"""``GET /ws``: the gateway's WebSocket, live streams for browsers and programs.

Client -> server (JSON text messages, one object each; ``id`` is optional and echoed):

- ``{"subscribe": "sys", "interval_s": 1, "sections": [...], "per_cpu": bool,
  "top_processes": int, "process_sort": "cpu"|"memory", "format": "json"|"aloy"}``:
  snapshots from the live hub
  (``services.live``), sent as ``{"type": "sys.snapshot", "data": {"subscription", "seq",
  "ts", <sections>..., "dropped"}}``; with ``"format": "aloy"`` each snapshot is sent bare
  as ALOY sends it: ``{"cpu_usage", "memory_usage", "disk_usage", "net_sent", "net_recv",
  "ip"}`` (percent, percent, percent of ``/``, bytes sent/received since boot, the primary
  address).
- ``{"subscribe": "monitor", "check"?, "component"?, "severity"?}``: alerts as
  ``monitor.subscribe`` gets them: ``{"type": "monitor.alert", "data": {"subscription",
  "alert"}}``.
- ``{"subscribe": "watch", "paths": [...], "recursive"?, "patterns"?, ...}`` (the
  parameters of ``watch.add``): ``{"type": "watch.event"|"watch.overflow", "data": ...}``;
  paths are confined to ``fs.roots`` and checked with the daemon's own rights (HTTP has no
  peer credentials, as for the REST mirror).
- ``{"unsubscribe": "<subscription id>"}``.

Server -> client: the notifications above; ``{"type": "subscribed", "id", "data":
{"subscription", "subscribe", ...}}`` and ``{"type": "unsubscribed", "id", "data":
{"subscription"}}`` answer a message that carried an ``id``; ``{"type": "error", "id"?,
"code", "message", "data"}`` answers a bad message (protocol error codes) and the socket
stays usable.

Flow control: one bounded send queue per socket (``server.outbound_queue`` messages and
``server.outbound_queue_bytes`` bytes). A snapshot waiting in the queue is replaced by the
next one of its subscription (conflation; counted in ``dropped``). When the queue is full
the oldest message is dropped, counted per subscription, and ``<ns>.overflow
{"subscription", "dropped", "reason": "slow_client"}`` follows once the queue drains. A
send that does not complete within ``SEND_TIMEOUT_S`` drops the connection. aiohttp pings
every ``HEARTBEAT_S`` and closes a peer that does not answer. Every task of a socket is
cancelled and awaited when it closes and at shutdown.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import WSMsgType, web

from xsys.live import ALOY_SECTIONS, SECTIONS, aloy_message
from xsys.protocol import InternalError, InvalidParams, InvalidRequest, XsysError
from xsys.server.context import Context, Peer, Subscription
from xsys.server.dispatch import prepare, run_spec

if TYPE_CHECKING:
    from xsys.server.app import App
    from xsys.server.router import Router

log = logging.getLogger(__name__)

#: Largest client message accepted (bytes); larger ones close the socket (1009).
MAX_MESSAGE_BYTES = 64 * 1024
#: Subscriptions one socket may hold at once.
MAX_SUBSCRIPTIONS = 16
#: Seconds between WebSocket pings (aiohttp closes a peer that misses the pong).
HEARTBEAT_S = 20.0
#: Seconds one send may take before the socket is closed as stuck.
SEND_TIMEOUT_S = 30.0
_KINDS = ("sys", "monitor", "watch")
_WATCH_PARAMS = ("paths", "recursive", "patterns", "ignore_patterns", "events",
                 "debounce_ms", "include_dirs")
_MONITOR_PARAMS = ("check", "component", "severity")


class SnapshotStream(Protocol):
    """What ``hub.subscribe`` returns: an async iterator of snapshot dicts with
    ``close()`` and ``dropped`` (snapshots the hub conflated away)."""

    dropped: int
    interval_s: float
    sections: tuple[str, ...]

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]: ...

    def close(self) -> None: ...


class Hub(Protocol):
    """The live snapshot hub (``services.live``)."""

    def subscribe(self, interval_s: float, sections: Sequence[str] | None = None,
                  per_cpu: bool = False, top_processes: int = 0,
                  process_sort: str = "cpu") -> SnapshotStream: ...


def jsonable(value: Any) -> Any:
    """``value`` with bytes as base64 strings and tuples as lists (JSON-ready)."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def primary_ip() -> str:
    """The host's primary address (the first non-loopback IPv4, else IPv6; ``127.0.0.1``
    when it has none). Blocking (psutil)."""
    from xsys.host import local_addresses

    addrs = local_addresses()
    return addrs[0] if addrs else "127.0.0.1"


@dataclass
class _Entry:
    """One queued message: its JSON ``text``, the subscription it belongs to, its weight
    (events it carries) and whether a newer one may replace it (``conflate``)."""

    text: str
    sub: Subscription | None
    weight: int
    conflate: bool


class WsSession:
    """One ``/ws`` socket as a ``xsys.server.context.Session``: handlers that subscribe
    (``monitor.subscribe``, ``watch.add``) push into its bounded queue; ``run()`` serves
    the socket until it closes. ``dropped`` counts messages lost to the queue bound or to
    conflation."""

    def __init__(self, app: App, router: Router, ws: web.WebSocketResponse, peer: Peer,
                 hub: Callable[[], Hub | None],
                 transport: asyncio.BaseTransport | None = None) -> None:
        self.app = app
        self.router = router
        self.ws = ws
        self.peer = peer
        self.loop = asyncio.get_running_loop()
        self._hub = hub
        self._subs: dict[str, Subscription] = {}
        self._queue: collections.deque[_Entry] = collections.deque()
        self._queued_bytes = 0
        self._latest: dict[str, _Entry] = {}  # subscription id -> its queued snapshot
        self._overflow: dict[str, Subscription] = {}
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.dropped = 0
        self.sent = 0
        self._ip: str | None = None
        self.transport = transport
        self.stuck = False

    # ----------------------------------------------------------- Session protocol

    @property
    def outbound_queue(self) -> int:
        """Messages the socket may queue before the oldest are dropped."""
        return self.app.config.server.outbound_queue

    def send_notification(self, method: str, params: dict[str, Any]) -> None:
        """Queue ``{"type": method, "data": params}``."""
        self._enqueue(_Entry(self._encode(method, params), None, 1, False))

    def enqueue_event(self, sub: Subscription, method: str, params: dict[str, Any],
                      weight: int = 1) -> None:
        """Queue a subscription's notification (see the module docstring)."""
        if sub.closed:
            return
        self._enqueue(_Entry(self._encode(method, params), sub, weight, False))

    def add_subscription(self, sub: Subscription) -> None:
        """Track ``sub`` so it ends with the socket."""
        self._subs[sub.id] = sub

    def remove_subscription(self, sub: Subscription) -> None:
        """Stop tracking ``sub``."""
        self._subs.pop(sub.id, None)
        self._overflow.pop(sub.id, None)

    def find_subscription(self, sub_id: str) -> Subscription | None:
        """The live subscription ``sub_id`` of this socket, if any."""
        return self._subs.get(sub_id)

    # ------------------------------------------------------------------ queueing

    @staticmethod
    def _encode(method: str, params: dict[str, Any]) -> str:
        return json.dumps({"type": method, "data": jsonable(params)}, separators=(",", ":"))

    def _enqueue(self, entry: _Entry) -> None:
        cfg = self.app.config.server
        self._queue.append(entry)
        self._queued_bytes += len(entry.text)
        while len(self._queue) > 1 and (len(self._queue) > cfg.outbound_queue
                                        or self._queued_bytes > cfg.outbound_queue_bytes):
            self._drop(self._queue.popleft())
        self._wake.set()

    def _drop(self, entry: _Entry) -> None:
        self._queued_bytes -= len(entry.text)
        self.dropped += entry.weight
        sub = entry.sub
        if sub is None:
            return
        if self._latest.get(sub.id) is entry:
            del self._latest[sub.id]
        sub.dropped += entry.weight
        if not sub.closed:
            self._overflow[sub.id] = sub

    def _push_snapshot(self, sub: Subscription, encode: Callable[[], str]) -> None:
        """Queue a snapshot of ``sub`` (``encode()`` makes its text), replacing its
        snapshot still waiting (counted in ``dropped`` before encoding, so the new text
        carries the count)."""
        waiting = self._latest.get(sub.id)
        if waiting is not None:
            sub.dropped += 1
            self.dropped += 1
            text = encode()
            self._queued_bytes += len(text) - len(waiting.text)
            waiting.text = text
            return
        entry = _Entry(encode(), sub, 1, True)
        self._latest[sub.id] = entry
        self._enqueue(entry)

    async def _sender(self) -> None:
        while True:
            if not self._queue:
                if self._overflow:
                    for sub in list(self._overflow.values()):
                        self._queue.append(_Entry(self._encode(
                            f"{sub.namespace}.overflow",
                            {"subscription": sub.id, "dropped": sub.dropped,
                             "reason": "slow_client", "exact": True}), None, 1, False))
                    self._overflow.clear()
                    continue
                self._wake.clear()
                await self._wake.wait()
                continue
            entry = self._queue.popleft()
            self._queued_bytes -= len(entry.text)
            if entry.sub is not None and self._latest.get(entry.sub.id) is entry:
                del self._latest[entry.sub.id]
            if entry.sub is not None and entry.sub.closed:
                continue
            # a timer, not wait_for: Python 3.11's wait_for can swallow a cancellation
            # that arrives as the send completes (gh-86296), leaving this task running
            # after the socket closed
            timer = self.loop.call_later(SEND_TIMEOUT_S, self._stuck)
            try:
                await self.ws.send_str(entry.text)
            except (ConnectionError, RuntimeError):
                log.info("/ws: the connection is gone")
                return
            finally:
                timer.cancel()
            self.sent += 1
            if entry.sub is not None:
                entry.sub.sent += 1

    def _stuck(self) -> None:
        """A send has waited ``SEND_TIMEOUT_S``: drop the connection (its reads and
        writes then fail and ``run`` ends)."""
        log.info("/ws: the client has not read for %.0f s; closing", SEND_TIMEOUT_S)
        self.stuck = True
        if self.transport is not None:
            self.transport.close()

    def _reply(self, kind: str, msg_id: Any, data: dict[str, Any]) -> None:
        if msg_id is None:
            return
        self._enqueue(_Entry(json.dumps({"type": kind, "id": msg_id, "data": jsonable(data)},
                                        separators=(",", ":")), None, 1, False))

    def _error(self, exc: XsysError, msg_id: Any) -> None:
        body: dict[str, Any] = {"type": "error", **jsonable(exc.to_wire())}
        if msg_id is not None:
            body["id"] = msg_id
        self._enqueue(_Entry(json.dumps(body, separators=(",", ":"), default=str),
                             None, 1, False))

    # ------------------------------------------------------------------ serving

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = self.loop.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def run(self) -> None:
        """Serve the socket until the client closes it or the gateway shuts down; then
        close every subscription and cancel and await every task."""
        sender = self._spawn(self._sender(), "ws-sender")
        try:
            async for msg in self.ws:
                if msg.type == WSMsgType.TEXT:
                    await self._handle_text(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    self._error(InvalidRequest("send JSON text messages, not binary"), None)
                elif msg.type == WSMsgType.ERROR:
                    break
                if sender.done():
                    break
        finally:
            for sub in list(self._subs.values()):
                sub.close()
            for task in list(self._tasks):
                task.cancel()
            for task in list(self._tasks):
                with contextlib.suppress(BaseException):
                    await task

    async def _handle_text(self, text: str) -> None:
        msg_id: Any = None
        try:
            try:
                msg = json.loads(text)
            except (ValueError, RecursionError):
                from xsys.protocol import ParseError

                raise ParseError("the message is not valid JSON") from None
            if not isinstance(msg, dict):
                raise InvalidRequest("a message is a JSON object: {\"subscribe\": "
                                     "\"sys\"|\"monitor\"|\"watch\", ...} or "
                                     "{\"unsubscribe\": id}")
            msg_id = msg.get("id")
            if msg_id is not None and (not isinstance(msg_id, (str, int))
                                       or isinstance(msg_id, bool)):
                msg_id = None
                raise InvalidRequest("id must be a string or an integer")
            if "unsubscribe" in msg:
                self._unsubscribe(msg["unsubscribe"], msg_id)
                return
            kind = msg.get("subscribe")
            if kind not in _KINDS:
                raise InvalidRequest(f"unknown subscription {kind!r}; expected one of "
                                     f"{', '.join(_KINDS)}", {"subscribe": kind})
            if len(self._subs) >= MAX_SUBSCRIPTIONS:
                from xsys.protocol import Overloaded

                raise Overloaded(f"at most {MAX_SUBSCRIPTIONS} subscriptions per socket",
                                 {"max": MAX_SUBSCRIPTIONS})
            if kind == "sys":
                await self._subscribe_sys(msg, msg_id)
            elif kind == "monitor":
                await self._subscribe_method("monitor.subscribe", msg, _MONITOR_PARAMS,
                                             msg_id)
            else:
                await self._subscribe_method("watch.add", msg, _WATCH_PARAMS, msg_id)
        except XsysError as exc:
            self._error(exc, msg_id)
        except Exception as exc:
            log.exception("/ws message failed")
            self._error(InternalError(f"internal error: {type(exc).__name__}"), msg_id)

    def _unsubscribe(self, sub_id: Any, msg_id: Any) -> None:
        sub = self._subs.get(sub_id) if isinstance(sub_id, str) else None
        if sub is None:
            from xsys.protocol import NotFound

            raise NotFound(f"no subscription {sub_id!r} on this socket",
                           {"subscription": sub_id})
        sub.close()
        self._reply("unsubscribed", msg_id, {"subscription": sub.id})

    @staticmethod
    def _params(msg: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
        unknown = sorted(set(msg) - set(allowed) - {"subscribe", "id"})
        if unknown:
            raise InvalidParams(f"unknown field(s) {', '.join(unknown)}; allowed: "
                                f"{', '.join(allowed)}", {"unknown": unknown})
        return {k: msg[k] for k in allowed if k in msg}

    async def _subscribe_method(self, method: str, msg: dict[str, Any],
                                allowed: tuple[str, ...], msg_id: Any) -> None:
        params = self._params(msg, allowed)
        spec, kwargs, _ = prepare(self.router, method, params)
        ctx = Context(self.app, method, None, self.peer, self, False)
        result = await run_spec(self.app, spec, ctx, kwargs)
        kind = "monitor" if method.startswith("monitor") else "watch"
        self._reply("subscribed", msg_id, {"subscribe": kind, **dict(result)})

    async def _subscribe_sys(self, msg: dict[str, Any], msg_id: Any) -> None:
        params = self._params(msg, ("interval_s", "sections", "per_cpu", "top_processes",
                                    "process_sort", "format"))
        interval = params.get("interval_s", 1.0)
        fmt = params.get("format", "json")
        if fmt not in ("json", "aloy"):
            raise InvalidParams("parameter 'format': \"json\" or \"aloy\"",
                                {"param": "format"})
        per_cpu = params.get("per_cpu", False)
        if not isinstance(per_cpu, bool):
            raise InvalidParams("parameter 'per_cpu': a boolean", {"param": "per_cpu"})
        sections = params.get("sections")
        if sections is not None and not (isinstance(sections, list) and all(
                isinstance(s, str) for s in sections)):
            raise InvalidParams("parameter 'sections': a list of section names",
                                {"param": "sections", "sections": list(SECTIONS)})
        top = params.get("top_processes", 0)
        hub = self._hub()
        if hub is None:
            from xsys.protocol import Overloaded

            raise Overloaded("the live snapshot hub is not running")
        if fmt == "aloy":
            sections = list(ALOY_SECTIONS)
            if self._ip is None:
                self._ip = await self.app.run_blocking(primary_ip)
        # the hub validates interval_s (clamped to sys.min_interval_s), sections and
        # top_processes: InvalidParams naming the parameter
        stream = hub.subscribe(interval, sections, per_cpu, top,
                               params.get("process_sort", "cpu"))
        sub = Subscription(self, "sys")
        self.add_subscription(sub)
        sub.info = {"interval_s": stream.interval_s, "format": fmt}
        task = self._spawn(self._pump(sub, stream, fmt), f"ws-{sub.id}")

        def closed(_s: Subscription) -> None:
            stream.close()
            task.cancel()

        sub.on_close(closed)
        self._reply("subscribed", msg_id, {"subscribe": "sys", "subscription": sub.id,
                                           "interval_s": stream.interval_s,
                                           "sections": list(stream.sections),
                                           "format": fmt})

    def _snapshot_text(self, sub: Subscription, stream: SnapshotStream,
                       snap: dict[str, Any], fmt: str) -> str:
        if fmt == "aloy":
            return json.dumps(aloy_message(snap, self._ip or ""), separators=(",", ":"))
        data = {"subscription": sub.id, **snap,
                "dropped": sub.dropped + int(getattr(stream, "dropped", 0))}
        return self._encode("sys.snapshot", data)

    async def _pump(self, sub: Subscription, stream: SnapshotStream, fmt: str) -> None:
        try:
            async for snap in stream:
                if sub.closed:
                    break
                self._push_snapshot(sub, functools.partial(self._snapshot_text, sub, stream,
                                                           snap, fmt))
        except XsysError as exc:
            self._error(exc, None)
        finally:
            stream.close()
            sub.close()

