"""The proc namespace: supervised worker processes, with real children (small Python
scripts written by the tests) under a real ``ProcService`` in this process (its events
observed through ``subscribe``), or under a real daemon where the test is about the
daemon's own life (SIGTERM, SIGHUP) or the wire (errors, the CLI)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
from click.testing import CliRunner

from tests.conftest import DaemonHandle
from tests.throwaway_user import throwaway_user
from xsys.cli import main
from xsys.config import Config, from_dict
from xsys.daemon import compose
from xsys.handlers import proc as proc_handlers
from xsys.proc.config import GroupConfig
from xsys.proc.service import Owner, ProcService
from xsys.protocol import AlreadyExists, NotFound, PermissionDenied
from xsys.server.app import App
from xsys.server.context import Context, Peer

Factory = Callable[..., DaemonHandle]
PY = sys.executable

# A TCP worker: listens on XSYS_WORKER_PORT, answers each connection with its id.
TCP_WORKER = """
import os, signal, socket, sys
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(os.environ["XSYS_WORKER_PORT"])))
srv.listen(64)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
while True:
    conn, _ = srv.accept()
    conn.sendall(os.environ["XSYS_WORKER_ID"].encode() + b"\\n")
    conn.close()
"""


def script(tmp_path: Path, name: str, text: str) -> str:
    """Write a worker script; returns its path."""
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    return str(path)


@dataclass
class Supervisor:
    """A ``ProcService`` on a real ``App`` (started: monitor, checks, proc) and every
    event it emitted."""

    app: App
    proc: ProcService
    events: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self.changed.set()

    async def wait_for(self, pred: Callable[[list[dict[str, Any]]], bool],
                       timeout_s: float = 30.0) -> list[dict[str, Any]]:
        """Wait until ``pred(events)`` holds (checked on each event, and every 20 ms for
        what events do not announce: log lines); returns the events."""
        async def until() -> None:
            while not pred(self.events):
                self.changed.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), 0.02)
        await asyncio.wait_for(until(), timeout_s)
        return self.events

    def of(self, event: str, name: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == event
                and (name is None or e["name"] == name)]

    async def start(self, owner: Owner | None = None, **group: Any) -> dict[str, Any]:
        cfg = from_dict(GroupConfig, group)
        return dict(await self.proc.start_group(cfg, owner or Owner.daemon()))


@pytest.fixture
async def sup() -> AsyncIterator[Supervisor]:
    cfg = from_dict(Config, {"proc": {"sample_interval_s": 0.1},
                             "monitor": {"enabled": False, "repeat_interval": -1,
                                         "alerts": {"console": {"enabled": False}}}})
    app, _router = compose(cfg)
    await app.start()
    s = Supervisor(app, app.services.proc)
    s.proc.subscribe(s.on_event)
    try:
        yield s
    finally:
        await app.stop(10.0)


def gone(pid: int) -> bool:
    """True when ``pid`` no longer exists, not even as a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return True
    assert state != "Z", f"pid {pid} is a zombie"
    return False


def free_ports(n: int) -> int:
    """A base port such that base..base+n-1 are free now."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n > 65535:
            continue
        socks = []
        try:
            for p in range(base, base + n):
                t = socket.socket()
                socks.append(t)
                t.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for t in socks:
                t.close()
    raise RuntimeError("no free port range")


# ----------------------------------------------------------------------------- restarts


async def test_a_crashed_worker_is_respawned_after_its_backoff_and_reaped(
        sup: Supervisor, tmp_path: Path) -> None:
    marker = tmp_path / "crashed-once"
    worker = script(tmp_path, "crash_once", f"""
import os, sys, time
if not os.path.exists({str(marker)!r}):
    open({str(marker)!r}, "w").close()
    sys.exit(7)
