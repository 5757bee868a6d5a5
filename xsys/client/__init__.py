"""Python clients for the xsys daemon: ``Client`` (blocking, plain sockets) and
``AsyncClient`` (asyncio, pipelined). Both need only msgpack and the standard library.

    from xsys.client import Client
    with Client() as c:                       # socket from XSYS_SOCKET or the defaults
        print(c.sys.memory()["virtual"]["percent"])
        print(c.sys.process(1234))              # by position or by name: pid=1234
        print(c.call("sys.processes", sort="memory", limit=5))   # any method by name
        with c.watch.add(paths=["/tmp"]) as sub:
            for event in sub:                 # notification params, until closed
                print(event)

    async with AsyncClient() as c:
        results = await asyncio.gather(*(c.rpc.ping() for _ in range(100)))

Every method has a typed wrapper by namespace (``c.sys.memory()``,
``await ac.fs.read(path=...)``), generated from the daemon's registry into
``xsys.client._methods`` (``make client-methods``): real signatures, docstrings and
return types. A wrapper sends only the parameters that differ from their defaults; its
``timeout`` (and ``on_progress`` where the method reports progress) are the call's
options. Streaming methods (``watch.add``, ``monitor.subscribe``) return a
``Subscription`` / ``AsyncSubscription``.

Errors arrive as the typed exceptions of ``xsys.protocol`` (``NotFound``,
``InvalidParams``...); a missing daemon raises ``DaemonNotRunning`` naming the socket, and
a connection lost mid-call raises ``ConnectionClosed``. Timeouts raise ``TimeoutError``.

Trust: before a request is sent, both clients check that the socket file is owned by a
trusted uid (root and the client's own uid; or root and ``expected_uid`` /
``$XSYS_SERVER_UID``) and, on Linux, that the process that accepted the connection runs as
one (``SO_PEERCRED``). Otherwise they raise ``UntrustedServer`` (-32006, a subclass of
``Unauthorized``) and nothing is sent.

Paths: parameters may be ``str``, ``bytes`` or ``os.PathLike``; ``bytes`` (and a ``str``
that is not valid UTF-8, such as ``os.fsdecode`` gives for a non-UTF-8 name) travel as
msgpack bin. File names in results come back as ``bytes`` where they are not UTF-8.

Layout (httpx's split): ``_core`` (no I/O: ids, params, frames, routing, event queues),
``_trust`` (the uid checks; the SID check on Windows), ``_stream`` (the named pipe on
Windows), ``sync`` and ``aio`` (the sockets), ``_methods`` (generated wrappers) and
``_codegen`` (their generator). ``aio`` (and so asyncio) is imported on first use of
``AsyncClient``: the blocking client starts without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xsys.client._core import (
    USE_CLIENT_DEFAULT,
    FsPath,
    NotificationHandler,
    ProgressCallback,
    Timeout,
    UseClientDefault,
)
from xsys.client._methods import METHOD_NAMES, STREAMS, UNSUBSCRIBE
from xsys.client._trust import (
    SERVER_SID_ENV,
    SERVER_UID_ENV,
    UntrustedServer,
    trusted_server_sids,
    trusted_server_uids,
)
from xsys.client.sync import Client, Subscription

if TYPE_CHECKING:
    from xsys.client.aio import AsyncClient, AsyncSubscription

# Names this module offered when it was one file (xsys/client.py), kept importable.
from xsys.protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    LARGE_FRAME_BYTES,
    ConnectionClosed,
    DaemonNotRunning,
    FrameDecoder,
    Unauthorized,
    XsysError,
    default_socket_path,
    encode_request,
    error_from_wire,
    unpackb,
)


def __getattr__(name: str) -> Any:
    """``AsyncClient`` and ``AsyncSubscription``, imported on first use so that the blocking
    client (and the CLI built on it) never imports asyncio. ``AttributeError`` otherwise."""
    if name in ("AsyncClient", "AsyncSubscription"):
        from xsys.client import aio

        value = getattr(aio, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'xsys.client' has no attribute {name!r}")


__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "LARGE_FRAME_BYTES",
    "METHOD_NAMES",
    "SERVER_SID_ENV",
    "SERVER_UID_ENV",
    "STREAMS",
    "UNSUBSCRIBE",
    "USE_CLIENT_DEFAULT",
    "AsyncClient",
    "AsyncSubscription",
    "Client",
    "ConnectionClosed",
    "DaemonNotRunning",
    "FrameDecoder",
    "FsPath",
    "NotificationHandler",
    "ProgressCallback",
    "Subscription",
    "Timeout",
    "Unauthorized",
    "UntrustedServer",
    "UseClientDefault",
    "XsysError",
    "default_socket_path",
    "encode_request",
    "error_from_wire",
    "trusted_server_sids",
    "trusted_server_uids",
    "unpackb",
]
