"""No single client can stall or starve the daemon (issue 8), against real daemons:
request decoding bounds, slow readers (memory read from /proc/<pid>/status), idle and
slowloris connections, per-uid connection limits, shutdown with a stuck worker, a reload
that revokes a uid, and overflow counts of events. docs/security.md names the
guarantee each test holds."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pwd
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from tests.conftest import REPO, DaemonHandle
from tests.rawsock import Raw

Factory = Callable[..., DaemonHandle]
MiB = 1024 * 1024


# ------------------------------------------------------------------------ helpers


def memory_bytes(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of ``pid`` in bytes, from /proc/<pid>/status."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


def wait_for(predicate: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Poll ``predicate`` until it holds; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def wait_for_log(d: DaemonHandle, text: str, timeout_s: float = 30.0) -> None:
    wait_for(lambda: text in d.log(), f"{text!r} in the daemon log", timeout_s)


def frame(msg: Any) -> bytes:
    payload = msgpack.packb(msg, use_bin_type=True)
    return struct.pack(">I", len(payload)) + payload


def ping(raw: Raw, req_id: int = 99) -> None:
    raw.send_msg({"id": req_id, "method": "rpc.ping"})
    msg = raw.recv_msg()
    assert msg is not None and msg["id"] == req_id and msg["result"]["pong"] is True, msg


def pid_of(d: DaemonHandle) -> int:
    assert d.proc is not None
    return d.proc.pid


# ------------------------------------------------------------------ second user


#: Runs as the second user (system python, stdlib only): one connection to argv[1],
#: driven by lines on stdin: "send <hex frame>", "recv" (prints one frame's payload in
#: hex), "eof" (prints every further frame, then "EOF" once the daemon closes).
USER_CLIENT = r"""
import socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(30)
try:
    s.connect(sys.argv[1])
except OSError as exc:
    print("ERR", exc, flush=True)
    sys.exit(0)
print("CONNECTED", flush=True)
buf = b""
def frame():
    global buf
    while True:
        if len(buf) >= 4:
            n = struct.unpack(">I", buf[:4])[0]
            if len(buf) >= 4 + n:
                out, buf = buf[4:4 + n], buf[4 + n:]
                return out
        try:
            data = s.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            return None
        buf += data
for line in sys.stdin:
    cmd, _, arg = line.strip().partition(" ")
    if cmd == "send":
        s.sendall(bytes.fromhex(arg))
    elif cmd == "recv":
        f = frame()
        print("EOF" if f is None else f.hex(), flush=True)
    elif cmd == "eof":
        while True:
            f = frame()
            if f is None:
                break
            print(f.hex(), flush=True)
        print("EOF", flush=True)
        break
"""


class UserClient:
    """A connection to the daemon from a process running as another uid."""

    def __init__(self, socket_path: str, uid: int, gid: int) -> None:
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", "-c", USER_CLIENT, socket_path], user=uid, group=gid,
            extra_groups=[], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            cwd="/")
        self.first = self._line()

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "the second user's client died"
        return line.strip()

    def _cmd(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def call(self, msg: dict[str, Any]) -> Any:
        """Send ``msg`` and return the next message received (None on EOF)."""
        self._cmd("send " + frame(msg).hex())
        self._cmd("recv")
        got = self._line()
        return None if got == "EOF" else msgpack.unpackb(bytes.fromhex(got), raw=False)

    def recv(self) -> Any:
        """The next message received, or None on EOF."""
        self._cmd("recv")
        got = self._line()
        return None if got == "EOF" else msgpack.unpackb(bytes.fromhex(got), raw=False)

    def until_eof(self) -> list[Any]:
        """Every message until the daemon closes the connection."""
        self._cmd("eof")
        msgs = []
        while (got := self._line()) != "EOF":
            msgs.append(msgpack.unpackb(bytes.fromhex(got), raw=False))
        return msgs

    def close(self) -> None:
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def second_user(short_tmp: Path) -> Iterator[tuple[int, int]]:
    """A real second local user (uid, gid), made with ``useradd`` and removed afterwards;
    the short temp dir is made traversable for it."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a second user with useradd")
    if shutil.which("useradd") is None or not os.path.exists("/usr/bin/python3"):
        pytest.skip("needs useradd and /usr/bin/python3 for the second user's client")
    name = f"xsl{os.getpid() % 100000}{threading.get_ident() % 1000}"
    for _attempt in range(20):  # another test may hold the lock on /etc/passwd
        made = subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin",
                               "--user-group", name], capture_output=True, text=True)
        if made.returncode == 0 or "lock" not in made.stderr:
            break
        time.sleep(0.1)
    if made.returncode != 0:
        pytest.skip(f"useradd failed: {made.stderr.strip()}")
    try:
        entry = pwd.getpwnam(name)
        os.chmod(short_tmp, 0o711)
        yield entry.pw_uid, entry.pw_gid
    finally:
        subprocess.run(["userdel", name], capture_output=True)