print("second life", os.environ["XSYS_WORKER_ID"], os.environ["XSYS_WORKER_COUNT"], flush=True)
time.sleep(60)
""")
    await sup.start(name="web", command=[PY, worker], restart="always",
                    backoff={"initial_s": 0.3, "max_s": 1.0})
    await sup.wait_for(lambda ev: bool(sup.of("restarted")))
    exited, restarted = sup.of("exited")[0], sup.of("restarted")[0]
    assert exited["exit_code"] == 7 and exited["signal"] is None
    assert restarted["at"] - exited["at"] >= 0.3, "the backoff was waited out"
    assert restarted["reason"] == "crash" and restarted["restarts"] == 1
    assert gone(exited["pid"]), "the crashed child was reaped"
    # "restarted" is sent as the new process is spawned; "running" follows once it runs
    await sup.wait_for(lambda ev: sup.proc.status("web")["instances"][0]["state"] != "starting")
    status = sup.proc.status("web")
    row = status["instances"][0]
    assert (row["state"], row["restarts"], row["last_exit_code"], row["pid"]) == \
        ("running", 1, 7, restarted["pid"])
    await sup.wait_for(lambda ev: any("second life" in line["line"] for line in
                                      sup.proc.logs("web", None, 10, None, None, 0)["lines"]))
    assert sup.proc.logs("web", None, 10, None, "stdout", 0)["lines"][-1]["line"] == \
        "second life 0 1"


async def test_a_clean_exit_is_not_restarted_on_failure(sup: Supervisor) -> None:
    await sup.start(name="job", command=[PY, "-c", "pass"], restart="on-failure")
    await sup.wait_for(lambda ev: bool(sup.of("exited")))
    await asyncio.sleep(0)  # let the supervisor decide
    row = sup.proc.status("job")["instances"][0]
    assert (row["state"], row["restarts"], row["last_exit_code"]) == ("exited", 0, 0)


async def test_a_crash_loop_stops_at_max_restarts_and_fires_a_critical_alert(
        sup: Supervisor) -> None:
    await sup.start(name="flappy", command=[PY, "-c", "raise SystemExit(3)"],
                    restart="always", max_restarts=3, restart_window_s=3600,
                    backoff={"initial_s": 0.01, "max_s": 0.05})
    events = await sup.wait_for(lambda ev: bool(sup.of("failed")))
    assert len(sup.of("started")) == 4, "the first run and max_restarts restarts"
    status = sup.proc.status("flappy")
    assert status["state"] == "failed"
    assert "restarted 3 times" in (status["error"] or "")
    assert status["instances"][0]["restarts"] == 3
    assert [e["event"] for e in events][-2:] == ["exited", "failed"]
    history = sup.app.services.monitor.history_page(check="proc")["alerts"]
    assert [(a["component"], a["severity"], a["status"]) for a in history] == \
        [("proc:flappy", "critical", "firing")]
    await sup.proc.stop_group("flappy", None)  # the alert resolves with the group
    history = sup.app.services.monitor.history_page(check="proc")["alerts"]
    assert history[0]["status"] == "resolved"


async def test_an_exec_failure_fails_the_group_with_the_os_error(
        sup: Supervisor, tmp_path: Path) -> None:
    with pytest.raises(NotFound) as info:
        await sup.start(name="ghost", command=[str(tmp_path / "no-such-program")],
                        restart="always", backoff={"initial_s": 0.01, "max_s": 0.01})
    assert info.value.data["errno"] == "ENOENT"
    assert info.value.data["name"] == "ghost"
    not_exec = tmp_path / "plain.txt"
    not_exec.write_text("not a program")
    with pytest.raises(PermissionDenied) as denied:
        await sup.start(name="plain", command=[str(not_exec)], restart="always")
    assert denied.value.data["errno"] == "EACCES"
    status = sup.proc.status("ghost")
    assert status["state"] == "failed" and "No such file" in (status["error"] or "")
    assert len(sup.of("started", "ghost")) == 0, "never retried"
    assert [e["name"] for e in sup.of("failed")] == ["ghost", "plain"]


# ------------------------------------------------------------------------ rolling restart


async def test_a_rolling_restart_keeps_all_but_one_instance_ready(
        sup: Supervisor, tmp_path: Path) -> None:
    n = 3
    base = free_ports(n)
    worker = script(tmp_path, "tcp_worker", TCP_WORKER)
    await sup.start(name="api", command=[PY, worker], instances=n, restart="always",
                    ready={"port": base, "timeout_s": 20})
    await sup.wait_for(lambda ev: len(sup.of("ready")) == n)
    before = {p["id"]: p["pid"] for p in sup.proc.status("api")["instances"]}

    async def answers(port: int) -> bool:
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
        except (OSError, asyncio.TimeoutError):
            return False
        try:
            return (await r.readline()).strip() == str(port - base).encode()
        except OSError:  # reset by an instance shutting down
            return False
        finally:
            w.close()

    rounds: list[int] = []
    stop = asyncio.Event()

    async def hammer() -> None:
        while not stop.is_set():
            rounds.append(sum(await asyncio.gather(*(answers(base + i)
                                                     for i in range(n)))))
            await asyncio.sleep(0.005)

    ready_now = {i for i in range(n)}
    lowest = [n]

    def track(event: dict[str, Any]) -> None:
        if event["event"] == "ready":
            ready_now.add(event["instance"])
        elif event["event"] == "exited":
            ready_now.discard(event["instance"])
        lowest[0] = min(lowest[0], len(ready_now))

    sup.proc.subscribe(track)
    task = asyncio.ensure_future(hammer())
    try:
        result = await sup.proc.restart_group("api", None)
    finally:
        stop.set()
        await task
    after = {p["id"]: p["pid"] for p in result["instances"]}
    assert set(after) == set(before) and not set(after.values()) & set(before.values())
    assert result["ready"] == n
    assert len(sup.of("restarted")) == n
    assert lowest[0] == n - 1, "one instance at a time"
    assert len(rounds) > 3 and min(rounds) >= n - 1, rounds
    assert [e["instance"] for e in sup.of("exited")] == [0, 1, 2]


async def test_scale_up_and_down(sup: Supervisor) -> None:
    await sup.start(name="pool", command=[PY, "-c", "import time; time.sleep(60)"],
                    instances=1)
    up = await sup.proc.scale("pool", 3, None)
    assert [p["id"] for p in up["instances"]] == [0, 1, 2] and up["running"] == 3
    old = {p["id"]: p["pid"] for p in up["instances"]}
    down = await sup.proc.scale("pool", 1, None)
    assert [p["id"] for p in down["instances"]] == [0] and down["desired"] == 1
    assert down["instances"][0]["pid"] == old[0], "the kept instance is untouched"
    assert gone(old[1]) and gone(old[2])


# -------------------------------------------------------------------------- limits, stop


async def test_the_memory_limit_restarts_an_instance_when_enforced(
        sup: Supervisor, tmp_path: Path) -> None:
    hog = script(tmp_path, "hog", """
