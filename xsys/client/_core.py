"""The client's side of the protocol without I/O (httpx's ``BaseClient`` idea): request
ids, params, frame encoding, decoding, matching answers to calls, progress callbacks,
subscriptions' event queues. ``sync.Client`` and ``aio.AsyncClient`` own one ``CallState``
each and add only the sockets: they feed it the bytes they read and send the frames it
makes.

    state = CallState(max_frame_bytes=16 << 20, max_queued_events=10_000)
    req_id, frame = state.request("sys.memory", None)   # -> write frame
    for msg in state.feed(data):                         # <- bytes read
        answer = state.route(msg)                        # notifications are filed here
        if answer is not None and answer["id"] == req_id:
            result = result_of(answer)                   # or raises the typed error
    state.finish(req_id)
"""

from __future__ import annotations

import collections
import enum
import itertools
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Generic, TypeAlias, TypeVar

from xsys.protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    DaemonNotRunning,
    FrameDecoder,
    encode_request,
    error_from_wire,
    unpackb,
)

#: Called with each ``<namespace>.progress`` notification's params of one call.
ProgressCallback = Callable[[dict[str, Any]], None]
#: Called with ``(method, params)`` of every notification that is not progress.
NotificationHandler = Callable[[str, dict[str, Any]], None]

#: A path parameter: ``str``, ``bytes`` or ``os.PathLike``; ``bytes`` (and a ``str`` that
#: is not valid UTF-8, as ``os.fsdecode`` gives for a non-UTF-8 name) travel as msgpack bin.
FsPath: TypeAlias = str | bytes | os.PathLike[str] | os.PathLike[bytes]


class UseClientDefault(enum.Enum):
    """The type of ``USE_CLIENT_DEFAULT``: a call's ``timeout`` that means "the client's
    own ``timeout``" (httpx's sentinel)."""

    USE_CLIENT_DEFAULT = "USE_CLIENT_DEFAULT"

    def __repr__(self) -> str:
        return "USE_CLIENT_DEFAULT"


USE_CLIENT_DEFAULT: Final = UseClientDefault.USE_CLIENT_DEFAULT

#: A call's timeout: seconds, None to wait forever, or ``USE_CLIENT_DEFAULT``.
Timeout: TypeAlias = float | UseClientDefault | None


def effective_timeout(timeout: Timeout, default: float | None) -> float | None:
    """The seconds a call waits: ``default`` (the client's) for ``USE_CLIENT_DEFAULT`` or a
    negative number (the older spelling, ``-1.0``), else ``timeout`` (None: no limit)."""
    if timeout is USE_CLIENT_DEFAULT:
        return default
    if timeout is not None and timeout < 0:
        return default
    return timeout


# --------------------------------------------------------------------------- params


def wire_value(value: Any) -> Any:
    """``value`` with paths made packable: ``os.PathLike`` -> ``os.fspath``, a ``str``
    that is not valid UTF-8 (surrogate escapes) -> ``os.fsencode`` bytes (msgpack bin),
    through lists, tuples and maps."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return os.fsencode(value)
        return value
    if isinstance(value, os.PathLike):
        return wire_value(os.fspath(value))
    if isinstance(value, dict):
        return {key: wire_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [wire_value(item) for item in value]
    return value


def encode_call(req_id: int, method: str, params: dict[str, Any] | None) -> bytes:
    """The request frame; params holding ``os.PathLike`` or non-UTF-8 ``str`` values are
    converted (``wire_value``) only when plain packing fails, so the common case pays
    nothing. Raises ``TypeError`` for values msgpack cannot carry."""
    try:
        return encode_request(req_id, method, params)
    except (TypeError, UnicodeEncodeError):
        if params is None:
            raise
        return encode_request(req_id, method, wire_value(params))


def merge_params(params: Mapping[str, Any] | None, kwargs: dict[str, Any],
                 on_progress: ProgressCallback | None) -> dict[str, Any] | None:
    """The request's params: ``params`` and keyword arguments merged (keywords win), plus
    ``progress: true`` when a progress callback was given; None when there are none."""
    merged = (kwargs or None) if params is None else (
        {**params, **kwargs} if kwargs or not isinstance(params, dict) else params)
    if on_progress is not None:
        merged = {**(merged or {}), "progress": True}
    return merged or None


def given(required: dict[str, Any], optional: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
    """The params of a generated wrapper: every ``required`` one, and each ``optional``
    ``name: (value, default)`` whose value is not its default (same type and equal, or
    the same object). Leaving defaults out keeps requests small and lets a client talk to
    a daemon that does not know a newer optional parameter."""
    params = dict(required)
    for name, (value, default) in optional.items():
        if value is default or (type(value) is type(default) and value == default):
            continue
        params[name] = value
    return params


def not_running(path: str, exc: OSError) -> DaemonNotRunning:
    """The error for a socket nobody listens on."""
    return DaemonNotRunning(
        f"cannot connect to the xsys daemon at {path} ({exc.strerror or exc}); "
        "start it with `xsys serve`",
        {"socket": path},
    )


def result_of(answer: dict[str, Any]) -> Any:
    """An answer's ``result``; raises its error as the typed ``XsysError`` subclass."""
    if "error" in answer:
        raise error_from_wire(answer["error"])
    return answer.get("result")