def group_config(uid: int, gid: int, **server: Any) -> dict[str, Any]:
    """Server config letting the second user reach the socket (group ``gid``) and in."""
    return {"server": {"group": str(gid), "allowed_uids": [0, os.getuid(), uid], **server}}


# ------------------------------------------------------------------ 1. decoding


def test_16_mib_of_empty_maps_gets_too_large_and_the_connection_stays(
        daemon: DaemonHandle) -> None:
    """A frame of 16M empty maps (the attack decoded to 1.2 GB in seconds) is answered
    with -32004 naming the limit, for the request's own id, and costs little memory."""
    base = memory_bytes(pid_of(daemon))
    n = 16 * MiB - 64
    payload = (b"\x83" + msgpack.packb("id") + msgpack.packb(7) + msgpack.packb("method")
               + msgpack.packb("rpc.ping") + msgpack.packb("params") + b"\x81"
               + msgpack.packb("x") + b"\xdd" + struct.pack(">I", n) + b"\x80" * n)
    assert len(payload) <= 16 * MiB
    raw = Raw(daemon.socket, timeout=60)
    raw.send_payload(payload)
    msg = raw.recv_msg()
    assert msg["id"] == 7 and msg["error"]["code"] == -32004, msg
    assert "max_request_objects" in msg["error"]["message"]
    ping(raw)
    # a top-level array of empty maps: no id to answer with
    raw.send_payload(b"\xdd" + struct.pack(">I", n) + b"\x80" * n)
    msg = raw.recv_msg()
    assert msg["id"] is None and msg["error"]["code"] == -32004
    ping(raw)
    grown = memory_bytes(pid_of(daemon))["VmHWM"] - base["VmRSS"]
    assert grown < 200 * MiB, f"peak RSS grew by {grown / MiB:.0f} MiB"


def test_object_limit_counts_objects_not_bytes(daemon_factory: Factory) -> None:
    """``server.max_request_objects``: a long frame with few objects passes, one with more
    objects than the limit gets -32004 with its id; small frames are never counted."""
    d = daemon_factory({"server": {"max_request_objects": 100}})
    raw = Raw(d.socket)
    raw.send_msg({"id": 1, "method": "rpc.ping", "pad": "x" * 5000})  # long, 5 objects
    assert raw.recv_msg()["result"]["pong"] is True
    raw.send_msg({"id": 2, "method": "rpc.ping", "pad": list(range(150))})
    msg = raw.recv_msg()
    assert msg["id"] == 2 and msg["error"]["code"] == -32004
    assert msg["error"]["data"] == {"limit": 100}
    raw.send_msg({"id": 3, "method": "rpc.ping", "pad": [{}] * 40})  # 40 + 1 + 5 objects
    assert raw.recv_msg()["id"] == 3
    ping(raw)


# ------------------------------------------------------------------ 2. slow readers


def _files(tmp_path: Path, count: int, size: int) -> list[str]:
    data = tmp_path / "big"
    data.mkdir()
    paths = []
    block = os.urandom(size)
    for i in range(count):
        p = data / f"f{i}"
        p.write_bytes(block)
        paths.append(str(p))
    return paths