import time
block = bytearray(120 * 1024 * 1024)
for i in range(0, len(block), 4096):
    block[i] = 1
print("allocated", flush=True)
time.sleep(60)
""")
    await sup.start(name="hog", command=[PY, hog], max_memory_bytes=60 * 1024 * 1024,
                    enforce=True, max_restarts=100)
    await sup.wait_for(lambda ev: bool(sup.of("restarted")))
    limit = sup.of("limit_exceeded")[0]
    assert (limit["limit"], limit["action"], limit["max"]) == \
        ("memory", "restart", 60 * 1024 * 1024)
    assert limit["value"] > 60 * 1024 * 1024
    assert sup.of("restarted")[0]["reason"] == "memory_limit"
    assert sup.proc.status("hog")["instances"][0]["restarts"] >= 1


async def test_the_memory_limit_only_warns_without_enforce(
        sup: Supervisor, tmp_path: Path) -> None:
    hog = script(tmp_path, "hog", """
import time
block = b"x" * (50 * 1024 * 1024)
time.sleep(60)
""")
    await sup.start(name="hog", command=[PY, hog], max_memory_bytes=30 * 1024 * 1024)
    await sup.wait_for(lambda ev: bool(sup.of("limit_exceeded")))
    assert sup.of("limit_exceeded")[0]["action"] == "warn"
    row = sup.proc.status("hog")["instances"][0]
    assert row["rss_bytes"] > 30 * 1024 * 1024 and row["restarts"] == 0


async def test_a_child_ignoring_sigterm_is_killed_after_the_timeout(
        sup: Supervisor, tmp_path: Path) -> None:
    stubborn = script(tmp_path, "stubborn", """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ignoring TERM", flush=True)
while True:
    time.sleep(1)
""")
    started = await sup.start(name="stubborn", command=[PY, stubborn], stop_timeout_s=0.5)
    pid = started["instances"][0]["pid"]
    await sup.wait_for(lambda ev: sup.proc.status("stubborn")["instances"][0][
        "log_lines"] > 0)
    final = await sup.proc.stop_group("stubborn", None)
    assert final["state"] == "stopped"
    row = final["instances"][0]
    assert (row["state"], row["last_signal"], row["pid"]) == ("stopped", "SIGKILL", None)
    assert gone(pid)
    assert sup.proc.status("stubborn")["state"] == "stopped", "still listed"
    again = await sup.proc.restart_group("stubborn", None)  # a stopped group starts again
    assert again["state"] == "running" and again["instances"][0]["pid"] not in (None, pid)
    await sup.proc.stop_group("stubborn", None, remove=True)
    with pytest.raises(NotFound):
        sup.proc.status("stubborn")


async def test_the_log_ring_stays_bounded_under_100_mb_of_output(
        sup: Supervisor, tmp_path: Path) -> None:
    chatty = script(tmp_path, "chatty", """
