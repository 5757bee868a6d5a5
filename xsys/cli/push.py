"""``xsys push status``: push mode's targets (``push.status``; also the group's own
output)."""

from __future__ import annotations

import time
from typing import Any

import click

from xsys.cli.common import method_command, table
from xsys.cli.lazy import XsysGroup
from xsys.units import format_bytes, format_duration


def render_status(r: dict[str, Any]) -> str:
    """``push.status``: one row per target (state and for how long, buffered, sent,
    dropped, reconnects, last error), or a line when none is configured."""
    if not r["targets"]:
        return "no push targets configured (config key: push.targets)"
    now = time.time()
    rows = []
    for t in r["targets"]:
        state = (f"connected {format_duration(now - t['since'])}" if t["connected"]
                 else "disconnected")
        rows.append([t["target"], t["format"], state,
                     f"{t['buffered']} ({format_bytes(t['buffered_bytes'], iec=True)})", t["sent"],
                     t["dropped"], t["reconnects"], t["last_error"] or ""])
    return table(rows, ["TARGET", "FORMAT", "STATE", "BUFFERED", "SENT", "DROPPED",
                        "RECONNECTS", "LAST ERROR"], right=(4, 5, 6))


def disconnected_exit_code(r: dict[str, Any]) -> int:
    """Exit 1 when a target is not connected."""
    return 1 if any(not t["connected"] for t in r["targets"]) else 0


@click.group("push", cls=XsysGroup, invoke_without_command=True)
@click.pass_context
def push_group(ctx: click.Context) -> None:
    """Push mode: the backends this daemon streams to (status is the default)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(status)


@method_command(push_group, "status", "push.status", render_status,
                exit_code=disconnected_exit_code)
def status() -> None:
    """Each target: connected or not, buffered, sent, dropped, reconnects, last error."""
