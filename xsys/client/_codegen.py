"""Generate ``xsys/client/_methods.py``, the typed wrappers of every method, from the
daemon's method registry (the ``rpc.methods`` answer: one source of truth, as for
``docs/methods.md`` and the TypeScript client's ``generated.ts``).

    make client-methods                                  # = the line below
    python -m xsys.client._codegen                       # rewrite _methods.py
    python -m xsys.client._codegen --check               # exit 1 when it is stale
    python -m xsys.client._codegen --from methods.json   # from a saved rpc.methods answer

By default the registry comes from ``--router xsys.docs:build_router``: a factory, named
by import string, returning the router (an object with ``specs()``, each spec with
``describe()``) or the ``rpc.methods`` list itself. The client package never imports the
server: the factory is looked up only when this tool runs. ``render(methods)`` is the
pure part: ``rpc.methods`` entries in, the module's text out (deterministic: sorted by
name, independent of the input order).

What each method becomes (``SysMethods.processes`` for ``Client``,
``AsyncSysMethods.processes`` as ``async def`` for ``AsyncClient``):

- parameters: keyword-only, in registry order, typed from the wire type (``int``,
  ``float``, ``str``, ``bool``, ``bin`` -> ``bytes``, ``map`` -> ``Mapping[str, Any]``,
  ``any`` -> ``Any``, ``list[T]`` -> ``Sequence[T]``, unions with ``|``); ``choices`` ->
  ``Literal[...]``; ``nullable`` -> ``| None``; the registry's default as the default.
  A ``str|bin`` parameter named ``path``, ``src``, ``dst``, ``paths`` or ``*_path(s)``
  is an ``FsPath`` (``str``, ``bytes`` or ``os.PathLike``). A name that is a Python
  keyword gets a trailing underscore (PEP 8); the wire name is unchanged.
- ``timeout`` (every method) and ``on_progress`` (methods with ``progress``) are the
  call's options: a parameter of that name in the registry is an error here (as are
  ``self``, ``params``, ``result``, ``given`` and ``cast``, which the body uses).
- only parameters that differ from their default are sent (``_core.given``).
- the docstring: summary, description, one ``Args:`` line per parameter (its summary
  and range), the wire method's name.
- the return type: ``dict[str, Any]``, or for a streaming method (``streams``) the
  ``Subscription``/``AsyncSubscription`` it opens (``UNSUBSCRIBE`` maps it to the method
  that ends it: the namespace's non-streaming method whose only required parameter is
  ``subscription``, preferring ``unsubscribe``, ``remove``, ``cancel``, ``stop``,
  ``close``).

Declared results. When a method's ``rpc.methods`` entry has a ``result`` schema, its
wrapper returns a generated ``TypedDict`` instead of ``dict[str, Any]``. The schema uses
the parameters' vocabulary::

    schema := {"type": <wire type>, "nullable"?: bool, "choices"?: [...],
               "summary"?: str,             # docstring of the class, or of the field
               "title"?: str,               # class name of a "fields" map (may be shared)
               "fields"?: [field, ...],     # a map with known keys -> a TypedDict
               "items"?: schema,            # a list's elements
               "values"?: schema}           # a map's values (keys are str)
    field  := schema + {"name": str, "required"?: bool (default true)}

The daemon's router makes these (``xsys.server.router.result_schema``): ``type`` is the
full wire type (``list[map]`` with ``items``, ``map`` with ``fields`` or ``values``,
``str|bin`` for a file name). A ``fields`` map becomes ``class <title>(TypedDict)``
(without a title: ``<Method>Result`` for the result itself, ``<Parent><Field>`` below it,
``...Item`` for list elements, ``...Value`` for map values), its ``summary`` the class
docstring; a field's own ``summary`` (when it is not such a map) documents the field. A
field with ``required: false`` is ``NotRequired``. Two schemas with one title must be
identical, and a title may not be a name the module uses itself (``RESERVED_CLASSES``,
``*Methods``): else ``ValueError``.
Example: ``{"type": "map", "fields": [{"name": "pong", "type": "bool"}, {"name": "ts",
"type": "float", "summary": "server time, epoch s"}]}`` for ``rpc.ping`` gives
``class RpcPingResult(TypedDict)`` with ``pong: bool`` and ``ts: float``, and
``def ping(...) -> RpcPingResult``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import keyword
import re
import sys
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The generated module.
OUTPUT = Path(__file__).with_name("_methods.py")
#: Where ``main`` gets the registry by default (import string of a router factory).
DEFAULT_ROUTER = "xsys.docs:build_router"
LINE_LIMIT = 100

#: Soft keywords renamed like keywords (Python 3.11's list, fixed so that the generated file
#: is the same on every Python: 3.12 added ``type``, which stays a plain name here).
_SOFT_KEYWORDS = frozenset({"_", "case", "match"})
#: Names a namespace may not take: the clients' own members.
RESERVED_NAMESPACES = frozenset({
    "call", "subscribe", "connect", "close", "connected", "notifications", "open_file",
    "read_stream", "write_stream",
    "notification_handlers", "socket_path", "trusted_uids", "trusted_sids", "connect_timeout",
    "timeout", "max_frame_bytes", "max_queued_events",
})
#: Parameter names the wrappers use themselves.
RESERVED_PARAMS = frozenset({
    "self", "timeout", "on_progress", "params", "result", "given", "cast",
})
#: Methods whose answer carries a descriptor: the wrapper returns the client's file object
#: (``Client.open_file``) instead of the result map.
DESCRIPTOR_METHODS = {"fs.open": "open_file"}
UNSUBSCRIBE_NAMES = ("unsubscribe", "remove", "cancel", "stop", "close")
#: Names the generated module defines or imports: a result class may not take them.
RESERVED_CLASSES = frozenset({
    "METHOD_NAMES", "STREAMS", "UNSUBSCRIBE", "Namespaces", "AsyncNamespaces",
    "TYPE_CHECKING", "Any", "Literal", "NotRequired", "TypedDict", "cast", "Mapping",
    "Sequence", "USE_CLIENT_DEFAULT", "FsPath", "NamespaceBase", "ProgressCallback",
    "Timeout", "given", "AsyncClient", "AsyncSubscription", "Client", "Subscription",
    "builtins", "annotations",
})
_PATH_NAME = re.compile(r"^(path|paths|src|dst|.*_path|.*_paths)$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Builtins the annotations use: a method or field of that name hides the builtin inside
#: its class (for type checkers too), so annotations there spell ``builtins.<name>``.
_BUILTIN_TYPES = frozenset({"bool", "bytes", "dict", "float", "int", "list", "str", "tuple"})

_SCALARS = {
    "int": "int",
    "float": "float",
    "str": "str",
    "bool": "bool",
    "bin": "bytes",
    "map": "Mapping[str, Any]",
    "any": "Any",
    "nil": "None",
    "none": "None",
    "null": "None",
}


# --------------------------------------------------------------------------- types


def split_union(wire: str) -> list[str]:
    """``"int|list[str|bin]"`` -> ``["int", "list[str|bin]"]`` (top-level members)."""
    parts: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(wire):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(wire[start:i].strip())
            start = i + 1
    parts.append(wire[start:].strip())
    return [p for p in parts if p]


def _join(members: Iterable[str]) -> str:
    out: list[str] = []
    for m in members:
        if m not in out:
            out.append(m)
    if "Any" in out:
        return "Any"
    if "int" in out and "float" in out:
        out.remove("int")  # a float parameter takes ints
    return " | ".join(out)


def py_type(wire: str, *, path: bool = False, result: bool = False) -> str:
    """The Python annotation of a wire type. ``path``: a ``str|bin`` member is an
    ``FsPath``. ``result``: for a value received (``list`` and ``dict`` rather than the
    ``Sequence``/``Mapping`` a parameter accepts). Unknown names become ``Any``."""
    members = split_union(wire)
    if path and "str" in members and "bin" in members:
        members = ["FsPath" if m == "str" else m for m in members if m != "bin"]
    out: list[str] = []
    for m in members:
        if m == "FsPath":
            out.append(m)
        elif m.startswith("list[") and m.endswith("]"):
            inner = py_type(m[5:-1], path=path, result=result)
            out.append(f"list[{inner}]" if result else f"Sequence[{inner}]")
        elif m == "list":
            out.append("list[Any]" if result else "Sequence[Any]")
        elif m == "map" and result:
            out.append("dict[str, Any]")
        else:
            out.append(_SCALARS.get(m, "Any"))
    return _join(out)


def qualify(annotation: str, shadowed: Iterable[str]) -> str:
    """``annotation`` with each builtin type named in ``shadowed`` as ``builtins.<name>``."""
    for name in shadowed:
        annotation = re.sub(rf"(?<![\w.]){name}\b", f"builtins.{name}", annotation)
    return annotation


def literal(value: Any) -> str:
    """Python source for a JSON-like value (str with double quotes; lists as tuples, so
    a default is never a shared mutable list). Raises ``ValueError`` for others."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return repr(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"no Python literal for {value!r}")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bytes):
        return repr(value)
    if isinstance(value, (list, tuple)):
        items = [literal(v) for v in value]
        return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
    if isinstance(value, dict):
        inner = ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items())
        return "{" + inner + "}"
    raise ValueError(f"no Python literal for {value!r}")