# --------------------------------------------------------------------------- events


class EventQueue:
    """The events of one subscription, waiting to be read: a FIFO of at most ``maxsize``
    (the oldest dropped past it, counted in ``dropped``). ``closed`` once the subscription
    or its connection ended; ``on_put`` (e.g. an ``asyncio.Event.set``) runs after every
    put and on close."""

    __slots__ = ("_items", "closed", "dropped", "maxsize", "on_put")

    def __init__(self, maxsize: int) -> None:
        self._items: collections.deque[dict[str, Any]] = collections.deque()
        self.maxsize = maxsize
        self.dropped = 0
        self.closed = False
        self.on_put: Callable[[], None] | None = None

    def put(self, event: dict[str, Any]) -> None:
        """Append ``event``, dropping the oldest past ``maxsize``."""
        self._items.append(event)
        if len(self._items) > self.maxsize:
            self._items.popleft()
            self.dropped += 1
        if self.on_put is not None:
            self.on_put()

    def pop(self) -> dict[str, Any] | None:
        """The oldest event, or None when empty."""
        return self._items.popleft() if self._items else None

    def close(self) -> None:
        """No more events will come (those queued can still be read)."""
        self.closed = True
        if self.on_put is not None:
            self.on_put()

    def __len__(self) -> int:
        return len(self._items)


# --------------------------------------------------------------------------- calls


class CallState:
    """One connection's protocol state, without I/O.

    - ``request(method, params)`` gives the next request id and the frame to send, and
      remembers its progress callback (until ``finish``).
    - ``feed(data)`` decodes bytes read into messages (``FrameDecoder``: raises
      ``InvalidRequest`` on a frame above ``max_frame_bytes``).
    - ``route(msg)`` files a notification (progress -> the call's callback; an event ->
      its subscription's ``EventQueue``, or ``unclaimed``; then every
      ``notification_handlers``) and returns None, or returns an answer (a map with
      ``"id"``) for the caller to match. The answer to a call made with
      ``subscribing=True`` opens its subscription's queue at once, so events that follow
      it in the same read are kept.

    ``max_queued_events`` bounds each subscription's queue; ``keep_unclaimed`` keeps the
    last 1000 notifications no subscription claimed (the blocking client's
    ``notifications()``).
    """

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
                 max_queued_events: int = 10_000, *, keep_unclaimed: bool = False) -> None:
        self.decoder = FrameDecoder(max_frame_bytes)
        self.max_queued_events = max_queued_events
        self._ids = itertools.count(1)
        self._progress: dict[int, ProgressCallback] = {}
        self._subscribing: set[int] = set()
        self.queues: dict[str, EventQueue] = {}
        self.unclaimed: collections.deque[dict[str, Any]] | None = (
            collections.deque(maxlen=1000) if keep_unclaimed else None)
        self.notification_handlers: list[NotificationHandler] = []

    def reset(self) -> None:
        """Forget the bytes of a previous connection (a fresh decoder)."""
        self.decoder = FrameDecoder(self.decoder.max_frame_bytes)

    def request(self, method: str, params: dict[str, Any] | None, *,
                on_progress: ProgressCallback | None = None,
                subscribing: bool = False) -> tuple[int, bytes]:
        """``(request id, frame)`` for a call; raises ``TypeError`` for params msgpack
        cannot carry (nothing is registered then)."""
        req_id = next(self._ids)
        frame = encode_call(req_id, method, params)
        if on_progress is not None:
            self._progress[req_id] = on_progress
        if subscribing:
            self._subscribing.add(req_id)
        return req_id, frame

    def finish(self, req_id: int) -> None:
        """The call is over (answered, failed or abandoned): forget its callback."""
        self._progress.pop(req_id, None)
        self._subscribing.discard(req_id)

    def feed(self, data: bytes) -> list[Any]:
        """The messages completed by ``data``."""
        return [unpackb(payload) for payload in self.decoder.feed(data)]

    def route(self, msg: Any) -> dict[str, Any] | None:
        """File a notification and return None, or return an answer (see the class)."""
        if not isinstance(msg, dict):
            return None
        if "id" in msg:
            req_id = msg["id"]
            if self._subscribing and isinstance(req_id, int) and req_id in self._subscribing:
                self._open_from(msg)
            return msg
        method = str(msg.get("method", ""))
        params = msg.get("params")
        if not isinstance(params, dict):
            params = {}
        if method.endswith(".progress"):
            request = params.get("request")
            callback = self._progress.get(request) if isinstance(request, int) else None
            if callback is not None:
                callback(params)
                return None
        sub_id = params.get("subscription")
        queue = self.queues.get(sub_id) if isinstance(sub_id, str) else None
        if queue is not None:
            queue.put({"method": method, **params})
        elif self.unclaimed is not None:
            self.unclaimed.append({"method": method, **params})
        for handler in self.notification_handlers:
            handler(method, params)
        return None

    def _open_from(self, answer: dict[str, Any]) -> None:
        result = answer.get("result")
        if "error" not in answer and isinstance(result, dict):
            sub_id = result.get("subscription")
            if isinstance(sub_id, str):
                self.open(sub_id)

    def open(self, sub_id: str) -> EventQueue:
        """The queue of subscription ``sub_id`` (created when new)."""
        queue = self.queues.get(sub_id)
        if queue is None:
            queue = self.queues[sub_id] = EventQueue(self.max_queued_events)
        return queue

    def drop(self, sub_id: str) -> None:
        """Close and forget the queue of ``sub_id``."""
        queue = self.queues.pop(sub_id, None)
        if queue is not None:
            queue.close()

    def close_all(self) -> None:
        """The connection is gone: close every subscription's queue."""
        queues, self.queues = self.queues, {}
        for queue in queues.values():
            queue.close()
        self._progress.clear()
        self._subscribing.clear()