import sys
line = b"y" * 99 + b"\\n"
block = line * 10000  # 1 MB
out = sys.stdout.buffer
for i in range(100):
    out.write(block)
out.write(b"the end\\n")
out.flush()
""")
    await sup.start(name="chatty", command=[PY, chatty], restart="never",
                    log_lines=500, log_bytes=64 * 1024, log_dir=str(tmp_path),
                    log_max_bytes=8 * 1024 * 1024, log_backups=2)
    await sup.wait_for(lambda ev: bool(sup.of("exited")), timeout_s=60)
    await sup.wait_for(lambda ev: sup.proc.status("chatty")["instances"][0]["state"]
                       == "exited")
    inst = sup.proc.groups["chatty"].instances[0]
    assert len(inst.ring.lines) <= 500 and inst.ring.nbytes <= 64 * 1024
    logs = sup.proc.logs("chatty", None, 1000, None, None, 0)
    assert logs["lines"][-1]["line"] == "the end"
    assert logs["dropped_lines"] + len(inst.ring.lines) == 1_000_001
    assert logs["last_seq"] == 1_000_001
    files = sorted(p.name for p in tmp_path.glob("chatty-0.out.log*"))
    assert files == ["chatty-0.out.log", "chatty-0.out.log.1", "chatty-0.out.log.2"]
    assert all(p.stat().st_size <= 8 * 1024 * 1024 for p in tmp_path.glob("chatty-0.*"))
    assert (tmp_path / "chatty-0.out.log").read_bytes().endswith(b"the end\n")


# ---------------------------------------------------------------------------- permissions


def ctx_of(app: App, method: str, uid: int, gid: int | None = None) -> Context:
    return Context(app, method, peer=Peer(pid=None, uid=uid, gid=gid if gid is not None
                                          else uid, groups=None))


async def test_another_uid_cannot_stop_scale_restart_or_read_a_group(
        sup: Supervisor) -> None:
    me = os.geteuid()
    await proc_handlers.start(ctx_of(sup.app, "proc.start", me), name="mine",
                              command=[PY, "-c", "import time; time.sleep(60)"])
    other = 54321 if me != 54321 else 54322
    for call in (proc_handlers.stop(ctx_of(sup.app, "proc.stop", other), name="mine"),
                 proc_handlers.restart(ctx_of(sup.app, "proc.restart", other), name="mine"),
                 proc_handlers.scale(ctx_of(sup.app, "proc.scale", other), name="mine",
                                     instances=2)):
        with pytest.raises(PermissionDenied) as info:
            await call
        assert info.value.data["reason"] == "not_owner"
    with pytest.raises(PermissionDenied):
        proc_handlers.logs(ctx_of(sup.app, "proc.logs", other), name="mine")
    with pytest.raises(AlreadyExists):
        await proc_handlers.start(ctx_of(sup.app, "proc.start", me), name="mine",
                                  command=[PY, "-c", "pass"])
    assert sup.proc.status("mine")["state"] == "running"
    final = await proc_handlers.stop(ctx_of(sup.app, "proc.stop", me), name="mine")
    assert final["state"] == "stopped"


async def test_a_root_daemon_runs_a_peers_group_as_that_peer(sup: Supervisor) -> None:
    with throwaway_user() as user, throwaway_user() as intruder:
        started = await proc_handlers.start(
            ctx_of(sup.app, "proc.start", user.uid, user.gid), name="theirs",
            command=["/bin/sleep", "60"], cwd="/")
        assert (started["uid"], started["gid"], started["owner_uid"]) == \
            (user.uid, user.gid, user.uid)
        pid = started["instances"][0]["pid"]
        with open(f"/proc/{pid}/status") as f:
            ids = {line.split(":")[0]: line.split()[1:] for line in f}
        assert ids["Uid"] == [str(user.uid)] * 4 and ids["Gid"] == [str(user.gid)] * 4
        with pytest.raises(PermissionDenied):
            await proc_handlers.stop(ctx_of(sup.app, "proc.stop", intruder.uid), name="theirs")
        with pytest.raises(PermissionDenied):  # cwd the user may not enter
            await proc_handlers.start(ctx_of(sup.app, "proc.start", user.uid, user.gid),
                                      name="snoop", command=["/bin/true"], cwd="/root")
        await proc_handlers.stop(ctx_of(sup.app, "proc.stop", 0), name="theirs")
        assert gone(pid)


async def test_a_log_dir_the_owner_cannot_write_is_refused_at_start(
        sup: Supervisor, tmp_path: Path) -> None:
    """A bad log_dir is the OS error of proc.start (as a bad cwd is), not a warning in
    the daemon's log while the group runs without its files."""
    me = os.geteuid()
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    for log_dir, errno_name in ((tmp_path / "missing", "ENOENT"), (a_file, "ENOTDIR")):
        with pytest.raises(NotFound) as info:
            await proc_handlers.start(ctx_of(sup.app, "proc.start", me), name="logs",
                                      command=[PY, "-c", "print('x')"], log_dir=str(log_dir))
        assert info.value.data["errno"] == errno_name
        assert info.value.data["param"] == "log_dir"
        with pytest.raises(NotFound):
            sup.proc.status("logs")
    if me != 0:
        return  # the rest needs a second uid
    with throwaway_user() as user:
        closed = tmp_path / "root-only"
        closed.mkdir(mode=0o755)
        with pytest.raises(PermissionDenied) as info:
            await proc_handlers.start(ctx_of(sup.app, "proc.start", user.uid, user.gid),
                                      name="snoop", command=["/bin/true"], cwd="/",
                                      log_dir=str(closed))
        assert info.value.data["errno"] == "EACCES"
        assert list(closed.iterdir()) == []


