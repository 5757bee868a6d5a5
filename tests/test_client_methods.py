"""``xsys/client/_methods.py`` is generated from the method registry and must not drift
(``make client-methods``); the generator's output is typed, linted and importable."""

from __future__ import annotations

import inspect
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, DaemonHandle
from xsys.client import METHOD_NAMES, AsyncClient, Client, _methods
from xsys.client._codegen import (
    DESCRIPTOR_METHODS,
    OUTPUT,
    RESERVED_NAMESPACES,
    main,
    pascal,
    py_type,
    render,
)
from xsys.docs import build_router


@pytest.fixture(scope="module")
def registry() -> list[dict[str, Any]]:
    """The ``rpc.methods`` list of the registry, as the daemon would answer it."""
    return [spec.describe() for spec in build_router().specs()]


def test_client_methods_are_current(registry: list[dict[str, Any]]) -> None:
    assert render(registry) == OUTPUT.read_text(encoding="utf-8"), \
        "xsys/client/_methods.py is stale: run `make client-methods`"


def test_a_running_daemons_rpc_methods_give_the_same_file(daemon: DaemonHandle) -> None:
    with daemon.client() as c:
        answer = c.rpc.methods()
    assert render(answer["methods"]) == OUTPUT.read_text(encoding="utf-8")


def test_check_write_and_from_modes(tmp_path: Path, registry: list[dict[str, Any]]) -> None:
    target = tmp_path / "_methods.py"
    saved = tmp_path / "methods.json"
    saved.write_text(json.dumps({"methods": registry}), encoding="utf-8")
    assert main(["--check", "--from", str(saved), str(target)]) == 1  # missing
    assert main(["--from", str(saved), str(target)]) == 0
    assert target.read_text(encoding="utf-8") == OUTPUT.read_text(encoding="utf-8")
    assert main(["--check", "--from", str(saved), str(target)]) == 0
    target.write_text(target.read_text(encoding="utf-8").replace("rows at most", "rows"))
    assert main(["--check", str(target)]) == 1  # from the router factory
    assert main([str(target)]) == 0
    assert target.read_text(encoding="utf-8") == OUTPUT.read_text(encoding="utf-8")


def test_render_is_independent_of_the_input_order(registry: list[dict[str, Any]]) -> None:
    assert render(list(reversed(registry))) == render(registry)


def test_every_method_has_a_wrapper_on_both_clients() -> None:
    sync_client = Client("/nonexistent/xsys.sock", connect=False)
    async_client = AsyncClient("/nonexistent/xsys.sock")
    for name in METHOD_NAMES:
        ns, member = name.split(".")
        sync_cls = getattr(_methods, f"{pascal(ns)}Methods")
        async_cls = getattr(_methods, f"Async{pascal(ns)}Methods")
        assert type(getattr(sync_client, ns)) is sync_cls
        assert type(getattr(async_client, ns)) is async_cls
        assert member in vars(sync_cls) and member in vars(async_cls), name
        assert inspect.iscoroutinefunction(vars(async_cls)[member])
        assert not inspect.iscoroutinefunction(vars(sync_cls)[member])


def test_wrappers_follow_the_registry(registry: list[dict[str, Any]]) -> None:
    for info in registry:
        ns, member = info["name"].split(".")
        fn = vars(getattr(_methods, f"{pascal(ns)}Methods"))[member]
        sig = inspect.signature(fn)
        params = [p for p in sig.parameters.values() if p.name != "self"]
        if info["name"] in DESCRIPTOR_METHODS:  # c.fs.open(path, mode="rb"), like open()
            assert [p.name for p in params if p.kind is not p.KEYWORD_ONLY] == \
                [q["name"] for q in info["params"]]
        else:
            assert all(p.kind is p.KEYWORD_ONLY for p in params), info["name"]
        by_name = {p.name: p for p in params}
        for q in info["params"]:
            p = by_name[q["name"]]
            expected = p.empty if q["required"] else q["default"]
            assert p.default == expected, (info["name"], q["name"])
        extra = set(by_name) - {q["name"] for q in info["params"]}
        assert extra == ({"timeout", "on_progress"} if info.get("progress") else {"timeout"})
        assert info["summary"].split()[0] in (fn.__doc__ or "")


