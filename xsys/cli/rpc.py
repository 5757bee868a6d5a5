"""``xsys ping`` and ``xsys methods [NAME]``: the daemon's ``rpc.*`` namespace."""

from __future__ import annotations

import re
import textwrap
import time
from functools import partial
from typing import Any

import click

from xsys.cli.common import CliState, json_option, pass_state, terminal_columns
from xsys.cli.lazy import XsysCommand

#: RST inline markup the registry's summaries use (``code``, *emphasis*), dropped in text.
_MARKUP = ("``", "**")


def plain(text: str) -> str:
    """Registry text for a terminal: RST ``code`` markup removed, whitespace collapsed."""
    for mark in _MARKUP:
        text = text.replace(mark, "")
    return " ".join(text.split())


def terminal_width() -> int:
    """Columns to wrap to: the terminal's (``$COLUMNS`` first), at least 40, at most 160."""
    return max(40, min(160, terminal_columns()))


def render_ping(r: dict[str, Any], socket_path: str) -> str:
    """``rpc.ping`` with the measured round trip (``rtt_ms``)."""
    return f"pong from {socket_path} in {r['rtt_ms']:.2f} ms"


@click.command("ping", cls=XsysCommand)
@json_option
@pass_state
def ping(state: CliState) -> None:
    """Check that the daemon answers."""
    start = time.perf_counter()
    r = state.call("rpc.ping")
    elapsed_ms = (time.perf_counter() - start) * 1000
    state.emit({**r, "rtt_ms": elapsed_ms}, partial(render_ping, socket_path=state.socket_path))


def _param_text(p: dict[str, Any]) -> str:
    return str(p["name"]) + ("" if p.get("required") else "?")


def render_methods(r: dict[str, Any], width: int | None = None) -> str:
    """``rpc.methods``: one row per method (name, parameters with ``?`` for optional ones,
    summary), plain text wrapped to ``width`` columns (default: the terminal's)."""
    width = width or terminal_width()
    methods = r["methods"]
    name_w = max((len(m["name"]) for m in methods), default=6)
    lines = []
    for m in methods:
        params = ", ".join(_param_text(p) for p in m.get("params", []))
        text = plain(m.get("summary", ""))
        body = f"({params}) {text}" if params else text
        lines += textwrap.wrap(body, width, initial_indent=m["name"].ljust(name_w) + "  ",
                               subsequent_indent=" " * (name_w + 2),
                               break_long_words=True, break_on_hyphens=False) or [m["name"]]
    lines.append("")
    lines.append("`xsys methods NAME` shows one method in full.")
    return "\n".join(lines)


def _wrap(text: str, width: int, indent: str = "  ") -> list[str]:
    return textwrap.wrap(plain(text), width, initial_indent=indent, subsequent_indent=indent,
                         break_on_hyphens=False) or [indent.rstrip()]


def _schema_lines(schema: dict[str, Any], width: int, indent: str) -> list[str]:
    """The fields of a result schema (``xsys.server.router.result_schema``: ``fields``,
    a list's ``items``, a map's ``values``) as indented ``name: type  summary`` lines."""
    inner = schema
    while "fields" not in inner and isinstance(inner.get("items") or inner.get("values"),
                                                 dict):
        inner = inner.get("items") or inner["values"]
    lines = []
    for f in inner.get("fields", []):
        opt = "" if f.get("required", True) else "?"
        head = f"{indent}{f.get('name')}{opt}: {f.get('type', 'any')}"
        summary = plain(str(f.get("summary") or ""))
        lines += textwrap.wrap(f"{head}  {summary}" if summary else head, width,
                               subsequent_indent=indent + "    ", break_on_hyphens=False)
        if len(indent) < 8:
            lines += _schema_lines(f, width, indent + "  ")
    return lines


_ERROR_RE = re.compile(r"-32\d{3}")


def error_codes(text: str) -> list[str]:
    """The protocol error codes ``text`` names, each with its error's name
    (``-32001 not_found``), in order of first mention."""
    from xsys.protocol import ERROR_CLASSES

    out = []
    for code in dict.fromkeys(int(c) for c in _ERROR_RE.findall(text)):
        cls = ERROR_CLASSES.get(code)
        out.append(f"{code} {cls.name}" if cls is not None else str(code))
    return out


def render_method(m: dict[str, Any], width: int | None = None) -> str:
    """One ``rpc.methods`` entry in full: summary and description, parameters (type,
    default, range, choices), result fields, the error codes its text names, and whether
    it is read-only, streams or reports progress. Plain text wrapped to ``width``."""
    width = width or terminal_width()
    out = [m["name"], *_wrap(m.get("summary", ""), width)]
    for para in str(m.get("description") or "").split("\n\n"):
        if para.strip():
            out += ["", *_wrap(para, width)]
    flags = [word for key, word in (("safe", "read-only"), ("streams", "streams notifications"),
                                    ("progress", "reports progress")) if m.get(key)]
    if flags:
        out += ["", f"  ({', '.join(flags)})"]
    out += ["", "Parameters:"]
    if not m.get("params"):
        out.append("  none")
    for p in m.get("params", []):
        bits = [str(p.get("type", "any")) + (" or nil" if p.get("nullable") else "")]
        bits.append("required" if p.get("required") else f"default {p.get('default')!r}")
        if p.get("choices"):
            bits.append("one of " + ", ".join(map(str, p["choices"])))
        for key in ("min", "max"):
            if p.get(key) is not None:
                bits.append(f"{key} {p[key]:g}")
        out += textwrap.wrap(f"  {p['name']} ({'; '.join(bits)})", width,
                             subsequent_indent="      ", break_on_hyphens=False)
        if p.get("summary"):
            out += _wrap(p["summary"], width, "      ")
    result = m.get("result")
    if isinstance(result, dict):
        out += ["", f"Result: {result.get('type', 'any')}"]
        if result.get("summary"):
            out += _wrap(str(result["summary"]), width)
        out += _schema_lines(result, width, "  ")
    text = plain(f"{m.get('summary', '')} {m.get('description') or ''}")
    codes = error_codes(text)
    out += ["", "Errors (the text above says when):" if codes else "Errors:"]
    out += _wrap(", ".join(codes) if codes else "none of its own", width)
    out += _wrap("and the protocol's common ones (docs/protocol.md)", width)
    return "\n".join(out)


def _one(r: dict[str, Any], name: str) -> dict[str, Any]:
    for m in r["methods"]:
        if m["name"] == name:
            return dict(m)
    known = sorted(m["name"] for m in r["methods"])
    close = [k for k in known if name in k or k.split(".")[-1] == name.split(".")[-1]]
    hint = f" (did you mean {', '.join(close[:5])}?)" if close else ""
    raise click.BadParameter(f"no method {name!r}{hint}; `xsys methods` lists them",
                             param_hint="NAME")


@click.command("methods", cls=XsysCommand)
@click.argument("name", required=False)
@json_option
@pass_state
def methods(state: CliState, name: str | None) -> None:
    """List the daemon's methods, or show one (NAME) in full."""
    r = state.call("rpc.methods")
    if name is None:
        state.emit(r, render_methods)
        return
    state.emit(_one(r, name), render_method)


