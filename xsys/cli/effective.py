"""What the empty defaults of the config mean on this machine (``xsys config show``).

A module of its own (not ``xsys.cli.config``): a module named ``config`` is ground level
for tests/test_layering.py, and this one reads the services' default places.
"""

from __future__ import annotations

import os
from typing import Any

from xsys.config import Config


def resolved_defaults(config: Config) -> dict[str, tuple[Any, str]]:
    """The keys whose configured value means "the default place" (an empty string or
    list, None), with the value the daemon would use when started by this user now and
    what the empty value means: ``{"fs.roots": (["/home/me", "/tmp"], "home and temp
    dir")}``. Sources: ``xsys.protocol.default_socket_path``,
    ``xsys.fs.sandbox.default_roots``, ``xsys.http.token.token_file_path``,
    ``xsys.monitor.collectors.default_boot_state_file``."""
    from xsys.fs.sandbox import default_roots
    from xsys.http.token import token_file_path
    from xsys.monitor.collectors import default_boot_state_file
    from xsys.protocol import default_socket_path

    out: dict[str, tuple[Any, str]] = {}
    if not config.server.socket:
        out["server.socket"] = (default_socket_path(), "XDG_RUNTIME_DIR, /run or /tmp")
    if config.server.allowed_uids is None:
        out["server.allowed_uids"] = (sorted({os.getuid(), 0}), "the daemon's uid and root")
    if not config.fs.roots:
        out["fs.roots"] = (list(default_roots()), "home and temp dir")
    if not config.http.token_file:
        out["http.token_file"] = (str(token_file_path("")), "the state dir")
    if not config.monitor.reboot.state_file:
        out["monitor.reboot.state_file"] = (str(default_boot_state_file()), "the state dir")
    return out