def _literal_type(choices: Sequence[Any], members: list[str]) -> tuple[list[str], list[str]]:
    """(the literals, the other union members) of a parameter with ``choices``: a member
    that the choices already cover (str for str choices, int/float for numbers) drops."""
    lits = [literal(c) for c in choices]
    kinds = {type(c) for c in choices}
    rest: list[str] = []
    for m in members:
        if (m == "str" and str in kinds) or (m in ("int", "float") and kinds & {int, float}):
            continue
        if m in ("Any", "any"):
            continue
        rest.append(m)
    return lits, rest


# --------------------------------------------------------------------------- plans


def pascal(name: str) -> str:
    """``"sys.disk_io"`` -> ``"SysDiskIo"``."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[._\-\s]+", name)
                    if part)


@dataclass
class Param:
    """One parameter of a wrapper."""

    wire: str
    name: str
    wire_type: str
    required: bool
    default: Any
    literals: list[str] | None
    rest: str  # the annotation without the literals
    summary: str
    range_text: str


@dataclass
class Plan:
    """One wrapper: the method's entry and what is derived from it."""

    info: Mapping[str, Any]
    name: str
    ns: str
    member: str
    params: list[Param]
    streams: str | None
    progress: bool
    unsubscribe: str | None = None
    result_type: str = "dict[str, Any]"
    classes: list[str] = field(default_factory=list)


