"""The ``xsys`` command line (Click): ``serve`` runs the daemon; every other command is a
thin client: parse, call the daemon, render a table (or ``--json``). How a command is bound
to a daemon method: ``xsys.cli.common.method_command``."""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import click

from xsys import __version__
from xsys.cli.checks import checks_group
from xsys.cli.common import CliState, json_option, method_command, pass_state, table
from xsys.cli.config import config_group
from xsys.cli.fs import fs_group
from xsys.cli.http import http_group
from xsys.cli.monitor import import_tinymonitor, monitor_group
from xsys.cli.sys import sys_group
from xsys.cli.watch import watch_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--socket", "socket_path", envvar="XSYS_SOCKET", default=None,
              help="Daemon socket (default: $XSYS_SOCKET, then docs/protocol.md's defaults).")
@click.option("--timeout", type=float, default=30.0, show_default=True,
              help="Seconds to wait for each answer.")
@click.option("--local", is_flag=True,
              help="Run sys and fs commands in this process with your own rights, without "
                   "the daemon.")
@click.option("--root", "roots", multiple=True, type=click.Path(file_okay=False),
              help="With --local: confine fs commands to this directory, as the daemon's "
                   "fs.roots do (repeatable).")
@click.version_option(__version__, prog_name="xsys")
@click.pass_context
def main(ctx: click.Context, socket_path: str | None, timeout: float, local: bool,
         roots: tuple[str, ...]) -> None:
    """xsys: system metrics, file operations, file-change events and alerts from a local
    daemon.

    The wire protocol (framing, errors, subscriptions, progress, limits) is described in
    docs/protocol.md.
    """
    if roots and not local:
        raise click.UsageError("--root confines --local commands; add --local")
    ctx.obj = CliState(socket=socket_path, timeout=timeout, local=local, roots=roots)


@main.command()
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="Config file (JSON; a TinyMonitor config.json works too).")
@click.option("--socket", "socket_path", default=None, help="Socket path to listen on.")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"],
                                                case_sensitive=False), default=None)
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None)
@click.option("--no-uvloop", is_flag=True, help="Use the stdlib event loop.")
@click.pass_context
def serve(ctx: click.Context, config_file: str | None, socket_path: str | None,
          log_level: str | None, log_format: str | None, no_uvloop: bool) -> None:
    """Run the daemon in the foreground (SIGTERM/Ctrl-C stop it, SIGHUP reloads)."""
    from xsys.daemon import serve as run_daemon

    root_socket = ctx.find_root().params.get("socket_path")
    code = run_daemon(config_file, socket_path or root_socket, log_level, log_format,
                      use_uvloop=not no_uvloop)
    ctx.exit(code)


def render_ping(r: dict[str, Any], socket_path: str) -> str:
    """``rpc.ping`` with the measured round trip (``rtt_ms``)."""
    return f"pong from {socket_path} in {r['rtt_ms']:.2f} ms"


@main.command()
@json_option
@pass_state
def ping(state: CliState) -> None:
    """Check that the daemon answers."""
    start = time.perf_counter()
    r = state.call("rpc.ping")
    elapsed_ms = (time.perf_counter() - start) * 1000
    state.emit({**r, "rtt_ms": elapsed_ms}, partial(render_ping, socket_path=state.socket_path))


def render_methods(r: dict[str, Any]) -> str:
    """``rpc.methods``: one row per method with its parameters (``?``: optional)."""
    rows = []
    for m in r["methods"]:
        params = ", ".join(
            p["name"] + ("" if p["required"] else "?") + f": {p['type']}" for p in m["params"])
        rows.append([m["name"], params, m["summary"]])
    return table(rows, ["METHOD", "PARAMS", "SUMMARY"])


@method_command(main, "methods", "rpc.methods", render_methods)
def methods() -> None:
    """List the daemon's methods and their parameters."""


main.add_command(sys_group)
main.add_command(config_group)
main.add_command(monitor_group)
main.add_command(checks_group)
main.add_command(fs_group)
main.add_command(http_group)
main.add_command(watch_command)
config_group.add_command(import_tinymonitor)
