"""``xsys monitor ...``: check states, alert history, test alerts, silences and a live alert
stream; and ``xsys config import-tinymonitor FILE``."""

from __future__ import annotations

import json
import re
import sys
from functools import partial
from pathlib import Path
from typing import Any

import click

from xsys.alerts.config import PROVIDER_NAMES
from xsys.cli.common import (
    Call,
    CliState,
    fail,
    json_option,
    method_command,
    pairs,
    pass_state,
    table,
)
from xsys.cli.lazy import XsysCommand, XsysGroup
from xsys.units import format_time, format_value

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """``"90"`` / ``"90s"`` / ``"15m"`` / ``"2h"`` / ``"1d"`` / ``"1w"`` -> seconds."""
    m = _DURATION_RE.match(text.lower())
    if not m:
        raise click.BadParameter(f"expected a duration like 90s, 15m, 2h or 1d, got {text!r}")
    return float(m.group(1)) * _DURATION_UNITS[m.group(2)]


def _when(ts: Any) -> str:
    return format_time(ts)


def _value(v: Any, unit: str) -> str:
    return "" if v is None else format_value(float(v), unit)


Result = dict[str, Any]


@click.group("monitor", cls=XsysGroup)
def monitor_group() -> None:
    """Threshold checks and alerts: states, history, test alerts, silences, live stream."""


# ------------------------------------------------------------------------- renderers


def render_status(r: Result, firing: bool = False) -> str:
    """``monitor.status``: the monitor's own state, then one row per check (``firing``:
    only those not ok)."""
    q = r["queue"]
    head = pairs([
        ("monitor", ("running" if r["running"] else "stopped")
         + f", every {r['refresh_s']:g}s, {r['ticks']} ticks"),
        ("last tick", f"{_when(r['last_tick_at'])} ({(r['last_tick_ms'] or 0):.1f} ms)"
         if r["last_tick_at"] else "never"),
        ("firing", r["firing"]),
        ("providers", ", ".join(r["providers"]) or "none"),
        ("queue", f"{q['depth']}/{q['capacity']} queued, {q['in_flight']} in flight, "
                  f"{q['dropped']} dropped"),
        ("silences", len(r["silences"])),
    ])
    rows = []
    for c in r["checks"]:
        if firing and c["state"] == "ok" and not c["pending"]:
            continue
        state = c["state"].upper() + (f" ({c['pending']} pending)" if c["pending"] else "")
        if c["silenced"]:
            state += " [silenced]"
        rows.append([c["component"], _value(c["value"], c["unit"]),
                     _value(c["threshold"], c["unit"]), _when(c["changed_at"]), state])
    # STATE last: the one cell of free length ("WARNING (critical pending) [silenced]"),
    # so a narrow terminal cuts its tail and never a time
    checks = table(rows, ["COMPONENT", "VALUE", "THRESHOLD", "SINCE", "STATE"], right=(1, 2))
    return f"{head}\n\n{checks}"


def status_notes(r: Result) -> list[str]:
    """``monitor.status``: the collectors that failed, for stderr."""
    return [f"collector {check} failed: {message}" for check, message in r["errors"].items()]


def render_checks(r: Result) -> str:
    """``monitor.checks``: one row per check with its thresholds."""
    rows = []
    for c in r["checks"]:
        if not c["enabled"]:
            rows.append([c["check"], "no", "", "", "", ""])
            continue
        unit = c["unit"]
        rows.append([c["check"], "yes", _value(c["warning"], unit), _value(c["critical"], unit),
                     f"{c['duration_s']:g}s", len(c["components"])])
    return table(rows, ["CHECK", "ENABLED", "WARNING", "CRITICAL", "FOR", "COMPONENTS"],
                 right=(2, 3, 4, 5))


def _deliveries(row: dict[str, Any]) -> str:
    if row.get("silenced_by"):
        return f"silenced ({row['silenced_by']})"
    return ", ".join(f"{d['provider']}:{d['status']}" for d in row["deliveries"]) or "-"


def render_history(r: Result) -> str:
    """``monitor.history``: one row per alert with each provider's delivery result."""
    # no ID column (no command takes one; --json has it): with it no row fit 80 columns
    rows = [[_when(a["created_at"]), a["component"], a["severity"].upper(),
             a["status"] + (" (repeat)" if a["repeat"] else "") + (" (test)" if a["test"] else ""),
             a["value_text"], _deliveries(a)] for a in r["alerts"]]
    return table(rows, ["TIME", "COMPONENT", "SEVERITY", "STATUS", "VALUE", "DELIVERIES"])


