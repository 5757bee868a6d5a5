"""``xsys service install|uninstall|status`` and the shipped unit files.

Attacks: a unit the administrator wrote is never overwritten nor removed; installing twice
changes nothing; the shipped packaging files are what the command writes (no drift); the
systemd unit passes ``systemd-analyze verify`` (when the tool is here) and carries the
readiness and hardening directives the daemon relies on; the launchd plists parse.
"""

from __future__ import annotations

import plistlib
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tests.launcher import REPO
from xsys.cli import main
from xsys.cli.service import MARKER, systemd_unit

PACKAGING = REPO / "packaging"


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["service", *args], catch_exceptions=False)
    return result.exit_code, result.output


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="systemd units on Linux")
def test_install_is_idempotent_and_uninstall_removes(tmp_path: Path) -> None:
    units = tmp_path / "units"
    code, out = _run("install", "--dir", str(units), "--socket-activation")
    assert code == 0, out
    service = units / "xsys.service"
    assert f"wrote {service}" in out and (units / "xsys.socket").exists()
    text = service.read_text()
    assert MARKER in text and "Type=notify" in text and " serve" in text
    code, out = _run("install", "--dir", str(units), "--socket-activation")
    assert code == 0 and f"unchanged {service}" in out and "wrote" not in out
    code, out = _run("status", "--dir", str(units))
    assert code == 0 and "installed (written by xsys)" in out
    code, out = _run("uninstall", "--dir", str(units))
    assert code == 0 and f"removed {service}" in out
    assert not service.exists() and not (units / "xsys.socket").exists()
    code, out = _run("uninstall", "--dir", str(units))
    assert code == 0 and "nothing to remove" in out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="systemd units on Linux")
def test_a_foreign_unit_is_never_overwritten_or_removed(tmp_path: Path) -> None:
    units = tmp_path / "units"
    units.mkdir()
    foreign = units / "xsys.service"
    foreign.write_text("[Service]\nExecStart=/opt/mine\n")
    code, out = _run("install", "--dir", str(units))
    assert code != 0 and "not written by xsys" in out
    assert foreign.read_text() == "[Service]\nExecStart=/opt/mine\n"
    code, out = _run("uninstall", "--dir", str(units))
    assert code != 0 and "not written by xsys" in out
    assert foreign.exists()
    code, out = _run("status", "--dir", str(units))
    assert "NOT written by xsys" in out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="systemd units on Linux")
def test_system_unit_makes_the_configured_roots_writable(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    config = tmp_path / "config.json"
    config.write_text(f'{{"fs": {{"roots": ["{root}"]}}}}')
    units = tmp_path / "units"
    code, out = _run("install", "--dir", str(units), "--config", str(config))
    assert code == 0, out
    text = (units / "xsys.service").read_text()
    assert f"ReadWritePaths=-{root}" in text
    assert f"--config {config}" in text
    assert "ProtectSystem=strict" in text and "ProtectHome=read-only" in text


def test_packaging_files_match_the_templates() -> None:
    sys.path.insert(0, str(PACKAGING))
    try:
        import render  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(PACKAGING))
    for name, text in render.FILES.items():
        assert (PACKAGING / name).read_text() == text, \
            f"packaging/{name} drifted: run python packaging/render.py"


@pytest.mark.parametrize("name", ["xsys.service", "xsys-user.service"])
def test_systemd_unit_has_readiness_and_hardening(name: str) -> None:
    text = (PACKAGING / "systemd" / name).read_text()
    for directive in ("Type=notify", "NotifyAccess=main", "WatchdogSec=", "NoNewPrivileges=yes",
                      "PrivateTmp=yes", "RestrictAddressFamilies=AF_UNIX",
                      "ExecReload=/bin/kill -HUP $MAINPID"):
        assert directive in text, directive
    if name == "xsys.service":
        for directive in ("ProtectSystem=strict", "ProtectHome=read-only",
                          "RuntimeDirectory=xsys", "StateDirectory=xsys"):
            assert directive in text, directive


def test_socket_unit_is_private() -> None:
    text = (PACKAGING / "systemd" / "xsys.socket").read_text()
    assert "SocketMode=0600" in text and "ListenStream=/run/xsys/xsys.sock" in text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = tmp_path / "xsys.service"
    unit.write_text(systemd_unit([sys.executable, "-m", "xsys", "serve"], user=False,
                                 writable=[str(tmp_path)]))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", ["dev.xsys.daemon.plist", "dev.xsys.agent.plist"])
def test_launchd_plists_parse(name: str) -> None:
    data = plistlib.loads((PACKAGING / "launchd" / name).read_bytes())
    assert data["Label"] == "dev.xsys.daemon"
    assert data["ProgramArguments"][-1] == "serve"
    assert data["RunAtLoad"] is True


def test_version_names_the_protocol() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert "protocol 1" in result.output and result.output.startswith("xsys ")



def test_ci_runs_every_supported_python_on_every_platform() -> None:
    """Issue 16: the CI workflow runs the suite on ubuntu, macOS and Windows runners "for
    every supported Python" (the pyproject classifiers); a platform that misses a version
    fails here."""
    import re

    import yaml

    supported = set(re.findall(r'"Programming Language :: Python :: (3\.\d+)"',
                               (REPO / "pyproject.toml").read_text()))
    assert {"3.10", "3.13"} <= supported
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    runs: dict[str, set[str]] = {}
    for job in workflow["jobs"].values():
        matrix = job.get("strategy", {}).get("matrix", {})
        pythons = {str(v) for v in matrix.get("python", [])}
        oses = matrix.get("os") or [job.get("runs-on", "")]
        for os_name in oses:
            runs.setdefault(str(os_name).split("-")[0], set()).update(pythons)
    for platform in ("ubuntu", "macos", "windows"):
        assert supported <= runs.get(platform, set()), (platform, runs.get(platform))


def test_the_windows_service_module_imports_everywhere() -> None:
    """The pywin32 part loads pywin32 only when used: importable (and its marker set) on any
    platform; without pywin32 a call says how to get it."""
    from xsys.cli import winservice

    assert MARKER in winservice.DESCRIPTION
    assert winservice.CLASS_STRING == "xsys.cli.winservice.XsysWindowsService"
    if sys.platform != "win32":
        with pytest.raises(click.ClickException, match="pywin32"):
            winservice.status()


@pytest.mark.skipif(sys.platform != "win32", reason="a Windows service needs Windows (the CI "
                    "workflow's windows job runs this, as an administrator)")
def test_windows_service_install_status_uninstall() -> None:  # pragma: no cover
    code, out = _run("install", "--no-enable")
    assert code == 0, out
    assert "installed Windows service" in out or "unchanged" in out
    code, out = _run("install", "--no-enable")
    assert code == 0 and "unchanged" in out
    code, out = _run("status")
    assert "installed by xsys" in out
    code, out = _run("install", "--user")
    assert code == 2 and "machine-wide" in out
    code, out = _run("uninstall")
    assert code == 0 and "removed" in out
    code, out = _run("status")
    assert "not installed" in out
