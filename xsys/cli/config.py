"""``xsys config ...``: the effective configuration and where each part came from."""

from __future__ import annotations

import click

from xsys.cli.common import fail, json_option, print_json, table
from xsys.config import ConfigError, load_config, to_dict


def _leaves(tree: object, prefix: str = "") -> list[tuple[str, object]]:
    if isinstance(tree, dict) and tree:
        out: list[tuple[str, object]] = []
        for k, v in tree.items():
            out += _leaves(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    return [(prefix, tree)]


@click.group("config")
def config_group() -> None:
    """Inspect and convert configuration."""


@config_group.command("show")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="The file `xsys serve --config` would be given.")
@json_option
def show(config_file: str | None, as_json: bool) -> None:
    """Print the effective merged config and the source of every key."""
    try:
        loaded = load_config(config_file)
    except ConfigError as exc:
        fail(f"config error: {exc}")
    tree = to_dict(loaded.config)
    if as_json:
        print_json({"config": tree, "sources": loaded.sources, "files": list(loaded.files)})
        return
    rows = [[key, value if not isinstance(value, (list, dict)) else str(value),
             loaded.sources.get(key, "defaults")] for key, value in _leaves(tree)]
    click.echo(table(rows, ["KEY", "VALUE", "SOURCE"]))
