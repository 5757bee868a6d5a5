"""Quiet defaults for xsys-format configs (issue 17): a real daemon with the default cpu and
load checks on a CPU kept busy by real busy loops sends no alert in the first sampling
window; and ``monitor.test`` alerts reach ``monitor.subscribe`` subscribers and ``xsys
monitor watch``, marked ``test: true``."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, DaemonHandle
from xsys.config import Config
from xsys.monitor.config import CpuCheck, LoadCheck

#: Only the checks under test (the others could fire on a test machine for other reasons).
ONLY_CPU_AND_LOAD: dict[str, Any] = {
    "refresh": 0.25,
    "memory": {"enabled": False}, "swap": {"enabled": False},
    "filesystem": {"enabled": False}, "inodes": {"enabled": False},
    "network": {"enabled": False}, "io": {"enabled": False}, "reboot": {"enabled": False},
}


def test_defaults_mean_saturation_for_a_minute() -> None:
    cfg = Config().monitor
    assert cfg.compat == "xsys" and cfg.send_resolved
    assert cfg.cpu.duration >= 60 and cfg.load.duration >= 60
    assert (cfg.load.per_cpu, cfg.load.warning, cfg.load.critical) == (True, 1.5, 2.0)
    assert CpuCheck().duration == LoadCheck().duration == 60


@pytest.fixture
def busy_loops() -> Iterator[list[subprocess.Popen[bytes]]]:
    """One busy loop per CPU (real processes), killed afterwards."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
             for _ in range(os.cpu_count() or 1)]
    yield procs
    for p in procs:
        p.kill()
        p.wait(10)


def test_busy_cpu_sends_no_alert_in_the_first_window(
        daemon_factory: Callable[..., DaemonHandle],
        busy_loops: list[subprocess.Popen[bytes]]) -> None:
    h = daemon_factory({"monitor": ONLY_CPU_AND_LOAD})
    with h.client(timeout=10) as c:
        sub = c.subscribe("monitor.subscribe", {})
        # the marker: the monitor has seen the CPU at or over its warning line
        deadline = time.monotonic() + 30
        while True:
            status = c.call("monitor.status")
            rows = {r["check"]: r for r in status["checks"]}
            cpu = rows.get("cpu")
            if cpu is not None and cpu["value"] is not None \
                    and cpu["value"] >= cpu["warning"]:
                break
            if time.monotonic() > deadline:
                pytest.skip(f"the busy loops did not take the CPU over 80 % in 30 s "
                            f"(last: {cpu})")
            time.sleep(0.1)
        # seen, but waiting out the 60 s duration: pending, not firing
        assert cpu["state"] == "ok" and cpu["pending"] in ("warning", "critical")
        assert cpu["duration_s"] == 60
        seen_at = status["ticks"]
        while c.call("monitor.status")["ticks"] < seen_at + 8:  # 8 more busy ticks
            time.sleep(0.1)
        status = c.call("monitor.status")
        assert status["firing"] == 0
        assert c.call("monitor.history")["alerts"] == []
        assert sub.next(timeout=0.01) is None
        sub.close()
    assert "ALERT" not in h.log()


def test_monitor_test_reaches_subscribers_and_watch(
        daemon_factory: Callable[..., DaemonHandle]) -> None:
    h = daemon_factory({"monitor": ONLY_CPU_AND_LOAD})
    watchers = [subprocess.Popen([sys.executable, "-m", "xsys", "--socket", h.socket,
                                  "monitor", "watch", *extra], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, cwd=str(REPO))
                for extra in (["--json"], [])]
    try:
        with h.client(timeout=10) as c:
            sub = c.subscribe("monitor.subscribe", {})
            deadline = time.monotonic() + 30
            while c.call("monitor.status")["subscribers"] < 3:  # both watchers are in
                assert time.monotonic() < deadline, "the watchers did not subscribe"
                time.sleep(0.05)
            result = c.call("monitor.test")
            event = sub.next(timeout=20)
            assert event is not None and event["method"] == "monitor.alert"
            alert = event["alert"]
            assert alert["test"] is True and alert["id"] == result["alert"]["id"]
            assert alert["check"] == "test" and alert["status"] == "firing"
            # once: the next event is the next test alert, not this one again
            second = c.call("monitor.test")
            event = sub.next(timeout=20)
            assert event is not None and event["alert"]["id"] == second["alert"]["id"], \
                "a subscriber got the same test alert twice"
            sub.close()
        lines = []
        for proc in watchers:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], 30)
            assert ready, "xsys monitor watch printed nothing in 30 s"
            lines.append(proc.stdout.readline().decode())
        as_json = json.loads(lines[0])
        assert as_json["test"] is True and as_json["id"] == result["alert"]["id"]
        assert "TEST FIRING" in lines[1] and "test" in lines[1]
    finally:
        for proc in watchers:
            proc.terminate()
            proc.wait(10)


def test_watch_line_marks_test_alerts(tmp_path: Path) -> None:
    from xsys.cli.monitor import render_alert

    base = {"created_at": 1_700_000_000.0, "status": "firing", "severity": "warning",
            "component": "cpu", "value_text": "91.0%", "host": {"hostname": "h"}}
    assert "TEST" not in render_alert({**base, "test": False})
    assert "TEST FIRING" in render_alert({**base, "test": True})
