"""The method registry: each handler declares its name, typed parameters with defaults and a
one-line summary, and the router validates parameters before the handler runs.

A handler is a function whose first argument is the request ``Context`` and whose other
arguments are keyword parameters with annotations; the annotations are the schema::

    @router.method("sys.processes", kind="blocking")
    def processes(ctx: Context,
                  sort: Literal["cpu", "memory", "pid", "name"] = "cpu",
                  limit: Annotated[int, Range(1, 10_000), Doc("rows at most")] = 50,
                  ) -> dict[str, Any]:
        '''Processes sorted and filtered.  (first line = summary in rpc.methods)'''

Supported annotations: ``int``, ``float`` (ints accepted), ``str``, ``bool``, ``bytes``
(msgpack bin), ``list[T]`` of those, ``dict[str, Any]`` (a map), ``Any``, ``Literal[...]``
(choices), ``X | None`` (nullable) and ``Annotated[T, Range(min, max), Doc("...")]``.

The return annotation declares the result: a TypedDict or a dataclass (the wire map of
its fields), ``list[T]``, ``dict[str, T]``, ``X | None``, ``Literal[...]``, the scalars
above, ``Any``, and ``Annotated[T, WireType("str|bin")]`` (``xsys.protocol``) for a value
whose wire type its Python type does not say (a file name). ``result_schema`` turns it
into the ``result`` of the method's ``rpc.methods`` entry, once, at registration.
``kind`` says how it runs: ``"inline"`` (a plain function that never blocks: runs on the
event loop, e.g. reading a cached sample), ``"blocking"`` (a plain function run in the
bounded thread pool) or ``"async"`` (a coroutine function).
The request parameter ``progress`` is reserved (docs/protocol.md, "Progress") and never
reaches the handler; it sets ``ctx.want_progress``.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, cast

if sys.version_info >= (3, 11):
    from typing import NotRequired, Required, TypedDict, is_typeddict
else:  # typing.TypedDict of 3.10 does not know NotRequired
    from typing_extensions import NotRequired, Required, TypedDict, is_typeddict

from xsys.protocol import InvalidParams, MethodNotFound, WireType

Kind = Literal["inline", "blocking", "async"]
_MISSING: Any = object()


@dataclass(frozen=True)
class Range:
    """Inclusive bounds for a number parameter (either may be None)."""

    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class Doc:
    """A parameter's one-line description, shown by ``rpc.methods``."""

    text: str


class ParamDescription(TypedDict):
    """One parameter in ``rpc.methods``: ``name``, wire ``type`` (``int``, ``float``,
    ``str``, ``bool``, ``bin``, ``map``, ``any``, ``list[T]``, unions ``a|b``),
    ``required``, ``default`` (when not required), ``nullable``, ``choices``, bounds
    ``min``/``max`` and a one-line ``summary``."""

    name: str
    type: str
    required: bool
    default: NotRequired[Any]
    nullable: NotRequired[bool]
    choices: NotRequired[list[Any]]
    min: NotRequired[float]
    max: NotRequired[float]
    summary: str


class MethodDescription(TypedDict):
    """One method in ``rpc.methods``: ``name``, ``summary`` (one line), ``description``
    (the rest of the docstring), ``params``, ``result`` (the schema of its result, see
    ``result_schema``), ``streams`` (the notification a subscription method pushes),
    ``progress`` (honours ``progress: true``) and ``safe`` (read-only)."""

    name: str
    summary: str
    description: NotRequired[str]
    params: list[ParamDescription]
    result: NotRequired[dict[str, Any]]
    streams: NotRequired[str]
    progress: NotRequired[bool]
    safe: NotRequired[bool]