def _range_text(p: Mapping[str, Any]) -> str:
    lo, hi = p.get("min"), p.get("max")
    if lo is None and hi is None:
        return ""

    def num(v: Any) -> str:
        return "" if v is None else (str(int(v)) if float(v).is_integer() else str(v))

    return f"{num(lo)}..{num(hi)}"


def _param(method: str, p: Mapping[str, Any]) -> Param:
    wire = str(p["name"])
    if not _IDENT.match(wire):
        raise ValueError(f"{method}: parameter {wire!r} is not a Python identifier")
    if wire in RESERVED_PARAMS:
        raise ValueError(f"{method}: parameter {wire!r} would shadow a wrapper's own "
                         f"name ({', '.join(sorted(RESERVED_PARAMS))})")
    name = wire + "_" if keyword.iskeyword(wire) or wire in _SOFT_KEYWORDS else wire
    wtype = str(p.get("type", "any"))
    is_path = bool(_PATH_NAME.match(wire))
    base = py_type(wtype, path=is_path)
    members = split_union(base.replace(" ", "")) if base != "Any" else ["Any"]
    members = [m.replace(",", ", ") for m in members]
    choices = p.get("choices")
    literals: list[str] | None = None
    if isinstance(choices, list) and choices:
        literals, members = _literal_type(choices, members)
    rest = _join(members) if members else ""
    if p.get("nullable") and rest != "Any":
        rest = f"{rest} | None" if rest else "None"
    required = bool(p.get("required", False))
    return Param(wire=wire, name=name, wire_type=wtype, required=required,
                 default=None if required else p.get("default"),
                 literals=literals, rest=rest, summary=str(p.get("summary") or ""),
                 range_text=_range_text(p))


