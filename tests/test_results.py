"""Results are declared once: every method's handler declares its result type, the router
turns it into the ``result`` schema of ``rpc.methods``, and what a real daemon answers
conforms to that schema (every declared key there, no undeclared key, each value of its
declared type), for a call of every method."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

if sys.version_info >= (3, 11):
    from typing import NotRequired, TypedDict
else:
    from typing_extensions import NotRequired, TypedDict

import pytest

from tests.conftest import DaemonHandle
from xsys.client import METHOD_NAMES, Client, _methods
from xsys.client._codegen import DESCRIPTOR_METHODS
from xsys.docs import build_router
from xsys.protocol import WireType
from xsys.server.router import Router, result_schema

# --------------------------------------------------------------------------- checker

_SCALAR_CHECKS: dict[str, Callable[[Any], bool]] = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "bin": lambda v: isinstance(v, bytes),
    "nil": lambda v: v is None,
    "any": lambda v: True,
    "map": lambda v: isinstance(v, dict),
}


def _split(wire: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in wire:
        depth += ch == "["
        depth -= ch == "]"
        if ch == "|" and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [*parts, cur]


def _wire_ok(value: Any, wire: str) -> bool:
    for member in _split(wire):
        if member.startswith("list[") and member.endswith("]"):
            if isinstance(value, list) and all(_wire_ok(v, member[5:-1]) for v in value):
                return True
        elif _SCALAR_CHECKS[member](value):
            return True
    return False


def violations(value: Any, schema: Mapping[str, Any], where: str = "result") -> list[str]:
    """Where ``value`` departs from ``schema`` (the ``rpc.methods`` result format)."""
    if value is None and schema.get("nullable"):
        return []
    if not _wire_ok(value, str(schema["type"])):
        return [f"{where}: {value!r} is not {schema['type']}"]
    out: list[str] = []
    if "choices" in schema and value not in schema["choices"]:
        out.append(f"{where}: {value!r} not one of {schema['choices']}")
    if "fields" in schema:
        declared = {f["name"]: f for f in schema["fields"]}
        out += [f"{where}: undeclared key {k!r}" for k in value if k not in declared]
        for name, f in declared.items():
            if name in value:
                out += violations(value[name], f, f"{where}.{name}")
            elif f.get("required", True):
                out.append(f"{where}: missing key {name!r}")
    if "items" in schema:
        for i, item in enumerate(value):
            out += violations(item, schema["items"], f"{where}[{i}]")
    if "values" in schema:
        for k, item in value.items():
            out += violations(item, schema["values"], f"{where}[{k!r}]")
    return out


def seen_schemas(schema: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """``schema`` and every schema below it."""
    yield schema
    for f in schema.get("fields", ()):
        yield from seen_schemas(f)
    for key in ("items", "values"):
        if key in schema:
            yield from seen_schemas(schema[key])


# --------------------------------------------------------------------------- registry


@pytest.fixture(scope="module")
def registry() -> dict[str, dict[str, Any]]:
    """The ``rpc.methods`` entries of the daemon's registry, by name."""
    return {spec.name: dict(spec.describe()) for spec in build_router().specs()}


def test_every_method_declares_a_structured_result(
        registry: dict[str, dict[str, Any]]) -> None:
    assert set(registry) == set(METHOD_NAMES)
    for name, info in registry.items():
        result = info.get("result")
        assert result is not None, f"{name}: the handler declares no return type"
        assert result["type"] == "map" and result.get("fields"), \
            f"{name}: the result is not a declared structure: {result}"
        assert result.get("title"), name


def test_one_title_one_structure(registry: dict[str, dict[str, Any]]) -> None:
    by_title: dict[str, Mapping[str, Any]] = {}
    for info in registry.values():
        for schema in seen_schemas(info["result"]):
            if "title" in schema:
                first = by_title.setdefault(schema["title"], schema)
                assert {k: v for k, v in first.items() if k not in ("name", "required")} \
                    == {k: v for k, v in schema.items() if k not in ("name", "required")}


