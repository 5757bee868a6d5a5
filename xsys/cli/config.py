"""``xsys config ...``: the effective configuration, where each part came from, and a
complete example."""

from __future__ import annotations

import json
from typing import Any

import click

from xsys.cli.common import fail, renders, table
from xsys.cli.effective import resolved_defaults
from xsys.cli.lazy import Lazy, LazyGroup
from xsys.config import Config, ConfigError, load_config, to_dict


def _leaves(tree: object, prefix: str = "") -> list[tuple[str, object]]:
    if isinstance(tree, dict) and tree:
        out: list[tuple[str, object]] = []
        for k, v in tree.items():
            out += _leaves(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    return [(prefix, tree)]


def _set(tree: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    for p in parents:
        tree = tree[p]
    tree[leaf] = value


@click.group("config", cls=LazyGroup, lazy={"import-tinymonitor": Lazy(
    "xsys.cli.monitor:import_tinymonitor",
    "Print the xsys equivalent (JSON) of a TinyMonitor config.json.")})
def config_group() -> None:
    """Inspect and convert configuration."""


def _show_value(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_show_value(v) for v in value) if value else "[]"
    if isinstance(value, dict):
        return json.dumps(value) if value else "{}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value) if value != "" else '""'


def render_show(r: dict[str, Any]) -> str:
    """``config show``: one row per leaf key with its effective value and its source;
    a key at its built-in default says ``defaults`` (with what an empty default means)."""
    rows = []
    for key, value in _leaves(r["config"]):
        source = r["sources"].get(key, "defaults")
        if key in r.get("resolved", {}):
            source = f"defaults ({r['resolved'][key]})"
        rows.append([key, _show_value(value), source])
    return table(rows, ["KEY", "VALUE", "SOURCE"])


@config_group.command("show")
@renders(render_show)
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="The file `xsys serve --config` would be given.")
def show(config_file: str | None) -> dict[str, Any]:
    """Print the effective config: every key, its value and where it came from.

    Empty defaults that mean "the usual place" (fs.roots, server.socket...) show the value
    the daemon would use if started by you now. --json: {config, sources, resolved,
    files}."""
    try:
        loaded = load_config(config_file)
    except ConfigError as exc:
        fail(f"config error: {exc}")
    tree = to_dict(loaded.config)
    resolved = resolved_defaults(loaded.config)
    for key, (value, _why) in resolved.items():
        _set(tree, key, value)
    return {"config": tree, "sources": loaded.sources,
            "resolved": {k: why for k, (_v, why) in resolved.items()},
            "files": list(loaded.files)}


@config_group.command("example")
def example() -> None:
    """Print a complete, valid config (JSON) with every key at its default.

    Copy it to ~/.config/xsys/config.json (or /etc/xsys/config.json) and keep only what
    you change; every key: docs/configuration.md."""
    click.echo(json.dumps(to_dict(Config()), indent=2))