def render_test(r: Result) -> str:
    """``monitor.test``: one row per provider, or a line when none is enabled."""
    rows = [[x["provider"], "ok" if x["ok"] else "FAILED", f"{x['duration_ms']:.0f} ms",
             x["error"] or ""] for x in r["results"]]
    if not rows:
        return "no provider is enabled"
    return table(rows, ["PROVIDER", "RESULT", "TIME", "ERROR"], right=(2,))


def failed_exit_code(r: Result) -> int:
    """``monitor test`` exits 1 when a provider failed."""
    return 1 if any(not x["ok"] for x in r["results"]) else 0


def render_silences(r: Result) -> str:
    """``monitor.silences``: one row per active silence."""
    rows = [[s["id"], s["check"] or "*", s["component"] or "*", _when(s["ends_at"]),
             s["comment"]] for s in r["silences"]]
    return table(rows, ["ID", "CHECK", "COMPONENT", "UNTIL", "COMMENT"])


def render_silence(r: Result) -> str:
    """``monitor.silence``: the new silence."""
    return (f"{r['id']}: check={r['check'] or '*'} component={r['component'] or '*'} "
            f"until {_when(r['ends_at'])}")


def render_unsilence(r: Result) -> str:
    """``monitor.unsilence``: the ids removed."""
    return "removed " + ", ".join(r["removed"])


def render_alert(alert: Result) -> str:
    """One alert of ``monitor.subscribe`` as a line (``TEST`` in front of the status for
    a ``monitor.test`` alert)."""
    status = ("TEST " if alert.get("test") else "") + alert["status"].upper()
    return (f"{_when(alert['created_at'])}  {status:8}  "
            f"{alert['severity'].upper():8}  {alert['component']}  "
            f"{alert['value_text']}  ({alert['host']['hostname']})")


# -------------------------------------------------------------------------- commands


@method_command(monitor_group, "status", render=render_status, notes=status_notes)
@click.option("--firing", is_flag=True, help="Only the checks that are not ok.")
def status(firing: bool) -> Call:
    """Every check with its state, value, threshold and since when."""
    return Call("monitor.status", {}, partial(render_status, firing=firing))


@method_command(monitor_group, "checks", "monitor.checks", render_checks)
def checks() -> None:
    """The configured checks and their thresholds."""


@method_command(monitor_group, "history", "monitor.history", render_history)
@click.option("--limit", "-n", type=click.IntRange(1, 100_000), default=20, show_default=True)
@click.option("--check", default=None, help="Only this check (cpu, filesystem, ...).")
@click.option("--component", default=None, help="Only this component (filesystem:/, ...).")
def history(**params: Any) -> None:
    """Recent alerts, newest first, with each provider's delivery result."""


@method_command(monitor_group, "test", "monitor.test", render_test, exit_code=failed_exit_code)
@click.option("--provider", "-p", type=click.Choice(PROVIDER_NAMES), default=None,
              help="Only this provider (default: every enabled one).")
def test(**params: Any) -> None:
    """Send a test alert through the providers and show each one's result (exit 1 when
    one failed)."""


def _duration_option(_ctx: click.Context, param: click.Parameter, value: str) -> float:
    """``--duration`` as positive seconds (``parse_duration``); a usage error (exit 2)
    otherwise."""
    seconds = parse_duration(value)
    if seconds <= 0:
        raise click.BadParameter(f"must be positive, got {value!r}", param=param)
    return seconds


@method_command(monitor_group, "silence")
@click.option("--check", default=None, help="Check name or glob (cpu, filesystem, ...).")
@click.option("--component", default=None, help="Component name or glob (filesystem:/var*).")
@click.option("--duration", "-d", "duration_s", default="1h", show_default=True,
              callback=_duration_option, help="How long: 90s, 15m, 2h, 1d or 1w.")
@click.option("--comment", "-c", default="", help="Why.")
@click.option("--list", "list_only", is_flag=True, help="List the active silences instead.")
def silence(check: str | None, component: str | None, duration_s: float, comment: str,
            list_only: bool) -> Call:
    """Hold back the alerts of a check or component for a while (states still change).

    An unknown check is refused (exit 2) with the list of valid ones.
    """
    if list_only:
        return Call("monitor.silences", {}, render_silences)
    if not check and not component:
        raise click.UsageError("give --check and/or --component (or --list to see the "
                               "active silences)")
    return Call("monitor.silence", {"check": check, "component": component,
                                    "duration_s": duration_s, "comment": comment},
                render_silence)