def _unsubscribe_for(info: Mapping[str, Any], methods: Sequence[Mapping[str, Any]]) -> str:
    ns = str(info["name"]).split(".", 1)[0]

    def ends_streams(m: Mapping[str, Any]) -> bool:
        required = [p for p in m.get("params", []) if p.get("required")]
        return (str(m["name"]).startswith(ns + ".") and not m.get("streams")
                and len(required) == 1 and required[0].get("name") == "subscription")

    def rank(m: Mapping[str, Any]) -> tuple[int, str]:
        member = str(m["name"]).split(".", 1)[1]
        index = UNSUBSCRIBE_NAMES.index(member) if member in UNSUBSCRIBE_NAMES else 99
        return index, str(m["name"])

    candidates = sorted((m for m in methods if ends_streams(m)), key=rank)
    return str(candidates[0]["name"]) if candidates else f"{ns}.unsubscribe"


class _Classes:
    """The TypedDicts of declared results, by name (identical duplicates merged)."""

    def __init__(self) -> None:
        self.texts: dict[str, str] = {}
        self.order: list[str] = []
        self.not_required = False

    def type_of(self, schema: Mapping[str, Any], hint: str) -> str:
        """The annotation of a result schema (classes registered on the way)."""
        if schema.get("fields") is not None:
            base = self._typed_dict(schema, str(schema.get("title") or hint))
        elif schema.get("items") is not None:
            base = f"list[{self.type_of(schema['items'], hint + 'Item')}]"
        elif schema.get("values") is not None:
            base = f"dict[str, {self.type_of(schema['values'], hint + 'Value')}]"
        else:
            base = py_type(str(schema.get("type", "any")), result=True)
        choices = schema.get("choices")
        if isinstance(choices, list) and choices:
            lits, rest = _literal_type(choices, split_union(base.replace(" ", "")))
            base = _join([f"Literal[{', '.join(lits)}]", *rest])
        if schema.get("nullable") and base != "Any":
            base += " | None"
        return base

    def _typed_dict(self, schema: Mapping[str, Any], name: str) -> str:
        if not _IDENT.match(name) or keyword.iskeyword(name):
            raise ValueError(f"result class name {name!r} is not a Python identifier")
        if name in RESERVED_CLASSES or name.endswith("Methods"):
            raise ValueError(f"result class name {name!r} is taken by the module itself")
        fields: list[tuple[str, str, str]] = []
        shadowed = sorted({str(f["name"]) for f in schema["fields"]} & _BUILTIN_TYPES)
        for f in schema["fields"]:
            fname = str(f["name"])
            ftype = qualify(self.type_of(f, name + pascal(fname)), shadowed)
            if not f.get("required", True):
                ftype = f"NotRequired[{ftype}]"
                self.not_required = True
            fdoc = "" if f.get("fields") is not None else str(f.get("summary") or "")
            fields.append((fname, ftype, fdoc))
        doc = str(schema.get("summary") or f"The ``{name}`` structure.")
        functional = any(not _IDENT.match(n) or keyword.iskeyword(n) for n, _, _ in fields)
        if functional:
            items = "".join(f"        {json.dumps(n)}: {json.dumps(t)},\n" for n, t, _ in fields)
            text = (f"{name} = TypedDict(\n    {json.dumps(name)},\n    {{\n{items}    }},\n)\n"
                    f"{_doc_comment(doc)}")
        else:
            lines = [f"class {name}(TypedDict):\n", _docstring(doc, 4), "\n"]
            for fname, ftype, fdoc in fields:
                lines.append(_fit(f"    {fname}: {ftype}") + "\n")
                if fdoc:
                    lines.append(_docstring(fdoc, 4))
            if not fields:
                lines.pop()
            text = "".join(lines)
        old = self.texts.get(name)
        if old is not None and old != text:
            raise ValueError(f"two different result structures are named {name!r}")
        if old is None:
            self.texts[name] = text
            self.order.append(name)
        return name


