"""The README's method table is generated from the registry and must not drift."""

from __future__ import annotations

from pathlib import Path

from xsys.docs import method_table, render

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_method_table_is_current() -> None:
    text = README.read_text(encoding="utf-8")
    assert render(text) == text, "README method table is stale: run `make methods-doc`"


def test_table_lists_core_methods() -> None:
    table = method_table()
    for name in ("rpc.hello", "rpc.ping", "rpc.methods", "sys.info", "sys.processes"):
        assert f"| `{name}` |" in table
