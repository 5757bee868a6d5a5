"""The ``monitor`` namespace through the router (``dispatch.invoke``, no socket): method
names, parameter names and error codes are the issue's contract."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.alerts_support import HOST
from tests.fswatch_support import FakeSession
from xsys.config import Config, from_dict
from xsys.daemon import compose
from xsys.monitor.collectors import Collection, Sample
from xsys.monitor.service import MonitorService
from xsys.protocol import INVALID_PARAMS, INVALID_REQUEST, NOT_FOUND, XsysError
from xsys.server.app import App
from xsys.server.dispatch import invoke
from xsys.server.router import Router


class Values:
    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    async def __call__(self) -> Collection:
        import time

        return Collection(tuple(Sample(k, k, v, "percent") for k, v in self.values.items()),
                          HOST, {}, time.time())


Env = tuple[App, Router, MonitorService, Values]


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    cfg = from_dict(Config, {"monitor": {
        "enabled": False, "repeat_interval": 3600,
        "cpu": {"warning": 70, "critical": 90, "duration": 0},
        "memory": {"warning": 70, "critical": 90, "duration": 0}}})
    app, router = compose(cfg)
    service = app.services.monitor
    values = Values()
    service._collect = values
    await app.start()
    yield app, router, service, values
    await app.stop(3.0)


async def call(env: Env, method: str, params: dict[str, Any] | None = None,
               session: Any = None) -> Any:
    app, router, _, _ = env
    return await invoke(app, router, method, params or {}, session=session)


async def code_of(env: Env, method: str, params: dict[str, Any] | None = None,
                  session: Any = None) -> int:
    with pytest.raises(XsysError) as info:
        await call(env, method, params, session)
    return info.value.code


def test_methods_and_parameters_are_declared() -> None:
    app, router = compose(Config())
    specs = {s.name: s for s in router.specs()}
    expected = {
        "monitor.status": set(), "monitor.checks": set(),
        "monitor.history": {"limit", "check", "component"},
        "monitor.subscribe": {"check", "component", "severity"},
        "monitor.unsubscribe": {"subscription"},
        "monitor.test": {"provider"},
        "monitor.silence": {"check", "component", "duration_s", "comment"},
        "monitor.unsilence": {"silence", "check", "component"},
        "monitor.silences": set(),
    }
    for name, params in expected.items():
        assert {p.name for p in specs[name].params} == params, name
        assert specs[name].summary
    assert specs["monitor.subscribe"].streams == "monitor.alert"
    assert app.on_startup and app.on_shutdown and app.on_reload


async def test_status_and_checks(env: Env) -> None:
    _, _, service, values = env
    values.values = {"cpu": 95.0, "memory": 10.0}
    await service.tick()
    st = await call(env, "monitor.status")
    rows = {r["component"]: r for r in st["checks"]}
    assert rows["cpu"]["state"] == "critical" and rows["cpu"]["threshold"] == 90.0
    assert rows["memory"]["state"] == "ok" and rows["memory"]["threshold"] == 70.0
    for key in ("value", "changed_at", "duration_s", "unit", "pending", "silenced"):
        assert key in rows["cpu"]
    assert st["firing"] == 1 and st["enabled"] is False and st["providers"] == ["console"]
    assert (st["refresh_s"], st["repeat_interval_s"]) == (5.0, 3600.0)
    assert "in_flight" in st["provider_status"][0]
    checks = {c["check"]: c for c in (await call(env, "monitor.checks"))["checks"]}
    assert checks["cpu"]["warning"] == 70 and checks["cpu"]["components"] == ["cpu"]
    assert checks["memory"]["duration_s"] == 0
    assert checks["network"]["enabled"] is False or "unit" in checks["network"]


async def test_history(env: Env) -> None:
    _, _, service, values = env
    values.values = {"cpu": 95.0, "memory": 80.0}
    await service.tick()
    values.values = {"cpu": 10.0, "memory": 80.0}
    await service.tick()
    h = await call(env, "monitor.history")
    assert [(a["component"], a["status"]) for a in h["alerts"]] == [
        ("cpu", "resolved"), ("memory", "firing"), ("cpu", "firing")]
    assert h["size"] == 3 and h["capacity"] == 500
    first = h["alerts"][-1]
    assert first["severity"] == "critical" and first["deliveries"][0]["provider"] == "console"
    only = await call(env, "monitor.history", {"limit": 1, "check": "memory"})
    assert [a["component"] for a in only["alerts"]] == ["memory"]
    assert await code_of(env, "monitor.history", {"limit": 0}) == INVALID_PARAMS


async def test_subscribe_push_and_unsubscribe(env: Env) -> None:
    _, _, service, values = env
    session = FakeSession(asyncio.get_running_loop(), outbound_queue=100)
    r = await call(env, "monitor.subscribe", session=session)
    sub_id = r["subscription"]
    crit = await call(env, "monitor.subscribe", {"severity": "critical", "check": "mem*"},
                      session=session)
    values.values = {"cpu": 95.0, "memory": 75.0}
    await service.tick()
    pushed = [(m, p["subscription"], p["alert"]["component"]) for m, p in session.notifications]
    assert sorted(pushed) == [("monitor.alert", sub_id, "cpu"),
                              ("monitor.alert", sub_id, "memory")]
    _method, params = session.notifications[0]
    assert set(params) == {"subscription", "alert"}
    assert params["alert"]["status"] == "firing" and params["alert"]["host"]["hostname"]
    assert await call(env, "monitor.unsubscribe", {"subscription": sub_id},
                      session=session) == {"subscription": sub_id, "closed": True}
    session.notifications.clear()
    values.values = {"cpu": 95.0, "memory": 95.0}
    await service.tick()
    assert [(p["subscription"], p["alert"]["severity"]) for _, p in session.notifications] == [
        (crit["subscription"], "critical")]
    assert len(service.bus) == 1
    assert await code_of(env, "monitor.unsubscribe", {"subscription": sub_id},
                         session=session) == NOT_FOUND
    assert await code_of(env, "monitor.subscribe") == INVALID_REQUEST  # no stream here
    session.subscriptions[crit["subscription"]].close()  # the connection went away
    assert len(service.bus) == 0


async def test_test_alert(env: Env) -> None:
    r = await call(env, "monitor.test")
    assert r["alert"]["test"] is True
    assert r["results"] == [{"provider": "console", "ok": True, "error": None,
                             "status_code": None, "duration_ms": r["results"][0]["duration_ms"]}]
    one = await call(env, "monitor.test", {"provider": "console"})
    assert [x["provider"] for x in one["results"]] == ["console"]
    assert await code_of(env, "monitor.test", {"provider": "webhook"}) == NOT_FOUND
    assert await code_of(env, "monitor.test", {"provider": "telegram"}) == INVALID_PARAMS
    h = await call(env, "monitor.history")
    assert h["alerts"][0]["test"] is True


async def test_silence_and_unsilence(env: Env) -> None:
    _, _, service, values = env
    s = await call(env, "monitor.silence", {"check": "cpu", "duration_s": 120,
                                            "comment": "upgrade"})
    assert s["check"] == "cpu" and s["comment"] == "upgrade" and "silence" not in s
    assert s["ends_at"] - s["starts_at"] == pytest.approx(120)
    values.values = {"cpu": 95.0}
    await service.tick()
    h = await call(env, "monitor.history")
    assert h["alerts"][0]["silenced_by"] == s["id"] and h["alerts"][0]["deliveries"] == []
    listed = await call(env, "monitor.silences")
    assert [x["id"] for x in listed["silences"]] == [s["id"]]
    assert await call(env, "monitor.unsilence", {"silence": s["id"]}) == {"removed": [s["id"]]}
    assert await code_of(env, "monitor.unsilence", {"silence": s["id"]}) == NOT_FOUND
    s2 = await call(env, "monitor.silence", {"component": "filesystem:*", "duration_s": 60})
    s3 = await call(env, "monitor.silence", {"component": "cpu"})
    assert s3["ends_at"] - s3["starts_at"] == pytest.approx(3600)
    assert await call(env, "monitor.unsilence", {"component": "filesystem:*"}) == {
        "removed": [s2["id"]]}
    assert await call(env, "monitor.unsilence", {"silence": s3["id"]}) == {
        "removed": [s3["id"]]}
    assert await code_of(env, "monitor.silence", {"duration_s": 60}) == INVALID_PARAMS
    # a check name or glob that matches no check would silence nothing: refused
    assert await code_of(env, "monitor.silence", {"check": "nosuch"}) == INVALID_PARAMS
    assert await code_of(env, "monitor.silence", {"check": "cpx*"}) == INVALID_PARAMS
    assert (await call(env, "monitor.silence", {"check": "file*"}))["check"] == "file*"
    assert (await call(env, "monitor.silence", {"check": "service"}))["check"] == "service"
    assert await code_of(env, "monitor.silence", {"check": "cpu", "duration_s": -5}) == \
        INVALID_PARAMS
    # the aliases are gone: one name per parameter
    assert await code_of(env, "monitor.silence", {"check": "cpu", "duration": 60}) == \
        INVALID_PARAMS
    assert await code_of(env, "monitor.unsilence", {"id": s3["id"]}) == INVALID_PARAMS
    assert await code_of(env, "monitor.unsilence") == INVALID_PARAMS
    assert await code_of(env, "monitor.unsilence", {"check": "nothing"}) == NOT_FOUND
