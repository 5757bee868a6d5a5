"""``xsys proc``: supervised worker groups: ``start NAME [-n N] [--restart POLICY] -- CMD
ARGS...`` (``proc.start``), ``ls`` (``proc.list``), ``status NAME``, ``stop NAME``,
``restart NAME`` (rolling), ``scale NAME N``, ``logs NAME [-f]``."""

from __future__ import annotations

import datetime as dt
import os
import shlex
import sys
import time
from typing import Any

import click

from xsys.cli.common import (
    CliState,
    fail,
    human_bytes,
    human_seconds,
    json_option,
    method_command,
    pass_state,
    table,
)
from xsys.cli.lazy import XsysGroup

Result = dict[str, Any]


def _exit_text(p: Result) -> str:
    if p.get("last_signal"):
        return str(p["last_signal"])
    code = p.get("last_exit_code")
    return "" if code is None else f"code {code}"


def _command(g: Result) -> str:
    return shlex.join(g["command"]).replace("\n", "\\n")


def render_group(g: Result) -> str:
    """``proc.status`` (and start/stop/restart/scale): the group's line, then one row per
    instance (id, pid, state, restarts, uptime, CPU, RSS, last exit)."""
    head = (f"{g['name']}: {str(g['state']).upper()}  {g['ready']}/{g['desired']} ready"
            f"  uid {g['uid']}  restart {g['restart']}  {_command(g)}")
    if g.get("error"):
        head += f"\n  error: {g['error']}"
    rows = [[p["id"], p["pid"] or "", p["state"], p["restarts"],
             human_seconds(p["uptime_s"]),
             "" if p["cpu_percent"] is None else f"{p['cpu_percent']:.1f}%",
             human_bytes(p["rss_bytes"]), _exit_text(p)] for p in g["instances"]]
    if not rows:
        return head
    return head + "\n" + table(rows, ["ID", "PID", "STATE", "RESTARTS", "UPTIME", "CPU",
                                      "RSS", "LAST EXIT"], right=(0, 1, 3, 4, 5, 6))


def render_list(r: Result) -> str:
    """``proc.list``: one row per group."""
    if not r["groups"]:
        return "no supervised groups (xsys proc start NAME -- CMD ...)"
    rows = [[g["name"], g["state"].upper(), f"{g['ready']}/{g['desired']}",
             g["restarts"], g["uid"], g["source"], _command(g)]
            for g in r["groups"]]
    return table(rows, ["NAME", "STATE", "READY", "RESTARTS", "UID", "SOURCE", "COMMAND"],
                 right=(3, 4))


def render_line(line: Result) -> str:
    """One log line: time, instance, stream (``!`` for stderr) and the text."""
    when = dt.datetime.fromtimestamp(line["at"]).strftime("%H:%M:%S")
    mark = "!" if line["stream"] == "stderr" else " "
    return f"{when} [{line['instance']}]{mark} {line['line']}"


def render_logs(r: Result) -> str:
    """``proc.logs``: the lines, oldest first."""
    return "\n".join(render_line(line) for line in r["lines"]) or "(no output yet)"


def failed_exit_code(g: Result) -> int:
    """Exit 1 when the group shown failed."""
    return 1 if g.get("state") == "failed" else 0


@click.group("proc", cls=XsysGroup)
def proc_group() -> None:
    """Supervised worker processes: start, list, status, stop, restart, scale, logs."""


@method_command(proc_group, "start", "proc.start", render_group, exit_code=failed_exit_code)
@click.argument("name")
@click.argument("command", nargs=-1, required=True)
@click.option("-n", "--instances", type=int, default=1, show_default=True,
              help="Copies to run (0 = the CPU count).")
@click.option("--restart", type=click.Choice(["never", "on-failure", "always"]),
              default="on-failure", show_default=True, help="When to start an exited one.")
@click.option("--cwd", default=None, help="Working directory (default: the current one).")
@click.option("-e", "--env", "env", multiple=True, metavar="KEY=VALUE",
              help="An environment variable (repeatable); PATH is the caller's.")
@click.option("--ready-port", type=int, default=None,
              help="Ready when port + XSYS_WORKER_ID accepts TCP.")
@click.option("--ready-after", type=float, default=None, help="Ready after this many s.")
@click.option("--max-memory", "max_memory_bytes", type=int, default=None,
              help="RSS limit per instance, bytes.")