@method_command(monitor_group, "unsilence", "monitor.unsilence", render_unsilence)
@click.argument("silence_id", required=False)
@click.option("--check", default=None, help="Remove the silences with this check pattern.")
@click.option("--component", default=None,
              help="Remove the silences with this component pattern.")
def unsilence(silence_id: str | None, check: str | None, component: str | None) -> Result:
    """Remove a silence by id, or the silences of a check/component pattern."""
    if silence_id is None and check is None and component is None:
        raise click.UsageError("give a silence id, --check or --component")
    return {"silence": silence_id, "check": check, "component": component}


@monitor_group.command("watch")
@click.option("--check", default=None, help="Only checks matching this glob.")
@click.option("--component", default=None, help="Only components matching this glob.")
@click.option("--severity", type=click.Choice(["warning", "critical"]), default=None,
              help="Only this severity and above.")
@json_option
@pass_state
def watch(state: CliState, check: str | None, component: str | None,
          severity: str | None) -> None:
    """Print alerts as they are sent, until Ctrl-C (one line each, or JSON lines)."""
    params = {k: v for k, v in (("check", check), ("component", component),
                                ("severity", severity)) if v is not None}
    with state.connected(timeout=None) as client:
        sub = client.subscribe("monitor.subscribe", params)
        state.hint(f"watching alerts ({sub.id}); Ctrl-C to stop")
        try:
            for event in sub:
                if event.get("method") == "monitor.overflow":
                    click.echo(f"... {event.get('dropped')} alerts dropped (slow reader)",
                               err=True)
                    continue
                alert = event.get("alert")
                if not isinstance(alert, dict):
                    continue
                state.emit_line(alert, render_alert)
                sys.stdout.flush()
        except KeyboardInterrupt:
            pass
        finally:
            sub.close()


#: What ``import-tinymonitor`` says the imported config keeps of TinyMonitor (stderr).
TINYMONITOR_SEMANTICS = """\
The imported config keeps "compat": "tinymonitor", so xsys keeps TinyMonitor's semantics:
  kept: thresholds, durations and refresh as given, TinyMonitor's defaults for missing keys
  kept: cooldown per component, covering level changes too (as repeat_interval);
        a negative cooldown alerts once per incident
  kept: no resolved notifications (a recovery is a log line), no hysteresis
  kept: components CPU, MEMORY, DISK:<mountpoint>, LOAD, I/O, REBOOT and their value texts
  kept: the webhook, ntfy, Gotify, Google Chat and e-mail bodies and headers
        (xsys's extra webhook fields only under a top-level "xsys" object)
  kept: levels/rules routing per provider; log_file (default tinymonitor.log) and its
        line format
not kept:
  - ip_public is "N/A" unless alerts.public_ip_url is set (TinyMonitor asked
    api.ipify.org on every alert)
  - failed deliveries are retried and a failing provider is paused (circuit breaker);
    TinyMonitor tried once
  - the log file holds TinyMonitor's own lines only, not every library's records
  - xsys's own checks (swap, inodes, network, boot detection) stay off
Remove "compat" (or set it to "xsys") for xsys's behaviour: resolved notifications,
hysteresis, level changes sent at once, xsys's message bodies (docs/tinymonitor.md).
"""


@click.command("import-tinymonitor", cls=XsysCommand)
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Write the result to this file instead of stdout.")
def import_tinymonitor(file: str, output: str | None) -> None:
    """Print the xsys equivalent (JSON) of a TinyMonitor config.json.

    Keys TinyMonitor does not know are reported on stderr and left out, followed by which
    TinyMonitor semantics the result keeps and which not; the result is validated as an
    xsys config before it is printed (exit 1 on an invalid value).
    """
    from xsys.config import Config, ConfigError, from_dict, looks_like_tinymonitor
    from xsys.monitor.config import convert_tinymonitor

    try:
        data = json.loads(Path(file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        fail(f"{file}: {exc}")
    if not isinstance(data, dict) or not looks_like_tinymonitor(data):
        fail(f"{file}: not a TinyMonitor config (expected keys such as refresh, cooldown, "
             "cpu, alerts)")
        return
    converted = convert_tinymonitor(data,
                                    warn=lambda m: click.echo(f"warning: {m}", err=True))
    try:
        from_dict(Config, converted)
    except ConfigError as exc:
        fail(f"{file}: the converted config is invalid: {exc}")
    click.echo(TINYMONITOR_SEMANTICS, err=True, nl=False)
    text = json.dumps(converted, indent=2) + "\n"
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)