# --------------------------------------------------------------------------- namespaces

C = TypeVar("C")


class DynamicNamespace:
    """``client.ns.method(params=None, **kwargs)`` -> ``call("ns.method", ...)`` for a
    name the generated wrappers do not know (a daemon newer than this client). Type
    checkers do not see these: use ``client.call`` in typed code."""

    __slots__ = ("_call", "_name")

    def __init__(self, call: Callable[..., Any], name: str) -> None:
        self._call = call
        self._name = name

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_"):
            raise AttributeError(method)
        full = f"{self._name}.{method}"
        call = self._call

        def wrapper(params: dict[str, Any] | None = None, **kwargs: Any) -> Any:
            return call(full, params, **kwargs)

        wrapper.__name__ = method
        wrapper.__qualname__ = full
        return wrapper


class _RuntimeTypedDictMeta(type):
    """Lets ``RuntimeTypedDict("Name", {"key": "type"})`` (the functional form, for keys
    that are not identifiers) make a class, as ``typing.TypedDict`` does."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if (cls is RuntimeTypedDict and len(args) == 2 and isinstance(args[0], str)
                and isinstance(args[1], dict) and not kwargs):
            name, fields = args
            return _RuntimeTypedDictMeta(name, (RuntimeTypedDict,),
                                         {"__annotations__": dict(fields)})
        return super().__call__(*args, **kwargs)


class RuntimeTypedDict(dict[str, Any], metaclass=_RuntimeTypedDictMeta):
    """What the generated result TypedDicts (``xsys.client._methods``) are at run
    time: a ``dict`` subclass keeping its annotations as text. The results themselves are
    plain dicts; the classes only name their keys for type checkers, which see
    ``typing.TypedDict`` (``if TYPE_CHECKING``). ``typing.TypedDict`` would compile every
    field's annotation when the module is imported (about 20 ms, paid by every CLI call).
    """


class NamespaceBase(Generic[C]):
    """Base of the generated namespace classes (``SysMethods``...): holds the client;
    at run time an unknown method falls back to ``DynamicNamespace``."""

    __slots__ = ("_client",)
    #: The wire namespace (``"sys"``), set by each generated class.
    namespace: str = ""

    def __init__(self, client: C) -> None:
        self._client = client

    if not TYPE_CHECKING:

        def __getattr__(self, method: str) -> Callable[..., Any]:
            if method.startswith("_"):
                raise AttributeError(method)
            return getattr(DynamicNamespace(self._client.call, self.namespace), method)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.namespace}.* of {self._client!r}>"
