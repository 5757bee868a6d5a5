"""The xsys wire protocol, version 1 (docs/protocol.md): framing, envelopes, error codes and the
exception hierarchy shared by the daemon and every Python client.

A frame is a 4-byte big-endian unsigned length followed by that many bytes holding one
msgpack map. This module depends on msgpack and the standard library only, so that
``xsys.client`` stays light.
"""

from __future__ import annotations

import errno as errno_mod
import os
import struct
import sys
import threading
from collections.abc import Callable
from typing import Any, ClassVar

import msgpack

PROTOCOL_VERSION = 1
HEADER = struct.Struct(">I")
HEADER_SIZE = HEADER.size
_unpack_header_from = HEADER.unpack_from
DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024
DEFAULT_PIPE_NAME = r"\\.\pipe\xsys"

# Error codes (docs/protocol.md, "Error codes").
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
NOT_FOUND = -32001
PERMISSION_DENIED = -32002
ALREADY_EXISTS = -32003
TOO_LARGE = -32004
OVERLOADED = -32005
UNAUTHORIZED = -32006
CONFLICT = -32007


# --------------------------------------------------------------------------- exceptions


class XsysError(Exception):
    """Base of every error the protocol can carry.

    Attributes: ``code`` (int, docs/protocol.md error code), ``message`` (str), ``data``
    (machine-readable detail or None). Subclasses fix ``code``; catch ``XsysError`` to
    handle all of them, or a subclass for one condition.
    """

    code: ClassVar[int] = INTERNAL_ERROR
    name: ClassVar[str] = "internal_error"

    def __init__(self, message: str = "", data: Any = None) -> None:
        super().__init__(message or self.name)
        self.message = message or self.name
        self.data = data

    def to_wire(self) -> dict[str, Any]:
        """The ``error`` member of a response: ``{"code", "message", "data"?}``."""
        err: dict[str, Any] = {"code": self.code, "message": _wire_text(self.message)}
        if self.data is not None:
            err["data"] = wire_value(self.data)
        return err

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, data={self.data!r})"


def _wire_text(text: str) -> str:
    """``text`` made encodable as UTF-8 (surrogate escapes from a non-UTF-8 file name are
    shown as ``\\xNN``)."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def wire_str(text: str) -> str | bytes:
    """``text`` for the wire: itself, or the original bytes (``os.fsencode``) when it holds
    surrogate escapes, i.e. came from a file name that is not valid UTF-8 (such names go
    as msgpack bin in the same field; docs/protocol.md, "File names")."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(text)
    return text