def test_reserved_namespaces_cover_the_clients_members() -> None:
    namespaces = {name.split(".")[0] for name in METHOD_NAMES}
    members: set[str] = set()
    for obj in (Client("/nonexistent/xsys.sock", connect=False),
                AsyncClient("/nonexistent/xsys.sock")):
        members |= {n for n in dir(type(obj)) if not n.startswith("_")}
        members |= {n for n in vars(obj) if not n.startswith("_")}
    assert members - namespaces <= RESERVED_NAMESPACES


# --------------------------------------------------------------------------- the generator


def test_wire_types_map_to_python() -> None:
    assert py_type("int") == "int"
    assert py_type("float") == "float"
    assert py_type("int|float") == "float"
    assert py_type("str") == "str"
    assert py_type("bool") == "bool"
    assert py_type("bin") == "bytes"
    assert py_type("map") == "Mapping[str, Any]"
    assert py_type("map", result=True) == "dict[str, Any]"
    assert py_type("any") == "Any"
    assert py_type("int|any") == "Any"
    assert py_type("list[str]") == "Sequence[str]"
    assert py_type("list[int|str]", result=True) == "list[int | str]"
    assert py_type("str|bin") == "str | bytes"
    assert py_type("str|bin", path=True) == "FsPath"
    assert py_type("list[str|bin]", path=True) == "Sequence[FsPath]"
    assert py_type("something-new") == "Any"


LONG_CHOICES = ["google_chat", "ntfy", "gotify", "smtp", "webhook", "alertmanager", "console"]

FIXTURE: list[dict[str, Any]] = [
    {"name": "test.echo", "summary": "Echo the params back.", "safe": True, "progress": True,
     "description": "Returns ``{value}``.\n\nA second paragraph.",
     "params": [
         {"name": "value", "type": "any", "required": True, "summary": "anything"},
         {"name": "path", "type": "str|bin", "required": True, "summary": "a path"},
         {"name": "from", "type": "str", "required": False, "default": "a",
          "summary": "a name that is a Python keyword"},
         {"name": "provider", "type": "str", "required": False, "default": None,
          "nullable": True, "choices": LONG_CHOICES, "summary": "one provider"},
         {"name": "tags", "type": "list[str]", "required": False, "default": None,
          "nullable": True, "summary": "labels"},
         {"name": "size", "type": "int", "required": False, "default": 0, "min": 0,
          "max": 10, "summary": "how many"},
         {"name": "ratio", "type": "int|float", "required": False, "default": 0.5,
          "summary": ""},
         {"name": "opts", "type": "map", "required": False, "default": None,
          "nullable": True, "summary": "options"},
     ]},
    {"name": "test.list", "summary": "A method named like a builtin.",
     "params": [{"name": "items", "type": "list[int]", "required": False, "default": [1, 2],
                 "summary": "numbers"}],
     "result": {"type": "map", "fields": [
         {"name": "items", "type": "list[int]"},
         {"name": "list", "type": "str", "summary": "a field named like a builtin"},
         {"name": "total", "type": "int", "required": False},
     ]}},
    {"name": "test.dict", "summary": "Another builtin's name.", "params": []},
    {"name": "test.subscribe", "summary": "Ticks.", "streams": "test.tick", "params": []},
    {"name": "test.stop", "summary": "Stop ticks.",
     "params": [{"name": "subscription", "type": "str", "required": True, "summary": ""}]},
    {"name": "test.unsubscribe", "summary": "End ticks.",
     "params": [{"name": "subscription", "type": "str", "required": True, "summary": ""}]},
    {"name": "rpc.ping", "summary": "Liveness.", "params": [],
     "result": {"type": "map", "title": "Pong", "fields": [
         {"name": "pong", "type": "bool"},
         {"name": "ts", "type": "float", "summary": "server time, epoch s"},
         {"name": "from", "type": "str", "nullable": True},
         {"name": "loads", "type": "list", "items": {"type": "map", "fields": [
             {"name": "minutes", "type": "int", "choices": [1, 5, 15]}]}},
         {"name": "by_cpu", "type": "map", "values": {"type": "float"}},
     ]}},
]


def _load(text: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "fixture_methods"}
    exec(compile(text, "fixture_methods.py", "exec"), namespace)
    return namespace


