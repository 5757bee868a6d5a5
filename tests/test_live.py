"""Live snapshot streams (issue 10): the hub in-process over a real sampler, and
``sys.subscribe`` against real daemons (interval, sections, conflation, shared sampling,
bad params)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest

from xsys.config import SysConfig
from xsys.host import Sampler
from xsys.live import DEFAULT_SECTIONS, SECTIONS, SnapshotHub
from xsys.protocol import InvalidParams, Overloaded

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
    assert 1 <= len(rows) <= 6 and snap["processes"]["total"] >= len(rows)
    assert {"pid", "name", "cmdline", "cpu_percent", "memory_percent"} <= set(rows[0])


@pytest.mark.parametrize("kwargs", [
    {"interval_s": 0}, {"interval_s": -1}, {"interval_s": float("nan")},
    {"interval_s": 1e9}, {"interval_s": "1"}, {"interval_s": 1, "sections": ["gpu"]},
    {"interval_s": 1, "sections": []}, {"interval_s": 1, "sections": "cpu"},
    {"interval_s": 1, "top_processes": -1}, {"interval_s": 1, "top_processes": 101},
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


async def test_hub_conflates_for_a_slow_consumer(hub: SnapshotHub) -> None:
    sub = hub.subscribe(0.05, ["load"])
    passes = hub.sampler.samples_taken
    while hub.sampler.samples_taken < passes + 8:
        await asyncio.sleep(0.05)
    snap = await sub.__anext__()
    assert sub.dropped >= 3 and snap["dropped"] == sub.dropped
    assert snap["seq"] == sub.seq  # the latest, not the oldest
    sub.close()