def _pipeline_reads(path: str, files: list[str], count: int) -> Raw:
    """A client that sends ``count`` fs.read requests at once and reads nothing (yet)."""
    raw = Raw(path, timeout=60)
    raw.send_bytes(b"".join(frame({"id": i, "method": "fs.read",
                                   "params": {"path": files[i % len(files)]}})
                            for i in range(count)))
    return raw


def test_slow_readers_cannot_exhaust_memory_or_starve_others(
        daemon_factory: Factory, tmp_path: Path) -> None:
    """3 clients pipeline 64 reads of 4 MiB each and never read (this took the daemon to
    5.4 GB before): per-connection output and the global budget bound the memory, the
    worst readers are closed, other clients keep being served, and RSS returns near the
    baseline once the readers are gone."""
    files = _files(tmp_path, 8, 4 * MiB)
    d = daemon_factory({"server": {"workers": 4, "max_output_bytes": 8 * MiB,
                                   "max_inflight_result_bytes": 32 * MiB}})
    pid = pid_of(d)
    with d.client() as c:  # warm up: one large read, then the baseline
        assert len(c.call("fs.read", path=files[0])["data"]) == 4 * MiB
    base = memory_bytes(pid)["VmRSS"]
    readers = [_pipeline_reads(d.socket, files, 64) for _ in range(3)]
    served = 0
    with d.client(timeout=60) as c:
        wait_for_log(d, "bytes of results unsent")  # the global budget closed one
        for _ in range(20):
            assert c.call("fs.stat", path=files[1])["size"] == 4 * MiB
            served += 1
    assert served == 20
    peak = memory_bytes(pid)["VmHWM"] - base
    assert peak < 400 * MiB, f"peak RSS {peak / MiB:.0f} MiB over the baseline"
    closed = 0
    for r in readers:  # a closed reader sees EOF (or a reset) after some answers
        closed += r.closed_by_peer()
        r.close()
    assert closed >= 1
    wait_for(lambda: memory_bytes(pid)["VmRSS"] - base < 48 * MiB,
             "RSS to return near the baseline")
    with d.client() as c:
        assert c.call("rpc.ping")["pong"]


def test_a_slow_reader_is_throttled_not_dropped(daemon_factory: Factory,
                                                tmp_path: Path) -> None:
    """One client pipelining 64 reads of 4 MiB and not reading yet: its requests stop
    starting at ``server.max_output_bytes`` unsent (the memory stays bounded), and once it
    reads it receives every answer."""
    files = _files(tmp_path, 4, 4 * MiB)
    d = daemon_factory({"server": {"workers": 2, "max_output_bytes": 8 * MiB}})
    pid = pid_of(d)
    base = memory_bytes(pid)["VmRSS"]
    raw = _pipeline_reads(d.socket, files, 64)
    wait_for_log(d, "holding requests until the client reads")
    held = memory_bytes(pid)["VmHWM"] - base
    assert held < 160 * MiB, f"peak RSS {held / MiB:.0f} MiB over the baseline"
    ids = set()
    for _ in range(64):
        msg = raw.recv_msg()
        assert msg is not None and len(msg["result"]["data"]) == 4 * MiB
        ids.add(msg["id"])
    assert ids == set(range(64))
    raw.close()


# ------------------------------------------------------------------ 3. idle, slowloris


def test_idle_connection_is_closed_but_not_one_with_a_subscription(
        daemon_factory: Factory, tmp_path: Path) -> None:
    d = daemon_factory({"server": {"idle_timeout_s": 0.5}})
    subscribed = Raw(d.socket)
    subscribed.send_msg({"id": 1, "method": "watch.add", "params": {"paths": [str(tmp_path)]}})
    assert "subscription" in subscribed.recv_msg()["result"]
    idle = Raw(d.socket)
    ping(idle)
    assert idle.closed_by_peer()  # EOF within the socket timeout
    ping(subscribed)  # idle just as long, but it has a subscription