def wire_value(value: Any) -> Any:
    """``value`` (maps, lists, tuples and scalars) with every ``str`` passed through
    ``wire_str``: for results and error ``data`` that may hold file names."""
    if isinstance(value, str):
        return wire_str(value)
    if isinstance(value, dict):
        return {k: wire_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [wire_value(v) for v in value]
    return value


class ParseError(XsysError):
    """-32700: the payload is not valid msgpack."""

    code = PARSE_ERROR
    name = "parse_error"


class InvalidRequest(XsysError):
    """-32600: not a map, missing or ill-typed ``id``/``method``, or a bad frame length."""

    code = INVALID_REQUEST
    name = "invalid_request"


class MethodNotFound(XsysError):
    """-32601: unknown method."""

    code = METHOD_NOT_FOUND
    name = "method_not_found"


class InvalidParams(XsysError):
    """-32602: a parameter is missing, of the wrong type or out of range; ``data`` names it."""

    code = INVALID_PARAMS
    name = "invalid_params"


class InternalError(XsysError):
    """-32603: a bug in the daemon; it was logged with a traceback."""

    code = INTERNAL_ERROR
    name = "internal_error"


class NotFound(XsysError):
    """-32001: a path, pid, subscription or check does not exist."""

    code = NOT_FOUND
    name = "not_found"


class PermissionDenied(XsysError):
    """-32002: the OS refused, or the path is outside the configured fs roots."""

    code = PERMISSION_DENIED
    name = "permission_denied"


class AlreadyExists(XsysError):
    """-32003: the target exists and overwrite was not asked for."""

    code = ALREADY_EXISTS
    name = "already_exists"


class TooLarge(XsysError):
    """-32004: a result or input is above a configured limit."""

    code = TOO_LARGE
    name = "too_large"


class Overloaded(XsysError):
    """-32005: the server is at a capacity limit; retry later."""

    code = OVERLOADED
    name = "overloaded"


class Unauthorized(XsysError):
    """-32006: the peer's uid/gid is not allowed."""

    code = UNAUTHORIZED
    name = "unauthorized"


class UntrustedServer(Unauthorized):
    """Client side: the socket, or the process behind it, belongs to a uid this client
    does not trust as the daemon's (another user may be impersonating it); nothing was
    sent. ``code`` -32006 (unauthorized); ``data``: ``{"socket", "uid", "expected_uids",
    "check": "socket_owner" | "peer_credentials"}`` (and ``"pid"`` for the latter); on
    Windows ``{"socket", "sid", "expected_sids", "check": "pipe_server", "pid"}``.
    Raised by ``xsys.client`` (its ``_trust`` checks), never sent on the wire."""

    name = "untrusted_server"


class Conflict(XsysError):
    """-32007: a precondition failed (directory not empty, expected hash mismatch, ...)."""

    code = CONFLICT
    name = "conflict"


class ConnectionClosed(XsysError):
    """Client side only: the connection closed (or could not be opened) before an answer.

    Not a wire error code; ``code`` is 0.
    """

    code = 0
    name = "connection_closed"


class DaemonNotRunning(ConnectionClosed):
    """Client side only: nothing listens on the socket path (``data`` = {"socket": path})."""

    name = "daemon_not_running"


ERROR_CLASSES: dict[int, type[XsysError]] = {
    cls.code: cls
    for cls in (
        ParseError,
        InvalidRequest,
        MethodNotFound,
        InvalidParams,
        InternalError,
        NotFound,
        PermissionDenied,
        AlreadyExists,
        TooLarge,
        Overloaded,
        Unauthorized,
        Conflict,
    )
}


def error_from_wire(err: Any) -> XsysError:
    """Build the typed exception for a response's ``error`` member (unknown codes give a
    plain ``XsysError`` carrying the code)."""
    if not isinstance(err, dict):
        return InternalError(f"malformed error object: {err!r}")
    code = err.get("code")
    message = str(err.get("message", ""))
    cls = ERROR_CLASSES.get(code) if isinstance(code, int) else None
    if cls is None:
        exc = XsysError(message, err.get("data"))
        if isinstance(code, int):
            exc.code = code  # type: ignore[misc]
        return exc
    return cls(message, err.get("data"))


_ERRNO_CLASSES: dict[int, type[XsysError]] = {
    errno_mod.ENOENT: NotFound,
    errno_mod.ESRCH: NotFound,
    errno_mod.ENOTDIR: NotFound,
    errno_mod.EACCES: PermissionDenied,
    errno_mod.EPERM: PermissionDenied,
    errno_mod.EROFS: PermissionDenied,
    errno_mod.EEXIST: AlreadyExists,
    errno_mod.ENOTEMPTY: Conflict,
    errno_mod.EISDIR: Conflict,
    errno_mod.EXDEV: Conflict,
    errno_mod.EBUSY: Conflict,
    errno_mod.ELOOP: PermissionDenied,
    errno_mod.EFBIG: TooLarge,
    errno_mod.ENAMETOOLONG: InvalidParams,
    errno_mod.ENOSPC: Overloaded,
    errno_mod.EMFILE: Overloaded,
    errno_mod.ENFILE: Overloaded,
}


def error_from_oserror(exc: OSError, path: str | None = None) -> XsysError:
    """Map an ``OSError`` to the protocol error for its errno.

    ``data`` is ``{"errno": "ENOENT", "path": ...}``. ENOENT -> not_found, EACCES/EPERM ->
    permission_denied, EEXIST -> already_exists, ENOTEMPTY -> conflict, ...; anything
    unmapped is an internal_error carrying the errno name.
    """
    code = exc.errno if isinstance(exc.errno, int) else 0
    name = errno_mod.errorcode.get(code, str(code))
    where = path if path is not None else exc.filename
    cls = _ERRNO_CLASSES.get(code, InternalError)
    data: dict[str, Any] = {"errno": name}
    if where is not None:
        data["path"] = os.fsdecode(where)
    return cls(f"{exc.strerror or name}: {data.get('path', '')}".rstrip(": "), data)


# --------------------------------------------------------------------------- msgpack


_local = threading.local()
_pack_header = HEADER.pack
_unpackb = msgpack.unpackb
#: Initial buffer of a reused packer (it grows as needed). One whose last output was
#: larger than ``_PACKER_KEEP_BYTES`` is replaced, so that one big result does not keep
#: its buffer allocated for the life of the thread or connection.
_PACKER_BUF_BYTES = 16 * 1024
_PACKER_KEEP_BYTES = 1 << 20


def _new_packer() -> Any:
    return msgpack.Packer(use_bin_type=True, buf_size=_PACKER_BUF_BYTES)


class FrameEncoder:
    """Encodes messages into frames with one reused msgpack packer: building a packer per
    message costs more than packing a small one. Not thread-safe: use one per thread or
    per connection (``encode_frame`` keeps one per thread)."""

    __slots__ = ("_pack",)

    def __init__(self) -> None:
        self._pack: Callable[[Any], bytes] = _new_packer().pack

    def payload(self, obj: Any) -> bytes:
        """msgpack-encode ``obj`` (str as str, bytes as bin, no datetime extensions)."""
        payload = self._pack(obj)
        if len(payload) > _PACKER_KEEP_BYTES:
            self._pack = _new_packer().pack
        return payload

    def frame(self, obj: Any) -> bytes:
        """One complete frame: the 4-byte big-endian length, then the msgpack payload."""
        payload = self.payload(obj)
        return _pack_header(len(payload)) + payload


#: Results at least this large are written as header + the packer's own buffer (no copy).
LARGE_FRAME_BYTES = 256 * 1024


def frame_parts(obj: Any) -> tuple[int, list[bytes | memoryview]]:
    """Encode ``obj`` as one frame given as parts to write in order, without copying a
    large payload out of its packer: returns (payload length, [header, payload]) for
    payloads of ``LARGE_FRAME_BYTES`` or more and (length, [frame]) for smaller ones."""
    packer = msgpack.Packer(use_bin_type=True, autoreset=False)
    packer.pack(obj)
    view = packer.getbuffer()
    size = len(view)
    if size < LARGE_FRAME_BYTES:
        return size, [_pack_header(size) + bytes(view)]
    return size, [_pack_header(size), view]


def _thread_encoder() -> FrameEncoder:
    encoder: FrameEncoder | None = getattr(_local, "encoder", None)
    if encoder is None:
        encoder = _local.encoder = FrameEncoder()
    return encoder


def packb(obj: Any) -> bytes:
    """msgpack-encode ``obj`` (str as str, bytes as bin, no datetime extensions)."""
    return _thread_encoder().payload(obj)


def unpackb(payload: bytes | bytearray) -> Any:
    """msgpack-decode one object; raises ``ParseError`` on invalid or trailing data."""
    try:
        return _unpackb(payload, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise ParseError(f"payload is not valid msgpack: {type(exc).__name__}") from exc


#: Default of ``server.max_request_objects``: msgpack objects one request may decode to.
DEFAULT_MAX_REQUEST_OBJECTS = 10_000


class TooManyObjects(TooLarge):
    """-32004: a request payload decodes to more objects than ``server.max_request_objects``.
    ``request_id`` is the request's ``id`` when it could be read cheaply (it precedes the
    bulky members of the map), else None."""

    def __init__(self, message: str, data: Any = None, request_id: int | None = None) -> None:
        super().__init__(message, data)
        self.request_id = request_id


class _OverBudget(Exception):
    """Raised by ``_ObjectBudget`` hooks to stop a decode."""


class _ObjectBudget:
    """msgpack hooks counting decoded objects: each array counts its items plus itself,
    each map its keys and values plus itself; past ``limit`` decoding stops with
    ``_OverBudget``."""

    __slots__ = ("left",)

    def __init__(self, limit: int) -> None:
        self.left = limit

    def on_list(self, items: list[Any]) -> list[Any]:
        self.left -= len(items) + 1
        if self.left < 0:
            raise _OverBudget
        return items

    def on_map(self, pairs: dict[Any, Any]) -> dict[Any, Any]:
        self.left -= 2 * len(pairs) + 1
        if self.left < 0:
            raise _OverBudget
        return pairs


def unpack_request(payload: bytes, max_objects: int = DEFAULT_MAX_REQUEST_OBJECTS) -> Any:
    """msgpack-decode one request payload with bounded work and memory.

    A payload of at most ``max_objects`` bytes cannot hold more objects than that (each
    takes at least one byte) and is decoded as by ``unpackb`` (the hot path). A longer one
    is decoded with the lengths of strings, binaries and extensions bounded by the payload
    length, of arrays by ``max_objects`` and of maps by half of it, and with hooks counting
    containers and their items, so that decoding stops soon after ``max_objects`` objects
    (a 16 MiB array of empty maps costs milliseconds, not seconds and a gigabyte).
    Raises ``ParseError`` (invalid or trailing data, nesting too deep) and
    ``TooManyObjects`` (-32004; its ``request_id`` recovered where possible).
    """
    size = len(payload)
    if size <= max_objects:
        return unpackb(payload)
    budget = _ObjectBudget(max_objects)
    try:
        return _unpackb(payload, raw=False, strict_map_key=False,
                        list_hook=budget.on_list, object_hook=budget.on_map,
                        max_str_len=size, max_bin_len=size, max_ext_len=size,
                        max_array_len=max_objects, max_map_len=max_objects // 2)
    except _OverBudget:
        pass
    except ValueError as exc:
        if "exceeds max_" not in str(exc):  # a declared length over the bounds above
            raise ParseError(f"payload is not valid msgpack: {type(exc).__name__}") from exc
    except Exception as exc:  # msgpack raises several unrelated types
        raise ParseError(f"payload is not valid msgpack: {type(exc).__name__}") from exc
    raise TooManyObjects(
        f"request decodes to more than {max_objects} objects (server.max_request_objects)",
        {"limit": max_objects}, peek_request_id(payload))


def peek_request_id(payload: bytes) -> int | None:
    """The ``id`` of a request payload read without decoding its other members: the
    top-level map's keys and values are read in order, each bounded to a few small
    objects, until ``id``; None when it is not a map, ``id`` is missing or not an
    unsigned integer, or a bulkier member comes first."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False,
                                max_buffer_size=max(len(payload), 1), max_str_len=256,
                                max_bin_len=256, max_ext_len=256, max_array_len=8,
                                max_map_len=8)
    try:
        unpacker.feed(payload)
        for _ in range(min(unpacker.read_map_header(), 8)):
            key = unpacker.unpack()
            value = unpacker.unpack()
            if key == "id":
                return value if type(value) is int and value >= 0 else None
    except Exception:  # not a map, a bulky member, truncated data: no id to give
        return None
    return None


def encode_frame(obj: Any) -> bytes:
    """One complete frame: the 4-byte big-endian length, then the msgpack payload."""
    return _thread_encoder().frame(obj)


def encode_request(req_id: int, method: str, params: dict[str, Any] | None = None) -> bytes:
    """The frame of a request ``{"id", "method", "params"?}``."""
    msg: dict[str, Any] = {"id": req_id, "method": method}
    if params is not None:
        msg["params"] = params
    return encode_frame(msg)


def encode_result(req_id: int | None, result: Any) -> bytes:
    """The frame of a successful response ``{"id", "result"}``."""
    return encode_frame({"id": req_id, "result": result})


def encode_error(req_id: int | None, error: XsysError) -> bytes:
    """The frame of an error response ``{"id", "error": {"code", "message", "data"?}}``."""
    return encode_frame({"id": req_id, "error": error.to_wire()})


def encode_notification(method: str, params: dict[str, Any]) -> bytes:
    """The frame of a notification ``{"method", "params"}`` (no id, never answered)."""
    return encode_frame({"method": method, "params": params})


class FrameTooLarge(InvalidRequest):
    """A frame header announced a length of 0 or above ``max_frame``; the stream cannot be
    resynchronised, so the connection must close after answering."""


class FrameDecoder:
    """Incremental frame splitter: feed bytes as they arrive, get complete payloads out.

    ``feed(data)`` returns the list of complete payloads (bytes) now available and keeps any
    partial frame buffered. Raises ``FrameTooLarge`` when a header announces a length of 0
    or above ``max_frame_bytes``; the decoder is then unusable. ``frames`` counts the
    payloads returned so far (a partial frame that stays the same across two looks at
    ``frames`` and ``buffered`` has not progressed to completion: the slowloris check).
    """

    __slots__ = ("_buf", "frames", "max_frame_bytes")

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self._buf = bytearray()
        self.max_frame_bytes = max_frame_bytes
        self.frames = 0

    @property
    def buffered(self) -> int:
        """Bytes held for a frame not yet complete."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        if buf or type(data) is not bytes:
            buf += data
            return self._split_buffer()
        # Fast path (nothing buffered): slice the payloads straight out of ``data`` and
        # buffer only a trailing partial frame; usually one request is one whole frame.
        end = len(data)
        limit = self.max_frame_bytes
        unpack_from = _unpack_header_from
        out: list[bytes] = []
        pos = 0
        while end - pos >= 4:
            (length,) = unpack_from(data, pos)
            if length == 0 or length > limit:
                buf += data
                raise self._too_large(length)
            if end - pos - 4 < length:
                break
            out.append(data[pos + 4 : pos + 4 + length])
            pos += 4 + length
        if pos < end:
            buf += memoryview(data)[pos:]
        self.frames += len(out)
        return out

    def pending_frame(self) -> tuple[int, int] | None:
        """(payload length, payload bytes already buffered) of the partial frame at the
        head of the buffer, or None when not even its header is complete."""
        buf = self._buf
        if len(buf) < 4:
            return None
        (length,) = HEADER.unpack_from(buf, 0)
        return length, len(buf) - 4

    def take_partial(self, into: memoryview) -> int:
        """Move the buffered part of the pending frame's payload into ``into`` (sized to
        the whole payload) and clear the buffer; returns the bytes moved. The caller then
        fills the rest straight from the socket (no growing buffer, no final copy)."""
        buf = self._buf
        n = len(buf) - 4
        into[:n] = buf[4:]
        buf.clear()
        self.frames += 1
        return n

    def _split_buffer(self) -> list[bytes]:
        buf = self._buf
        out: list[bytes] = []
        pos = 0
        end = len(buf)
        limit = self.max_frame_bytes
        while end - pos >= 4:
            (length,) = HEADER.unpack_from(buf, pos)
            if length == 0 or length > limit:
                raise self._too_large(length)
            if end - pos - 4 < length:
                break
            out.append(bytes(buf[pos + 4 : pos + 4 + length]))
            pos += 4 + length
        if pos:
            del buf[:pos]
        self.frames += len(out)
        return out

    def _too_large(self, length: int) -> FrameTooLarge:
        limit = self.max_frame_bytes
        return FrameTooLarge(
            f"frame length {length} outside 1..{limit} (max_frame)",
            {"length": length, "max_frame": limit},
        )


# --------------------------------------------------------------------------- paths


def default_socket_path(environ: dict[str, str] | None = None) -> str:
    """The socket (or pipe) path a client or daemon uses when none is given (docs/protocol.md):
    ``$XSYS_SOCKET``, else ``$XDG_RUNTIME_DIR/xsys/xsys.sock``, else ``/run/xsys/xsys.sock``
    when running as root, else ``/tmp/xsys-$UID/xsys.sock``; on Windows ``\\\\.\\pipe\\xsys``.
    """
    env = os.environ if environ is None else environ
    explicit = env.get("XSYS_SOCKET")
    if explicit:
        return explicit
    if sys.platform == "win32":
        return DEFAULT_PIPE_NAME
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "xsys", "xsys.sock")
    uid = os.getuid()
    if uid == 0:
        return "/run/xsys/xsys.sock"
    return os.path.join("/tmp", f"xsys-{uid}", "xsys.sock")


# --------------------------------------------------------------------------- result types


class WireType:
    """Annotation metadata giving the wire type of a value whose Python type says less:
    ``Annotated[str, WireType("str|bin")]`` is a file name, a ``str`` in Python (with
    surrogate escapes where its bytes are not UTF-8) that goes as str or as bin
    (docs/protocol.md, "File names"). The router's result schemas (``rpc.methods``) show
    ``name`` as such a field's type."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"WireType({self.name!r})"
