"""``xsys watch PATH...``: stream file changes from the daemon until Ctrl-C."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import click

from xsys.cli.common import CliState, json_option, pass_state, table
from xsys.cli.lazy import XsysCommand
from xsys.units import format_time

EVENT_TYPES = ("created", "modified", "deleted", "moved")


def format_event(event: dict[str, Any]) -> str:
    """``2026-11-30T12:00:01.234  modified  /path`` (local ISO-8601; ``src -> dest`` for
    moves, ``/`` after dirs)."""
    stamp = format_time(event.get("ts") or time.time(), timespec="milliseconds")
    slash = "/" if event.get("is_dir") else ""
    what = f"{event['path']}{slash}"
    if event.get("dest_path"):
        what += f" -> {event['dest_path']}{slash}"
    return f"{stamp}  {event['type']:<8}  {what}"


def _events_option(value: str | None) -> list[str] | None:
    if not value:
        return None
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in chosen if v not in EVENT_TYPES]
    if bad:
        raise click.BadParameter(f"unknown event type {bad[0]!r} (choose from "
                                 f"{', '.join(EVENT_TYPES)})")
    return chosen


@click.command("watch", cls=XsysCommand)
@click.argument("paths", nargs=-1)
@click.option("-r", "--recursive", is_flag=True, help="Watch subdirectories too.")
@click.option("--ignore", "ignore", multiple=True, metavar="GLOB",
              help="gitignore-style pattern to leave out (repeatable).")
@click.option("--pattern", "patterns", multiple=True, metavar="GLOB",
              help="Only paths matching this gitignore-style pattern (repeatable).")
@click.option("--events", "events", default=None, metavar="TYPES",
              help="Comma-separated subset of created,modified,deleted,moved.")
@click.option("--debounce-ms", type=click.IntRange(min=0), default=0, show_default=True,
              help="Merge repeated events for one path within this window.")
@click.option("--include-dirs", is_flag=True, help="Report directories themselves too.")
@click.option("--list", "list_only", is_flag=True,
              help="Show the daemon's live watch subscriptions and exit.")
@json_option
@pass_state
def watch_command(state: CliState, paths: tuple[str, ...], recursive: bool,
                  ignore: tuple[str, ...], patterns: tuple[str, ...], events: str | None,
                  debounce_ms: int, include_dirs: bool, list_only: bool) -> None:
    """Print file changes under PATHS as they happen, until Ctrl-C.

    One line per event (``--json``: one JSON object per line). When events were lost
    (kernel queue overflow, slow reader) a notice goes to stderr: rescan then. Ends by
    itself when every watched directory is deleted.
    """
    if list_only:
        state.emit(state.call("watch.list"), render_list)
        return
    if not paths:
        raise click.UsageError("give at least one PATH to watch (or --list)")
    params: dict[str, Any] = {
        "paths": [os.path.abspath(os.path.expanduser(p)) for p in paths],
        "recursive": recursive, "debounce_ms": debounce_ms, "include_dirs": include_dirs,
    }
    if ignore:
        params["ignore_patterns"] = list(ignore)
    if patterns:
        params["patterns"] = list(patterns)
    chosen = _events_option(events)
    if chosen:
        params["events"] = chosen
    with state.connected(timeout=None) as client:
        sub = client.subscribe("watch.add", params)
        state.hint(f"watching {', '.join(params['paths'])} ({sub.id}); Ctrl-C to stop")
        try:
            for note in sub:
                if _show(state, note):
                    break
        except KeyboardInterrupt:
            pass
        finally:
            sub.close()


def _show(state: CliState, note: dict[str, Any]) -> bool:
    """Print one notification; True when the subscription has ended."""
    method = note.get("method")
    if method == "watch.overflow":
        reason = note.get("reason", "slow reader")
        amount = note.get("dropped")
        qualifier = "" if note.get("exact", True) else "at least "
        click.echo(f"xsys: {qualifier}{amount} events lost ({reason}); rescan to resync",
                   err=True)
        # JSON readers also get the loss in the stream; people have the line above
        state.emit_line({"overflow": {k: v for k, v in note.items() if k != "method"}},
                        lambda _: None)
        return False
    if method != "watch.event":
        return False
    for event in note.get("events", []):
        state.emit_line(event, format_event)
    sys.stdout.flush()
    if note.get("final"):
        click.echo("xsys: the watched directory is gone; subscription ended", err=True)
        return True
    return False


def render_list(r: dict[str, Any]) -> str:
    """``watch.list``: one row per live subscription."""
    rows = [[s["subscription"], ", ".join(s["paths"]), s["recursive"], s["debounce_ms"],
             s["delivered"], s["overflows"]] for s in r["subscriptions"]]
    return table(rows, ["SUBSCRIPTION", "PATHS", "RECURSIVE", "DEBOUNCE_MS", "DELIVERED",
                        "OVERFLOWS"], right=(3, 4, 5))