class MethodList(TypedDict):
    """``rpc.methods``: every method, sorted by name."""

    methods: list[MethodDescription]


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: its wire type name (``int``, ``float``, ``str``, ``bool``, ``bin``,
    ``map``, ``any``, ``list[str]``...), default, bounds and choices, plus a checker that
    returns the converted value or raises ``InvalidParams``."""

    name: str
    type: str
    required: bool
    default: Any
    summary: str
    nullable: bool
    choices: tuple[Any, ...] | None
    min: float | None
    max: float | None
    check: Callable[[Any], Any] = field(repr=False, compare=False)

    def describe(self) -> ParamDescription:
        """The ``rpc.methods`` form of this parameter."""
        out: ParamDescription = {"name": self.name, "type": self.type,
                                 "required": self.required, "summary": self.summary}
        if not self.required:
            out["default"] = self.default
        if self.nullable:
            out["nullable"] = True
        if self.choices is not None:
            out["choices"] = list(self.choices)
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        return out


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: name, summary (the docstring's first line), description (the
    rest), parameters, how it runs, whether it streams (returns a subscription), whether it
    is *safe* (RFC 9110 section 9.2.1: read-only, no state changes; the HTTP mirror serves
    only safe methods unless ``http.allow_write``), the handler itself and the schema of
    its result (``result_schema`` of its return annotation; None without one: computed
    by ``result_of`` on the first read of ``result`` and kept)."""

    name: str
    summary: str
    description: str
    params: tuple[ParamSpec, ...]
    kind: Kind
    handler: Callable[..., Any] = field(repr=False)
    streams: str | None = None
    progress: bool = False
    safe: bool = False
    result_of: Callable[[], dict[str, Any] | None] | None = field(default=None, repr=False,
                                                                   compare=False)

    @property
    def result(self) -> dict[str, Any] | None:
        """The result's schema (``result_of()``, computed once; None without one). Raises
        ``result_schema``'s ``TypeError`` when the router computes it lazily."""
        cached: Any = self.__dict__.get("_result", _MISSING)
        if cached is _MISSING:
            cached = self.result_of() if self.result_of is not None else None
            object.__setattr__(self, "_result", cached)
        return cast("dict[str, Any] | None", cached)

    def describe(self) -> MethodDescription:
        """The ``rpc.methods`` form of this method (its ``result`` is shared: read it,
        do not change it)."""
        out: MethodDescription = {
            "name": self.name,
            "summary": self.summary,
            "params": [p.describe() for p in self.params],
        }
        if self.description:
            out["description"] = self.description
        if self.result is not None:
            out["result"] = self.result
        if self.streams:
            out["streams"] = self.streams
        if self.progress:
            out["progress"] = True
        if self.safe:
            out["safe"] = True
        return out


# --------------------------------------------------------------------------- checkers


def _bad(name: str, expected: str, value: Any) -> InvalidParams:
    got = type(value).__name__
    return InvalidParams(
        f"parameter {name!r}: expected {expected}, got {got}",
        {"param": name, "expected": expected, "got": got},
    )


