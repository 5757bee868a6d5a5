"""Shared pieces of the CLI: the state every command is given, the one place that talks to
the daemon (errors -> one line and an exit code), the one place that chooses between
``--json`` and a renderer, the decorators that bind a command to a daemon method, and the
text helpers renderers are built from.

A data command is a few lines::

    def render_processes(r: Result) -> str:            # pure: result -> text
        return table([[p["pid"], p["name"]] for p in r["processes"]], ["PID", "NAME"])

    @method_command(sys_group, "processes", "sys.processes", render_processes)
    @click.option("--limit", type=int, default=20)
    def processes(**params: Any) -> None:
        '''Processes, busiest first.'''              # None: the options are the params

The decorated function's parameters are the command's Click parameters; it returns the
method's params, or None when they are its parameters as they are (``method_command``).
Commands that stream (``watch``, ``monitor watch``, ``fs cat``/``tail``) take
``pass_state`` and ``json_option`` and print through ``CliState.emit_line``/``hint``.

Exit codes: 0 ok, 1 the daemon answered with an error (or the command failed), 2 a usage
error (Click's, or the daemon's -32602 invalid_params) or the daemon is not reachable or
not trusted.

Start-up: this module imports only Click and the standard library; the client (msgpack,
sockets) is imported when a command first connects (see docs/cli.md, "Start-up").
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from xsys.units import format_bytes, format_duration, format_field, format_percent, format_time

if TYPE_CHECKING:
    from xsys.client import Client

F = TypeVar("F", bound=Callable[..., Any])

#: A daemon method's params (``None`` values are left out before sending).
Params = Mapping[str, Any]
#: A renderer: a method's result -> the text to print (``None``: print nothing). Pure.
Renderer = Callable[[Any], "str | None"]

#: Exit codes: 0 ok, 1 the daemon answered with an error, 2 a usage error (as Click's,
#: and the daemon's -32602 invalid_params) or the daemon is not reachable.
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 2

#: ``CliState.connected``'s default: the ``--timeout`` of the root command.
ROOT_TIMEOUT = -1.0


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print ``xsys: message`` to stderr and exit with ``code``."""
    click.echo(f"xsys: {message}", err=True)
    sys.exit(code)


def _json_default(o: Any) -> Any:
    """JSON for what msgpack gives and JSON lacks: bytes as UTF-8 text where possible, else
    hex; anything else as ``str``."""
    if isinstance(o, (bytes, bytearray)):
        try:
            return o.decode()
        except UnicodeDecodeError:
            return o.hex()
    return str(o)


def print_json(data: Any) -> None:
    """Pretty JSON to stdout (bytes as UTF-8 text where possible, else hex)."""
    click.echo(json.dumps(data, indent=2, default=_json_default, sort_keys=False))