def test_the_python_client_returns_the_declared_types(
        registry: dict[str, dict[str, Any]]) -> None:
    for name, info in registry.items():
        ns, member = name.split(".")
        for cls in (f"{ns.title()}Methods", f"Async{ns.title()}Methods"):
            fn = vars(getattr(_methods, cls))[member]
            ret = fn.__annotations__["return"]
            expected = ("Subscription" if cls[0] != "A" else "AsyncSubscription") \
                if info.get("streams") else info["result"]["title"]
            if name in DESCRIPTOR_METHODS:  # a file object from the passed descriptor
                expected = "BinaryIO"
            assert ret == expected, (cls, member, ret)
        if not info.get("streams"):
            assert isinstance(getattr(_methods, info["result"]["title"]), type)


# --------------------------------------------------------------------------- schema unit


class _Row(TypedDict):
    """A row."""

    name: Annotated[str, WireType("str|bin")]
    size: int
    note: NotRequired[str | None]


#: Another class named ``_Row``.
_Clash = TypedDict("_Row", {"y": int})  # type: ignore[misc]  # noqa: UP013


@dataclasses.dataclass(frozen=True)
class _Page:
    rows: list[_Row]
    kind: Literal["a", "b"]
    by_name: dict[str, float]
    extra: dict[str, Any]
    data: bytes | str


def test_result_schema_of_typed_dicts_and_dataclasses() -> None:
    schema = result_schema(_Page)
    assert schema == {
        "type": "map", "title": "_Page", "fields": [
            {"name": "rows", "type": "list[map]", "items": {
                "type": "map", "title": "_Row", "summary": "A row.", "fields": [
                    {"name": "name", "type": "str|bin"},
                    {"name": "size", "type": "int"},
                    {"name": "note", "type": "str", "nullable": True, "required": False},
                ]}},
            {"name": "kind", "type": "str", "choices": ["a", "b"]},
            {"name": "by_name", "type": "map", "values": {"type": "float"}},
            {"name": "extra", "type": "map"},
            {"name": "data", "type": "bin|str"},
        ]}
    assert result_schema(list[int] | None) == {"type": "list[int]", "items": {"type": "int"},
                                               "nullable": True}


def test_result_schemas_refuse_what_clients_cannot_type() -> None:
    with pytest.raises(TypeError, match="union of structured"):
        result_schema(_Row | _Page)
    with pytest.raises(TypeError, match="keys must be str"):
        result_schema(dict[int, str])
    router = Router()

    def first(ctx: Any) -> _Page:
        raise AssertionError

    def second(ctx: Any) -> list[_Clash]:
        raise AssertionError

    router.add("t.first", first)
    with pytest.raises(TypeError, match="two result classes are named '_Row'"):
        router.add("t.second", second)

    def untyped(ctx: Any):  # no return annotation: no declared result
        raise AssertionError

    assert "result" not in router.add("t.untyped", untyped).describe()


# --------------------------------------------------------------------------- real daemon


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small tree under the daemon's root, with a name that is not UTF-8."""
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("one\ntwo\nthree\n")
    (root / "sub" / "b.bin").write_bytes(b"\x00\x01\x02")
    (root / "link").symlink_to("a.txt")
    with open(os.path.join(os.fsencode(root), b"caf\xe9.txt"), "wb") as f:
        f.write(b"latin-1 name")
    os.mkdir(os.path.join(os.fsencode(root), b"d\xe9j\xe0"))
    return root


def _config(tmp_path: Path) -> dict[str, Any]:
    return {
        "sys": {"allow_kill": True},
        "checks": [{"name": "results-cmd", "command": {"argv": ["true"]}, "interval_s": 60}],
        # a backend that is not there: a status row with every field (last_error set)
        "push": {"targets": [{"name": "results", "url": "ws://127.0.0.1:9/ingest"}]},
        "monitor": {
            "refresh": 0.2,
            "memory": {"warning": 0, "critical": 1000, "duration": 0},
            "reboot": {"state_file": str(tmp_path / "boot_time"), "required_files": []},
            "alerts": {"console": {"enabled": True}},
        },
    }


