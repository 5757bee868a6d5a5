"""The xsys CLI against a real daemon (and without one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DaemonHandle


def xsys(*args: str, socket: str, env: dict[str, str] | None = None,
         timeout: float = 60) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("XSYS_")}
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "xsys", "--socket", socket, *args],
                          capture_output=True, text=True, timeout=timeout, env=e,
                          stdin=subprocess.DEVNULL)


def test_daemon_down_prints_one_line_and_exits_2(short_tmp: Path) -> None:
    sock = str(short_tmp / "none.sock")
    r = xsys("sys", "info", socket=sock)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and sock in lines[0] and "xsys serve" in lines[0]


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (("ping",), "pong"),
        (("methods",), "sys.processes"),
        (("sys", "info"), "hostname"),
        (("sys", "cpu"), "cpu"),
        (("sys", "memory"), "TOTAL"),
        (("sys", "disks"), "MOUNT"),
        (("sys", "disk-io"), "total"),
        (("sys", "network"), "lo"),
        (("sys", "load"), "per cpu"),
        (("sys", "processes", "--limit", "3", "--sort", "memory"), "PID"),
        (("sys", "process", str(os.getpid())), "pid"),
        (("sys", "sensors"), ""),
        (("sys", "users"), "USER"),
        (("sys", "ports"), "PROTO"),
    ],
)
def test_tables(daemon: DaemonHandle, args: tuple[str, ...], expect: str) -> None:
    r = xsys(*args, socket=daemon.socket)
    assert r.returncode == 0, r.stderr
    assert expect in r.stdout


@pytest.mark.parametrize(
    ("args", "key"),
    [(("sys", "info"), "hostname"), (("sys", "memory"), "virtual"),
     (("sys", "processes"), "processes"), (("methods",), "methods"), (("ping",), "pong")],
)
def test_json_output(daemon: DaemonHandle, args: tuple[str, ...], key: str) -> None:
    r = xsys(*args, "--json", socket=daemon.socket)
    assert r.returncode == 0, r.stderr
    assert key in json.loads(r.stdout)


def test_daemon_error_exits_1_with_the_error_name(daemon: DaemonHandle) -> None:
    r = xsys("sys", "process", "2147483646", socket=daemon.socket)
    assert r.returncode == 1
    assert "not_found (-32001)" in r.stderr


def test_config_show_lists_sources(tmp_path: Path, short_tmp: Path) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"server": {"max_inflight": 7}}))
    r = xsys("config", "show", "--config", str(cfg), socket=str(short_tmp / "x.sock"),
             env={"HOME": str(tmp_path), "XSYS_LOG_LEVEL": "WARNING"})
    assert r.returncode == 0, r.stderr
    lines = {line.split()[0]: line for line in r.stdout.splitlines()[1:]}
    assert str(cfg) in lines["server.max_inflight"] and " 7 " in lines["server.max_inflight"]
    assert "env:XSYS_LOG_LEVEL" in lines["server.log_level"]
    assert "defaults" in lines["server.workers"]
    j = json.loads(xsys("config", "show", "--config", str(cfg), "--json",
                        socket=str(short_tmp / "x.sock"), env={"HOME": str(tmp_path)}).stdout)
    assert j["config"]["server"]["max_inflight"] == 7
    assert j["sources"]["server.max_inflight"] == str(cfg)


def test_config_show_reports_errors(tmp_path: Path, short_tmp: Path) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"server": {"max_inflight": "x"}}))
    r = xsys("config", "show", "--config", str(cfg), socket=str(short_tmp / "x.sock"),
             env={"HOME": str(tmp_path)})
    assert r.returncode == 1 and "server.max_inflight" in r.stderr


def test_serve_with_bad_config_exits_2(tmp_path: Path, short_tmp: Path) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"server": {"nope": 1}}))
    r = xsys("serve", "--config", str(cfg), socket=str(short_tmp / "x.sock"),
             env={"HOME": str(tmp_path)})
    assert r.returncode == 2 and "server.nope: unknown key" in r.stderr


def test_monitor_status_of_a_disabled_monitor_says_never(daemon_factory: Any) -> None:
    """No tick yet: ``last tick: never``, not an empty time and ``(0.0 ms)``."""
    d = daemon_factory({"monitor": {"enabled": False}})
    r = xsys("monitor", "status", socket=d.socket)
    assert r.returncode == 0, r.stderr
    assert "monitor:   stopped" in r.stdout
    assert "last tick: never\n" in r.stdout, r.stdout
    assert "monitor disabled" in d.log() and "monitor started" not in d.log()


def test_monitor_status_on_80_columns_never_cuts_a_time(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """A busy machine's states ("WARNING (critical pending) [silenced]") used to push
    SINCE past column 80, where the table cut it mid-time: STATE is the last column now."""
    import re

    from xsys.cli.monitor import render_status

    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    check = {"component": "filesystem:/var/lib", "state": "warning", "pending": "critical",
             "silenced": True, "value": 93.25, "unit": "percent", "threshold": 85.0,
             "changed_at": 1_796_000_000.0}
    r = {"running": True, "refresh_s": 5.0, "ticks": 3, "last_tick_at": 1_796_000_000.0,
         "last_tick_ms": 1.5, "firing": 1, "providers": ["console"], "silences": [{}],
         "queue": {"depth": 0, "capacity": 100, "in_flight": 0, "dropped": 0},
         "checks": [check, {**check, "component": "load", "unit": "load_per_cpu",
                            "value": 1.94, "threshold": 1.5}]}
    lines = render_status(r).splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    rows = [line for line in lines if line.startswith(("filesystem", "load"))]
    assert len(rows) == 2
    for line in rows:
        assert re.search(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\s", line), line
        assert "WARNING" in line


def test_monitor_history_fits_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """An alert row (a test alert, a repeat, a long component) fits 80 columns: only the
    deliveries, the last column, may be cut; the time and the status never are (the ID
    column, which no command takes, pushed every line past 80; it stays in --json)."""
    from xsys.cli.monitor import render_history

    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    alert = {"created_at": 1_796_000_000.0, "id": "53fe0db88b-4", "component": "network:eth0",
             "severity": "warning", "status": "firing", "repeat": True, "test": False,
             "value_text": "44.0 KiB/s", "silenced_by": None,
             "deliveries": [{"provider": "console", "status": "sent"},
                            {"provider": "webhook", "status": "failed"}]}
    lines = render_history({"alerts": [alert, {**alert, "test": True, "repeat": False}]}
                           ).splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    assert "firing (repeat)" in lines[1] and "firing (test)" in lines[2]
    assert all(line.startswith("2026-11-") and "44.0 KiB/s  con" in line
               for line in lines[1:]), lines
