"""``xsys http ...``: the HTTP gateway's credentials (read locally, not via the daemon)."""

from __future__ import annotations

import click

from xsys.cli.common import fail
from xsys.cli.lazy import XsysCommand, XsysGroup
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


def dashboard_url(host: str, port: int, token: str, https: bool = False) -> str:
    """The dashboard's URL with the token (``GET /?token=`` sets the session cookie): a
    wildcard bind address becomes ``127.0.0.1``, an IPv6 address gets brackets."""
    from urllib.parse import quote

    host = host.strip()
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host in ("::", "[::]"):
        host = "[::1]"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    scheme = "https" if https else "http"
    return f"{scheme}://{host}:{port}/?token={quote(token, safe='')}"


@click.command("dashboard", cls=XsysCommand)
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="The file `xsys serve --config` is given (for http.*).")
@click.option("--open", "open_browser", is_flag=True,
              help="Open the URL in the default web browser too.")
def dashboard(config_file: str | None, open_browser: bool) -> None:
    """Print the live dashboard's URL, with the token.

    Open it once: the page sets a cookie and drops the token from the address bar. Needs
    http.enabled; run it as the daemon's user (the token file is readable only by that
    user)."""
    from xsys.http.token import TokenFileError, read_token, token_file_path

    try:
        cfg = load_config(config_file).config.http
    except ConfigError as exc:
        fail(f"config error: {exc}")
    if not cfg.enabled:
        fail("the HTTP gateway is off; set http.enabled: true (and restart the daemon)")
    token_value = cfg.token
    if not token_value:
        try:
            token_value = read_token(token_file_path(cfg.token_file))
        except TokenFileError as exc:
            fail(f"cannot read the HTTP token: {exc}")
    https = False
    if cfg.web_config_file:
        from xsys.http.webconfig import WebConfigError, load_web_config

        try:
            https = load_web_config(cfg.web_config_file).tls is not None
        except WebConfigError as exc:
            fail(f"http.web_config_file: {exc}")
    url = dashboard_url(cfg.host, cfg.port, token_value, https)
    click.echo(url)
    if open_browser:
        import webbrowser

        if not webbrowser.open(url):
            fail("no web browser could be started; open the URL above yourself")