@dataclass
class CliState:
    """What every command is given (``pass_state``): the root command's options and the
    output mode its ``--json`` flag chose. Holds the CLI's only connection logic
    (``connected``) and its only output choice (``emit``)."""

    socket: str | None = None
    timeout: float = 30.0
    #: Set by ``--json`` (``json_option``): machine-readable output.
    as_json: bool = False
    #: ``--local``: sys and fs commands run in this process (``xsys.cli.local``).
    local: bool = False
    #: ``--root``: the fs roots of ``--local``.
    roots: tuple[str, ...] = ()

    @property
    def socket_path(self) -> str:
        """The socket the CLI talks to."""
        from xsys.protocol import default_socket_path

        return self.socket or default_socket_path()

    @contextmanager
    def connected(self, timeout: float | None = ROOT_TIMEOUT) -> Iterator[Client]:
        """A connected ``Client`` (``timeout`` seconds per answer, ``None`` for none; by
        default the root's ``--timeout``), or with ``--local`` a ``LocalClient`` serving sys
        and fs in this process. Exits 2 with one line when the daemon is down, refuses us,
        is not trusted or the connection drops (or, with ``--local``, when the command
        needs the daemon); exits 1 with the error's name, code, message and data when a
        call fails (2 for -32602 invalid_params, a usage error), and with the message on
        a timeout."""
        from xsys.client import Client
        from xsys.protocol import (
            ConnectionClosed,
            DaemonNotRunning,
            InvalidParams,
            UntrustedServer,
            XsysError,
        )

        wait = self.timeout if timeout == ROOT_TIMEOUT else timeout
        client: Any
        if self.local:
            from xsys.cli.local import LocalClient, NeedsDaemon

            try:
                client = LocalClient(self.roots, wait)
            except ValueError as exc:
                fail(str(exc))
            local_errors: tuple[type[BaseException], ...] = (NeedsDaemon,)
        else:
            local_errors = ()
            try:
                client = Client(self.socket_path, timeout=wait)
            except DaemonNotRunning:
                fail(f"the daemon is not running (no answer on {self.socket_path}); "
                     "start it with `xsys serve` (or `make run`), or run sys and fs "
                     "commands without it: `xsys --local ...`", EXIT_UNREACHABLE)
            except UntrustedServer as exc:
                fail(exc.message, EXIT_UNREACHABLE)
            except PermissionError:
                fail(f"permission denied opening {self.socket_path}", EXIT_UNREACHABLE)
        try:
            yield client
        except local_errors as exc:
            fail(str(getattr(exc, "message", exc)), EXIT_UNREACHABLE)
        except ConnectionClosed as exc:
            fail(f"lost the connection to the daemon at {self.socket_path}: {exc.message}",
                 EXIT_UNREACHABLE)
        except XsysError as exc:
            detail = f" {json.dumps(exc.data, default=str)}" if exc.data else ""
            fail(f"{exc.name} ({exc.code}): {exc.message}{detail}",
                 EXIT_USAGE if isinstance(exc, InvalidParams) else EXIT_ERROR)
        except TimeoutError as exc:
            fail(str(exc))
        finally:
            client.close()

    def call(self, method: str, params: Params | None = None, *,
             progress: str | None = None) -> Any:
        """Call ``method`` with the non-None ``params`` on a connection of its own (errors
        as ``connected``). ``progress``: a label; asks for progress, shows it on a
        terminal (see ``Progress``) and waits without a timeout."""
        with self.connected(timeout=None if progress else ROOT_TIMEOUT) as client:
            return self.call_on(client, method, params, progress=progress)

    def call_on(self, client: Client, method: str, params: Params | None = None, *,
                progress: str | None = None) -> Any:
        """``call`` on an open ``client`` (inside ``connected``)."""
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        if progress is None:
            return client.call(method, clean)
        bar = Progress(progress, quiet=self.as_json)
        try:
            return client.call(method, clean, on_progress=bar if bar.enabled else None)
        finally:
            bar.close()

    def emit(self, result: Any, render: Renderer, *, each: bool = False,
             notes: Callable[[Any], Iterable[str]] | None = None) -> None:
        """Print ``result``: pretty JSON under ``--json``, else ``render(result)`` (nothing
        when it returns None) and the ``notes(result)`` lines on stderr. ``each``:
        ``result`` is a list whose items are rendered one after the other (JSON: the list,
        or its lone item). The one place that makes this choice (``emit_line`` and
        ``hint`` are its forms for streams)."""
        if self.as_json:
            print_json(result[0] if each and len(result) == 1 else result)
            return
        for item in result if each else [result]:
            text = render(item)
            if text is not None:
                click.echo(text)
        for line in notes(result) if notes is not None else ():
            click.echo(line, err=True)

    def emit_line(self, item: Any, render: Renderer) -> None:
        """One item of a stream: one compact JSON object per line under ``--json``, else
        ``render(item)`` (nothing when it returns None)."""
        if self.as_json:
            click.echo(json.dumps(item, default=_json_default))
            return
        text = render(item)
        if text is not None:
            click.echo(text)

    def hint(self, text: str) -> None:
        """A line for people on stderr (a stream's banner); left out under ``--json``."""
        if not self.as_json:
            click.echo(text, err=True)


pass_state = click.make_pass_decorator(CliState, ensure=True)
"""Decorator: give the command the ``CliState`` as its first argument (Click's
``make_pass_decorator``)."""


def current_state() -> CliState:
    """The ``CliState`` of the command being run."""
    return click.get_current_context().ensure_object(CliState)


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    ctx.ensure_object(CliState).as_json = value


_JSON_OPTION: dict[str, Any] = {"is_flag": True, "expose_value": False, "callback": _set_json,
                                "help": "Print the raw result as JSON."}


def json_option(fn: F) -> F:
    """Add ``--json`` to a command: it sets ``CliState.as_json`` (the function does not get
    it as an argument), which ``CliState.emit``, ``emit_line`` and ``hint`` follow."""
    return click.option("--json", "as_json", **_JSON_OPTION)(fn)


@dataclass(frozen=True)
class Call:
    """What a ``method_command`` function returns when the option values choose the method:
    call ``method`` with ``params`` and render with ``render`` (default: the command's)."""

    method: str
    params: Params = field(default_factory=dict)
    render: Renderer | None = None


