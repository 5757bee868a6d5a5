"""``xsys service install|uninstall|status [--user]``: the unit for this platform's
service manager, written and removed idempotently.

- Linux: a systemd unit ``xsys.service`` (``Type=notify``, watchdog, hardening) in
  ``/etc/systemd/system`` or, with ``--user``, ``~/.config/systemd/user``
  (``$XDG_CONFIG_HOME``); ``--socket-activation`` also writes ``xsys.socket``.
- macOS: a launchd property list ``dev.xsys.daemon.plist`` in ``/Library/LaunchDaemons`` or,
  with ``--user``, ``~/Library/LaunchAgents``.
- Windows: a Windows service through pywin32's service framework
  (``xsys.cli.winservice``; machine-wide, so no ``--user``).

Every file written carries ``MARKER``; ``install`` refuses to replace a file without it (a
unit the administrator wrote), and ``uninstall`` refuses to remove one. The same content
twice is "unchanged". ``--dir`` writes elsewhere (packaging, tests); ``--no-enable`` only
writes the files. The shipped ``packaging/systemd`` and ``packaging/launchd`` files are
these templates rendered for ``/usr/bin/xsys`` (tests/test_service.py checks they match).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import click

from xsys.cli.lazy import XsysGroup
from xsys.cli.winservice import MARKER

#: launchd's job label.
LAUNCHD_LABEL = "dev.xsys.daemon"


@dataclass(frozen=True)
class UnitFile:
    """One file to write: its ``path`` and full ``text``."""

    path: Path
    text: str


def systemd_unit(exec_start: Sequence[str], *, user: bool, writable: Sequence[str] = (),
                 watchdog_s: int = 30) -> str:
    """The text of ``xsys.service``. ``exec_start``: the daemon's argv (``xsys serve``...);
    ``user``: a user unit (no system hardening that needs privileges); ``writable``: the
    paths made writable under ``ProtectSystem=strict`` / ``ProtectHome=read-only`` (the
    configured ``fs.roots``). Directives: systemd.service(5), systemd.exec(5)."""
    lines = [
        f"# {MARKER}",
        "[Unit]",
        "Description=xsys system daemon (metrics, files, file events, alerts)",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={' '.join(_quote(a) for a in exec_start)}",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RestartSec=2",
        f"WatchdogSec={watchdog_s}",
        "TimeoutStopSec=15",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
    ]
    if not user:
        lines += [
            "RuntimeDirectory=xsys",
            "RuntimeDirectoryMode=0755",
            "StateDirectory=xsys",
            "ProtectSystem=strict",
            "ProtectHome=read-only",
            "ProtectKernelTunables=yes",
            "ProtectControlGroups=yes",
            "LockPersonality=yes",
        ]
        if writable:
            lines.append("ReadWritePaths=" + " ".join(f"-{_quote(p)}" for p in writable))
    lines += ["", "[Install]", f"WantedBy={'default.target' if user else 'multi-user.target'}",
              ""]
    return "\n".join(lines)


def systemd_socket(path: str) -> str:
    """The text of ``xsys.socket`` (socket activation: systemd binds ``path`` with mode
    0600 and passes it to ``xsys.service`` as ``LISTEN_FDS``). Directives:
    systemd.socket(5)."""
    return "\n".join([
        f"# {MARKER}",
        "[Unit]",
        "Description=xsys daemon socket",
        "",
        "[Socket]",
        f"ListenStream={path}",
        "SocketMode=0600",
        "DirectoryMode=0755",
        "Service=xsys.service",
        "",
        "[Install]",
        "WantedBy=sockets.target",
        "",
    ])


def launchd_plist(exec_start: Sequence[str], *, user: bool, log_dir: str) -> str:
    """The text of the launchd property list (launchd.plist(5)): ``RunAtLoad``,
    ``KeepAlive`` on failure, stdout/stderr to ``log_dir``."""
    args = "\n".join(f"    <string>{escape(a)}</string>" for a in exec_start)
    kind = "agent" if user else "daemon"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- {MARKER} -->
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key>
  <string>{LAUNCHD_LABEL}</string>
  <key>Comment</key>
  <string>xsys system daemon (launchd {kind})</string>
  <key>ProgramArguments</key>
  <array>
{args}
  </array>
  <key>RunAtLoad</key>
  <true/>
  <key>KeepAlive</key>
  <dict>
    <key>SuccessfulExit</key>
    <false/>
  </dict>
  <key>ProcessType</key>
  <string>Background</string>
  <key>StandardOutPath</key>
  <string>{escape(log_dir)}/xsys.log</string>
  <key>StandardErrorPath</key>
  <string>{escape(log_dir)}/xsys.log</string>
</dict>
</plist>
"""


