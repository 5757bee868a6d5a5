"""Streaming over a real daemon: ``fs.read {stream: true}`` as ``fs.chunk`` notifications
under an acknowledged window, ``fs.write`` chunked uploads bound to one request, and a
client that stops reading while the daemon's memory stays bounded."""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.fswatch_support import shared_daemon, wait_sync, workdir
from xsys.protocol import FrameDecoder, encode_request, unpackb

__all__ = ["shared_daemon", "workdir"]  # fixtures used by this module


def test_streamed_read_and_write_round_trip(shared_daemon: Any, workdir: Path) -> None:
    src = workdir / "src.bin"
    payload = os.urandom(9 * 1024 * 1024 + 123)
    src.write_bytes(payload)
    with shared_daemon.client() as c:
        chunks = list(c.read_stream(str(src), window_bytes=2 * 1024 * 1024))
        assert b"".join(chunks) == payload and len(chunks) >= 9
        part = b"".join(c.read_stream(str(src), offset=1000, length=5000))
        assert part == payload[1000:6000]
        assert c.call("rpc.ping")["pong"] is True  # the connection is fine afterwards
        # chunks dropped as they come (the client may reuse their buffer) and chunks
        # kept (it must not): both give the file's bytes
        h = hashlib.sha256()
        for chunk in c.read_stream(str(src), window_bytes=2 * 1024 * 1024):
            h.update(chunk)
        assert h.digest() == hashlib.sha256(payload).digest()
        kept = list(c.read_stream(str(src), window_bytes=2 * 1024 * 1024))
        assert b"".join(kept) == payload
        r = c.write_stream(str(workdir / "dst.bin"),
                           (payload[i:i + 1_000_000] for i in range(0, len(payload),
                                                                     1_000_000)))
        assert r["written_bytes"] == len(payload) and r["created"]
        assert hashlib.sha256((workdir / "dst.bin").read_bytes()).digest() == \
            hashlib.sha256(payload).digest()
        r = c.write_stream(str(workdir / "empty.bin"), [])
        assert r["size"] == 0 and (workdir / "empty.bin").read_bytes() == b""
        # leaving a streamed read early ends it; the client reconnects for the next call
        it = c.read_stream(str(src), window_bytes=1024 * 1024)
        assert len(next(it)) > 0
        it.close()
        assert c.call("rpc.ping")["pong"] is True
        with pytest.raises(Exception) as exc:  # outside the roots: the usual refusal
            list(c.read_stream("/etc/passwd"))
        assert getattr(exc.value, "code", None) == -32002
    assert sorted(os.listdir(workdir)) == ["dst.bin", "empty.bin", "src.bin"]


def test_a_client_that_stops_reading_keeps_daemon_memory_bounded(
        shared_daemon: Any, workdir: Path) -> None:
    big = workdir / "big.bin"
    with open(big, "wb") as f:  # 256 MiB, written without holding it in memory
        block = os.urandom(1024 * 1024)
        for _ in range(256):
            f.write(block)
    daemon = psutil.Process(shared_daemon.proc.pid)
    before = daemon.memory_info().rss
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.connect(shared_daemon.socket)
    try:
        sock.sendall(encode_request(1, "fs.read", {"path": str(big), "stream": True,
                                                   "window_bytes": 4 * 1024 * 1024}))
        # read the first chunk (the stream is running), then stop reading and acking
        dec = FrameDecoder(64 * 1024 * 1024)
        first: list[Any] = []
        while not first:
            first += [unpackb(p) for p in dec.feed(sock.recv(1 << 20))]
        assert first[0]["method"] == "fs.chunk"
        with shared_daemon.client() as c:  # other clients are served meanwhile
            for _ in range(20):
                assert c.call("rpc.ping")["pong"] is True
                assert c.call("fs.stat", path=str(big))["size"] == 256 * 1024 * 1024
        grown = daemon.memory_info().rss - before
        assert grown < 64 * 1024 * 1024, grown  # the window, not the file
    finally:
        sock.close()
    with shared_daemon.client() as c:  # the stream ended with the connection
        assert wait_sync(lambda: c.call("rpc.ping")["pong"])


def test_an_ack_beyond_what_was_sent_opens_no_credit() -> None:
    """A client acknowledging bytes it was never sent (``fs.ack {offset: 2**40}``) must not
    turn the window off: the credit counts only bytes the daemon handed out."""
    from xsys.fs.streams import ReadStream

    s = ReadStream(window=1 << 20)
    s.ack(1 << 40)
    assert s.acked == 0
    with s.cond:
        s.sent += 1 << 20  # one window handed out: the next chunk must wait for an ack
    s.ack(1 << 40)
    assert s.acked == 1 << 20 and s.sent - s.acked == 0


def test_a_forged_ack_keeps_daemon_memory_bounded(shared_daemon: Any, workdir: Path) -> None:
    big = workdir / "big.bin"
    with open(big, "wb") as f:
        block = os.urandom(1024 * 1024)
        for _ in range(256):
            f.write(block)
    daemon = psutil.Process(shared_daemon.proc.pid)
    before = daemon.memory_info().rss
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.connect(shared_daemon.socket)
    try:
        sock.sendall(encode_request(1, "fs.read", {"path": str(big), "stream": True,
                                                   "window_bytes": 4 * 1024 * 1024}))
        dec = FrameDecoder(64 * 1024 * 1024)
        first: list[Any] = []
        while not first:
            first += [unpackb(p) for p in dec.feed(sock.recv(1 << 20))]
        assert first[0]["method"] == "fs.chunk"
        # then claim to have consumed a terabyte, and read nothing more
        sock.sendall(encode_request(2, "fs.ack", {"request": 1, "offset": 1 << 40}))
        with shared_daemon.client() as c:
            for _ in range(20):
                assert c.call("rpc.ping")["pong"] is True
                assert c.call("fs.stat", path=str(big))["size"] == 256 * 1024 * 1024
        grown = daemon.memory_info().rss - before
        assert grown < 64 * 1024 * 1024, grown  # the window, not the file
    finally:
        sock.close()
    with shared_daemon.client() as c:
        assert wait_sync(lambda: c.call("rpc.ping")["pong"])