def plan(methods: Sequence[Mapping[str, Any]]) -> tuple[list[Plan], _Classes]:
    """Sort and check the methods; raises ``ValueError`` on a name the wrappers cannot
    take (see the module docstring)."""
    ordered = sorted(methods, key=lambda m: str(m["name"]))
    classes = _Classes()
    plans: list[Plan] = []
    seen: set[str] = set()
    for info in ordered:
        name = str(info["name"])
        if name in seen:
            raise ValueError(f"method {name} listed twice")
        seen.add(name)
        ns, dot, member = name.partition(".")
        if not dot or not _IDENT.match(ns) or not _IDENT.match(member):
            raise ValueError(f"method name {name!r} is not <namespace>.<identifier>")
        if ns in RESERVED_NAMESPACES or ns.startswith("_") or keyword.iskeyword(ns):
            raise ValueError(f"namespace {ns!r} would shadow a client member")
        if member.startswith("_") or keyword.iskeyword(member):
            raise ValueError(f"method {name}: {member!r} cannot be a Python method name")
        streams = info.get("streams")
        p = Plan(info=info, name=name, ns=ns, member=member,
                 params=[_param(name, q) for q in info.get("params", [])],
                 streams=str(streams) if streams else None,
                 progress=bool(info.get("progress")))
        if p.streams:
            p.unsubscribe = _unsubscribe_for(info, ordered)
        result = info.get("result")
        if isinstance(result, Mapping):
            p.result_type = classes.type_of(result, pascal(name) + "Result")
        plans.append(p)
    return plans, classes


# --------------------------------------------------------------------------- text


def _fit(line: str) -> str:
    """``line``, marked for the linter when no wrapping rule applies and it is long."""
    return line if len(line) <= LINE_LIMIT else line + "  # noqa: E501"


def _wrap_text(text: str, indent: int) -> list[str]:
    """Paragraphs of ``text``: kept as written when every line fits, else refilled."""
    width = LINE_LIMIT - indent - 4  # room for the opening quotes
    out: list[str] = []
    for para in re.split(r"\n\s*\n", text.strip()):
        lines = [ln.rstrip() for ln in para.splitlines()]
        if all(len(ln) <= width for ln in lines):
            out.extend(lines)
        else:
            out.extend(textwrap.wrap(" ".join(ln.strip() for ln in lines), width,
                                     break_long_words=False, break_on_hyphens=False))
        out.append("")
    while out and not out[-1]:
        out.pop()
    return out


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def _docstring(text: str, indent: int) -> str:
    pad = " " * indent
    lines = _wrap_text(_escape(text), indent)
    if len(lines) == 1 and len(pad) + len(lines[0]) + 6 <= LINE_LIMIT:
        return f'{pad}"""{lines[0]}"""\n'
    return _docstring_of(lines, indent)


def _doc_comment(text: str) -> str:
    return "".join(f"# {ln}\n" if ln else "#\n" for ln in _wrap_text(text, 2))


def _wrap_call(head: str, args: list[str], indent: int, tail: str = ")") -> list[str]:
    """``head(arg, ...)`` on one line when it fits, else one argument per line."""
    pad = " " * indent
    one = f"{pad}{head}{', '.join(args)}{tail}"
    if len(one) <= LINE_LIMIT:
        return [one]
    return [f"{pad}{head}", *(f"{pad}    {a}," for a in args), f"{pad}{tail}"]


def _docstring_of(lines: list[str], indent: int) -> str:
    """A docstring of laid-out ``lines`` (blank strings for blank lines)."""
    pad = " " * indent
    body = "".join(f"{pad}{ln}\n" if ln else "\n" for ln in lines[1:])
    return f'{pad}"""{lines[0]}\n{body}{pad}"""\n'


