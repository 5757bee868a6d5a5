"""``xsys config ...``: the effective configuration and where each part came from."""

from __future__ import annotations

from typing import Any

import click

from xsys.cli.common import fail, renders, table
from xsys.cli.lazy import Lazy, LazyGroup
from xsys.config import ConfigError, load_config, to_dict


def _leaves(tree: object, prefix: str = "") -> list[tuple[str, object]]:
    if isinstance(tree, dict) and tree:
        out: list[tuple[str, object]] = []
        for k, v in tree.items():
            out += _leaves(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    return [(prefix, tree)]


@click.group("config", cls=LazyGroup, lazy={"import-tinymonitor": Lazy(
    "xsys.cli.monitor:import_tinymonitor",
    "Print the xsys equivalent (JSON) of a TinyMonitor config.json.")})
def config_group() -> None:
    """Inspect and convert configuration."""


def render_show(r: dict[str, Any]) -> str:
    """``config show``: one row per leaf key with its value and source."""
    rows = [[key, value if not isinstance(value, (list, dict)) else str(value),
             r["sources"].get(key, "defaults")] for key, value in _leaves(r["config"])]
    return table(rows, ["KEY", "VALUE", "SOURCE"])


@config_group.command("show")
@renders(render_show)
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="The file `xsys serve --config` would be given.")
def show(config_file: str | None) -> dict[str, Any]:
    """Print the effective merged config and the source of every key."""
    try:
        loaded = load_config(config_file)
    except ConfigError as exc:
        fail(f"config error: {exc}")
    return {"config": to_dict(loaded.config), "sources": loaded.sources,
            "files": list(loaded.files)}