def _quote(arg: str) -> str:
    """``arg`` quoted for a systemd command line when it holds spaces or quotes."""
    if arg and not any(c in arg for c in ' \t"\'\\'):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def xsys_executable() -> str:
    """The ``xsys`` executable to run: the one running now (``sys.argv[0]`` when it is a
    file called ``xsys``), else ``xsys`` on ``PATH``, else ``<python> -m xsys``'s python."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "xsys" and argv0.is_file():
        return str(argv0.resolve())
    found = shutil.which("xsys")
    return found or ""


def exec_args(config: str | None) -> list[str]:
    """The daemon's argv for the unit: ``xsys serve [--config FILE]``."""
    exe = xsys_executable()
    argv = [exe, "serve"] if exe else [sys.executable, "-m", "xsys", "serve"]
    if config:
        argv += ["--config", str(Path(config).resolve())]
    return argv


def unit_files(*, user: bool, directory: Path | None, config: str | None,
               socket_activation: bool, platform: str = sys.platform) -> list[UnitFile]:
    """The files ``install`` writes for ``platform``. Raises ``click.UsageError`` where this
    command cannot write a unit (Windows)."""
    argv = exec_args(config)
    if platform.startswith("linux"):
        if directory is None:
            base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
            directory = base / "systemd" / "user" if user else Path("/etc/systemd/system")
        writable = _configured_roots(config)
        files = [UnitFile(directory / "xsys.service",
                          systemd_unit(argv, user=user, writable=writable))]
        if socket_activation:
            from xsys.protocol import default_socket_path

            path = "%t/xsys/xsys.sock" if user else default_socket_path({})
            files.append(UnitFile(directory / "xsys.socket", systemd_socket(path)))
        return files
    if platform == "darwin":
        if directory is None:
            directory = (Path.home() / "Library" / "LaunchAgents" if user
                         else Path("/Library/LaunchDaemons"))
        log_dir = str(Path.home() / "Library" / "Logs") if user else "/var/log"
        return [UnitFile(directory / f"{LAUNCHD_LABEL}.plist",
                         launchd_plist(argv, user=user, log_dir=log_dir))]
    raise click.UsageError(f"xsys service cannot write a service for {platform} yet; see "
                           "docs/service.md")


def _configured_roots(config: str | None) -> list[str]:
    """The effective ``fs.roots`` of ``config`` (made writable in the system unit)."""
    from xsys.config import ConfigError, load_config

    try:
        loaded = load_config(config)
    except ConfigError as exc:
        raise click.UsageError(f"config error: {exc}") from exc
    roots = list(loaded.config.fs.roots)
    return [str(r) for r in roots]


def _written_by_us(path: Path) -> bool:
    try:
        return MARKER in path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return False


def _manager(user: bool, platform: str = sys.platform) -> list[str] | None:
    """The service manager's command prefix when it is running here, else None."""
    if platform.startswith("linux") and shutil.which("systemctl") \
            and os.path.isdir("/run/systemd/system"):
        return ["systemctl", "--user"] if user else ["systemctl"]
    if platform == "darwin" and shutil.which("launchctl"):
        return ["launchctl"]
    return None


def _run(argv: list[str]) -> None:
    click.echo("$ " + " ".join(argv))
    result = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60)
    out = (result.stdout + result.stderr).strip()
    if out:
        click.echo(out)
    if result.returncode:
        raise click.ClickException(f"{argv[0]} exited with {result.returncode}")


dir_option = click.option("--dir", "directory", type=click.Path(file_okay=False,
                                                                path_type=Path),
                          default=None, help="Write the unit files here instead.")
user_option = click.option("--user", is_flag=True,
                           help="A per-user service (systemd --user, launchd agent).")


@click.group("service", cls=XsysGroup)
def service_group() -> None:
    """Install the daemon as a system service (systemd, launchd)."""