def _method_doc(p: Plan, sub_type: str) -> str:
    info = p.info
    text = str(info.get("summary") or p.name)
    description = str(info.get("description") or "").strip()
    if description:
        text += "\n\n" + description
    if p.streams:
        text += (f"\n\nReturns a ``{sub_type}`` of ``{p.streams}`` notifications (each "
                 f"one's params, with ``\"method\"``); closing it calls "
                 f"``{p.unsubscribe}``; its ``result`` is this method's answer.")
    lines = _wrap_text(_escape(text), 8)
    args: list[str] = []
    for q in p.params:
        bits = q.summary.rstrip(".") if q.summary else ""
        if q.range_text:
            bits = f"{bits} ({q.range_text})" if bits else q.range_text
        args.append(f"{q.name}: {bits or f'wire type ``{q.wire_type}``'}.")
    if p.progress:
        args.append("on_progress: called with each progress notification's params "
                    "(asks for ``progress: true``).")
    args.append("timeout: seconds to wait for the answer (None: no limit; default: the "
                "client's ``timeout``).")
    lines += ["", "Args:"]
    for arg in args:
        lines += textwrap.wrap(_escape(arg), LINE_LIMIT - 8, initial_indent="    ",
                               subsequent_indent="        ", break_long_words=False,
                               break_on_hyphens=False)
    tail = f"Wire method ``{p.name}``" + (" (safe: read-only)." if info.get("safe") else ".")
    lines += ["", tail]
    return _docstring_of(lines, 8)


def positional_order(params: Sequence[Param]) -> list[Param]:
    """A wrapper's parameters in the order they are taken by position: the required ones,
    then the optional ones, each in the registry's order (Python puts no parameter without
    a default after one with a default)."""
    return [q for q in params if q.required] + [q for q in params if not q.required]


def _signature(p: Plan, is_async: bool, ret: str, shadowed: list[str]) -> list[str]:
    lines = [f"    {'async ' if is_async else ''}def {p.member}(", "        self,"]
    # The method's parameters by position or by name (required ones first, each group in
    # the registry's order); the call's own options (on_progress, timeout) by name only.
    for q in positional_order(p.params):
        default = "" if q.required else f" = {literal(q.default)}"
        rest = qualify(q.rest, shadowed)
        if q.literals is not None:
            lit = f"Literal[{', '.join(q.literals)}]"
            ann = f"{lit} | {rest}" if rest else lit
            line = f"        {q.name}: {ann}{default},"
            if len(line) > LINE_LIMIT:
                tail = f"] | {rest}{default}," if rest else f"]{default},"
                lines += [f"        {q.name}: Literal[",
                          *(f"            {v}," for v in q.literals),
                          _fit(f"        {tail}")]
                continue
        else:
            line = f"        {q.name}: {rest}{default},"
        lines.append(_fit(line))
    lines.append("        *,")
    if p.progress:
        lines.append("        on_progress: ProgressCallback | None = None,")
    lines.append("        timeout: Timeout = USE_CLIENT_DEFAULT,")
    lines.append(_fit(f"    ) -> {qualify(ret, shadowed)}:"))
    return lines


def _body(p: Plan, is_async: bool, shadowed: list[str]) -> list[str]:
    pad = " " * 8
    lines: list[str] = []
    required = [f"{json.dumps(q.wire)}: {q.name}" for q in p.params if q.required]
    optional = [f"{json.dumps(q.wire)}: ({q.name}, {literal(q.default)})"
                for q in p.params if not q.required]
    if not p.params:
        params = "None"
    elif not optional:
        lines += _wrap_call("params = {", required, 8, "}")
        params = "params"
    else:
        lines.append(f"{pad}params = given(")
        for group in (required, optional):
            text = _wrap_call("{", group, 12, "}")
            text[-1] += ","
            lines += text
        lines.append(f"{pad})")
        params = "params"
    wire = json.dumps(p.name)
    aw = "await " if is_async else ""
    if p.name in DESCRIPTOR_METHODS:  # the client receives a descriptor: a file object
        lines += _wrap_call(f"return {aw}self._client.{DESCRIPTOR_METHODS[p.name]}(",
                            [params, "timeout=timeout"], 8)
        return lines
    if p.streams:
        lines += _wrap_call(f"return {aw}self._client.subscribe(",
                            [wire, params, "timeout=timeout"], 8)
        return lines
    args = [wire, params, "timeout=timeout"]
    if p.progress:
        args.append("on_progress=on_progress")
    lines += _wrap_call(f"result = {aw}self._client.call(", args, 8)
    lines.append(f"{pad}return cast({json.dumps(qualify(p.result_type, shadowed))}, result)")
    return lines