def test_rendered_fixture_shapes() -> None:
    text = render(FIXTURE)
    ns = _load(text)
    echo = ns["TestMethods"].echo
    sig = inspect.signature(echo)
    assert list(sig.parameters) == ["self", "value", "path", "from_", "provider", "tags",
                                    "size", "ratio", "opts", "on_progress", "timeout"]
    assert sig.parameters["size"].default == 0 and sig.parameters["ratio"].default == 0.5
    assert echo.__annotations__["path"] == "FsPath"
    assert echo.__annotations__["ratio"] == "float"
    assert echo.__annotations__["tags"] == "Sequence[str] | None"
    assert echo.__annotations__["opts"] == "Mapping[str, Any] | None"
    assert echo.__annotations__["provider"].replace("\n", "").startswith("Literal[")
    # methods named list and dict hide the builtins in TestMethods: spelled builtins.*
    assert echo.__annotations__["return"] == "builtins.dict[str, Any]"
    assert ns["RpcMethods"].ping.__annotations__["return"] == "Pong"
    assert '"from": (from_, "a")' in text  # the wire name stays
    doc = echo.__doc__ or ""
    assert doc.startswith("Echo the params back.") and "A second paragraph." in doc
    assert "size: how many (0..10)." in doc and "Wire method ``test.echo`` (safe" in doc
    assert inspect.iscoroutinefunction(ns["AsyncTestMethods"].echo)
    # a streaming method returns its subscription; the preferred unsubscribe wins
    assert ns["TestMethods"].subscribe.__annotations__["return"] == "Subscription"
    assert ns["AsyncTestMethods"].subscribe.__annotations__["return"] == "AsyncSubscription"
    assert ns["UNSUBSCRIBE"] == {"test.subscribe": "test.unsubscribe"}
    assert ns["STREAMS"] == {"test.subscribe": "test.tick"}
    # declared results: TypedDicts, NotRequired, builtins qualified where shadowed
    assert ns["TestMethods"].list.__annotations__["return"] == "TestListResult"
    assert ns["TestMethods"].list.__annotations__["items"] == "Sequence[int]"
    assert inspect.signature(ns["TestMethods"].list).parameters["items"].default == (1, 2)
    result_fields = {k: getattr(v, "__forward_arg__", v)
                     for k, v in ns["TestListResult"].__annotations__.items()}
    assert result_fields == {"items": "builtins.list[int]", "list": "str",
                             "total": "NotRequired[int]"}
    assert set(ns["Pong"].__annotations__) == {"pong", "ts", "from", "loads", "by_cpu"}
    assert "PongLoadsItem" in ns and "PongFrom" not in ns
    assert re.search(r"loads\W+list\[PongLoadsItem\]", text)
    assert re.search(r"by_cpu\W+dict\[str, float\]", text)
    assert "Literal[1, 5, 15]" in text


def test_rendered_fixture_passes_ruff_and_mypy(tmp_path: Path) -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent))
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[dev]')")
    module = tmp_path / "fixture_methods.py"
    module.write_text(render(FIXTURE), encoding="utf-8")
    lint = subprocess.run([ruff, "check", "--config", str(REPO / "pyproject.toml"),
                           str(module)], capture_output=True, text=True, cwd=REPO)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    typed = subprocess.run([sys.executable, "-m", "mypy", "--strict", str(module)],
                           capture_output=True, text=True, cwd=REPO)
    assert typed.returncode == 0, typed.stdout + typed.stderr


@pytest.mark.parametrize(("methods", "message"), [
    ([{"name": "t.x", "params": [{"name": "timeout", "type": "float", "required": True}]}],
     "shadow"),
    ([{"name": "call.x", "params": []}], "shadow a client member"),
    ([{"name": "t.x", "params": [{"name": "max-size", "type": "int", "required": True}]}],
     "not a Python identifier"),
    ([{"name": "noNamespace", "params": []}], "namespace"),
    ([{"name": "t.x", "params": [], "result": {"type": "map", "title": "Same",
                                              "fields": [{"name": "a", "type": "int"}]}},
      {"name": "t.y", "params": [], "result": {"type": "map", "title": "Same",
                                              "fields": [{"name": "b", "type": "int"}]}}],
     "two different result structures"),
])
def test_names_the_wrappers_cannot_take_are_refused(methods: list[dict[str, Any]],
                                                    message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render(methods)
