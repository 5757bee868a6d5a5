"""Shared pieces of the CLI: options, the connected client, error handling and rendering.
Output is the CLI's only business: commands parse, call the client, render."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import click

from xsys.client import Client, UntrustedServer
from xsys.monitor.units import format_bytes, format_duration
from xsys.protocol import ConnectionClosed, DaemonNotRunning, XsysError, default_socket_path

F = TypeVar("F", bound=Callable[..., Any])

#: Exit codes: 0 ok, 1 the daemon answered with an error, 2 the daemon is not reachable.
EXIT_ERROR = 1
EXIT_UNREACHABLE = 2


@dataclass
class CliState:
    """Options of the root command, shared with every subcommand via ``ctx.obj``."""

    socket: str | None = None
    timeout: float = 30.0

    @property
    def socket_path(self) -> str:
        """The socket the CLI talks to."""
        return self.socket or default_socket_path()


def json_option(fn: F) -> F:
    """Add ``--json`` (machine-readable output) to a command as ``as_json``."""
    return click.option("--json", "as_json", is_flag=True,
                        help="Print the raw result as JSON.")(fn)


def state(ctx: click.Context) -> CliState:
    """The root command's ``CliState``."""
    obj = ctx.find_root().obj
    if not isinstance(obj, CliState):
        obj = CliState()
        ctx.find_root().obj = obj
    return obj


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print ``xsys: message`` to stderr and exit with ``code``."""
    click.echo(f"xsys: {message}", err=True)
    sys.exit(code)


@contextmanager
def connected(ctx: click.Context, timeout: float | None = -1.0) -> Iterator[Client]:
    """A connected ``Client``; exits 2 with one clear line when the daemon is down and 1
    with the error's name and message when a call fails."""
    st = state(ctx)
    try:
        client = Client(st.socket_path, timeout=st.timeout if timeout == -1.0 else timeout)
    except DaemonNotRunning:
        fail(f"the daemon is not running (no answer on {st.socket_path}); "
             "start it with `xsys serve` (or `make run`)", EXIT_UNREACHABLE)
    except UntrustedServer as exc:
        fail(exc.message, EXIT_UNREACHABLE)
    except PermissionError:
        fail(f"permission denied opening {st.socket_path}", EXIT_UNREACHABLE)
    try:
        yield client
    except ConnectionClosed as exc:
        fail(f"lost the connection to the daemon at {st.socket_path}: {exc.message}",
             EXIT_UNREACHABLE)
    except XsysError as exc:
        detail = f" {json.dumps(exc.data, default=str)}" if exc.data else ""
        fail(f"{exc.name} ({exc.code}): {exc.message}{detail}")
    except TimeoutError as exc:
        fail(str(exc))
    finally:
        client.close()


def call(ctx: click.Context, method: str, **params: Any) -> Any:
    """Call ``method`` on the daemon with the non-None ``params`` (see ``connected``)."""
    with connected(ctx) as client:
        return client.call(method, {k: v for k, v in params.items() if v is not None})


def print_json(data: Any) -> None:
    """Pretty JSON to stdout (bytes as UTF-8 text where possible, else hex)."""

    def default(o: Any) -> Any:
        if isinstance(o, (bytes, bytearray)):
            try:
                return o.decode()
            except UnicodeDecodeError:
                return o.hex()
        return str(o)

    click.echo(json.dumps(data, indent=2, default=default, sort_keys=False))


def human_bytes(n: Any) -> str:
    """``1536`` -> ``1.5 KiB`` (1024-based); blanks for None."""
    if n is None:
        return ""
    if not isinstance(n, (int, float)):
        return str(n)
    return format_bytes(n, iec=True)


def human_rate(n: Any) -> str:
    """Bytes per second, human readable."""
    return "" if n is None else f"{human_bytes(n)}/s"


def human_seconds(s: Any) -> str:
    """``93784`` -> ``1d 2h 3m``; blanks for anything not a number."""
    if not isinstance(s, (int, float)) or math.isnan(s):
        return ""
    return format_duration(s)


def cell(value: Any) -> str:
    """One table cell: floats to 2 decimals, lists joined, None blank."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(cell(v) for v in value)
    return str(value)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str],
          right: Sequence[int] = ()) -> str:
    """A plain aligned text table; column indexes in ``right`` are right-aligned."""
    text = [[cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in text:
        for i, v in enumerate(row):
            widths[i] = max(widths[i], len(v))
    def fmt(row: Sequence[str]) -> str:
        parts = [v.rjust(widths[i]) if i in right else v.ljust(widths[i])
                 for i, v in enumerate(row)]
        return "  ".join(parts).rstrip()
    lines = [fmt(list(headers))]
    lines += [fmt(r) for r in text]
    return "\n".join(lines)


def pairs(items: Sequence[tuple[str, Any]]) -> str:
    """``key: value`` lines aligned on the colon."""
    width = max((len(k) for k, _ in items), default=0)
    return "\n".join(f"{k + ':':<{width + 1}} {cell(v)}" for k, v in items)
