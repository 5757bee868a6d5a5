"""``xsys checks``: the service checks' states (``checks.status``, also the group's own
output), ``run NAME`` (``checks.run``) and ``watch`` (``checks.subscribe``)."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from xsys.cli.common import (
    CliState,
    json_option,
    method_command,
    pass_state,
    table,
)
from xsys.cli.lazy import XsysGroup
from xsys.units import format_duration, format_time

Result = dict[str, Any]


def _when(ts: Any) -> str:
    return format_time(ts)


def _state(row: Result) -> str:
    return str(row["state"]).upper() + (" (critical)" if row["critical"] else "")


def _latency(row: Result) -> str:
    ms = row.get("latency_ms")
    return "" if ms is None else f"{ms:.1f} ms"


def render_status(r: Result) -> str:
    """``checks.status``: one row per check (name, probe, state, for how long, latency,
    restarts, last error), or a line when none is configured."""
    if not r["checks"]:
        return "no service checks configured (config key: checks)"
    now = time.time()
    rows = [[c["name"], c["probe"], _state(c), format_duration(now - c["since"]),
             _latency(c), c["restarts"], c["last_error"] or ""] for c in r["checks"]]
    return table(rows, ["CHECK", "PROBE", "STATE", "FOR", "LATENCY", "RESTARTS", "ERROR"],
                 right=(3, 4, 5))


def render_check(row: Result) -> str:
    """``checks.run``: the check's row after the probe."""
    return render_status({"checks": [row]})


def render_change(event: Result) -> str:
    """One ``checks.change`` notification as a line."""
    row = event["check"]
    error = f"  {row['last_error']}" if row.get("last_error") and row["state"] != "up" \
        else ""
    return (f"{_when(row['since'])}  {row['name']}  {str(event['previous']).upper()} -> "
            f"{_state(row)}{error}")


def down_exit_code(r: Result) -> int:
    """``checks status`` and ``checks run`` exit 1 when a check shown is not up."""
    rows = r.get("checks", [r])
    return 1 if any(c["state"] != "up" for c in rows) else 0


@click.group("checks", cls=XsysGroup, invoke_without_command=True)
@click.pass_context
def checks_group(ctx: click.Context) -> None:
    """Service checks: states (the default), run one now, watch state changes."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(status)


@method_command(checks_group, "status", "checks.status", render_status,
                exit_code=down_exit_code)
def status() -> None:
    """Every check with its state, since when, latency, restarts and last error (exit 1
    when one is not up)."""


@method_command(checks_group, "run", "checks.run", render_check, exit_code=down_exit_code)
@click.argument("name")
def run(name: str) -> None:
    """Probe the check NAME now and show its state (exit 1 when it is not up)."""


@checks_group.command("watch")
@click.option("--name", default=None, help="Only checks whose name matches this glob.")
@json_option
@pass_state
def watch(state: CliState, name: str | None) -> None:
    """Print state changes as they happen, until Ctrl-C (one line each, or JSON lines)."""
    params = {"name": name} if name is not None else {}
    with state.connected(timeout=None) as client:
        sub = client.subscribe("checks.subscribe", params)
        state.hint(f"watching service checks ({sub.id}); Ctrl-C to stop")
        try:
            for event in sub:
                if event.get("method") == "checks.overflow":
                    click.echo(f"... {event.get('dropped')} changes dropped (slow reader)",
                               err=True)
                    continue
                if not isinstance(event.get("check"), dict):
                    continue
                state.emit_line({"check": event["check"], "previous": event.get("previous")},
                                render_change)
                sys.stdout.flush()
        except KeyboardInterrupt:
            pass
        finally:
            sub.close()