_SCALARS: dict[Any, tuple[str, Callable[[Any], bool]]] = {
    int: ("int", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    float: ("float", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
    str: ("str", lambda v: isinstance(v, str)),
    bool: ("bool", lambda v: isinstance(v, bool)),
    bytes: ("bin", lambda v: isinstance(v, (bytes, bytearray))),
}


def _build_checker(name: str, tp: Any) -> tuple[str, Callable[[Any], Any], tuple[Any, ...] | None]:
    """Return (wire type name, checker, choices) for annotation ``tp``."""
    if tp is Any or tp is object:
        return "any", lambda v: v, None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Literal:
        choices = tuple(args)
        kinds = {type(c) for c in choices}
        wire = "str" if kinds == {str} else "int" if kinds == {int} else "any"

        def check_choice(v: Any) -> Any:
            if v in choices and type(v) in kinds:
                return v
            raise InvalidParams(
                f"parameter {name!r}: expected one of {', '.join(map(repr, choices))}, "
                f"got {v!r}",
                {"param": name, "expected": list(choices), "got": v},
            )

        return wire, check_choice, choices
    if origin in (typing.Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        subs = [_build_checker(name, m) for m in members]
        wire = "|".join(s[0] for s in subs)
        choices_u = next((s[2] for s in subs if s[2] is not None), None)

        def check_union(v: Any) -> Any:
            first: InvalidParams | None = None
            for _, chk, _c in subs:
                try:
                    return chk(v)
                except InvalidParams as exc:
                    first = first or exc
            if len(subs) == 1 and first is not None:
                raise first
            raise _bad(name, wire, v)

        return wire, check_union, choices_u
    if origin in (list, tuple):
        item_tp = args[0] if args else Any
        item_wire, item_check, _ = _build_checker(name, item_tp)
        wire = f"list[{item_wire}]"

        def check_list(v: Any) -> Any:
            if not isinstance(v, (list, tuple)):
                raise _bad(name, wire, v)
            out = []
            for item in v:
                try:
                    out.append(item_check(item))
                except InvalidParams:
                    raise _bad(name, wire, v) from None
            return out

        return wire, check_list, None
    if origin is dict or tp is dict:

        def check_map(v: Any) -> Any:
            if not isinstance(v, dict):
                raise _bad(name, "map", v)
            return v

        return "map", check_map, None
    if tp in _SCALARS:
        wire, ok = _SCALARS[tp]
        convert = float if tp is float else bytes if tp is bytes else None

        def check_scalar(v: Any) -> Any:
            if not ok(v):
                raise _bad(name, wire, v)
            return convert(v) if convert is not None else v

        return wire, check_scalar, None
    raise TypeError(f"parameter {name!r}: unsupported annotation {tp!r}")


def _param_spec(name: str, annotation: Any, default: Any) -> ParamSpec:
    rng = Range()
    doc = ""
    if typing.get_origin(annotation) is Annotated:
        base, *extras = typing.get_args(annotation)
        for extra in extras:
            if isinstance(extra, Range):
                rng = extra
            elif isinstance(extra, Doc):
                doc = extra.text
        annotation = base
    wire, check, choices = _build_checker(name, annotation)
    args = typing.get_args(annotation)
    nullable = typing.get_origin(annotation) in (typing.Union, types.UnionType) and (
        type(None) in args
    )
    if rng.min is not None or rng.max is not None:
        inner = check
        lo, hi = rng.min, rng.max

        def check(v: Any) -> Any:
            v = inner(v)
            if v is None:
                return v
            if (lo is not None and v < lo) or (hi is not None and v > hi) or v != v:  # NaN
                span = f"{'' if lo is None else lo}..{'' if hi is None else hi}"
                raise InvalidParams(
                    f"parameter {name!r}: {v!r} is out of range {span}",
                    {"param": name, "min": lo, "max": hi, "got": v},
                )
            return v

    if nullable:
        inner_n = check

        def check(v: Any) -> Any:
            return None if v is None else inner_n(v)

    required = default is inspect.Parameter.empty
    return ParamSpec(
        name=name,
        type=wire,
        required=required,
        default=None if required else default,
        summary=doc,
        nullable=nullable,
        choices=choices,
        min=rng.min,
        max=rng.max,
        check=check,
    )


# --------------------------------------------------------------------------- results

_RESULT_SCALARS: dict[Any, str] = {
    int: "int", float: "float", str: "str", bool: "bool", bytes: "bin", bytearray: "bin",
    type(None): "nil",
}


def _class_summary(cls: type) -> str:
    """The docstring of a result class (not dataclasses' generated signature)."""
    doc = cls.__dict__.get("__doc__")
    if not isinstance(doc, str) or doc.startswith(f"{cls.__name__}("):
        return ""
    return inspect.cleandoc(doc)


def _literal_wire(choices: Sequence[Any]) -> str:
    kinds = {type(c) for c in choices}
    for tp, wire in ((str, "str"), (bool, "bool"), (int, "int"), (float, "float")):
        if kinds == {tp}:
            return wire
    return "any"


class _Schemas:
    """Builds result schemas; ``titles`` maps each class name used to its class, so that
    two different classes never share a title (clients name types by title)."""

    def __init__(self, titles: dict[str, type]) -> None:
        self.titles = titles
        self.stack: list[type] = []

    def of(self, tp: Any, where: str) -> dict[str, Any]:
        summary = ""
        wire_type: str | None = None
        if typing.get_origin(tp) is Annotated:
            tp, *extras = typing.get_args(tp)
            for extra in extras:
                if isinstance(extra, Doc):
                    summary = extra.text
                elif isinstance(extra, WireType):
                    wire_type = extra.name
        out = self._plain(tp, where)
        if wire_type is not None:
            out = {"type": wire_type, **({"nullable": True} if out.get("nullable") else {})}
        if summary:
            out["summary"] = summary
        return out

    def _plain(self, tp: Any, where: str) -> dict[str, Any]:
        if tp is Any or tp is object:
            return {"type": "any"}
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (NotRequired, Required):
            return self.of(args[0], where)
        if origin is Literal:
            return {"type": _literal_wire(args), "choices": list(args)}
        if origin in (typing.Union, types.UnionType):
            members = [a for a in args if a is not type(None)]
            nullable = len(members) < len(args)
            subs = [self.of(m, where) for m in members]
            if len(subs) == 1:
                out = subs[0]
            elif all(set(sub) == {"type"} for sub in subs):
                out = {"type": "|".join(sub["type"] for sub in subs)}
            else:
                raise TypeError(f"{where}: a union of structured results {tp!r}; declare "
                                f"one type")
            if nullable:
                out = {**out, "nullable": True}
            return out
        if origin in (list, tuple, Sequence) or tp in (list, tuple):
            items_tp = Any
            if args:
                members = [a for a in args if a is not Ellipsis]
                if origin is tuple and len(set(members)) > 1:
                    raise TypeError(f"{where}: a tuple of mixed types {tp!r}")
                items_tp = members[0]
            items = self.of(items_tp, where + "[]")
            return {"type": f"list[{_nested_type(items)}]", "items": items}
        if origin in (dict, Mapping) or tp is dict:
            if args and args[0] is not str:
                raise TypeError(f"{where}: map keys must be str, not {args[0]!r}")
            value_tp = args[1] if len(args) == 2 else Any
            if value_tp is Any:
                return {"type": "map"}
            return {"type": "map", "values": self.of(value_tp, where + "{}")}
        if isinstance(tp, type) and is_typeddict(tp):
            return self._fields(tp, where, typed_dict=True)
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            return self._fields(tp, where, typed_dict=False)
        if tp in _RESULT_SCALARS:
            return {"type": _RESULT_SCALARS[tp]}
        raise TypeError(f"{where}: unsupported result annotation {tp!r}")

    def _fields(self, cls: type, where: str, *, typed_dict: bool) -> dict[str, Any]:
        title = cls.__name__
        known = self.titles.setdefault(title, cls)
        if known is not cls:
            raise TypeError(f"{where}: two result classes are named {title!r} "
                            f"({known.__module__} and {cls.__module__})")
        if cls in self.stack:
            raise TypeError(f"{where}: {title} contains itself")
        self.stack.append(cls)
        try:
            hints = typing.get_type_hints(cls, include_extras=True)
            fields: list[dict[str, Any]] = []
            if typed_dict:
                required_keys = _required_keys(cls)
                for name, hint in hints.items():
                    f = {"name": name, **self.of(hint, f"{where}.{name}")}
                    if not _is_required(name, hint, required_keys):
                        f["required"] = False
                    fields.append(f)
            else:
                for fld in dataclasses.fields(cls):
                    fields.append({"name": fld.name,
                                   **self.of(hints[fld.name], f"{where}.{fld.name}")})
        finally:
            self.stack.pop()
        out: dict[str, Any] = {"type": "map", "title": title}
        summary = _class_summary(cls)
        if summary:
            out["summary"] = summary
        out["fields"] = fields
        return out


def _constant(value: dict[str, Any]) -> dict[str, Any]:
    return value


def _required_keys(cls: type) -> frozenset[str]:
    """The required keys of TypedDict ``cls`` as its class says (by ``total``)."""
    keys: frozenset[str] = getattr(cls, "__required_keys__", frozenset())
    return keys


def _is_required(name: str, hint: Any, required_keys: frozenset[str]) -> bool:
    """Whether key ``name`` is required: ``NotRequired[...]``/``Required[...]`` decide
    (with postponed annotations the class cannot see them), else the class's ``total``."""
    origin = typing.get_origin(hint)
    if origin is Annotated:
        origin = typing.get_origin(typing.get_args(hint)[0])
    if origin is NotRequired:
        return False
    if origin is Required:
        return True
    return name in required_keys


def _nested_type(schema: Mapping[str, Any]) -> str:
    """The wire type of a list's items inside ``list[...]``: a nullable one adds ``nil``."""
    wire = str(schema["type"])
    return f"{wire}|nil" if schema.get("nullable") else wire


def result_schema(annotation: Any, where: str = "result",
                  titles: dict[str, type] | None = None) -> dict[str, Any]:
    """The ``rpc.methods`` schema of a result annotation (see the module docstring).

    The schema uses the parameters' vocabulary::

        schema := {"type": <wire type>, "nullable"?: true, "choices"?: [...],
                   "summary"?: str,          # the class docstring, or Doc("...")
                   "title"?: str,            # the class name of a "fields" map
                   "fields"?: [field, ...],  # TypedDict / dataclass fields, in order
                   "items"?: schema,         # a list's elements
                   "values"?: schema}        # a map's values (keys are str)
        field  := schema + {"name": str, "required"?: false (a NotRequired key)}

    ``type`` is ``int``, ``float``, ``str``, ``bool``, ``bin``, ``nil``, ``any``, ``map``
    (with ``fields`` or ``values`` when known), ``list[T]`` (with ``items``) or a union of
    scalars ``a|b``. ``titles`` (class name -> class) is shared between the calls of one
    registry, so that one title always names one class. Raises ``TypeError`` on an
    annotation it cannot describe (a union of structures, map keys other than str, a
    class that contains itself, two classes with one name).
    """
    return _Schemas({} if titles is None else titles).of(annotation, where)


# --------------------------------------------------------------------------- router


class Router:
    """The registry of methods and the parameter validation in front of them."""

    def __init__(self, lazy_results: bool = False) -> None:
        """``lazy_results``: compute each result schema on its first read (``rpc.methods``,
        the docs) instead of in ``add`` (the daemon's start-up; an unsupported annotation
        then raises there, not in ``add``)."""
        self._methods: dict[str, MethodSpec] = {}
        self._titles: dict[str, type] = {}
        self.lazy_results = lazy_results

    def method(
        self,
        name: str,
        *,
        kind: Kind | None = None,
        streams: str | None = None,
        progress: bool = False,
        safe: bool = False,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering ``fn`` as method ``name``.

        ``kind`` defaults to ``"async"`` for coroutine functions and ``"blocking"``
        otherwise. ``streams`` names the notification a subscription method pushes
        (e.g. ``"watch.event"``); ``progress`` marks methods that honour
        ``progress: true``. ``safe`` marks read-only methods (RFC 9110 "safe methods": no
        state change on the host or in the daemon); unmarked methods count as unsafe, so
        the HTTP mirror refuses them unless ``http.allow_write``. The return annotation
        declares the result (``result_schema``; a handler without one has no ``result``
        in ``rpc.methods``). Raises ``ValueError`` on a duplicate name and ``TypeError``
        on an unsupported annotation.
        """

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.add(name, fn, kind=kind, streams=streams, progress=progress, safe=safe)
            return fn

        return register

    def add(
        self,
        name: str,
        fn: Callable[..., Any],
        *,
        kind: Kind | None = None,
        streams: str | None = None,
        progress: bool = False,
        safe: bool = False,
    ) -> MethodSpec:
        """Register ``fn`` as ``name`` (see ``method``) and return its spec."""
        if name in self._methods:
            raise ValueError(f"method {name!r} registered twice")
        is_async = inspect.iscoroutinefunction(fn)
        if kind is None:
            kind = "async" if is_async else "blocking"
        if (kind == "async") != is_async:
            raise TypeError(f"{name}: kind {kind!r} does not match {fn!r}")
        sig = inspect.signature(fn, eval_str=True)
        params = list(sig.parameters.values())[1:]  # the first one is ctx
        specs = []
        for p in params:
            if p.name == "progress":
                raise TypeError(f"{name}: 'progress' is a reserved parameter name")
            specs.append(_param_spec(p.name, p.annotation, p.default))
        result_of: Callable[[], dict[str, Any] | None] | None = None
        if sig.return_annotation is not inspect.Signature.empty:
            result_of = functools.partial(result_schema, sig.return_annotation,
                                          f"{name} result", self._titles)
            if not self.lazy_results:
                result_of = functools.partial(_constant, result_of())
        doc = inspect.getdoc(fn) or ""
        first, _, description = doc.partition("\n\n")
        summary = " ".join(first.split())
        spec = MethodSpec(
            name=name,
            summary=summary.strip(),
            description=description.strip(),
            params=tuple(specs),
            kind=kind,
            handler=fn,
            streams=streams,
            progress=progress,
            safe=safe,
            result_of=result_of,
        )
        self._methods[name] = spec
        return spec

    def get(self, name: str) -> MethodSpec:
        """The spec of ``name``; raises ``MethodNotFound``."""
        spec = self._methods.get(name)
        if spec is None:
            raise MethodNotFound(f"unknown method {name!r}", {"method": name})
        return spec

    def names(self) -> list[str]:
        """Every registered method name, sorted."""
        return sorted(self._methods)

    def specs(self) -> list[MethodSpec]:
        """Every registered spec, sorted by name."""
        return [self._methods[n] for n in sorted(self._methods)]

    @staticmethod
    def bind(spec: MethodSpec, params: dict[str, Any]) -> dict[str, Any]:
        """Validate ``params`` against ``spec`` and return the handler's keyword arguments
        (defaults filled in). Raises ``InvalidParams`` naming the parameter: unknown,
        missing, wrong type or out of range."""
        kwargs: dict[str, Any] = {}
        seen = 0
        for p in spec.params:
            value = params.get(p.name, _MISSING)
            if value is _MISSING:
                if p.required:
                    raise InvalidParams(
                        f"missing required parameter {p.name!r}",
                        {"param": p.name, "expected": p.type},
                    )
                continue
            seen += 1
            kwargs[p.name] = p.check(value)
        if seen != len(params):
            known = {p.name for p in spec.params}
            for key in params:
                if key not in known:
                    raise InvalidParams(
                        f"unknown parameter {key!r} for {spec.name}",
                        {"param": key, "reason": "unknown", "known": sorted(known)},
                    )
        return kwargs
