"""The daemon end to end over its real Unix socket: discovery, bad input, limits,
pipelining, security and lifecycle."""

from __future__ import annotations

import os
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest

from tests.conftest import DaemonHandle
from tests.rawsock import Raw
from xsys.client import Client
from xsys.protocol import InvalidParams, MethodNotFound, NotFound, Unauthorized

Factory = Callable[..., DaemonHandle]


def test_hello_ping_methods(daemon: DaemonHandle) -> None:
    with daemon.client() as c:
        hello = c.call("rpc.hello")
        assert hello["protocol"] == 1 and hello["server"] == "xsys"
        assert hello["pid"] == daemon.proc.pid  # type: ignore[union-attr]
        assert {"rpc.hello", "rpc.ping", "rpc.methods", "sys.info"} <= set(hello["methods"])
        assert isinstance(hello["capabilities"], list)
        pong = c.call("rpc.ping")
        assert pong["pong"] is True and abs(pong["ts"] - time.time()) < 60
        methods = {m["name"]: m for m in c.call("rpc.methods")["methods"]}
        assert set(methods) == set(hello["methods"])
        procs = {p["name"]: p for p in methods["sys.processes"]["params"]}
        assert procs["sort"]["choices"] == ["cpu", "memory", "pid", "name"]
        assert procs["limit"]["type"] == "int" and procs["limit"]["required"] is False
        assert methods["sys.process"]["params"][0] == {
            "name": "pid", "type": "int", "required": True, "min": 0, "max": 2**31,
            "summary": ""}
        assert all(m["summary"] for m in methods.values())


def test_socket_file_and_directory_modes(daemon: DaemonHandle) -> None:
    st = os.stat(daemon.socket)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(daemon.socket)).st_mode) == 0o700


# ------------------------------------------------------------------------ bad input


def test_zero_length_frame_is_answered_then_closed(daemon: DaemonHandle) -> None:
    raw = Raw(daemon.socket)
    raw.send_bytes(struct.pack(">I", 0))
    msg = raw.recv_msg()
    assert msg["id"] is None and msg["error"]["code"] == -32600
    assert raw.closed_by_peer()
    with daemon.client() as c:
        assert c.call("rpc.ping")["pong"]


def test_oversized_frame_names_the_limit(daemon_factory: Factory) -> None:
    d = daemon_factory({"server": {"max_frame_bytes": 1024}})
    raw = Raw(d.socket)
    raw.send_bytes(struct.pack(">I", 4096) + b"x" * 10)
    msg = raw.recv_msg()
    assert msg["id"] is None and msg["error"]["code"] == -32600
    assert "1024" in msg["error"]["message"]
    assert raw.closed_by_peer()
    with d.client() as c:
        assert c.call("rpc.ping")["pong"]


@pytest.mark.parametrize(
    ("payload", "code", "expect_id"),
    [
        (b"\xc1", -32700, None),                                   # never-used msgpack byte
        (b"\x92\x01", -32700, None),                               # truncated array
        (msgpack.packb([1, "rpc.ping"]), -32600, None),            # not a map
        (msgpack.packb("hello"), -32600, None),
        (msgpack.packb({"id": "7", "method": "rpc.ping"}), -32600, None),
        (msgpack.packb({"id": -1, "method": "rpc.ping"}), -32600, None),
        (msgpack.packb({"id": 1.5, "method": "rpc.ping"}), -32600, None),
        (msgpack.packb({"method": "rpc.ping"}), -32600, None),
        (msgpack.packb({"id": 4, "method": 12}), -32600, 4),
        (msgpack.packb({"id": 5, "method": "rpc.ping", "params": [1]}), -32600, 5),
        (msgpack.packb({"id": 6, "method": "no.such"}), -32601, 6),
        (msgpack.packb({"id": 8, "method": "sys.process", "params": {"pid": "1"}}),
         -32602, 8),
        (msgpack.packb({"id": 9, "method": "sys.process"}), -32602, 9),
        (msgpack.packb({"id": 10, "method": "sys.processes", "params": {"limit": 0}}),
         -32602, 10),
        (msgpack.packb({"id": 11, "method": "sys.processes", "params": {"sort": "x"}}),
         -32602, 11),
        (msgpack.packb({"id": 12, "method": "rpc.ping", "params": {"bogus": 1}}), -32602, 12),
        (msgpack.packb({"id": 13, "method": "sys.cpu", "params": {"progress": "yes"}}),
         -32602, 13),
    ],
)
def test_bad_messages_get_typed_errors_and_the_connection_stays(
        daemon: DaemonHandle, payload: bytes, code: int, expect_id: int | None) -> None:
    raw = Raw(daemon.socket)
    raw.send_payload(payload)
    msg = raw.recv_msg()
    assert msg["error"]["code"] == code, msg
    assert msg["id"] == expect_id
    raw.send_msg({"id": 99, "method": "rpc.ping"})
    assert raw.recv_msg()["result"]["pong"] is True
    raw.close()