async def test_an_rlimit_the_child_cannot_set_is_refused_naming_the_parameter(
        sup: Supervisor) -> None:
    """setrlimit fails in the child before exec, where subprocess reports only "Exception
    occurred in preexec_fn": the daemon refuses such a value up front, by name."""
    from xsys.protocol import InvalidParams

    with pytest.raises(InvalidParams) as info:
        await proc_handlers.start(ctx_of(sup.app, "proc.start", os.geteuid()), name="nofile",
                                  command=[PY, "-c", "pass"], rlimit_nofile=2**31)
    assert info.value.data["param"] == "rlimit_nofile"
    with pytest.raises(NotFound):
        sup.proc.status("nofile")
    # a value the child may set still reaches it (checked in the cwd/env test too)
    done = await proc_handlers.start(ctx_of(sup.app, "proc.start", os.geteuid()),
                                     name="ok", command=[PY, "-c", "pass"],
                                     restart="never", rlimit_nofile=64)
    assert done["state"] != "failed"


def test_a_second_uid_over_the_socket_cannot_touch_the_first_uids_group(
        daemon_factory: Factory) -> None:
    """The same as above end to end: a real second user connects to a root daemon's
    socket (its uid comes from SO_PEERCRED, not from the test) and tries every managing
    method on root's group, and the name; its own group runs as itself."""
    import shutil
    import tempfile
    from types import SimpleNamespace

    from tests.test_fs_security import run_as

    if os.geteuid() != 0:
        pytest.skip("needs root: a root daemon serving a second user")
    shared = Path(tempfile.mkdtemp(prefix="xsys-proc-peer-"))
    os.chmod(shared, 0o755)
    try:
        with throwaway_user() as user:
            h = daemon_factory({"server": {"socket": str(shared / "sock" / "xsys.sock"),
                                           "group": str(user.gid),
                                           "allowed_uids": [0, user.uid]}})
            with h.client() as c:
                c.call("proc.start", {"name": "roots", "command": ["/bin/sleep", "120"],
                                      "stop_timeout_s": 2})
                before = pids_of(c, "roots")
                peer = SimpleNamespace(pw_uid=user.uid, pw_gid=user.gid)
                results = run_as(peer, h.socket, [  # type: ignore[arg-type]
                    ("proc.stop", {"name": "roots"}),
                    ("proc.stop", {"name": "roots", "remove": True}),
                    ("proc.restart", {"name": "roots"}),
                    ("proc.scale", {"name": "roots", "instances": 3}),
                    ("proc.logs", {"name": "roots"}),
                    ("proc.start", {"name": "roots", "command": ["/bin/true"]}),
                    ("proc.start", {"name": "theirs", "command": ["/bin/sleep", "120"],
                                    "cwd": "/", "stop_timeout_s": 2}),
                    ("proc.status", {"name": "theirs"}),
                    ("proc.stop", {"name": "theirs", "remove": True}),
                ])
                codes = [r["ok"] or r["code"] for r in results]
                assert codes[:5] == [-32002] * 5, results
                assert all("not_owner" in r["data"] for r in results[:5]), results
                assert codes[5] in (-32002, -32003), results  # not_owner or running
                assert codes[6:] == [True, True, True], results
                assert f"'uid': {user.uid}" in results[7]["result"], results
                status = c.call("proc.status", {"name": "roots"})
                assert status["state"] == "running" and status["uid"] == 0
                assert pids_of(c, "roots") == before and len(before) == 1
                c.call("proc.stop", {"name": "roots", "remove": True})
            assert all(gone(p) for p in before)
    finally:
        shutil.rmtree(shared, ignore_errors=True)