def _calls(c: Client, tree: Path, answers: dict[str, Any]) -> None:
    """One call of every method (the write ones inside ``tree``), answers by name."""
    root = str(tree)
    odd = os.path.join(os.fsencode(tree), b"caf\xe9.txt")

    def call(method: str, **params: Any) -> Any:
        answers[method] = c.call(method, params)
        return answers[method]

    hello = call("rpc.hello")
    call("rpc.ping")
    call("rpc.methods")
    for name in ("sys.info", "sys.cpu", "sys.memory", "sys.disks", "sys.disk_io",
                 "sys.network", "sys.load", "sys.sensors", "sys.users", "sys.ports"):
        call(name)
    call("sys.processes", limit=5)
    live_sub = c.subscribe("sys.subscribe", {"interval_s": 0.25})
    answers["sys.subscribe"] = live_sub.result
    call("sys.live_stats")
    call("sys.unsubscribe", subscription=live_sub.result["subscription"])
    call("sys.process", pid=hello["pid"])
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        call("sys.kill", pid=victim.pid, signal="TERM")
    finally:
        victim.kill()
        victim.wait()

    call("fs.stat", path=odd)  # a name that is not UTF-8: str|bin
    call("fs.exists", path=root + "/a.txt")
    call("fs.list", path=root, recursive=True)
    call("fs.find", path=root, name="*.txt")
    call("fs.read", path=root + "/a.txt", encoding="utf-8")
    call("fs.hash", path=root + "/a.txt")
    call("fs.tail", path=root + "/a.txt", lines=2)
    call("fs.du", path=root)
    call("fs.write", path=root + "/new.txt", data="x")
    call("fs.chmod", path=root + "/new.txt", mode=0o600)
    call("fs.mkdir", path=root + "/made")
    call("fs.copy", src=root + "/sub", dst=root + "/copied")
    call("fs.move", src=root + "/copied", dst=root + "/moved")
    call("fs.remove", path=root + "/moved", recursive=True)
    call("fs.grep", path=root, pattern="a", context=1)
    call("fs.touch", path=root + "/touched")
    call("fs.link", target="a.txt", path=root + "/alink", symbolic=True)
    call("fs.readlink", path=root + "/alink")
    call("fs.realpath", path=root + "/alink")
    call("fs.archive", paths=[root + "/sub"], dst=root + "/sub.zip", format="zip")
    call("fs.extract", src=root + "/sub.zip", dst=root + "/unzipped")
    c._want_fds += 1  # the descriptors are received (and closed) below
    try:
        opened = call("fs.open", path=root + "/a.txt")
        handle = call("fs.open", path=root + "/opened.txt", mode="wb")["handle"]
        assert opened["fd"] is True
    finally:
        c._want_fds -= 1
        while c._fds:
            os.close(c._fds.popleft())
    call("fs.close", handle=handle)
    with open(root + "/big.bin", "wb") as f:
        f.write(b"x" * (2 * 1024 * 1024))
    rid, frame = c._state.request("fs.read", {"path": root + "/big.bin", "stream": True,
                                              "window_bytes": 65536})
    c._send(frame)  # its chunks and its answer are skipped by the calls below
    while (c._read_one(10) or {}).get("method") != "fs.chunk":
        pass  # the stream runs: it can be acknowledged
    call("fs.ack", request=rid, offset=2 * 1024 * 1024)
    wid, frame = c._state.request("fs.write", {"path": root + "/up.bin", "stream": True})
    c._send(frame)
    call("fs.write_chunk", request=wid, offset=0, data=b"up", eof=True)

    odd_dir = os.path.join(os.fsencode(tree), b"d\xe9j\xe0")
    watch_sub = c.subscribe("watch.add", {"paths": [root, odd_dir], "recursive": True})
    answers["watch.add"] = watch_sub.result
    call("watch.list")
    call("watch.remove", subscription=watch_sub.result["subscription"])

    monitor_sub = c.subscribe("monitor.subscribe", {})
    answers["monitor.subscribe"] = monitor_sub.result
    call("monitor.unsubscribe", subscription=monitor_sub.result["subscription"])
    call("monitor.test", provider="console")  # one history entry at least
    silence = call("monitor.silence", check="cpu", duration_s=60, comment="results test")
    call("monitor.silences")
    call("monitor.checks")
    call("monitor.history")
    deadline = time.monotonic() + 30  # until the engine has ticked: rows to check
    while not call("monitor.status")["checks"] and time.monotonic() < deadline:
        time.sleep(0.05)
    call("monitor.unsilence", silence=silence["id"])

    call("metrics.inc", name="results_jobs_total", labels={"queue": "a"})
    call("metrics.set", name="results_temperature", value=20.5)
    call("metrics.add", name="results_temperature", value=1)
    call("metrics.observe", name="results_latency_seconds", value=0.2)
    call("metrics.push", samples=[{"op": "inc", "name": "results_jobs_total", "value": 1,
                                   "labels": {"queue": "b"}}])
    call("metrics.list")

    call("checks.run", name="results-cmd")
    call("checks.status")
    checks_sub = c.subscribe("checks.subscribe", {})
    answers["checks.subscribe"] = checks_sub.result
    call("checks.unsubscribe", subscription=checks_sub.result["subscription"])

    assert call("push.status")["targets"][0]["target"] == "results"
    worker = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"]
    proc_sub = c.subscribe("proc.subscribe", {})
    answers["proc.subscribe"] = proc_sub.result
    call("proc.start", name="results-worker", command=worker, instances=1,
         stop_timeout_s=5)
    call("proc.scale", name="results-worker", instances=2)
    call("proc.restart", name="results-worker")
    call("proc.status", name="results-worker")
    call("proc.list")
    call("proc.logs", name="results-worker")
    call("proc.stop", name="results-worker")
    call("proc.unsubscribe", subscription=proc_sub.result["subscription"])


