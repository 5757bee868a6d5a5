"""``xsys http ...``: the HTTP gateway's credentials (read locally, not via the daemon)."""

from __future__ import annotations

import click

from xsys.cli.common import fail
from xsys.cli.lazy import XsysGroup
from xsys.config import ConfigError, load_config


@click.group("http", cls=XsysGroup)
def http_group() -> None:
    """The HTTP gateway (/metrics, /health, the REST mirror /api/v1)."""


@http_group.command("token")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="The file `xsys serve --config` is given (for http.token/token_file).")
def token(config_file: str | None) -> None:
    """Print the REST mirror's bearer token.

    That is ``http.token`` when the config sets it, else the content of the token file the
    daemon generated (readable only by the daemon's user; run this as that user). Use it
    as ``Authorization: Bearer <token>``."""
    from xsys.http.token import TokenFileError, read_token, token_file_path

    try:
        cfg = load_config(config_file).config.http
    except ConfigError as exc:
        fail(f"config error: {exc}")
    if cfg.token:
        click.echo(cfg.token)
        return
    try:
        click.echo(read_token(token_file_path(cfg.token_file)))
    except TokenFileError as exc:
        fail(f"cannot read the HTTP token: {exc}")
