"""Live snapshot streams (issue 10): the hub in-process over a real sampler, and
``sys.subscribe`` against real daemons (interval, sections, conflation, shared sampling,
bad params)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import itertools
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.conftest import DaemonHandle
from tests.rawsock import Raw
from xsys.config import SysConfig
from xsys.host import Sampler
from xsys.live import DEFAULT_SECTIONS, SECTIONS, SnapshotHub
from xsys.protocol import InvalidParams, NotFound, Overloaded

T = TypeVar("T")


class Runner:
    """The hub's runner without an App: a small pool and tracked tasks."""

    def __init__(self) -> None:
        self.pool = concurrent.futures.ThreadPoolExecutor(2)
        self.tasks: set[asyncio.Task[Any]] = set()

    async def run_blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, functools.partial(fn, *args, **kwargs))

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.pool.shutdown(wait=True)


@pytest.fixture
async def hub() -> AsyncIterator[SnapshotHub]:
    runner = Runner()
    sampler = Sampler(1.0)
    await sampler.start(runner)
    settings = SysConfig(min_interval_s=0.05, max_subscriptions=3)
    hub = SnapshotHub(sampler, runner, lambda: settings,
                      monitor_states=lambda: {"firing": 0, "checks": []},
                      check_states=lambda: {"checks": []})
    try:
        yield hub
    finally:
        hub.close_all()
        await runner.close()


async def test_hub_streams_default_sections(hub: SnapshotHub) -> None:
    sub = hub.subscribe(0.1)
    seqs = []
    async for snap in sub:
        assert set(DEFAULT_SECTIONS) <= set(snap)
        assert "per_cpu_percent" not in snap["cpu"]
        assert {"total_bytes", "available_bytes", "percent"} <= set(snap["memory"])
        assert {"load1", "load5", "load15"} <= set(snap["load"])
        seqs.append(snap["seq"])
        if len(seqs) == 3:
            break
    sub.close()
    assert seqs == sorted(seqs) and seqs[0] == 1
    assert hub.stats()["subscriptions"] == 0
    assert hub.sampler.period_s == 1.0  # nobody left: back to the base interval


async def test_hub_sections_per_cpu_and_processes(hub: SnapshotHub) -> None:
    snap = await hub.snapshot(["cpu", "processes", "monitor", "checks"], per_cpu=True,
                              top_processes=3)
    assert set(snap) == {"seq", "ts", "cpu", "processes", "monitor", "checks"}
    assert len(snap["cpu"]["per_cpu_percent"]) == snap["cpu"]["count_logical"]
    rows = snap["processes"]["processes"]
    assert len(rows) == 3 and snap["processes"]["total"] > 3 and snap["processes"]["truncated"]
    assert {"pid", "name", "cmdline", "cpu_percent", "memory_percent"} <= set(rows[0])
    assert [r["cpu_percent"] for r in rows] == sorted((r["cpu_percent"] for r in rows),
                                                      reverse=True)
    by_mem = await hub.snapshot(["processes"], top_processes=5, process_sort="memory")
    mems = [r["memory_percent"] for r in by_mem["processes"]["processes"]]
    assert len(mems) == 5 and mems == sorted(mems, reverse=True)
    assert by_mem["processes"]["sort"] == "memory"


@pytest.mark.parametrize("kwargs", [
    {"interval_s": 0}, {"interval_s": -1}, {"interval_s": float("nan")},
    {"interval_s": 1e9}, {"interval_s": "1"}, {"interval_s": 1, "sections": ["gpu"]},
    {"interval_s": 1, "sections": []}, {"interval_s": 1, "sections": "cpu"},
    {"interval_s": 1, "top_processes": -1}, {"interval_s": 1, "top_processes": 101},
    {"interval_s": 1, "process_sort": "pid"},
])
async def test_hub_bad_params(hub: SnapshotHub, kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidParams):
        hub.subscribe(**kwargs)
    assert not hub.subscriptions


async def test_hub_clamps_and_caps(hub: SnapshotHub) -> None:
    subs = [hub.subscribe(0.001) for _ in range(3)]
    assert subs[0].interval_s == 0.05
    assert hub.sampler.period_s == 0.05
    with pytest.raises(Overloaded):
        hub.subscribe(1)
    for sub in subs:
        sub.close()
    assert SECTIONS[0] == "cpu"