def _with_json(fn: Callable[..., Any], command: Callable[..., Any]) -> Callable[..., Any]:
    """``command`` wrapped like ``fn`` (name, docstring, Click parameters) with ``--json``
    added as its last option."""
    functools.update_wrapper(command, fn)
    params = list(getattr(fn, "__click_params__", []))
    params.insert(0, click.Option(["--json", "as_json"], **_JSON_OPTION))  # listed last
    command.__click_params__ = params  # type: ignore[attr-defined]
    return command


def _exit(result: Any, exit_code: Callable[[Any], int] | None) -> None:
    """Exit with ``exit_code(result)`` when there is one and it is not 0."""
    code = exit_code(result) if exit_code is not None else 0
    if code:
        click.get_current_context().exit(code)


def renders(render: Renderer, *, notes: Callable[[Any], Iterable[str]] | None = None,
            exit_code: Callable[[Any], int] | None = None) -> Callable[[F], F]:
    """Decorator for a command that computes its own result (without a daemon method, e.g.
    ``config show``): adds ``--json``; the function returns the result, which is printed
    as JSON or ``render(result)``. ``notes(result)``: lines for stderr in text mode;
    ``exit_code(result)``: the exit code (0 to finish normally)."""

    def decorate(fn: F) -> F:
        def command(**kwargs: Any) -> None:
            result = fn(**kwargs)
            current_state().emit(result, render, notes=notes)
            _exit(result, exit_code)

        return _with_json(fn, command)  # type: ignore[return-value]

    return decorate


def method_command(
    group: click.Group,
    name: str,
    method: str | None = None,
    render: Renderer | None = None,
    *,
    progress: str | Callable[[Params], str] | None = None,
    notes: Callable[[Any], Iterable[str]] | None = None,
    exit_code: Callable[[Any], int] | None = None,
) -> Callable[[Callable[..., Any]], click.Command]:
    """Decorator: make the function ``group``'s command ``name``, bound to the daemon
    ``method`` and printed with ``render`` (or as JSON with ``--json``, which it adds).

    The function gets the command's Click parameters (put ``pass_state`` under this
    decorator to get the ``CliState`` first, e.g. to make other calls) and returns:

    - ``None``: the command's own parameters are the method's params;
    - a mapping: the params;
    - a sequence of mappings: one call each, on one connection; the results are rendered
      one after the other (JSON: a list, or the lone result);
    - a ``Call``: another method (and renderer) chosen by the options.

    ``None`` params are left out. ``progress``: a label, or ``params -> label``; the call
    asks for progress, shows a bar on a terminal and waits without a timeout. ``notes`` and
    ``exit_code``: as for ``renders``. Errors end the command with one line and exit 1, or
    exit 2 when the daemon is unreachable (``CliState.connected``).
    """

    if method is not None and render is None:
        raise TypeError(f"{name}: method_command needs a renderer for {method}")

    def decorate(fn: Callable[..., Any]) -> click.Command:
        def command(**kwargs: Any) -> None:
            st = current_state()
            spec = fn(**kwargs)
            each = isinstance(spec, Sequence) and not isinstance(spec, Call)
            calls = _calls(spec, kwargs, method, render)
            with st.connected(timeout=None if progress else ROOT_TIMEOUT) as client:
                results = [st.call_on(client, c.method, c.params,
                                      progress=_label(progress, c.params)) for c in calls]
            shown = render if each else calls[0].render or render
            if shown is None:
                raise TypeError(f"{name}: the Call for {calls[0].method} has no renderer")
            result = results if each else results[0]
            st.emit(result, shown, each=each, notes=notes)
            _exit(result, exit_code)

        return group.command(name)(_with_json(fn, command))

    return decorate


def _calls(spec: Any, kwargs: dict[str, Any], method: str | None,
           render: Renderer | None) -> list[Call]:
    """A ``method_command`` function's return value as the list of calls to make."""
    if isinstance(spec, Call):
        return [spec]
    if method is None:
        raise TypeError("method_command without a method: return a Call")
    if spec is None:
        return [Call(method, kwargs, render)]
    if isinstance(spec, Mapping):
        return [Call(method, spec, render)]
    return [Call(method, params, render) for params in spec]


def _label(progress: str | Callable[[Params], str] | None, params: Params) -> str | None:
    if progress is None or isinstance(progress, str):
        return progress
    return progress(params)