def test_partial_frame_times_out(daemon_factory: Factory) -> None:
    """A frame that never completes (slowloris) is answered with -32600 naming
    ``server.frame_timeout_s`` and closed."""
    d = daemon_factory({"server": {"frame_timeout_s": 0.5}})
    raw = Raw(d.socket)
    ping(raw, 1)
    raw.send_bytes(struct.pack(">I", 100) + b"\x82\xa2id")
    msg = raw.recv_msg()
    assert msg["id"] is None and msg["error"]["code"] == -32600
    assert "frame_timeout_s" in msg["error"]["message"]
    assert raw.closed_by_peer()
    with d.client() as c:
        assert c.call("rpc.ping")["pong"]


def test_one_uids_connections_do_not_lock_out_another(
        daemon_factory: Factory, second_user: tuple[int, int]) -> None:
    """``server.max_connections_per_uid``: root's idle sockets at its limit get -32005
    for the next one, while another uid still gets in."""
    uid, gid = second_user
    d = daemon_factory(group_config(uid, gid, max_connections_per_uid=3))
    held = [Raw(d.socket) for _ in range(3)]
    for i, s in enumerate(held):
        ping(s, i)
    extra = Raw(d.socket)
    msg = extra.recv_msg()
    assert msg["error"]["code"] == -32005 and "max_connections_per_uid" in msg["error"]["message"]
    other = UserClient(d.socket, uid, gid)
    try:
        assert other.first == "CONNECTED"
        reply = other.call({"id": 5, "method": "rpc.ping"})
        assert reply["id"] == 5 and reply["result"]["pong"] is True
    finally:
        other.close()
        for s in held:
            s.close()


# ------------------------------------------------------------------ 4. shutdown


#: Starts a real daemon with one extra test method whose worker blocks in a FIFO read.
STUCK_LAUNCHER = r"""
import os, sys
import xsys.daemon as daemon
original = daemon.register_all

def register_all(router, app):
    original(router, app)

    @router.method("test.block", kind="blocking")
    def block(ctx, fifo: str) -> dict:
        '''Block a worker: open a FIFO and read it (a blocking call that never returns).'''
        fd = os.open(fifo, os.O_RDONLY)
        try:
            return {"data": os.read(fd, 1).hex()}
        finally:
            os.close(fd)

daemon.register_all = register_all
sys.exit(daemon.serve(config_file=sys.argv[1]))
"""


def test_sigterm_exits_in_time_with_a_worker_stuck(daemon_factory: Factory,
                                                    tmp_path: Path) -> None:
    timeout_s = 2.0
    d = daemon_factory({"server": {"shutdown_timeout_s": timeout_s}}, start=False)
    d._log = open(d.log_path, "ab")  # noqa: SIM115 - closed by d.stop()
    d.proc = subprocess.Popen([sys.executable, "-c", STUCK_LAUNCHER, str(d.config_path)],
                              stdin=subprocess.DEVNULL, stdout=d._log, stderr=d._log,
                              env=d.env, cwd=str(REPO))
    wait_for(lambda: os.path.exists(d.socket), "the daemon's socket")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    raw = Raw(d.socket)
    ping(raw, 1)
    raw.send_msg({"id": 2, "method": "test.block", "params": {"fifo": str(fifo)}})
    writer = -1

    def worker_blocked() -> bool:  # a writer can open only once the worker is reading
        nonlocal writer
        try:
            writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
            return False
        return True

    try:
        wait_for(worker_blocked, "the worker to block on the FIFO")
        d.signal(signal.SIGTERM)
        started = time.monotonic()
        try:
            code = d.proc.wait(timeout_s + 5)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the daemon did not exit within {timeout_s + 5}s of SIGTERM")
        assert time.monotonic() - started < timeout_s + 5
        assert code == 0
        log = d.log()
        assert "stuck at shutdown" in log and "test.block" in log, log[-2000:]
        assert not os.path.exists(d.socket)
    finally:
        if writer >= 0:
            os.close(writer)
        raw.close()


# ------------------------------------------------------------------ 5. reload