async def test_one_peer_uid_cannot_take_every_subscription() -> None:
    """sys.max_subscriptions_per_uid: a uid other than root and the daemon's own holds
    at most that many streams, so one peer cannot lock everyone out of live snapshots."""
    runner = Runner()
    sampler = Sampler(1.0)
    await sampler.start(runner)
    settings = SysConfig(max_subscriptions=10, max_subscriptions_per_uid=2)
    hub = SnapshotHub(sampler, runner, lambda: settings)
    peer = 54321 if os.geteuid() != 54321 else 54322
    try:
        mine = [hub.subscribe(1, uid=peer) for _ in range(2)]
        with pytest.raises(Overloaded) as info:
            hub.subscribe(1, uid=peer)
        assert info.value.data["setting"] == "sys.max_subscriptions_per_uid"
        # others still get theirs: another uid, root, the daemon's own, unknown (HTTP)
        for uid in (peer + 1, 0, os.geteuid(), None):
            hub.subscribe(1, uid=uid)
        mine[0].close()
        hub.subscribe(1, uid=peer)  # a closed stream frees its place
    finally:
        hub.close_all()
        await runner.close()


async def test_hub_conflates_for_a_slow_consumer(hub: SnapshotHub) -> None:
    sub = hub.subscribe(0.05, ["load"])
    passes = hub.sampler.samples_taken
    while hub.sampler.samples_taken < passes + 8:
        await asyncio.sleep(0.05)
    snap = await sub.__anext__()
    assert sub.dropped >= 3 and snap["dropped"] == sub.dropped
    assert snap["seq"] == sub.seq  # the latest, not the oldest
    sub.close()


# --------------------------------------------------------------------------- the daemon


def _rss_kib(pid: int) -> int:
    """The process's resident set (``VmRSS`` of /proc/<pid>/status), KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _snapshots(sub: Any, n: int) -> list[dict[str, Any]]:
    out = []
    for item in sub:
        assert item["method"] == "sys.snapshot"
        out.append(item)
        if len(out) == n:
            break
    return out


def test_subscribe_sections_and_filtering(daemon_factory: Callable[..., DaemonHandle]
                                          ) -> None:
    h = daemon_factory()
    with h.client() as c:
        sub = c.sys.subscribe(interval_s=0.25, sections=["load", "memory"])
        assert sub.result["interval_s"] == 0.25 and sub.result["sections"] == ["memory",
                                                                                "load"]
        snaps = _snapshots(sub, 2)
        for snap in snaps:
            assert set(snap) == {"method", "subscription", "seq", "ts", "dropped", "memory",
                                 "load"}
            assert snap["subscription"] == sub.id
            assert snap["memory"].keys() >= {"total_bytes", "available_bytes", "percent"}
        assert [s["seq"] for s in snaps] == [1, 2] and snaps[1]["ts"] > snaps[0]["ts"]
        sub.close()

        full = c.sys.subscribe(interval_s=0.25, per_cpu=True, top_processes=2)
        assert full.result["sections"] == [*DEFAULT_SECTIONS, "processes"]
        (snap,) = _snapshots(full, 1)
        one = c.sys.cpu()
        assert set(snap["cpu"]) == set(one), "the same fields as sys.cpu"
        assert set(snap["network"]) == set(c.sys.network())
        assert set(snap["disks"]) == set(c.sys.disks())
        assert set(snap["load"]) == set(c.sys.load())
        assert set(snap["swap"]) == set(c.sys.memory()["swap"])
        rows = snap["processes"]["processes"]
        assert len(rows) == 2 and set(rows[0]) == set(c.sys.processes(limit=1)[
            "processes"][0])
        full.close()

        rest = c.sys.subscribe(interval_s=0.25, sections=["monitor", "checks", "sensors",
                                                           "disk_io"])
        (snap,) = _snapshots(rest, 1)
        assert set(snap["monitor"]) == {"firing", "checks"}
        assert isinstance(snap["monitor"]["firing"], int)
        assert snap["checks"] == {"checks": c.checks.status()["checks"]}
        assert set(snap["sensors"]) == set(c.sys.sensors())
        assert set(snap["disk_io"]) == set(c.sys.disk_io())
        rest.close()
        assert c.sys.live_stats()["subscriptions"] == 0


def test_subscribe_interval_and_shared_sampling(daemon_factory: Callable[..., DaemonHandle]
                                                ) -> None:
    """Two subscribers at 0.25 s over a 1.0 s base: the sampler runs at 0.25 s, once for
    both; the snapshots' own timestamps show the interval (a count over a window)."""
    h = daemon_factory({"sys": {"sample_interval_s": 1.0}})
    with h.client() as a, h.client() as b, h.client() as c:
        assert c.sys.live_stats()["sampler_period_s"] == 1.0
        sa = a.sys.subscribe(interval_s=0.25, sections=["load"])
        sb = b.sys.subscribe(interval_s=0.25, sections=["cpu"])
        _snapshots(sa, 1)
        _snapshots(sb, 1)
        before = c.sys.live_stats()
        assert before["sampler_period_s"] == 0.25
        got_a, got_b = _snapshots(sa, 12), _snapshots(sb, 12)
        after = c.sys.live_stats()
        passes = after["sampler_passes"] - before["sampler_passes"]
        assert 11 <= passes <= 18, "one sampling for both subscribers, not one each"
        window = got_a[-1]["ts"] - got_a[0]["ts"]
        count = len(got_a) - 1
        assert round(window / 0.25) - 2 <= count <= round(window / 0.25) + 1
        assert {s["ts"] for s in got_a} & {s["ts"] for s in got_b}, "the same samples"
        sa.close()
        sb.close()
        stats = c.sys.live_stats()
        assert stats["subscriptions"] == 0 and stats["sampler_period_s"] == 1.0


