"""One module per namespace; each exposes ``register(router, app)``, which declares its
methods on the router and its services and hooks on the app."""

from __future__ import annotations

import importlib

from xsys.server.app import App
from xsys.server.router import Router

#: Namespace modules in registration order (``xsys.handlers.<name>``).
MODULES: tuple[str, ...] = ("rpc", "system", "fs", "watch", "monitor", "metrics", "checks",
                            "push", "proc")


def register_all(router: Router, app: App) -> None:
    """Import every namespace module and let it register its methods and services."""
    for name in MODULES:
        module = importlib.import_module(f"xsys.handlers.{name}")
        module.register(router, app)
