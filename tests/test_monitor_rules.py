"""The alert state machine, table-driven with an injected clock (no sleeps): duration
(``for:``), hysteresis, repeat interval, alert-once mode, level changes, recovery, silences
and vanished components."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from xsys.alerts.model import HostContext
from xsys.monitor.rules import Policy, Rule, Thresholds

HOST = HostContext("testhost", ("192.0.2.10",), (0.1, 0.2, 0.3), 3600.0)

Step = tuple[float, float]  # (time s, value)
Event = tuple[float, str, str]  # (time, status, severity)


def run(th: Thresholds, policy: Policy, steps: list[Step],
        silenced_at: set[float] | None = None) -> list[Event]:
    """Feed ``steps`` to one component and list the notifications that would be sent
    (silenced ones prefixed with ``silenced:``)."""
    rule = Rule("cpu", "percent", th, policy)
    out: list[Event] = []
    for t, value in steps:
        silenced = bool(silenced_at and t in silenced_at)
        outcome = rule.evaluate("cpu", value, t, HOST, silenced=silenced)
        if outcome is not None:
            status = ("silenced:" if outcome.silenced else "") + outcome.alert.status
            out.append((t, status, outcome.alert.severity))
    return out


@dataclass(frozen=True)
class Case:
    name: str
    th: Thresholds
    policy: Policy
    steps: list[Step]
    expected: list[Event]
    silenced_at: frozenset[float] = frozenset()


T = Thresholds(warning=70.0, critical=90.0, duration=0.0, hysteresis=0.0)
T_FOR = Thresholds(warning=70.0, critical=90.0, duration=30.0, hysteresis=0.0)
T_HYST = Thresholds(warning=70.0, critical=90.0, duration=0.0, hysteresis=0.1)
LONG = Policy(repeat_interval=3600.0)

CASES = [
    Case("below the lines: nothing", T, LONG, [(0, 10), (10, 69.9), (20, 50)], []),
    Case("warning at once with duration 0", T, LONG, [(0, 10), (10, 70)],
         [(10, "firing", "warning")]),
    Case("critical directly", T, LONG, [(0, 95)], [(0, "firing", "critical")]),
    Case("recovery sends resolved with the fired severity", T, LONG,
         [(0, 75), (10, 80), (20, 40)],
         [(0, "firing", "warning"), (20, "resolved", "warning")]),
    Case("no resolved when send_resolved is off", T, Policy(3600.0, send_resolved=False),
         [(0, 75), (10, 40)], [(0, "firing", "warning")]),
    # duration, like Prometheus for:
    Case("duration: a spike shorter than for: never fires", T_FOR, LONG,
         [(0, 80), (10, 85), (20, 50), (30, 80), (40, 50)], []),
    Case("duration: fires once held for the duration", T_FOR, LONG,
         [(0, 80), (10, 80), (29, 80), (30, 80), (40, 80)], [(30, "firing", "warning")]),
    Case("duration: a dip resets the pending clock", T_FOR, LONG,
         [(0, 80), (20, 60), (25, 80), (50, 80), (55, 80)], [(55, "firing", "warning")]),
    Case("duration: climbing through warning fires warning, then critical when it held",
         T_FOR, LONG, [(0, 75), (20, 95), (30, 95), (40, 95), (50, 95)],
         [(30, "firing", "warning"), (50, "firing", "critical")]),
    Case("duration: straight to critical fires critical, not warning first", T_FOR, LONG,
         [(0, 95), (15, 95), (30, 95)], [(30, "firing", "critical")]),
    Case("duration: no resolved for what never fired", T_FOR, LONG,
         [(0, 95), (10, 10)], []),
    # level changes re-alert at once, whatever the repeat interval
    Case("level change up re-alerts at once", T, LONG, [(0, 75), (10, 95)],
         [(0, "firing", "warning"), (10, "firing", "critical")]),
    Case("level change down re-alerts at once (no duration wait)", T_FOR, LONG,
         [(0, 95), (30, 95), (40, 75), (41, 75)],
         [(30, "firing", "critical"), (40, "firing", "warning")]),
    Case("critical straight to ok resolves as critical", T, LONG, [(0, 95), (10, 5)],
         [(0, "firing", "critical"), (10, "resolved", "critical")]),
    # repeat interval (TinyMonitor cooldown)
    Case("repeat every repeat_interval while unchanged", T, Policy(60.0),
         [(0, 75), (30, 75), (59, 75), (60, 75), (90, 75), (120, 75)],
         [(0, "firing", "warning"), (60, "firing", "warning"), (120, "firing", "warning")]),
    Case("repeat_interval 0 repeats every tick", T, Policy(0.0),
         [(0, 75), (1, 75), (2, 75)],
         [(0, "firing", "warning"), (1, "firing", "warning"), (2, "firing", "warning")]),
    Case("a level change restarts the repeat clock", T, Policy(60.0),
         [(0, 75), (50, 95), (100, 95), (110, 95)],
         [(0, "firing", "warning"), (50, "firing", "critical"), (110, "firing", "critical")]),
    # alert once per incident (cooldown < 0)
    Case("alert once: no repeats", T, Policy(-1.0),
         [(0, 75), (100, 75), (10_000, 75)], [(0, "firing", "warning")]),
    Case("alert once: a level change still alerts", T, Policy(-1.0),
         [(0, 75), (10, 95), (20, 95), (30, 75)],
         [(0, "firing", "warning"), (10, "firing", "critical"), (30, "firing", "warning")]),
    Case("alert once: a new incident alerts again", T, Policy(-1.0),
         [(0, 75), (10, 75), (20, 10), (30, 75)],
         [(0, "firing", "warning"), (20, "resolved", "warning"), (30, "firing", "warning")]),
    # hysteresis (10 % of the threshold: warning clears under 63, critical under 81)
    Case("hysteresis: hovering at the line does not flap", T_HYST, LONG,
         [(0, 71), (10, 69), (20, 71), (30, 64), (40, 70.5)], [(0, "firing", "warning")]),
    Case("hysteresis: clears below the margin", T_HYST, LONG,
         [(0, 71), (10, 64), (20, 62.9)], [(0, "firing", "warning"), (20, "resolved", "warning")]),
    Case("hysteresis: critical holds inside its margin, then steps down", T_HYST, LONG,
         [(0, 91), (10, 85), (20, 82), (30, 80)],
         [(0, "firing", "critical"), (30, "firing", "warning")]),
    Case("without hysteresis the same values flap", T, Policy(0.0),
         [(0, 71), (10, 69), (20, 71)],
         [(0, "firing", "warning"), (10, "resolved", "warning"), (20, "firing", "warning")]),
    # silences
    Case("silenced firing is held back and sent when the silence ends", T, LONG,
         [(0, 75), (10, 75), (20, 75)],
         [(0, "silenced:firing", "warning"), (10, "silenced:firing", "warning"),
          (20, "firing", "warning")],
         frozenset({0, 10})),
    Case("silenced repeat does not reset the repeat clock", T, Policy(60.0),
         [(0, 75), (60, 75), (70, 75)],
         [(0, "firing", "warning"), (60, "silenced:firing", "warning"),
          (70, "firing", "warning")],
         frozenset({60})),
    Case("nothing notified, nothing resolved", T, LONG, [(0, 75), (10, 10)],
         [(0, "silenced:firing", "warning")], frozenset({0})),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_state_machine(case: Case) -> None:
    assert run(case.th, case.policy, case.steps, set(case.silenced_at)) == case.expected


def test_only_a_critical_line() -> None:
    th = Thresholds(warning=None, critical=1.0)
    assert run(th, LONG, [(0, 0), (1, 1), (2, 0)]) == [
        (1, "firing", "critical"), (2, "resolved", "critical")]


def test_alert_fields() -> None:
    rule = Rule("filesystem", "percent", Thresholds(80.0, 90.0, 10.0, 0.05), Policy(60.0))
    assert rule.evaluate("filesystem:/", 85.0, 1000.0, HOST) is None
    out = rule.evaluate("filesystem:/", 86.0, 1010.0, HOST)
    assert out is not None and not out.silenced
    a = out.alert
    assert (a.check, a.component, a.severity, a.status) == (
        "filesystem", "filesystem:/", "warning", "firing")
    assert (a.value, a.unit, a.threshold) == (86.0, "percent", 80.0)
    assert a.started_at == 1010.0 and a.created_at == 1010.0 and a.ended_at is None
    assert a.host.hostname == "testhost" and a.fingerprint and a.id
    assert a.title == "ALERT WARNING : filesystem:/"
    repeat = rule.evaluate("filesystem:/", 86.0, 1070.0, HOST)
    assert repeat is not None and repeat.alert.repeat
    assert repeat.alert.started_at == 1010.0 and repeat.alert.id != a.id
    assert repeat.alert.fingerprint == a.fingerprint
    resolved = rule.evaluate("filesystem:/", 10.0, 1080.0, HOST)
    assert resolved is not None
    r = resolved.alert
    assert (r.status, r.severity, r.started_at, r.ended_at, r.value) == (
        "resolved", "warning", 1010.0, 1080.0, 10.0)
    wire = r.to_wire()
    assert wire["status"] == "resolved" and wire["host"]["addresses"] == ["192.0.2.10"]


def test_status_rows_track_state_and_changed_at() -> None:
    th = Thresholds(70.0, 90.0, 30.0, 0.0)
    rule = Rule("cpu", "percent", th, LONG)
    rule.evaluate("cpu", 50.0, 0.0, HOST)
    row = rule.states["cpu"].to_wire(th)
    assert (row["state"], row["pending"], row["threshold"], row["changed_at"]) == (
        "ok", None, 70, 0)
    rule.evaluate("cpu", 80.0, 10.0, HOST)
    row = rule.states["cpu"].to_wire(th)
    assert (row["state"], row["pending"], row["value"]) == ("ok", "warning", 80.0)
    rule.evaluate("cpu", 80.0, 40.0, HOST)
    row = rule.states["cpu"].to_wire(th)
    assert (row["state"], row["pending"], row["changed_at"], row["started_at"]) == (
        "warning", None, 40.0, 40.0)
    assert row["last_sent_at"] == 40.0


def test_vanished_component_resolves() -> None:
    rule = Rule("filesystem", "percent", T, LONG)
    assert rule.evaluate("filesystem:/mnt", 95.0, 0.0, HOST) is not None
    assert rule.evaluate("filesystem:/", 10.0, 0.0, HOST) is None
    gone = rule.sweep({"filesystem:/"}, 10.0, HOST)
    assert [(o.alert.component, o.alert.status) for o in gone] == [
        ("filesystem:/mnt", "resolved")]
    assert set(rule.states) == {"filesystem:/"}


def test_reconfigure_keeps_state() -> None:
    rule = Rule("cpu", "percent", T, LONG)
    assert rule.evaluate("cpu", 75.0, 0.0, HOST) is not None
    rule.reconfigure("percent", Thresholds(60.0, 90.0), LONG)
    assert rule.evaluate("cpu", 75.0, 10.0, HOST) is None  # still firing, no repeat yet
    assert rule.states["cpu"].firing == "warning"


def test_critical_below_warning_is_checked_first() -> None:
    # TinyMonitor's order: critical first, so a critical line under the warning one wins
    th = Thresholds(warning=80.0, critical=1.0)
    assert run(th, LONG, [(0, 0.5), (1, 50), (2, 85)]) == [(1, "firing", "critical")]