def test_subscribe_conflates_a_slow_reader(daemon_factory: Callable[..., DaemonHandle]
                                          ) -> None:
    """A client that stops reading: the daemon keeps one pending snapshot for it, its
    memory stays flat, and ``dropped`` tells how many the reader missed."""
    h = daemon_factory({"sys": {"min_interval_s": 0.02}})
    raw = Raw(h.socket)
    raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.send_msg({"id": 1, "method": "sys.subscribe",
                  "params": {"interval_s": 0.02, "per_cpu": True,
                             "sections": ["cpu", "network", "disks", "disk_io"]}})
    with h.client() as c:
        def dropped_at_least(n: int) -> None:
            while c.sys.live_stats()["dropped"] < n:
                c.rpc.ping()  # poll the daemon (its answer paces the loop)
        dropped_at_least(20)
        rss_before = _rss_kib(h.pid)
        dropped_at_least(220)
        rss_after = _rss_kib(h.pid)
        assert rss_after - rss_before < 4096, (rss_before, rss_after)
    answer = raw.recv_msg()
    assert answer["id"] == 1
    seqs, dropped = [], 0
    while True:
        msg = raw.recv_msg()
        assert msg["method"] == "sys.snapshot"
        seqs.append(msg["params"]["seq"])
        dropped = max(dropped, msg["params"]["dropped"])
        if dropped >= 220:
            break
    assert any(b - a > 1 for a, b in itertools.pairwise(seqs)), "gaps where snapshots dropped"
    raw.close()


def test_subscribe_bad_params(daemon_factory: Callable[..., DaemonHandle]) -> None:
    h = daemon_factory()
    with h.client() as c:
        for params in ({"interval_s": 0}, {"interval_s": -1}, {"interval_s": 1e9},
                       {"interval_s": "fast"}, {"sections": ["gpu"]}, {"sections": []},
                       {"top_processes": 1000}, {"process_sort": "name"}):
            with pytest.raises(InvalidParams) as err:
                c.call("sys.subscribe", params)
            assert err.value.data and err.value.data.get("param") in (
                "interval_s", "sections", "top_processes", "process_sort")
        with pytest.raises(NotFound):
            c.sys.unsubscribe(subscription="sys-999")
        assert c.sys.live_stats()["subscriptions"] == 0
        assert c.rpc.ping()["pong"]


async def test_subscribe_async_client(daemon_factory: Callable[..., DaemonHandle]) -> None:
    h = daemon_factory()
    async with h.async_client() as c:
        sub = await c.sys.subscribe(interval_s=0.25, sections=["swap"])
        seqs = []
        async for snap in sub:
            assert "swap" in snap and "cpu" not in snap
            seqs.append(snap["seq"])
            if len(seqs) == 2:
                break
        await sub.aclose()
        assert seqs == [1, 2]
        assert (await c.sys.live_stats())["subscriptions"] == 0


def test_a_second_user_over_the_socket_is_held_to_its_subscription_cap(
        daemon_factory: Callable[..., DaemonHandle]) -> None:
    """End to end, the uid from SO_PEERCRED: a real second user gets -32005 past
    sys.max_subscriptions_per_uid, while root still subscribes."""
    import shutil
    import tempfile
    from types import SimpleNamespace

    from tests.test_fs_security import run_as
    from tests.throwaway_user import throwaway_user

    if os.geteuid() != 0:
        pytest.skip("needs root: a root daemon serving a second user")
    shared = Path(tempfile.mkdtemp(prefix="xsys-live-peer-"))
    os.chmod(shared, 0o755)
    try:
        with throwaway_user() as user:
            h = daemon_factory({
                "sys": {"max_subscriptions_per_uid": 2},
                "server": {"socket": str(shared / "sock" / "xsys.sock"),
                           "group": str(user.gid), "allowed_uids": [0, user.uid]}})
            peer = SimpleNamespace(pw_uid=user.uid, pw_gid=user.gid)
            calls = [("sys.subscribe", {"interval_s": 60, "sections": ["load"]})] * 3
            results = run_as(peer, h.socket, calls)  # type: ignore[arg-type]
            assert [r["ok"] or r["code"] for r in results] == [True, True, -32005], results
            assert "max_subscriptions_per_uid" in results[2]["data"]
            with h.client() as c:
                c.call("sys.subscribe", {"interval_s": 60, "sections": ["load"]})
    finally:
        shutil.rmtree(shared, ignore_errors=True)
