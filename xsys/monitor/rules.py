"""Threshold rules and the alert state machine of one check.

Per component the state goes ok -> warning -> critical and back. Each tick a value is
classified against the ``warning``/``critical`` thresholds with a hysteresis margin (a
level once reached is only left when the value falls ``hysteresis * threshold`` below its
line). A level fires when it has held for ``duration`` seconds (Prometheus ``for:``), kept
separately per level like two Prometheus rules: a value that climbs through warning to
critical fires warning once warning has held ``duration``, and critical once critical has.
Going down a level (critical -> warning) happens at once.

Notifications (``Alert`` values):
- firing: when a level starts firing, at once on every level change (up or down), and again
  every ``repeat_interval`` seconds while unchanged (negative = once per incident, the
  TinyMonitor ``cooldown: -1`` mode);
- resolved: when a firing component recovers (or disappears), if it had been notified and
  ``send_resolved``.
A silenced component still changes state, but its due notification is returned with
``silenced=True`` and not counted as sent: once the silence ends the pending notification
goes out at the next tick.

``TinyMonitorRule`` replaces this machine under ``monitor.compat: tinymonitor``: no
hysteresis, a ``duration`` per level episode, one cooldown per component covering level
changes, no resolved notifications (see its docstring).

Everything takes ``now`` (epoch seconds) from the caller, so tests drive it with a fake
clock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal, TypedDict

from xsys.alerts.model import SEVERITY_RANK, Alert, HostContext, fingerprint, new_alert_id

#: TinyMonitor's logger: its log lines (``RECOVERY: ...``) under its name, for the
#: ``log_file`` of ``compat: tinymonitor`` (``xsys.monitor.service``).
tinymonitor_log = logging.getLogger("tinymonitor")

Level = Literal["ok", "warning", "critical"]
_UP: tuple[Literal["warning", "critical"], ...] = ("warning", "critical")


class CheckStatus(TypedDict):
    """One component in ``monitor.status`` (``ComponentState.to_wire``): ``check``,
    ``component``, ``state`` (ok|warning|critical: the firing level), ``pending`` (a
    higher level waiting out ``duration_s``, or None), ``value`` in ``unit``,
    ``threshold`` (of the state; for ok the warning line), the ``warning`` and
    ``critical`` lines, ``duration_s``, ``changed_at`` (epoch s the state began),
    ``started_at`` (of the incident), ``last_sent_at``, ``updated_at``, ``silenced``."""

    check: str
    component: str
    state: Level
    pending: Level | None
    value: float | None
    unit: str
    threshold: float | None
    warning: float | None
    critical: float | None
    duration_s: float
    changed_at: float
    started_at: float | None
    last_sent_at: float | None
    updated_at: float
    silenced: bool


@dataclass(frozen=True)
class Thresholds:
    """Resolved thresholds of a check, in its unit: ``warning``/``critical`` (None = that
    level is off), ``duration`` (s), ``hysteresis`` (fraction of a threshold)."""

    warning: float | None
    critical: float | None
    duration: float = 0.0
    hysteresis: float = 0.0

    def of(self, level: str) -> float | None:
        """The threshold of ``level`` (None for ok)."""
        return self.warning if level == "warning" else self.critical if level == "critical" \
            else None

    def classify(self, value: float, held: Level) -> Level:
        """The level of ``value`` given the level currently ``held`` (hysteresis)."""
        for level in ("critical", "warning"):
            line = self.of(level)
            if line is None:
                continue
            if value >= line:
                return level
            margin = abs(line) * self.hysteresis
            if SEVERITY_RANK[held] >= SEVERITY_RANK[level] and value >= line - margin:
                return level
        return "ok"


@dataclass(frozen=True)
class Policy:
    """Notification policy: ``repeat_interval`` (s; negative = once per incident) and
    ``send_resolved``."""

    repeat_interval: float = 3600.0
    send_resolved: bool = True


@dataclass
class ComponentState:
    """The mutable state of one component (see the module docstring)."""

    check: str
    component: str
    unit: str
    level: Level = "ok"
    """Observed level (with hysteresis), before ``duration``."""
    since: dict[str, float] = field(default_factory=dict)
    """Level -> when the value was first continuously at or above it."""
    firing: Level = "ok"
    state_since: float = 0.0
    """When ``firing`` took its current value (or the first observation)."""
    started_at: float | None = None
    """When the current incident started firing."""
    notified: Level | None = None
    """The level last notified in this incident (None: nothing sent yet)."""
    last_sent_at: float | None = None
    value: float | None = None
    updated_at: float = 0.0
    silenced: bool = False

    def pending(self, duration: float, now: float) -> Level | None:
        """The observed level waiting out ``duration`` above the firing one, if any."""
        if SEVERITY_RANK[self.level] > SEVERITY_RANK[self.firing]:
            return self.level
        return None

    def to_wire(self, th: Thresholds) -> CheckStatus:
        """The ``monitor.status`` row: check, component, ``state`` (ok|warning|critical:
        the firing level), ``pending`` (level waiting for ``duration``, or None), value,
        unit, ``threshold`` (of the state, for ok the warning line), warning, critical,
        ``duration_s``, ``changed_at`` (epoch s the state began), started_at,
        last_sent_at, updated_at, silenced."""
        shown = self.firing if self.firing != "ok" else "warning"
        return {
            "check": self.check,
            "component": self.component,
            "state": self.firing,
            "pending": self.pending(th.duration, self.updated_at),
            "value": self.value,
            "unit": self.unit,
            "threshold": th.of(shown) if th.of(shown) is not None else th.critical,
            "warning": th.warning,
            "critical": th.critical,
            "duration_s": th.duration,
            "changed_at": self.state_since,
            "started_at": self.started_at,
            "last_sent_at": self.last_sent_at,
            "updated_at": self.updated_at,
            "silenced": self.silenced,
        }


@dataclass(frozen=True)
class Outcome:
    """A notification due for a component: the ``alert`` and whether a silence holds it
    back (``silenced``: record it, do not send it)."""

    alert: Alert
    silenced: bool = False


class Rule:
    """The thresholds, policy and per-component states of one check.

    ``evaluate(component, value, now, host, silenced)`` advances one component and returns
    the due ``Outcome`` or None; ``sweep(seen, now, host)`` resolves components that were
    not reported this tick (an unmounted filesystem, a removed interface).
    """

    def __init__(self, check: str, unit: str, thresholds: Thresholds,
                 policy: Policy) -> None:
        self.check = check
        self.unit = unit
        self.thresholds = thresholds
        self.policy = policy
        self.states: dict[str, ComponentState] = {}

    def reconfigure(self, unit: str, thresholds: Thresholds, policy: Policy) -> None:
        """Swap thresholds and policy, keeping the component states (config reload)."""
        self.unit = unit
        self.thresholds = thresholds
        self.policy = policy
        for st in self.states.values():
            st.unit = unit

    def evaluate(self, component: str, value: float, now: float, host: HostContext,
                 silenced: bool = False, text: str = "") -> Outcome | None:
        """Feed one value of ``component`` observed at ``now`` (``text``: the value as
        the collector words it, or empty); returns the due notification, if any."""
        st = self.states.get(component)
        if st is None:
            st = self.states[component] = ComponentState(self.check, component, self.unit,
                                                         state_since=now)
        th = self.thresholds
        st.value = value
        st.updated_at = now
        st.silenced = silenced
        st.level = th.classify(value, st.level)
        for level in _UP:
            if SEVERITY_RANK[st.level] >= SEVERITY_RANK[level]:
                st.since.setdefault(level, now)
            else:
                st.since.pop(level, None)
        eligible: Level = "ok"
        for level in ("critical", "warning"):
            began = st.since.get(level)
            if began is not None and now - began >= th.duration:
                eligible = level
                break
        # a firing level holds while the value stays at or above it, whatever the
        # duration says (a reload that lengthens ``duration`` must not resolve it)
        held: Level = st.firing if SEVERITY_RANK[st.level] >= SEVERITY_RANK[st.firing] \
            else st.level
        if SEVERITY_RANK[held] > SEVERITY_RANK[eligible]:
            eligible = held
        if eligible == "ok":
            return self._recover(st, value, now, host, silenced)
        if st.firing == "ok":
            st.started_at = now
            st.notified = None
            st.last_sent_at = None
        if eligible != st.firing:
            st.firing = eligible
            st.state_since = now
        repeat = self.policy.repeat_interval
        level_changed = st.notified != st.firing
        due = level_changed or (
            repeat >= 0 and st.last_sent_at is not None and now - st.last_sent_at >= repeat)
        if not due:
            return None
        alert = self._alert(st, value, now, host, "firing", repeat=not level_changed,
                            text=text)
        if not silenced:
            st.notified = st.firing
            st.last_sent_at = now
        return Outcome(alert, silenced)

    def sweep(self, seen: set[str], now: float, host: HostContext) -> list[Outcome]:
        """Forget components absent from ``seen``; firing ones resolve."""
        out: list[Outcome] = []
        for component in [c for c in self.states if c not in seen]:
            st = self.states.pop(component)
            outcome = self._recover(st, st.value or 0.0, now, host, st.silenced)
            if outcome is not None:
                out.append(outcome)
        return out

    def _recover(self, st: ComponentState, value: float, now: float, host: HostContext,
                 silenced: bool) -> Outcome | None:
        if st.firing == "ok":
            return None
        was_notified = st.notified is not None
        outcome = None
        if was_notified and self.policy.send_resolved:
            alert = self._alert(st, value, now, host, "resolved")
            outcome = Outcome(alert, silenced)
        st.firing = "ok"
        st.state_since = now
        st.started_at = None
        st.notified = None
        st.last_sent_at = None
        return outcome

    def _alert(self, st: ComponentState, value: float, now: float, host: HostContext,
               status: Literal["firing", "resolved"], repeat: bool = False,
               text: str = "", tinymonitor: bool = False) -> Alert:
        severity = st.firing if status == "firing" else (st.notified or st.firing)
        assert severity != "ok"
        return Alert(
            id=new_alert_id(),
            check=self.check,
            component=st.component,
            severity=severity,
            status=status,
            value=value,
            unit=self.unit,
            threshold=self.thresholds.of(severity),
            started_at=st.started_at if st.started_at is not None else now,
            host=host,
            created_at=now,
            ended_at=now if status == "resolved" else None,
            fingerprint=fingerprint(self.check, st.component, host.hostname),
            repeat=repeat,
            text=text,
            tinymonitor=tinymonitor,
        )


class TinyMonitorRule(Rule):
    """TinyMonitor's semantics for one check (``monitor.compat: tinymonitor``), as its
    ``Monitor.process_state`` and ``trigger_alert`` (src/tinymonitor/monitor.py):

    - the level of a reading is critical when ``value >= critical``, else warning when
      ``value >= warning`` (no hysteresis);
    - a new level (from ok or from the other level) starts its own ``duration`` clock;
      with ``duration <= 0`` it is due at once, else once it has held ``duration``
      seconds, and it stays due on every reading while it holds;
    - a due level is sent only when more than ``repeat_interval`` (``cooldown``) seconds
      passed since the component's last alert, whatever the level (the last alert time
      survives a recovery); a negative cooldown sends once per level episode (once per
      incident, and again when the level changes);
    - a recovery after a triggered level logs ``RECOVERY: <component> is back to
      normal``; nothing is sent (no resolved notifications).

    Silenced alerts are returned with ``silenced=True`` and not counted as sent.
    """

    def __init__(self, check: str, unit: str, thresholds: Thresholds,
                 policy: Policy) -> None:
        super().__init__(check, unit, thresholds, policy)
        #: Component -> epoch s of its last alert sent (TinyMonitor's ``last_alert``).
        self.last_alert: dict[str, float] = {}

    def level_of(self, value: float) -> Level:
        """The level of one reading (critical first, no hysteresis)."""
        th = self.thresholds
        if th.critical is not None and value >= th.critical:
            return "critical"
        if th.warning is not None and value >= th.warning:
            return "warning"
        return "ok"

    def evaluate(self, component: str, value: float, now: float, host: HostContext,
                 silenced: bool = False, text: str = "") -> Outcome | None:
        """Feed one reading; returns the alert due under TinyMonitor's rules, if any."""
        st = self.states.get(component)
        if st is None:
            st = self.states[component] = ComponentState(self.check, component, self.unit,
                                                         state_since=now)
        st.value = value
        st.updated_at = now
        st.silenced = silenced
        level = self.level_of(value)
        if level == "ok":
            if st.firing != "ok":
                tinymonitor_log.info("RECOVERY: %s is back to normal", component)
            if st.level != "ok" or st.firing != "ok":
                st.state_since = now
            st.level = st.firing = "ok"
            st.since.clear()
            st.started_at = None
            st.notified = None
            return None
        if level != st.level:  # a new episode at this level: its own duration clock
            st.level = level
            st.since = {level: now}
            if st.firing != "ok":
                st.firing = "ok"
                st.state_since = now
        began = st.since[level]
        if now - began < self.thresholds.duration and self.thresholds.duration > 0:
            return None
        if st.firing != level:
            st.firing = level
            st.state_since = now
            st.started_at = began
        last = self.last_alert.get(component, 0.0)
        cooldown = self.policy.repeat_interval
        due = last < began if cooldown < 0 else now - last > cooldown
        if not due:
            return None
        alert = self._alert(st, value, now, host, "firing", repeat=st.notified == level,
                            text=text, tinymonitor=True)
        if not silenced:
            self.last_alert[component] = now
            st.notified = level
            st.last_sent_at = now
        return Outcome(alert, silenced)

    def sweep(self, seen: set[str], now: float, host: HostContext) -> list[Outcome]:
        """Forget components absent from ``seen`` (an unmounted filesystem); nothing is
        sent, as TinyMonitor."""
        for component in [c for c in self.states if c not in seen]:
            del self.states[component]
        return []
