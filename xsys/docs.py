"""Generate the reference docs from the code (the single sources of truth):

- ``docs/methods.md``: every method from the router's registry, between
  ``<!-- methods:start -->`` and ``<!-- methods:end -->``;
- ``docs/configuration.md``: every config key from the config dataclasses
  (``xsys.config`` and each ``xsys/<part>/config.py``), with its type, default and the
  field's docstring, between ``<!-- config:start -->`` and ``<!-- config:end -->``.

``python -m xsys.docs`` rewrites both files (``make methods-doc``); ``python -m xsys.docs
FILE...`` rewrites the generated blocks found in those files; ``--check`` exits 1 on drift
instead of writing (tests/test_docs.py runs the same comparison).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import json
import re
import sys
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, Literal

from xsys.config import Config, to_dict
from xsys.server.router import MethodSpec, ParamSpec, Router

START, END = "<!-- methods:start -->", "<!-- methods:end -->"
CONFIG_START, CONFIG_END = "<!-- config:start -->", "<!-- config:end -->"
ROOT = Path(__file__).resolve().parent.parent
#: The generated files and what ``python -m xsys.docs`` writes without arguments.
TARGETS = (ROOT / "docs" / "methods.md", ROOT / "docs" / "configuration.md")


def _param(p: ParamSpec) -> str:
    text = f"`{p.name}`: {p.type.replace('|', chr(92) + '|')}"
    if p.choices is not None:
        text = f"`{p.name}`: " + "\\|".join(repr(c).replace("'", '"') for c in p.choices)
    if not p.required:
        default = repr(p.default).replace("'", '"') if p.default is not None else "null"
        text += f" = {default}"
    return text


def _plain_rst(text: str) -> str:
    """RST inline literals (````x````) as Markdown code spans."""
    return re.sub(r"``(.+?)``", r"`\1`", text)


def _row(spec: MethodSpec) -> str:
    params = "<br>".join(_param(p) for p in spec.params) or "—"
    summary = _plain_rst(spec.summary).replace("|", "\\|")
    extra = []
    if spec.streams:
        extra.append(f"streams `{spec.streams}`")
    if spec.progress:
        extra.append("progress")
    tail = f" ({', '.join(extra)})" if extra else ""
    return f"| `{spec.name}` | {params} | {summary}{tail} |"


def build_router() -> Router:
    """A router with every method registered on a default config (nothing started): the
    registry the generated docs and ``xsys.client._methods`` are made from."""
    from xsys.daemon import compose

    app, router = compose(Config())
    app.executor.shutdown(wait=False)
    return router


def method_table(router: Router | None = None) -> str:
    """The Markdown table of every registered method."""
    if router is None:
        router = build_router()
    lines = ["| method | params | summary |", "|---|---|---|"]
    lines += [_row(spec) for spec in router.specs()]
    return "\n".join(lines)


# --------------------------------------------------------------------------- config


def field_docs(cls: type[Any]) -> dict[str, str]:
    """What each field of a dataclass means: its attribute docstring (a string literal
    right after the field), else the bullet of the class docstring that starts with the
    field's name (``- ``refresh`` (s): period of a tick``), inherited ones included:
    ``{field name: text}``. (``config_reference`` falls back on ``COMMON_FIELDS``, then
    on the first docstring sentence naming the field.)"""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        docs.update(_bullet_docs(klass))
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):  # pragma: no cover - source always present here
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, nxt in itertools.pairwise(body):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)):
                docs[node.target.id] = " ".join(inspect.cleandoc(nxt.value.value).split())
    return docs


def _bullet_docs(cls: type[Any]) -> dict[str, str]:
    """``{field: bullet text}`` from the ``- ``name``...: text`` bullets of a class
    docstring (a bullet naming several fields before its colon documents each)."""
    names = {f.name for f in dataclasses.fields(cls)}
    text = inspect.cleandoc(cls.__doc__ or "")
    out: dict[str, str] = {}
    for bullet in re.split(r"\n(?=- )", text):
        if not bullet.startswith("- "):
            continue
        for clause in re.split(r";\s+(?=``)", " ".join(bullet[2:].split())):
            head = clause.split(": ", 1)[0] if ": " in clause else clause
            for name in re.findall(r"``(\w+)``", head):
                if name in names and name not in out:
                    out[name] = clause.rstrip(";")
    return out


#: Meanings of field names shared by many sections, for fields their class does not
#: describe itself (attribute docstring, docstring bullet or sentence win).
COMMON_FIELDS = {
    "enabled": "Turn this part on or off.",
    "warning": "Warning threshold, in the check's unit; null turns the level off.",
    "critical": "Critical threshold, in the check's unit; null turns the level off.",
    "duration": "Seconds a level must hold before it fires (Prometheus `for:`); 0 = at once.",
    "hysteresis": "Fraction of a threshold the value must fall below it before the level "
                  "is left (0.05: a 90 % line clears under 85.5 %).",
    "password": "Password for the login (with `user`).",
    "from_addr": "Sender address (`From:`).",
    "docker": "Restart the probe's container through the Docker Engine API.",
}


def _sentence_docs(cls: type[Any]) -> dict[str, str]:
    """``{field: sentence}``: the first sentence of the class docstring that names the
    field in a literal (the fallback when no bullet or attribute docstring does)."""
    names = {f.name for f in dataclasses.fields(cls)}
    out: dict[str, str] = {}
    doc = inspect.cleandoc(cls.__doc__ or "")
    parts = [" ".join(b.split()) for b in re.split(r"\n- |\n\n", doc)]  # bullets, paragraphs
    for sentence in (s for part in parts for s in re.split(r"(?<=[.!?;])\s+(?=[A-Z`])", part)):
        for name in re.findall(r"``(\w+)``", sentence):
            if name in names and name not in out:
                out[name] = sentence
    return out


def _intro(cls: type[Any]) -> str:
    """A section's description: the class docstring's text before any bullet list, and
    the prose of the dataclasses it inherits fields from."""
    parts = []
    for klass in cls.__mro__:
        if not dataclasses.is_dataclass(klass) or not klass.__doc__:
            continue
        text = inspect.cleandoc(klass.__doc__).split("\n- ", 1)[0]
        para = " ".join(_plain_rst(text).split())
        if para and para not in parts and not para.startswith(klass.__name__ + "("):
            parts.append(para)
    return " ".join(parts)


def _type_text(tp: Any) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is type(None):
        return "null"
    if tp in (int, float, str, bool):
        return {int: "int", float: "number", str: "string", bool: "bool"}[tp]
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_text(a) for a in args)
    if origin is Literal:
        return " \\| ".join(json.dumps(a) for a in args)
    if origin in (tuple, list):
        return f"list of {_type_text(args[0])}" if args else "list"
    if origin is dict or origin is typing.Mapping:
        return f"map of {_type_text(args[1])}" if len(args) == 2 else "map"
    if dataclasses.is_dataclass(tp):
        return "map"
    return str(tp)


def _dataclass_of(tp: Any) -> type[Any] | None:
    """The dataclass an annotation is (or is optionally), else None."""
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if dataclasses.is_dataclass(arg) and isinstance(arg, type):
                return arg
    return None


def _list_item_dataclass(tp: Any) -> type[Any] | None:
    if typing.get_origin(tp) in (tuple, list):
        args = typing.get_args(tp)
        if args and dataclasses.is_dataclass(args[0]) and isinstance(args[0], type):
            return args[0]
    return None


def _default_text(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "required"
    return f"`{json.dumps(to_dict(value))}`"


def config_sections(cls: type[Any] = Config, path: str = "") -> list[tuple[str, type[Any]]]:
    """Every config dataclass in the tree with its key path, depth first:
    ``[("", Config), ("server", ServerConfig), ..., ("checks[]", CheckConfig), ...]``."""
    out = [(path, cls)]
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        sub = f"{path}.{f.name}" if path else f.name
        inner = _dataclass_of(hints[f.name])
        item = _list_item_dataclass(hints[f.name])
        if inner is not None:
            out += config_sections(inner, sub)
        elif item is not None:
            out += config_sections(item, sub + "[]")
    return out


def config_keys() -> list[str]:
    """Every leaf key path of the config (``server.socket``, ``checks[].http.url``...)."""
    keys = []
    for path, cls in config_sections():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if _dataclass_of(hints[f.name]) is None and _list_item_dataclass(hints[f.name]) is None:
                keys.append(f"{path}.{f.name}" if path else f.name)
    return keys


def config_reference() -> str:
    """The Markdown reference of every config key: one table per section."""
    parts: list[str] = []
    for path, cls in config_sections():
        hints = typing.get_type_hints(cls)
        docs = field_docs(cls)
        sentences: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            if dataclasses.is_dataclass(klass):
                sentences.update(_sentence_docs(klass))
        rows = []
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            if _dataclass_of(tp) is not None or _list_item_dataclass(tp) is not None:
                continue
            meaning = docs.get(f.name) or COMMON_FIELDS.get(f.name) or sentences.get(f.name, "")
            doc = _plain_rst(meaning).replace("|", "\\|")
            rows.append(f"| `{f.name}` | {_type_text(tp)} | {_default_text(f)} | {doc} |")
        if not rows:
            continue
        title = path or "(top level)"
        intro = _intro(cls)
        parts.append(f"### `{title}`\n\n{intro} (`{cls.__module__}.{cls.__name__}`)\n\n"
                     "| key | type | default | meaning |\n|---|---|---|---|\n" + "\n".join(rows))
    return "\n\n".join(parts)


# --------------------------------------------------------------------------- files

_BLOCKS = ((START, END, method_table), (CONFIG_START, CONFIG_END, config_reference))


def render(text: str) -> str:
    """``text`` with every generated block it holds regenerated; ValueError when it holds
    none."""
    found = False
    for start, end, make in _BLOCKS:
        pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
        if pattern.search(text):
            found = True
            block = f"{start}\n{make()}\n{end}"
            text = pattern.sub(lambda _m: block, text)  # noqa: B023 - used at once
    if not found:
        raise ValueError(f"no {START} ... {END} or {CONFIG_START} ... {CONFIG_END} block found")
    return text


def main(argv: list[str]) -> int:
    """CLI entry: ``[--check] [FILE...]`` (default: docs/methods.md, docs/configuration.md)."""
    check = "--check" in argv
    paths = [Path(a) for a in argv if not a.startswith("--")] or list(TARGETS)
    stale = 0
    for path in paths:
        old = path.read_text(encoding="utf-8")
        new = render(old)
        if check:
            if new != old:
                print(f"{path}: generated reference is out of date; run `make methods-doc`")
                stale += 1
        elif new != old:
            path.write_text(new, encoding="utf-8")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