def _namespace_class(ns: str, plans: list[Plan], is_async: bool) -> str:
    cls = f"{'Async' if is_async else ''}{pascal(ns)}Methods"
    client = "AsyncClient" if is_async else "Client"
    sub_type = "AsyncSubscription" if is_async else "Subscription"
    out = [f'class {cls}(NamespaceBase["{client}"]):\n',
           _docstring(f"The ``{ns}.*`` methods of ``{client}``"
                      f"{' (coroutines)' if is_async else ''}.", 4),
           "\n", "    __slots__ = ()\n", f"    namespace = {json.dumps(ns)}\n"]
    shadowed = sorted({p.member for p in plans} & _BUILTIN_TYPES)
    for p in plans:
        ret = sub_type if p.streams else p.result_type
        if p.name in DESCRIPTOR_METHODS:
            ret = "BinaryIO"
        out.append("\n")
        out.append("\n".join(_signature(p, is_async, ret, shadowed)) + "\n")
        out.append(_method_doc(p, sub_type))
        out.append("\n".join(_body(p, is_async, shadowed)) + "\n")
    return "".join(out)


def _mixin(namespaces: list[str], is_async: bool) -> str:
    cls = "AsyncNamespaces" if is_async else "Namespaces"
    client = "AsyncClient" if is_async else "Client"
    out = [f"class {cls}:\n",
           _docstring(f"The typed namespaces of ``{client}`` (mixed into it): "
                      f"{', '.join(f'``{ns}``' for ns in namespaces)}.", 4),
           "\n", "    __slots__ = ()\n"]
    for ns in namespaces:
        member = f"{'Async' if is_async else ''}{pascal(ns)}Methods"
        out += ["\n", "    @property\n", f"    def {ns}(self) -> {member}:\n",
                _docstring(f"The ``{ns}.*`` methods.", 8),
                f"        return {member}(cast({json.dumps(client)}, self))\n"]
    return "".join(out)


HEADER = '''\
# Generated by `make client-methods` (python -m xsys.client._codegen) from the daemon's
# method registry (rpc.methods). Do not edit by hand: tests/test_client_methods.py fails
# when this file drifts from the registry.
"""Typed wrappers of every xsys method, by namespace: ``Client.sys.memory()`` and
``await AsyncClient.sys.memory()``. Generated by ``xsys.client._codegen``."""

from __future__ import annotations

'''


