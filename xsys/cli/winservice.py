"""``xsys service install|uninstall|status`` on Windows: a Windows service through
pywin32's service framework (``win32serviceutil``; the ``windows`` extra).

The service ``xsys`` runs ``XsysWindowsService``: pywin32's ``pythonservice.exe`` imports
this module and calls ``SvcDoRun``, which serves the daemon on its own event loop (the
Proactor loop, the named pipe) until ``SvcStop`` asks it to stop. Its description carries
``MARKER``: ``install`` refuses to replace, and ``uninstall`` to remove, a
service named ``xsys`` without it. ``--user`` has no meaning for Windows services and is
refused. The config file (``--config``) is kept in the service's registry key
(``HKLM\\SYSTEM\\CurrentControlSet\\Services\\xsys\\Parameters``, value ``Config``).

Everything here needs Windows and pywin32; none of it has run on this project's machine
(docs/service.md, "What has been exercised where"); tests/test_service.py has the
Windows-only tests the CI workflow's windows job runs.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import click

#: The line every unit, plist and service that ``xsys service install`` writes carries
#: (``xsys.cli.service`` re-exports it).
MARKER = "Written by `xsys service install`; `xsys service uninstall` removes it."
SERVICE_NAME = "xsys"
DISPLAY_NAME = "xsys system daemon"
DESCRIPTION = f"Metrics, files, file events and alerts for local programs. {MARKER}"
#: The module pythonservice.exe imports (this one).
CLASS_STRING = f"{__name__}.XsysWindowsService"


def _pywin32() -> tuple[Any, Any]:
    """``(win32serviceutil, win32service)``; raises ``click.ClickException`` without
    pywin32."""
    import importlib

    try:
        return (importlib.import_module("win32serviceutil"),
                importlib.import_module("win32service"))
    except ImportError as exc:
        raise click.ClickException("the Windows service needs pywin32: pip install "
                                   "'xsys[windows]'") from exc


def installed_description() -> str | None:
    """The installed ``xsys`` service's description, or None when there is no such
    service."""
    _util, svc = _pywin32()
    scm = svc.OpenSCManager(None, None, svc.SC_MANAGER_CONNECT)
    try:
        try:
            handle = svc.OpenService(scm, SERVICE_NAME, svc.SERVICE_QUERY_CONFIG)
        except Exception:  # pywintypes.error: ERROR_SERVICE_DOES_NOT_EXIST
            return None
        try:
            return str(svc.QueryServiceConfig2(handle, svc.SERVICE_CONFIG_DESCRIPTION) or "")
        finally:
            svc.CloseServiceHandle(handle)
    finally:
        svc.CloseServiceHandle(scm)


def install(config: str | None, enable: bool) -> None:
    """Install (or leave unchanged) the ``xsys`` service, set to start automatically, and
    start it when ``enable``. Raises ``click.ClickException`` for a foreign service."""
    util, svc = _pywin32()
    current = installed_description()
    if current is not None and MARKER not in current:
        raise click.ClickException(f"a service named {SERVICE_NAME!r} exists and was not "
                                   "installed by xsys; refusing to replace it")
    if current is None:
        util.InstallService(CLASS_STRING, SERVICE_NAME, DISPLAY_NAME,
                            startType=svc.SERVICE_AUTO_START, description=DESCRIPTION)
        click.echo(f"installed Windows service {SERVICE_NAME!r} ({CLASS_STRING})")
    else:
        click.echo(f"unchanged Windows service {SERVICE_NAME!r}")
    util.SetServiceCustomOption(SERVICE_NAME, "Config", config or "")
    if enable:
        util.StartService(SERVICE_NAME)
        click.echo(f"started {SERVICE_NAME!r}")


def uninstall() -> None:
    """Stop and remove the ``xsys`` service that ``install`` made."""
    util, _svc = _pywin32()
    current = installed_description()
    if current is None:
        click.echo("not installed; nothing to remove")
        return
    if MARKER not in current:
        raise click.ClickException(f"the service {SERVICE_NAME!r} was not installed by xsys; "
                                   "refusing to remove it")
    with contextlib.suppress(Exception):  # not running
        util.StopService(SERVICE_NAME)
    util.RemoveService(SERVICE_NAME)
    click.echo(f"removed Windows service {SERVICE_NAME!r}")


def status() -> None:
    """Whether the service is installed (by whom) and its state."""
    util, svc = _pywin32()
    current = installed_description()
    if current is None:
        click.echo(f"Windows service {SERVICE_NAME!r}: not installed")
        return
    who = "installed by xsys" if MARKER in current else "NOT installed by xsys"
    state = util.QueryServiceStatus(SERVICE_NAME)[1]
    names = {svc.SERVICE_RUNNING: "running", svc.SERVICE_STOPPED: "stopped",
             svc.SERVICE_START_PENDING: "starting", svc.SERVICE_STOP_PENDING: "stopping"}
    click.echo(f"Windows service {SERVICE_NAME!r}: {who}, {names.get(state, str(state))}")


if sys.platform == "win32":  # pragma: no cover - Windows only (the CI workflow's job)
    try:
        import win32serviceutil as _util  # type: ignore[import-not-found]
    except ImportError:  # pywin32 missing: install() says so
        pass
    else:

        class XsysWindowsService(_util.ServiceFramework):  # type: ignore[misc]
            """The daemon as a Windows service: ``SvcDoRun`` serves until ``SvcStop``."""

            _svc_name_ = SERVICE_NAME
            _svc_display_name_ = DISPLAY_NAME
            _svc_description_ = DESCRIPTION

            def __init__(self, args: Any) -> None:
                super().__init__(args)
                self._loop: Any = None
                self._daemon: Any = None

            def SvcStop(self) -> None:  # pywin32's name
                import win32service

                self.ReportServiceStatus(win32service.SERVICE_STOP_PENDING)
                if self._loop is not None and self._daemon is not None:
                    self._loop.call_soon_threadsafe(self._daemon.stop)

            def SvcDoRun(self) -> None:  # pywin32's name
                import asyncio

                from xsys.config import load_config
                from xsys.daemon import Daemon
                from xsys.server.logs import setup_logging

                config = _util.GetServiceCustomOption(SERVICE_NAME, "Config", "") or None
                loaded = load_config(config)
                setup_logging(loaded.config.server.log_level, loaded.config.server.log_format)

                async def main() -> int:
                    self._loop = asyncio.get_running_loop()
                    self._daemon = Daemon(loaded, config)
                    return int(await self._daemon.run())

                asyncio.run(main())