# ------------------------------------------------------------------ the daemon's own life


def worker_group(name: str, n: int = 2, **extra: Any) -> dict[str, Any]:
    return {"name": name, "command": [PY, "-c", "import time; time.sleep(120)"],
            "instances": n, "stop_timeout_s": 2, **extra}


def pids_of(c: Any, name: str) -> list[int]:
    return [p["pid"] for p in c.call("proc.status", {"name": name})["instances"]]


def wait_until(pred: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_daemons_sigterm_stops_every_child_and_leaves_no_zombie(
        daemon_factory: Factory) -> None:
    h = daemon_factory({"proc": {"groups": [worker_group("cfg", 2)]}})
    with h.client() as c:
        c.call("proc.start", {"name": "asked", "command": [
            PY, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
            " print('x', flush=True); time.sleep(120)"], "stop_timeout_s": 0.5})
        wait_until(lambda: c.call("proc.logs", {"name": "asked"})["lines"] != [])
        pids = pids_of(c, "cfg") + pids_of(c, "asked")
    assert all(isinstance(p, int) for p in pids) and len(pids) == 3
    daemon_pid = h.pid
    h.signal(signal.SIGTERM)
    assert h.proc is not None
    assert h.proc.wait(30) == 0
    assert all(gone(p) for p in pids)
    assert not os.path.exists(f"/proc/{daemon_pid}")
    assert "SIGKILL" in h.log()  # the one ignoring SIGTERM


def test_sighup_applies_added_removed_and_changed_groups_only(
        daemon_factory: Factory) -> None:
    h = daemon_factory({"proc": {"groups": [worker_group("keep", 1),
                                            worker_group("change", 1),
                                            worker_group("drop", 1)]}})
    with h.client() as c:
        before = {n: pids_of(c, n) for n in ("keep", "change", "drop")}
        cfg = json.loads(h.config_path.read_text())
        cfg["proc"]["groups"] = [worker_group("keep", 1), worker_group("change", 2),
                                 worker_group("new", 1)]
        h.config_path.write_text(json.dumps(cfg))
        h.signal(signal.SIGHUP)

        def applied() -> bool:
            groups = {g["name"]: g for g in c.call("proc.list")["groups"]}
            return set(groups) == {"keep", "change", "new"} and \
                groups["change"]["running"] == 2 and groups["new"]["running"] == 1

        wait_until(applied)
        assert pids_of(c, "keep") == before["keep"], "unchanged: untouched"
        assert not set(pids_of(c, "change")) & set(before["change"])
    assert gone(before["drop"][0])


def test_wire_errors_and_the_cli(daemon_factory: Factory, tmp_path: Path) -> None:
    h = daemon_factory()
    with h.client() as c:
        with pytest.raises(NotFound) as info:
            c.call("proc.start", {"name": "nope", "command": [str(tmp_path / "missing")]})
        assert info.value.data["errno"] == "ENOENT"
        assert c.call("proc.status", {"name": "nope"})["state"] == "failed"
    env = {"XSYS_SOCKET": h.socket}
    runner = CliRunner()
    started = runner.invoke(main, ["proc", "start", "clip", "-n", "2", "--restart", "always",
                                   "--", PY, "-c", "print('hello', flush=True); import time; "
                                   "time.sleep(60)"], env=env)
    assert started.exit_code == 0, started.output
    assert "clip" in started.output
    listed = runner.invoke(main, ["proc", "ls"], env=env)
    assert listed.exit_code == 0 and "clip" in listed.output and "nope" in listed.output
    status = runner.invoke(main, ["proc", "status", "clip", "--json"], env=env)
    assert status.exit_code == 0, status.output
    assert len(json.loads(status.output)["instances"]) == 2
    with h.client() as c:
        wait_until(lambda: len(c.call("proc.logs", {"name": "clip"})["lines"]) == 2)
    logs = runner.invoke(main, ["proc", "logs", "clip"], env=env)
    assert logs.exit_code == 0 and logs.output.count("hello") == 2, logs.output
    scaled = runner.invoke(main, ["proc", "scale", "clip", "1"], env=env)
    assert scaled.exit_code == 0, scaled.output
    restarted = runner.invoke(main, ["proc", "restart", "clip"], env=env)
    assert restarted.exit_code == 0, restarted.output
    stopped = runner.invoke(main, ["proc", "stop", "clip"], env=env)
    assert stopped.exit_code == 0 and "STOPPED" in stopped.output, stopped.output
    removed = runner.invoke(main, ["proc", "stop", "clip", "--remove"], env=env)
    assert removed.exit_code == 0, removed.output
    missing = runner.invoke(main, ["proc", "status", "clip"], env=env)
    assert missing.exit_code == 1, missing.output


async def test_unknown_group_and_bad_params(sup: Supervisor) -> None:
    with pytest.raises(NotFound):
        await sup.proc.stop_group("none", None)
    from xsys.protocol import InvalidParams
    with pytest.raises(InvalidParams) as info:
        await proc_handlers.start(ctx_of(sup.app, "proc.start", os.geteuid()), name="x",
                                  command=[PY], stop_signal="SIGNOPE")
    assert info.value.data["param"] == "stop_signal"
    with pytest.raises(InvalidParams) as info:
        await proc_handlers.start(ctx_of(sup.app, "proc.start", os.geteuid()), name="x",
                                  command=[PY], backoff={"initial_s": 2, "max_s": 1})
    assert info.value.data["param"] == "backoff"
    # an environment the exec would refuse is a parameter error, not a failed group
    for bad in ({"env": {"A=B": "1"}}, {"env": {"": "1"}}, {"env": {"A": "x\0y"}},
                {"cwd": "/tmp\0x"}, {"log_dir": ""}):
        with pytest.raises(InvalidParams) as info:
            await proc_handlers.start(ctx_of(sup.app, "proc.start", os.geteuid()),
                                      name="x", command=[PY, "-c", "pass"], **bad)
        assert info.value.data["param"] == next(iter(bad)), (bad, info.value)
    with contextlib.suppress(NotFound):
        sup.proc.status("x")
        raise AssertionError("a rejected group is not kept")


def test_a_detached_group_is_left_running_when_the_daemon_stops(
        daemon_factory: Factory, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    h = daemon_factory({"proc": {"groups": [
        worker_group("kept", 1, detach=True, log_dir=str(logs)),
        worker_group("ended", 1)]}})
    with h.client() as c:
        kept, ended = pids_of(c, "kept")[0], pids_of(c, "ended")[0]
    h.signal(signal.SIGTERM)
    assert h.proc is not None and h.proc.wait(30) == 0
    try:
        assert gone(ended)
        assert not gone(kept), "the detached worker still runs"
        assert os.getsid(kept) == kept, "in its own session"
        assert (logs / "kept-0.out.log").exists()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(kept, signal.SIGKILL)
    # its parent is gone: init reaps it (or, in a container whose pid 1 does not reap,
    # it stays a zombie: not the daemon's doing)
    wait_until(lambda: not psutil.pid_exists(kept)
               or psutil.Process(kept).status() == psutil.STATUS_ZOMBIE)


async def test_cwd_env_worker_ids_and_rlimits_reach_the_child(
        sup: Supervisor, tmp_path: Path) -> None:
    show = script(tmp_path, "show", """
import os, resource
print(os.getcwd(), os.environ["FOO"], os.environ["XSYS_WORKER_ID"],
      os.environ["XSYS_WORKER_COUNT"], "SECRET" in os.environ,
      resource.getrlimit(resource.RLIMIT_NOFILE)[0],
      resource.getrlimit(resource.RLIMIT_AS)[0], flush=True)
""")
    os.environ["SECRET"] = "the daemon's"
    try:
        await sup.start(name="show", command=[PY, show], instances=2, restart="never",
                        cwd=str(tmp_path), env={"FOO": "bar"}, rlimit_nofile=64,
                        rlimit_as=4 * 1024**3)
    finally:
        del os.environ["SECRET"]
    await sup.wait_for(lambda ev: len(sup.proc.logs("show", None, 10, None, "stdout",
                                                    0)["lines"]) == 2)
    lines = sorted(r["line"] for r in sup.proc.logs("show", None, 10, None, None, 0)["lines"])
    assert lines == [f"{tmp_path} bar {i} 2 False 64 {4 * 1024**3}" for i in range(2)]


def test_the_proc_section_is_validated_and_not_taken_for_tinymonitor() -> None:
    from xsys.config import ConfigError, looks_like_tinymonitor

    cfg = from_dict(Config, {"proc": {"groups": [{"name": "w", "command": ["x"],
                                                  "backoff": {"initial_s": 0.5}}]}})
    assert cfg.proc.groups[0].backoff.initial_s == 0.5
    assert cfg.proc.groups[0].command == ("x",)
    with pytest.raises(ConfigError, match=r"proc\.groups\[0\]\.restart"):
        from_dict(Config, {"proc": {"groups": [{"name": "w", "command": ["x"],
                                                "restart": "sometimes"}]}})
    with pytest.raises(ConfigError, match="two groups are named 'w'"):
        from_dict(Config, {"proc": {"groups": [{"name": "w", "command": ["x"]},
                                               {"name": "w", "command": ["y"]}]}})
    assert not looks_like_tinymonitor({"proc": {"groups": []},
                                       "cpu": {"enabled": True, "threshold": 90}})
    assert looks_like_tinymonitor({"cpu": {"enabled": True, "threshold": 90}})


async def test_the_daemon_wide_caps_refuse_with_overloaded() -> None:
    from xsys.protocol import Overloaded

    cfg = from_dict(Config, {"proc": {"max_groups": 2, "max_instances": 3,
                                      "max_log_bytes": 4 * 1024 * 1024},
                             "monitor": {"enabled": False}})
    app, _router = compose(cfg)
    await app.start()
    proc = app.services.proc
    sleeper = [PY, "-c", "import time; time.sleep(60)"]

    async def start(name: str, **extra: Any) -> Any:
        return await proc.start_group(from_dict(GroupConfig, {"name": name,
                                                              "command": sleeper, **extra}),
                                      Owner.daemon())
    try:
        await start("a", instances=2, log_bytes=1024 * 1024)
        with pytest.raises(Overloaded, match="max_instances"):
            await start("b", instances=2)
        with pytest.raises(Overloaded, match="max_log_bytes"):
            await start("b", instances=1, log_bytes=3 * 1024 * 1024)
        with pytest.raises(Overloaded, match="max_instances"):
            await proc.scale("a", 4, None)
        await start("b", instances=1, log_bytes=1024 * 1024)
        with pytest.raises(Overloaded, match="max_groups"):
            await start("c")
        assert [g["name"] for g in proc.list_groups()] == ["a", "b"]
    finally:
        await app.stop(10.0)


async def test_one_peer_cannot_take_every_group() -> None:
    from xsys.protocol import Overloaded

    cfg = from_dict(Config, {"proc": {"max_groups_per_uid": 1},
                             "monitor": {"enabled": False}})
    app, _router = compose(cfg)
    await app.start()
    proc = app.services.proc
    me = os.geteuid()
    peer = Owner(owner_uid=54321, uid=me, gid=os.getegid())  # runs as us: no root needed
    sleeper = {"command": [PY, "-c", "import time; time.sleep(60)"]}
    try:
        await proc.start_group(from_dict(GroupConfig, {"name": "p1", **sleeper}), peer)
        with pytest.raises(Overloaded, match="max_groups_per_uid"):
            await proc.start_group(from_dict(GroupConfig, {"name": "p2", **sleeper}), peer)
        await proc.start_group(from_dict(GroupConfig, {"name": "mine", **sleeper}),
                               Owner.daemon())
        await proc.stop_group("p1", 54321)
        again = await proc.start_group(from_dict(GroupConfig, {"name": "p1", **sleeper}),
                                       peer)  # replacing its own stopped group
        assert again["state"] == "running"
    finally:
        await app.stop(10.0)