def render(methods: Sequence[Mapping[str, Any]]) -> str:
    """The text of ``_methods.py`` for an ``rpc.methods`` list."""
    plans, classes = plan(methods)
    namespaces = sorted({p.ns for p in plans})
    bodies = [_namespace_class(ns, [p for p in plans if p.ns == ns], a)
              for a in (False, True) for ns in namespaces]
    text_so_far = "".join(bodies) + "".join(classes.texts.values())
    uses = {name: re.search(rf"\b{name}\b", text_so_far) is not None
            for name in ("Literal", "Sequence", "Mapping", "FsPath", "ProgressCallback",
                         "given", "TypedDict", "BinaryIO")}

    out = [HEADER]
    if re.search(r"\bbuiltins\.", text_so_far):
        out.append("import builtins\n")
    abc = [n for n in ("Mapping", "Sequence") if uses[n]]
    if abc:
        out.append(f"from collections.abc import {', '.join(abc)}\n")
    typing_names = ["TYPE_CHECKING", "Any",
                    *(n for n in ("BinaryIO", "Literal") if uses[n]), "cast"]
    out.append(f"from typing import {', '.join(typing_names)}\n\n")
    core = ["USE_CLIENT_DEFAULT", *(n for n in ("FsPath",) if uses[n]), "NamespaceBase",
            *(n for n in ("ProgressCallback",) if uses[n]), "Timeout",
            *(n for n in ("given",) if uses[n])]
    out.append("from xsys.client._core import (\n" + "".join(f"    {n},\n" for n in core)
               + ")\n\n")
    out.append("if TYPE_CHECKING:\n")
    checking = [n for n, used in (("NotRequired", classes.not_required),
                                  ("TypedDict", uses["TypedDict"])) if used]
    if checking:
        out.append(f"    from typing import {', '.join(checking)}\n\n")
    out.append("    from xsys.client.aio import AsyncClient, AsyncSubscription\n"
               "    from xsys.client.sync import Client, Subscription\n")
    if uses["TypedDict"]:
        out.append("else:\n"
                   "    # Results are plain dicts: at run time the TypedDicts below are\n"
                   "    # RuntimeTypedDict classes that keep their annotations as text\n"
                   "    # (typing.TypedDict would compile each one at import).\n"
                   "    from xsys.client._core import RuntimeTypedDict as TypedDict\n")
    out.append("\n")

    names = [p.name for p in plans]
    out.append("#: Every method the daemon offered when this file was generated.\n")
    out.append("METHOD_NAMES: tuple[str, ...] = (\n"
               + "".join(f"    {json.dumps(n)},\n" for n in names) + ")\n\n")
    out.append("#: Streaming methods: the notification each one pushes.\n")
    out.append("STREAMS: dict[str, str] = {\n" + "".join(
        f"    {json.dumps(p.name)}: {json.dumps(p.streams)},\n" for p in plans if p.streams)
        + "}\n\n")
    out.append("#: The method that ends a subscription opened by each streaming method.\n")
    out.append("UNSUBSCRIBE: dict[str, str] = {\n" + "".join(
        f"    {json.dumps(p.name)}: {json.dumps(p.unsubscribe)},\n"
        for p in plans if p.streams) + "}\n")
    for name in classes.order:
        out.append("\n\n" + classes.texts[name])
    for body in bodies:
        out.append("\n\n" + body)
    out.append("\n\n" + _mixin(namespaces, False))
    out.append("\n\n" + _mixin(namespaces, True))
    return "".join(out)


# --------------------------------------------------------------------------- main


def load_methods(router: str | None = None, from_file: str | None = None,
                 ) -> list[dict[str, Any]]:
    """The ``rpc.methods`` list from a saved answer (``from_file``: ``{"methods": [...]}``
    or the list) or from the router factory named ``module:function``."""
    if from_file is not None:
        data = json.loads(Path(from_file).read_text(encoding="utf-8"))
        methods = data["methods"] if isinstance(data, dict) else data
        return [dict(m) for m in methods]
    module_name, _, func_name = (router or DEFAULT_ROUTER).partition(":")
    factory: Callable[[], Any] = getattr(importlib.import_module(module_name),
                                         func_name or "build_router")
    made = factory()
    if hasattr(made, "specs"):
        return [spec.describe() for spec in made.specs()]
    return [dict(m) for m in made]


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry; see the module docstring. Exit 1 with ``--check`` when stale."""
    parser = argparse.ArgumentParser(prog="python -m xsys.client._codegen",
                                     description="Generate xsys/client/_methods.py.")
    parser.add_argument("output", nargs="?", default=str(OUTPUT))
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when the file differs from what would be generated")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--router", default=None,
                        help=f"module:function returning the router ({DEFAULT_ROUTER})")
    source.add_argument("--from", dest="from_file", default=None,
                        help="a saved rpc.methods answer (JSON)")
    args = parser.parse_args(argv)
    text = render(load_methods(args.router, args.from_file))
    path = Path(args.output)
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if args.check:
        if old != text:
            print(f"{path}: out of date; run `make client-methods`", file=sys.stderr)
            return 1
        return 0
    if old != text:
        path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