class Progress:
    """Renders ``<ns>.progress`` notifications on stderr: a bar when the total is known, a
    running count otherwise; nothing when stderr is not a terminal or ``quiet``."""

    def __init__(self, label: str, quiet: bool = False) -> None:
        self.label = label
        self.enabled = not quiet and sys.stderr.isatty()
        self._bar: Any = None
        self._shown = 0
        self._counting = False

    def __call__(self, params: dict[str, Any]) -> None:
        if not self.enabled:
            return
        done = int(params.get("done") or 0)
        total = params.get("total")
        unit = params.get("unit", "bytes")
        if isinstance(total, int) and total > 0:
            if self._bar is None:
                self._bar = click.progressbar(length=total, label=self.label, file=sys.stderr,
                                              show_eta=True, show_percent=True)
                self._bar.__enter__()
            self._bar.update(max(0, done - self._shown))
            self._shown = done
        else:
            shown = human_bytes(done) if unit == "bytes" else f"{done} {unit}"
            click.echo(f"\r{self.label}: {shown} scanned", nl=False, err=True)
            self._counting = True

    def close(self) -> None:
        """Finish the bar or the count line."""
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None
        if self._counting:
            click.echo("", err=True)
            self._counting = False


# ------------------------------------------------------------------ text for renderers


def human_bytes(n: Any) -> str:
    """``1536`` -> ``1.5 KiB`` (1024-based); blanks for None."""
    if n is None:
        return ""
    if not isinstance(n, (int, float)):
        return str(n)
    return format_bytes(n, iec=True)


def human_percent(p: Any) -> str:
    """``22.73`` -> ``22.7%`` (``xsys.units.format_percent``); blanks for None."""
    return format_percent(p) if isinstance(p, (int, float)) else ""


def human_time(ts: Any) -> str:
    """Epoch seconds -> local ISO-8601 (``xsys.units.format_time``); blanks for None."""
    return format_time(ts)


def human_rate(n: Any) -> str:
    """Bytes per second, human readable."""
    return "" if n is None else f"{human_bytes(n)}/s"


def human_seconds(s: Any) -> str:
    """``93784`` -> ``1d 2h 3m``; blanks for anything not a number."""
    if not isinstance(s, (int, float)) or math.isnan(s):
        return ""
    return format_duration(s)


def one_line(text: str) -> str:
    """``text`` with newlines, tabs and other control characters as spaces (a cell or a
    field never breaks a table's lines)."""
    return text if text.isprintable() else "".join(
        ch if ch.isprintable() else " " for ch in text)


def cell(value: Any) -> str:
    """One table cell on one line: floats to 2 decimals, lists joined, None blank."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(cell(v) for v in value)
    return one_line(str(value))


def terminal_columns() -> int:
    """The terminal's width in columns: ``$COLUMNS`` when set, else stdout's terminal,
    else 80 (``shutil.get_terminal_size``'s rules, without importing shutil)."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.stdout.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


#: ``table``'s default ``fit``: the terminal's width when stdout is a terminal, else none.
AUTO_FIT = -1


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str],
          right: Sequence[int] = (), fit: int | None = AUTO_FIT) -> str:
    """A plain aligned text table; column indexes in ``right`` are right-aligned. ``fit``:
    a width in columns; the last column (a command line, addresses) is cut so that no
    line is longer (the other columns are never cut). By default (``AUTO_FIT``) the
    terminal's width when stdout is one, as ps does; None: never cut."""
    if fit == AUTO_FIT:
        fit = terminal_columns() if sys.stdout.isatty() else None
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
    if fit is not None:
        lines = [line[:max(fit, sum(widths[:-1]) + 2 * (len(widths) - 1) + 1)]
                 for line in lines]
    return "\n".join(lines)


def pairs(items: Sequence[tuple[str, Any]], fit: int | None = AUTO_FIT) -> str:
    """``key: value`` lines aligned on the colon; a value longer than ``fit`` columns
    (default: the terminal's when stdout is one, see ``table``) wraps under itself."""
    if fit == AUTO_FIT:
        fit = terminal_columns() if sys.stdout.isatty() else None
    width = max((len(k) for k, _ in items), default=0)
    lines = []
    for k, v in items:
        head = f"{k + ':':<{width + 1}} "
        text = cell(v)
        if fit is None or len(head) + len(text) <= fit or fit - len(head) < 20:
            lines.append((head + text).rstrip())
            continue
        import textwrap

        lines += textwrap.wrap(text, fit, initial_indent=head,
                               subsequent_indent=" " * len(head), break_on_hyphens=False)
    return "\n".join(lines)


def field_cell(name: str, value: Any) -> str:
    """A result field for people, by the unit its name carries (``_bytes`` IEC,
    ``percent`` with ``%``, ``_at`` local ISO-8601, ``_s`` seconds:
    ``xsys.units.format_field``), else ``cell``."""
    shown = format_field(name, value)
    return cell(value) if shown is None else shown