def test_upload_chunks_beyond_the_announced_size_are_refused(tmp_path: Path) -> None:
    """After the eof chunk announced the size, a chunk past it is -32602 (it used to be
    written, so the file was not the bytes the eof chunk closed); before it, an eof that
    would cut bytes already received is refused too; the cap names itself."""
    from xsys.fs.streams import Upload
    from xsys.protocol import InvalidParams, TooLarge

    class Handle:
        def __init__(self) -> None:
            self.fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT, 0o600)

    up = Upload(Handle(), 1 << 20)  # type: ignore[arg-type]
    up.write(0, b"ab", eof=True)
    with pytest.raises(InvalidParams):
        up.write(1, b"zz", eof=False)
    assert (tmp_path / "f").read_bytes() == b"ab"
    up2 = Upload(Handle(), 1 << 20)  # type: ignore[arg-type]
    up2.write(4, b"tail", eof=False)
    with pytest.raises(InvalidParams):
        up2.write(0, b"ab", eof=True)
    with pytest.raises(TooLarge) as exc:
        up2.write(1 << 20, b"x", eof=False)
    assert exc.value.data["limit"] == 1 << 20 and "fs.max_write_bytes" not in str(exc.value)
class _Raw:
    """A raw connection: pipelined requests, every frame decoded and kept in order."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.dec = FrameDecoder(64 * 1024 * 1024)
        self.next_id = 100

    def send(self, method: str, params: dict[str, Any], req_id: int | None = None) -> int:
        if req_id is None:
            self.next_id += 1
            req_id = self.next_id
        self.sock.sendall(encode_request(req_id, method, params))
        return req_id

    def messages(self) -> list[Any]:
        data = self.sock.recv(1 << 20)
        assert data, "the daemon closed the connection"
        return [unpackb(p) for p in self.dec.feed(data)]


def test_answers_and_a_second_stream_interleave_with_chunks_intact(
        shared_daemon: Any, workdir: Path) -> None:
    # Two streams on one connection (two workers taking turns with the socket) while
    # pings and acks are answered in between: every frame must stay whole and in order.
    a, b = os.urandom(5 * 1024 * 1024 + 11), os.urandom(3 * 1024 * 1024 + 5)
    (workdir / "a.bin").write_bytes(a)
    (workdir / "b.bin").write_bytes(b)
    raw = _Raw(shared_daemon.socket)
    window = 1024 * 1024
    try:
        for rid, name in ((1, "a.bin"), (2, "b.bin")):
            raw.send("fs.read", {"path": str(workdir / name), "stream": True,
                                 "window_bytes": window}, rid)
        got: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}
        results: dict[int, Any] = {}
        pings: set[int] = set()
        pongs = 0
        while len(results) < 2 or pings:
            for msg in raw.messages():
                if msg.get("method") == "fs.chunk":
                    p = msg["params"]
                    assert p["offset"] == len(got[p["request"]])
                    got[p["request"]] += p["data"]
                    raw.send("fs.ack", {"request": p["request"],
                                        "offset": len(got[p["request"]])})
                    pings.add(raw.send("rpc.ping", {}))
                elif msg.get("id") in (1, 2):
                    assert "result" in msg, msg
                    results[msg["id"]] = msg["result"]
                elif msg.get("id") in pings:
                    assert msg["result"]["pong"] is True
                    pings.discard(msg["id"])
                    pongs += 1
                else:  # an ack's answer; the last ones may come after their stream ended
                    assert "result" in msg or msg["error"]["code"] == -32001, msg
        assert bytes(got[1]) == a and bytes(got[2]) == b
        assert results[1]["length"] == len(a) and results[2]["length"] == len(b)
        assert pongs >= 8
    finally:
        raw.sock.close()


def test_a_file_that_shrinks_mid_stream_fails_the_stream_not_the_connection(
        shared_daemon: Any, workdir: Path) -> None:
    src = workdir / "shrinks.bin"
    payload = os.urandom(4 * 1024 * 1024)
    src.write_bytes(payload)
    raw = _Raw(shared_daemon.socket)
    window = 1024 * 1024  # chunks of 512 KiB; the daemon stops after 1 MiB unacknowledged
    try:
        raw.send("fs.read", {"path": str(src), "stream": True, "window_bytes": window}, 1)
        got = bytearray()
        answer = None
        truncated = False
        while answer is None:
            for msg in raw.messages():
                if msg.get("method") == "fs.chunk":
                    got += msg["params"]["data"]
                    if len(got) >= window and not truncated:
                        with open(src, "r+b") as f:  # the daemon waits for credit now
                            f.truncate(window + 1000)
                        truncated = True
                        raw.send("fs.ack", {"request": 1, "offset": len(got)})
                elif msg.get("id") == 1:
                    answer = msg
        assert truncated and got[:window + 1000] == payload[:window + 1000]
        assert answer["error"]["code"] == -32007, answer
        assert answer["error"]["data"]["reason"] == "file_changed"
        raw.send("rpc.ping", {}, 7)  # the connection still works, frames intact
        while True:
            done = [m for m in raw.messages() if m.get("id") == 7]
            if done:
                assert done[0]["result"]["pong"] is True
                break
    finally:
        raw.sock.close()