def test_reload_that_removes_a_uid_closes_its_connections(
        daemon_factory: Factory, second_user: tuple[int, int]) -> None:
    uid, gid = second_user
    d = daemon_factory(group_config(uid, gid))
    other = UserClient(d.socket, uid, gid)
    mine = Raw(d.socket)
    try:
        assert other.first == "CONNECTED"
        assert other.call({"id": 1, "method": "rpc.ping"})["result"]["pong"] is True
        ping(mine)
        cfg = json.loads(d.config_path.read_text())
        cfg["server"]["allowed_uids"] = [0, os.getuid()]
        d.config_path.write_text(json.dumps(cfg))
        d.signal(signal.SIGHUP)
        msgs = other.until_eof()  # the daemon closes it: this returns
        assert [m["error"]["code"] for m in msgs] == [-32006]
        assert "no longer allowed" in d.log()
        ping(mine)  # root's connection stays
        again = UserClient(d.socket, uid, gid)
        try:
            refused = again.recv() if again.first == "CONNECTED" else None
            assert refused is None or refused["error"]["code"] == -32006
        finally:
            again.close()
    finally:
        other.close()
        mine.close()


# ------------------------------------------------------------------ 6. overflow counts


def test_overflow_counts_events_lost_not_notifications(daemon_factory: Factory,
                                                       tmp_path: Path) -> None:
    """A subscriber that does not read while 2000 files appear: every created event is
    either delivered or counted in a ``watch.overflow`` (one notification carries up to
    ``watch.max_batch_events`` events, so counting notifications undercounts)."""
    d = daemon_factory({"server": {"outbound_queue": 2},
                        "watch": {"max_batch_events": 20}})
    watched = tmp_path / "w"
    watched.mkdir()
    raw = Raw(d.socket, timeout=30)
    raw.send_msg({"id": 1, "method": "watch.add",
                  "params": {"paths": [str(watched)], "events": ["created"]}})
    sub_id = raw.recv_msg()["result"]["subscription"]
    n = 2000
    stem = "x" * 200  # long names: more bytes per event, so the socket fills sooner
    for i in range(n):
        (watched / f"{stem}{i:05d}").touch()

    def handed_over() -> bool:  # the service has passed all n events to the connection
        with d.client() as c:
            rows = c.call("watch.list")["subscriptions"]
        return any(r["subscription"] == sub_id and r["delivered"] == n for r in rows)

    wait_for(handed_over, "the watch service to hand over every event")
    delivered, dropped = set(), 0
    while len(delivered) + dropped < n:
        msg = raw.recv_msg()
        assert msg is not None
        if msg["method"] == "watch.event":
            delivered.update(e["path"] for e in msg["params"]["events"])
        elif msg["method"] == "watch.overflow":
            dropped += msg["params"]["dropped"]
    assert dropped > 0
    assert len(delivered) + dropped == n
    raw.close()


# ------------------------------------------------------------------ decoder units


def test_unpack_request_bounds_objects_and_recovers_the_id() -> None:
    from xsys.protocol import ParseError, TooManyObjects, unpack_request

    small = msgpack.packb({"id": 1, "method": "rpc.ping"})
    assert unpack_request(small, 100) == {"id": 1, "method": "rpc.ping"}
    long_few = msgpack.packb({"id": 2, "method": "m", "params": {"data": b"x" * 10_000}})
    assert unpack_request(long_few, 100)["params"]["data"] == b"x" * 10_000
    nested = msgpack.packb({"id": 3, "method": "m", "params": {"a": [[1, 2]] * 60}})
    with pytest.raises(TooManyObjects) as info:
        unpack_request(nested, 100)
    assert info.value.request_id == 3 and info.value.code == -32004
    declared = b"\x81\xa1x\xdd" + struct.pack(">I", 1 << 30) + b"\xc0" * 200
    with pytest.raises(TooManyObjects) as info:  # a declared length over the limit
        unpack_request(declared, 100)
    assert info.value.request_id is None
    with pytest.raises(ParseError):
        unpack_request(b"\xc1" * 200, 100)
    with pytest.raises(ParseError):  # trailing data
        unpack_request(msgpack.packb({"id": 4, "method": "m", "pad": "y" * 200}) + b"\x00",
                       100)