@service_group.command("install")
@user_option
@dir_option
@click.option("--config", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Config file the service runs with.")
@click.option("--socket-activation", is_flag=True, help="Also write xsys.socket (systemd).")
@click.option("--enable/--no-enable", default=True, show_default=True,
              help="Enable and start it when the service manager runs here.")
def install(user: bool, directory: Path | None, config: str | None, socket_activation: bool,
            enable: bool) -> None:
    """Write the service unit (idempotent) and enable it."""
    if _windows(user, directory):
        from xsys.cli import winservice

        winservice.install(config, enable)
        return
    files = unit_files(user=user, directory=directory, config=config,
                       socket_activation=socket_activation)
    changed = False
    for unit in files:
        if unit.path.exists() and not _written_by_us(unit.path):
            raise click.ClickException(f"{unit.path} exists and was not written by xsys; "
                                       "refusing to overwrite it")
    for unit in files:
        if unit.path.exists() and unit.path.read_text(encoding="utf-8") == unit.text:
            click.echo(f"unchanged {unit.path}")
            continue
        unit.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = unit.path.with_name(f".{unit.path.name}.tmp")
        tmp.write_text(unit.text, encoding="utf-8")
        tmp.chmod(0o644)
        os.replace(tmp, unit.path)
        click.echo(f"wrote {unit.path}")
        changed = True
    manager = _manager(user) if directory is None and enable else None
    if manager is None:
        if enable and directory is None:
            click.echo("no running service manager found; start it with `xsys serve` or "
                       "enable the unit yourself")
        return
    if manager[0] == "systemctl":
        if changed:
            _run([*manager, "daemon-reload"])
        name = "xsys.socket" if socket_activation else "xsys.service"
        _run([*manager, "enable", "--now", name])
    else:
        _run([*manager, "load", "-w", str(files[0].path)])


def _windows(user: bool, directory: Path | None) -> bool:
    """Whether this call is for the Windows service (on Windows, without ``--dir``);
    ``--user`` is refused there (a Windows service is machine-wide)."""
    if sys.platform != "win32" or directory is not None:
        return False
    if user:
        raise click.UsageError("--user: a Windows service is machine-wide; run as an "
                               "administrator without --user")
    return True


@service_group.command("uninstall")
@user_option
@dir_option
def uninstall(user: bool, directory: Path | None) -> None:
    """Stop and remove the service unit that `install` wrote."""
    if _windows(user, directory):
        from xsys.cli import winservice

        winservice.uninstall()
        return
    files = [f.path for f in unit_files(user=user, directory=directory, config=None,
                                        socket_activation=True)]
    present = [p for p in files if p.exists()]
    for path in present:
        if not _written_by_us(path):
            raise click.ClickException(f"{path} was not written by xsys; refusing to remove "
                                       "it")
    manager = _manager(user) if directory is None else None
    if manager is not None and present:
        if manager[0] == "systemctl":
            for path in present:
                subprocess.run([*manager, "disable", "--now", path.name], check=False,
                               capture_output=True, timeout=60)
        else:
            subprocess.run([*manager, "unload", "-w", str(present[0])], check=False,
                           capture_output=True, timeout=60)
    for path in present:
        path.unlink()
        click.echo(f"removed {path}")
    if not present:
        click.echo("not installed; nothing to remove")
    elif manager is not None and manager[0] == "systemctl":
        subprocess.run([*manager, "daemon-reload"], check=False, capture_output=True,
                       timeout=60)


@service_group.command("status")
@user_option
@dir_option
def status(user: bool, directory: Path | None) -> None:
    """Say whether the unit is installed, by whom, and whether the daemon answers."""
    if _windows(user, directory):
        from xsys.cli import winservice

        winservice.status()
        return
    files = unit_files(user=user, directory=directory, config=None, socket_activation=True)
    for unit in files:
        if unit.path.exists():
            who = "written by xsys" if _written_by_us(unit.path) else "NOT written by xsys"
            click.echo(f"{unit.path}: installed ({who})")
        elif unit.path.name != "xsys.socket":
            click.echo(f"{unit.path}: not installed")
    manager = _manager(user) if directory is None else None
    if manager is not None and manager[0] == "systemctl":
        result = subprocess.run([*manager, "is-active", "xsys.service"], check=False,
                                capture_output=True, text=True, timeout=30)
        click.echo(f"xsys.service: {result.stdout.strip() or 'unknown'}")
    from xsys.client import Client
    from xsys.protocol import XsysError, default_socket_path

    path = default_socket_path()
    try:
        with Client(path, timeout=5) as client:
            client.call("rpc.ping")
        click.echo(f"daemon: answering on {path}")
    except (OSError, XsysError):
        click.echo(f"daemon: not answering on {path}")
