"""The ``xsys`` command line (Click): ``serve`` runs the daemon; every other command is a
thin client: parse, call the daemon, render a table (or ``--json``). How a command is bound
to a daemon method: ``xsys.cli.common.method_command``.

Start-up: importing this module imports Click and nothing else of weight. Each command
group lives in its own module, imported only when it runs (``xsys.cli.lazy.LazyGroup``),
and the client (msgpack, sockets) only when a command connects; asyncio, aiohttp, psutil
and the monitor are never imported by a data command (tests/test_cli_help.py).
"""

from __future__ import annotations

import click

from xsys import PROTOCOL_VERSION, __version__
from xsys.cli.lazy import Lazy, LazyGroup, XsysGroup

#: The subcommands by name: where they live and their summary in ``xsys --help`` (a
#: test checks each summary is the command's own).
COMMANDS: dict[str, Lazy] = {
    "checks": Lazy("xsys.cli.checks:checks_group",
                   "Service checks: states (the default), run one now, watch state changes."),
    "dashboard": Lazy("xsys.cli.http:dashboard",
                      "Print the live dashboard's URL, with the token."),
    "config": Lazy("xsys.cli.config:config_group",
                   "Inspect and convert configuration."),
    "fs": Lazy("xsys.cli.fs:fs_group",
               "Files through the daemon, confined to its fs.roots."),
    "http": Lazy("xsys.cli.http:http_group",
                 "The HTTP gateway (/metrics, /health, the REST mirror /api/v1)."),
    "methods": Lazy("xsys.cli.rpc:methods",
                    "List the daemon's methods, or show one (NAME) in full."),
    "monitor": Lazy("xsys.cli.monitor:monitor_group",
                    "Threshold checks and alerts: states, history, test alerts, silences, "
                    "live stream."),
    "ping": Lazy("xsys.cli.rpc:ping", "Check that the daemon answers."),
    "proc": Lazy("xsys.cli.proc:proc_group",
                 "Supervised worker processes: start, list, status, stop, restart, scale, "
                 "logs."),
    "push": Lazy("xsys.cli.push:push_group",
                 "Push mode: the backends this daemon streams to (status is the default)."),
    "service": Lazy("xsys.cli.service:service_group",
                    "Install the daemon as a system service (systemd, launchd)."),
    "sys": Lazy("xsys.cli.sys:sys_group",
                "System metrics: CPU, memory, disks, network, processes, sensors."),
    "top": Lazy("xsys.cli.top:top_command",
                "A live view: CPU per core, memory and swap, load, disks, network rates, "
                "active alerts and the top processes with their command lines."),
    "watch": Lazy("xsys.cli.watch:watch_command",
                  "Print file changes under PATHS as they happen, until Ctrl-C."),
}

#: The shells ``xsys completion`` writes a script for (Click's shell completion).
SHELLS = ("bash", "zsh", "fish")


@click.group(cls=LazyGroup, lazy=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--socket", "socket_path", envvar="XSYS_SOCKET", default=None,
              help="Daemon socket (default: $XSYS_SOCKET, then docs/protocol.md's defaults).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=30.0,
              show_default=True, help="Seconds to wait for each answer.")
@click.option("--local", is_flag=True,
              help="Run sys and fs commands in this process with your own rights, without "
                   "the daemon.")
@click.option("--root", "roots", multiple=True,
              type=click.Path(exists=True, file_okay=False),
              help="With --local: confine fs commands to this directory, as the daemon's "
                   "fs.roots do (repeatable).")
@click.version_option(__version__, prog_name="xsys",
                      message=f"%(prog)s %(version)s (protocol {PROTOCOL_VERSION})")
@click.pass_context
def main(ctx: click.Context, socket_path: str | None, timeout: float, local: bool,
         roots: tuple[str, ...]) -> None:
    """xsys: system metrics, file operations, file-change events and alerts from a local
    daemon.

    The commands, output formats, exit codes and shell completion are described in
    docs/cli.md; the wire protocol in docs/protocol.md.
    """
    from xsys.cli.common import CliState

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
@click.option("--tinymonitor", is_flag=True,
              help="Run a TinyMonitor config.json with TinyMonitor's semantics; without "
                   "--config, search it where TinyMonitor does.")
@click.pass_context
def serve(ctx: click.Context, config_file: str | None, socket_path: str | None,
          log_level: str | None, log_format: str | None, no_uvloop: bool,
          tinymonitor: bool) -> None:
    """Run the daemon in the foreground (SIGTERM/Ctrl-C stop it, SIGHUP reloads).

    With --tinymonitor and no --config, the first of ./config.json,
    ~/.config/tinymonitor/config.json and /etc/tinymonitor/config.json is used
    (TinyMonitor's order), else TinyMonitor's defaults.
    """
    import gc

    # start-up allocates much and frees little: no collections until READY, where the
    # daemon turns the collector back on (``xsys.daemon.serve``)
    gc.disable()
    try:
        from xsys.daemon import serve as run_daemon

        root_socket = ctx.find_root().params.get("socket_path")
        code = run_daemon(config_file, socket_path or root_socket, log_level, log_format,
                          use_uvloop=not no_uvloop, tinymonitor=tinymonitor)
    finally:
        gc.enable()
    ctx.exit(code)


@main.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL (bash, zsh or fish).

    \b
    bash:  eval "$(xsys completion bash)"       (in ~/.bashrc)
    zsh:   eval "$(xsys completion zsh)"        (in ~/.zshrc)
    fish:  xsys completion fish > ~/.config/fish/completions/xsys.fish

    The same script comes from Click's variable: _XSYS_COMPLETE=bash_source xsys.
    """
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    if cls is None:  # pragma: no cover - the Choice above allows only known shells
        raise click.BadParameter(f"no completion for {shell}", param_hint="SHELL")
    click.echo(cls(main, {}, "xsys", "_XSYS_COMPLETE").source())


__all__ = ["COMMANDS", "SHELLS", "XsysGroup", "main"]
