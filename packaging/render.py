"""Write the shipped unit files from the templates in ``xsys.cli.service``:
``python packaging/render.py`` (tests/test_service.py fails when they drift)."""

from __future__ import annotations

from pathlib import Path

from xsys.cli.service import launchd_plist, systemd_socket, systemd_unit

HERE = Path(__file__).resolve().parent
#: What each shipped file holds: the package's executable path on that platform.
FILES = {
    "systemd/xsys.service": systemd_unit(
        ["/usr/bin/xsys", "serve", "--config", "/etc/xsys/config.json"], user=False,
        writable=["/srv"]),
    "systemd/xsys.socket": systemd_socket("/run/xsys/xsys.sock"),
    "systemd/xsys-user.service": systemd_unit(["/usr/bin/xsys", "serve"], user=True),
    "launchd/dev.xsys.daemon.plist": launchd_plist(["/usr/local/bin/xsys", "serve"],
                                                   user=False, log_dir="/var/log"),
    "launchd/dev.xsys.agent.plist": launchd_plist(["/usr/local/bin/xsys", "serve"],
                                                  user=True, log_dir="/tmp"),
}

if __name__ == "__main__":
    for name, text in FILES.items():
        (HERE / name).write_text(text, encoding="utf-8")
        print(f"wrote packaging/{name}")