@click.option("--max-cpu", "max_cpu_percent", type=float, default=None,
              help="CPU limit per instance, percent of one core.")
@click.option("--enforce", is_flag=True, help="Restart an instance over a limit.")
@click.option("--max-restarts", type=int, default=None,
              help="Restarts within --restart-window before the group fails.")
@click.option("--restart-window", type=float, default=None, help="Seconds.")
@click.option("--stop-signal", default=None, help="Signal asking to stop (TERM).")
@click.option("--stop-timeout", type=float, default=None, help="Seconds before SIGKILL.")
@click.option("--log-dir", default=None, help="Also write the output to files here.")
@click.option("--detach", is_flag=True, help="Leave running when the daemon stops.")
def start(name: str, command: tuple[str, ...], instances: int, restart: str,
          cwd: str | None, env: tuple[str, ...], ready_port: int | None,
          ready_after: float | None, max_memory_bytes: int | None,
          max_cpu_percent: float | None, enforce: bool, max_restarts: int | None,
          restart_window: float | None, stop_signal: str | None,
          stop_timeout: float | None, log_dir: str | None, detach: bool) -> Result:
    """Start NAME: run the command after -- (CMD and its ARGS) as a supervised group, as
    you."""
    variables = {"PATH": os.environ.get("PATH", "")}
    for item in env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--env expects KEY=VALUE, got {item!r}")
        variables[key] = value
    return {"name": name, "command": list(command), "instances": instances,
            "restart": restart, "cwd": os.path.abspath(cwd or os.getcwd()),
            "env": variables, "ready_port": ready_port, "ready_after_s": ready_after,
            "max_memory_bytes": max_memory_bytes, "max_cpu_percent": max_cpu_percent,
            "enforce": enforce, "max_restarts": max_restarts,
            "restart_window_s": restart_window, "stop_signal": stop_signal,
            "stop_timeout_s": stop_timeout,
            "log_dir": os.path.abspath(log_dir) if log_dir else None, "detach": detach}


@method_command(proc_group, "ls", "proc.list", render_list)
def ls() -> None:
    """Every supervised group: state, ready instances, restarts, owner, command."""


@method_command(proc_group, "status", "proc.status", render_group,
                exit_code=failed_exit_code)
@click.argument("name")
def status(name: str) -> None:
    """NAME's instances: pid, state, restarts, uptime, CPU, RSS, last exit."""


@method_command(proc_group, "stop", "proc.stop", render_group)
@click.argument("name")
@click.option("--remove", is_flag=True, help="Also forget it (else it stays listed).")
def stop(name: str, remove: bool) -> None:
    """Stop NAME (its stop signal, SIGKILL after its timeout)."""


@method_command(proc_group, "restart", "proc.restart", render_group,
                exit_code=failed_exit_code)
@click.argument("name")
def restart_cmd(name: str) -> None:
    """Rolling restart of NAME: one instance at a time, each once the last is ready."""


@method_command(proc_group, "scale", "proc.scale", render_group)
@click.argument("name")
@click.argument("instances", type=int)
def scale(name: str, instances: int) -> None:
    """Run INSTANCES copies of NAME (0 = the CPU count)."""


@proc_group.command("logs")
@click.argument("name")
@click.option("-n", "--lines", type=int, default=100, show_default=True,
              help="Newest lines at most.")
@click.option("-i", "--instance", type=int, default=None, help="Only this instance.")
@click.option("--stream", type=click.Choice(["stdout", "stderr"]), default=None)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines (Ctrl-C).")
@click.option("--interval", type=float, default=0.5, show_default=True,
              help="Seconds between polls with -f.")
@json_option
@pass_state
def logs(state: CliState, name: str, lines: int, instance: int | None,
         stream: str | None, follow: bool, interval: float) -> None:
    """The last output lines of NAME's instances (from the daemon's bounded rings)."""
    params: Result = {"name": name, "lines": lines, "instance": instance, "stream": stream}
    with state.connected() as client:
        result = state.call_on(client, "proc.logs", params)
        if not follow:
            state.emit(result, render_logs)
            return
        try:
            while True:
                for line in result["lines"]:
                    state.emit_line(line, render_line)
                sys.stdout.flush()
                after = max(result["last_seq"], params.get("after_seq", 0))
                params.update(after_seq=after, lines=100_000)
                time.sleep(interval)
                result = state.call_on(client, "proc.logs", params)
        except KeyboardInterrupt:
            pass