def test_a_real_daemons_results_conform_to_their_schemas(
        daemon_factory: Callable[..., DaemonHandle], tree: Path, tmp_path: Path,
        registry: dict[str, dict[str, Any]]) -> None:
    h = daemon_factory(_config(tmp_path))
    answers: dict[str, Any] = {}
    with h.client() as c:
        _calls(c, tree, answers)
        described = {m["name"]: m for m in c.rpc.methods()["methods"]}
    assert set(answers) == set(registry), "every method is called once"
    assert described == registry, "the daemon describes what the registry declares"
    problems = [p for name in sorted(answers)
                for p in violations(answers[name], registry[name]["result"], name)]
    assert problems == []
    # the calls reached the parts of the schemas that matter
    assert isinstance(answers["fs.stat"]["path"], bytes)
    assert any(isinstance(e["name"], bytes) for e in answers["fs.list"]["entries"])
    assert answers["watch.list"]["subscriptions"][0]["paths"][1] == answers["watch.add"][
        "paths"][1] == os.path.join(os.fsencode(tree), b"d\xe9j\xe0")
    assert answers["monitor.status"]["checks"] and answers["monitor.status"]["silences"]
    assert answers["monitor.history"]["alerts"][0]["deliveries"]


def test_the_checker_finds_departures(registry: dict[str, dict[str, Any]]) -> None:
    schema = registry["fs.stat"]["result"]
    good = {"path": b"caf\xe9", "name": "x", "type": "file", "size": 1, "mode": 420,
            "uid": 0, "gid": 0, "nlink": 1, "inode": 2, "mtime_at": 1.0, "atime_at": 1,
            "ctime_at": 1.5, "symlink_target": None}
    assert violations(good, schema) == []
    assert violations({**good, "type": "blob"}, schema) == [
        "result.type: 'blob' not one of ['file', 'dir', 'symlink', 'fifo', 'socket', "
        "'char_device', 'block_device', 'other']"]
    assert violations({**good, "extra": 1}, schema) == ["result: undeclared key 'extra'"]
    assert violations({k: v for k, v in good.items() if k != "size"}, schema) == [
        "result: missing key 'size'"]
    assert violations({**good, "size": True}, schema) == ["result.size: True is not int"]
    assert violations({**good, "symlink_target": 3}, schema) == [
        "result.symlink_target: 3 is not str|bin"]