def test_invalid_params_name_the_parameter(daemon: DaemonHandle) -> None:
    with daemon.client() as c:
        with pytest.raises(InvalidParams) as info:
            c.call("sys.process", pid="abc")
        assert info.value.data["param"] == "pid"
        assert info.value.data["expected"] == "int"
        with pytest.raises(InvalidParams) as info:
            c.call("sys.processes", limit=10**9)
        assert info.value.data["param"] == "limit"
        with pytest.raises(MethodNotFound):
            c.call("sys.nope")
        assert c.call("rpc.ping")["pong"]


def test_truncated_frame_then_disconnect_leaves_server_healthy(daemon: DaemonHandle) -> None:
    raw = Raw(daemon.socket)
    frame = struct.pack(">I", 100) + b"\x82\xa2id"
    raw.send_bytes(frame)
    raw.close()
    garbage = Raw(daemon.socket)
    garbage.send_bytes(os.urandom(3))
    garbage.close()
    with daemon.client() as c:
        assert c.call("rpc.ping")["pong"]


def test_frame_split_in_single_bytes_and_many_frames_in_one_write(daemon: DaemonHandle) -> None:
    raw = Raw(daemon.socket)
    payload = msgpack.packb({"id": 1, "method": "rpc.ping"})
    frame = struct.pack(">I", len(payload)) + payload
    for b in frame:
        raw.send_bytes(bytes([b]))
    assert raw.recv_msg()["id"] == 1
    many = b"".join(struct.pack(">I", len(p)) + p for p in
                    (msgpack.packb({"id": i, "method": "rpc.ping"}) for i in range(2, 102)))
    raw.send_bytes(many)
    ids = {raw.recv_msg()["id"] for _ in range(100)}
    assert ids == set(range(2, 102))


def test_disconnect_with_requests_in_flight(daemon: DaemonHandle) -> None:
    for _ in range(5):
        raw = Raw(daemon.socket)
        for i in range(20):
            raw.send_msg({"id": i, "method": "sys.processes", "params": {"limit": 1}})
        raw.close()
    with daemon.client() as c:
        assert c.call("sys.processes", limit=1)["processes"]
    assert "Traceback" not in daemon.log()


def test_duplicate_in_flight_id_is_refused(daemon: DaemonHandle) -> None:
    raw = Raw(daemon.socket)
    raw.send_msg({"id": 1, "method": "sys.processes", "params": {"limit": 1}})
    raw.send_msg({"id": 1, "method": "sys.processes", "params": {"limit": 1}})
    msgs = [raw.recv_msg(), raw.recv_msg()]
    assert sorted("error" in m for m in msgs) == [False, True]


def test_200_simultaneous_connections(daemon: DaemonHandle) -> None:
    socks = [Raw(daemon.socket) for _ in range(200)]
    for i, s in enumerate(socks):
        s.send_msg({"id": i, "method": "rpc.ping"})
    for i, s in enumerate(socks):
        msg = s.recv_msg()
        assert msg["id"] == i and msg["result"]["pong"] is True
    for s in socks:
        s.close()
    with daemon.client() as c:
        assert c.call("rpc.ping")["pong"]


def test_connection_limit_answers_overloaded(daemon_factory: Factory) -> None:
    d = daemon_factory({"server": {"max_connections": 3}})
    held = [Raw(d.socket) for _ in range(3)]
    for i, s in enumerate(held):
        s.send_msg({"id": i, "method": "rpc.ping"})
        assert s.recv_msg()["id"] == i
    extra = Raw(d.socket)
    msg = extra.recv_msg()
    assert msg["error"]["code"] == -32005
    for s in held:
        s.close()


# ------------------------------------------------------------------ pipelining


def test_responses_come_back_out_of_order(daemon: DaemonHandle) -> None:
    raw = Raw(daemon.socket)
    raw.send_msg({"id": 1, "method": "sys.processes", "params": {"limit": 1}})
    raw.send_msg({"id": 2, "method": "rpc.ping"})
    first, second = raw.recv_msg(), raw.recv_msg()
    assert (first["id"], second["id"]) == (2, 1)


