"""Framing and envelopes (docs/protocol.md): unit and property tests."""

from __future__ import annotations

import contextlib
import struct
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xsys import protocol as p

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False), st.text(), st.binary(),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=5),
                               st.dictionaries(st.text(max_size=10), children, max_size=5)),
    max_leaves=20,
)
messages = st.dictionaries(st.text(max_size=10), values, min_size=1, max_size=6)


@given(st.lists(messages, min_size=1, max_size=10), st.integers(min_value=1, max_value=64))
@settings(max_examples=30, deadline=None)
def test_frames_round_trip_in_any_chunking(msgs: list[dict[str, Any]], chunk: int) -> None:
    stream = b"".join(p.encode_frame(m) for m in msgs)
    dec = p.FrameDecoder()
    out = []
    for i in range(0, len(stream), chunk):
        out += [p.unpackb(f) for f in dec.feed(stream[i : i + chunk])]
    assert out == msgs
    assert dec.buffered == 0


@given(st.binary(max_size=2048))
@settings(max_examples=300, deadline=None)
def test_no_byte_string_crashes_the_decoder(data: bytes) -> None:
    dec = p.FrameDecoder(max_frame_bytes=1024)
    try:
        for payload in dec.feed(data):
            with contextlib.suppress(p.ParseError):
                p.unpackb(payload)
    except p.FrameTooLarge:
        pass


@pytest.mark.parametrize(
    ("length", "limit", "ok"),
    [(0, 100, False), (1, 100, True), (100, 100, True), (101, 100, False),
     (2**32 - 1, 16 * 2**20, False)],
)
def test_frame_length_bounds(length: int, limit: int, ok: bool) -> None:
    dec = p.FrameDecoder(limit)
    header = struct.pack(">I", length)
    if ok:
        assert dec.feed(header) == []
    else:
        with pytest.raises(p.FrameTooLarge) as info:
            dec.feed(header)
        assert info.value.code == -32600
        assert str(limit) in info.value.message


def test_request_and_response_envelopes_are_exact() -> None:
    frame = p.encode_request(7, "rpc.ping", {"a": 1})
    (length,) = struct.unpack(">I", frame[:4])
    assert length == len(frame) - 4
    assert msgpack.unpackb(frame[4:]) == {"id": 7, "method": "rpc.ping", "params": {"a": 1}}
    err = msgpack.unpackb(p.encode_error(3, p.NotFound("gone", {"pid": 1}))[4:])
    assert err == {"id": 3, "error": {"code": -32001, "message": "gone", "data": {"pid": 1}}}
    note = msgpack.unpackb(p.encode_notification("watch.event", {"subscription": "s"})[4:])
    assert note == {"method": "watch.event", "params": {"subscription": "s"}}


def test_bytes_travel_as_bin_and_str_as_str() -> None:
    payload = p.encode_frame({"data": b"\x00\xff", "s": "é"})[4:]
    assert payload[0] == 0x82
    assert b"\xc4\x02\x00\xff" in payload  # bin 8
    assert p.unpackb(payload) == {"data": b"\x00\xff", "s": "é"}


@pytest.mark.parametrize(("code", "cls"), sorted(p.ERROR_CLASSES.items()))
def test_every_error_code_maps_to_its_class(code: int, cls: type[p.XsysError]) -> None:
    exc = p.error_from_wire({"code": code, "message": "m", "data": {"x": 1}})
    assert type(exc) is cls
    assert exc.code == code and exc.data == {"x": 1}
    assert isinstance(exc, p.XsysError)


def test_unknown_error_code_keeps_the_code() -> None:
    exc = p.error_from_wire({"code": -1, "message": "odd"})
    assert exc.code == -1 and exc.message == "odd"


@pytest.mark.parametrize(
    ("errno_name", "cls"),
    [("ENOENT", p.NotFound), ("EACCES", p.PermissionDenied), ("EEXIST", p.AlreadyExists),
     ("ENOTEMPTY", p.Conflict), ("EPERM", p.PermissionDenied)],
)
def test_oserror_mapping(errno_name: str, cls: type[p.XsysError]) -> None:
    import errno

    exc = p.error_from_oserror(OSError(getattr(errno, errno_name), "msg", "/x"))
    assert type(exc) is cls
    assert exc.data == {"errno": errno_name, "path": "/x"}


@pytest.mark.parametrize(
    ("env", "expected"),
    [({"XSYS_SOCKET": "/a/b.sock"}, "/a/b.sock"),
     ({"XDG_RUNTIME_DIR": "/run/user/5"}, "/run/user/5/xsys/xsys.sock")],
)
def test_default_socket_path(env: dict[str, str], expected: str) -> None:
    assert p.default_socket_path(env) == expected


def test_default_socket_path_fallback() -> None:
    import os

    path = p.default_socket_path({})
    assert path == ("/run/xsys/xsys.sock" if os.getuid() == 0
                    else f"/tmp/xsys-{os.getuid()}/xsys.sock")