def test_inflight_cap_applies_backpressure_without_losing_requests(
        daemon_factory: Factory) -> None:
    d = daemon_factory({"server": {"max_inflight": 2}})
    raw = Raw(d.socket, timeout=60)
    n = 40
    for i in range(n):
        raw.send_msg({"id": i, "method": "sys.disks"})
    got = {raw.recv_msg()["id"] for _ in range(n)}
    assert got == set(range(n))


async def test_async_client_pipelines_1000_calls(daemon: DaemonHandle) -> None:
    import asyncio

    async with daemon.async_client() as c:
        results = await asyncio.gather(*(c.call("rpc.ping") for _ in range(1000)))
        assert all(r["pong"] for r in results)
        mem, cpu = await asyncio.gather(c.sys.memory(), c.call("sys.cpu"))
        assert mem["virtual"]["total_bytes"] > 0 and "percent" in cpu
        with pytest.raises(NotFound):
            await c.sys.process(pid=2**31 - 1)


# ------------------------------------------------------------------ security


def test_unauthorized_uid_is_refused_and_closed(daemon_factory: Factory) -> None:
    d = daemon_factory({"server": {"allowed_uids": [4242]}}, start=False)
    d.proc = subprocess.Popen(
        [sys.executable, "-m", "xsys", "serve", "--config", str(d.config_path)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=d.env)
    d._log = open(os.devnull, "ab")  # noqa: SIM115
    deadline = time.monotonic() + 20
    while not os.path.exists(d.socket) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.1)
    raw = Raw(d.socket)
    msg = raw.recv_msg()
    assert msg["id"] is None and msg["error"]["code"] == -32006
    assert raw.closed_by_peer()
    with pytest.raises(Unauthorized), Client(d.socket) as c:
        c.call("rpc.ping")


def test_allowed_gid_admits(daemon_factory: Factory) -> None:
    d = daemon_factory({"server": {"allowed_uids": [4242], "allowed_gids": [os.getgid()]}})
    with d.client() as c:
        assert c.call("rpc.ping")["pong"]


# ------------------------------------------------------------------ lifecycle


def test_second_daemon_on_live_socket_exits_with_one_clear_line(
        daemon: DaemonHandle) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "xsys", "serve", "--config", str(daemon.config_path)],
        capture_output=True, text=True, timeout=30, env=daemon.env, stdin=subprocess.DEVNULL)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "already listening" in errors[0], proc.stderr
    with daemon.client() as c:
        assert c.call("rpc.ping")["pong"]


def test_stale_socket_is_replaced(daemon_factory: Factory, short_tmp: Path) -> None:
    path = short_tmp / "stale" / "xsys.sock"
    path.parent.mkdir(mode=0o700)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()  # bound, never listening: a dead daemon's leftover
    d = daemon_factory({"server": {"socket": str(path)}})
    with d.client() as c:
        assert c.call("rpc.ping")["pong"]


def test_sigterm_finishes_in_flight_and_removes_socket(daemon: DaemonHandle) -> None:
    raw = Raw(daemon.socket)
    raw.send_msg({"id": 1, "method": "sys.processes", "params": {"limit": 1}})
    time.sleep(0.05)
    daemon.signal(signal.SIGTERM)
    msg = raw.recv_msg()
    assert msg is not None and msg["id"] == 1 and "result" in msg
    assert daemon.proc is not None and daemon.proc.wait(15) == 0
    assert not os.path.exists(daemon.socket)


def test_sighup_reloads_config(daemon: DaemonHandle) -> None:
    import json

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with daemon.client() as c:
            with pytest.raises(Exception) as info:
                c.call("sys.kill", pid=child.pid)
            assert "allow_kill" in str(info.value)
        cfg = dict(daemon.config)
        cfg["sys"] = {**cfg.get("sys", {}), "allow_kill": True}
        daemon.config_path.write_text(json.dumps(cfg))
        daemon.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "config reloaded" not in daemon.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        with daemon.client() as c:
            assert c.call("sys.kill", pid=child.pid)["sent"] is True
        assert child.wait(10) == -signal.SIGTERM
    finally:
        child.kill()


def test_bad_config_reload_keeps_serving(daemon: DaemonHandle) -> None:
    daemon.config_path.write_text('{"server": {"max_inflight": "many"}}')
    daemon.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "reload failed" not in daemon.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "server.max_inflight" in daemon.log()
    with daemon.client() as c:
        assert c.call("rpc.ping")["pong"]


def test_threaded_blocking_clients(daemon: DaemonHandle) -> None:
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with daemon.client() as c:
                for _ in range(50):
                    assert c.sys.memory()["virtual"]["total_bytes"] > 0
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_json_log_format(daemon_factory: Factory) -> None:
    import json

    d = daemon_factory({"server": {"log_format": "json", "log_level": "INFO"}})
    d.stop()
    lines = [json.loads(line) for line in d.log().splitlines() if line.startswith("{")]
    assert any(rec["message"].startswith("xsys") and rec["level"] == "INFO" for rec in lines)


def _sys_cases() -> list[tuple[str, dict[str, Any], Callable[[Any], bool]]]:
    return [
        ("sys.info", {}, lambda r: r["hostname"] and r["cpu_count_logical"] >= 1
         and r["memory_total_bytes"] > 0 and len(r["load"]) == 3 and r["booted_at"] > 0),
        ("sys.cpu", {}, lambda r: 0 <= r["percent"] <= 100
         and len(r["per_cpu_percent"]) == r["count_logical"] and r["interval_s"] > 0),
        ("sys.memory", {},
         lambda r: r["virtual"]["total_bytes"] >= r["virtual"]["available_bytes"] > 0),
        ("sys.disks", {}, lambda r: all(d["fstype"] not in ("squashfs", "overlay")
                                        and not d["device"].startswith("/dev/loop")
                                        for d in r["disks"])),
        ("sys.disk_io", {}, lambda r: "read_bytes" in r["total"] or r["total"] == {}),
        ("sys.network", {}, lambda r: any(i["name"] == "lo" and i["addresses"]
                                          for i in r["interfaces"])),
        ("sys.load", {}, lambda r: r["load1"] >= 0 and r["per_cpu"]["load1"] >= 0),
        ("sys.processes", {"sort": "pid", "limit": 3},
         lambda r: [p["pid"] for p in r["processes"]] == sorted(p["pid"] for p in r["processes"])
         and len(r["processes"]) == 3 and r["truncated"]),
        ("sys.processes", {"sort": "memory", "name": "python*"},
         lambda r: all(p["name"].lower().startswith("python") for p in r["processes"])),
        ("sys.process", {"pid": os.getpid()},
         lambda r: r["pid"] == os.getpid() and r["memory_info"]["rss_bytes"] > 0),
        ("sys.sensors", {}, lambda r: isinstance(r["temperatures"], list)
         and isinstance(r["fans"], list)),
        ("sys.users", {}, lambda r: isinstance(r["users"], list)),
        ("sys.ports", {}, lambda r: isinstance(r["ports"], list)),
    ]


@pytest.mark.parametrize(("method", "params", "check"), _sys_cases(),
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(_sys_cases())])
def test_sys_methods(daemon: DaemonHandle, method: str, params: dict[str, Any],
                     check: Callable[[Any], bool]) -> None:
    with daemon.client() as c:
        assert check(c.call(method, params))


def test_sys_ports_sees_a_listener(daemon: DaemonHandle) -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]
    try:
        with daemon.client() as c:
            rows = c.call("sys.ports")["ports"]
        mine = [r for r in rows if r["port"] == port]
        assert mine and mine[0]["proto"] == "tcp" and mine[0]["pid"] == os.getpid()
    finally:
        srv.close()


def test_sys_process_of_a_gone_pid_is_not_found(daemon: DaemonHandle) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    with daemon.client() as c, pytest.raises(NotFound) as info:
        c.call("sys.process", pid=child.pid)
    assert info.value.data == {"pid": child.pid}


def test_sys_kill_is_off_by_default(daemon: DaemonHandle) -> None:
    from xsys.protocol import PermissionDenied

    with daemon.client() as c, pytest.raises(PermissionDenied):
        c.call("sys.kill", pid=os.getpid(), signal="CONT")


def test_garbage_is_logged_once_per_connection(daemon: DaemonHandle) -> None:
    raw = Raw(daemon.socket)
    for _ in range(5):
        raw.send_payload(b"\xc1")
        assert raw.recv_msg()["error"]["code"] == -32700
    raw.send_msg({"id": 1, "method": "rpc.ping"})
    assert raw.recv_msg()["result"]["pong"]
    warnings = [line for line in daemon.log().splitlines()
                if "WARNING" in line and "malformed message" in line]
    assert len(warnings) == 1, warnings
