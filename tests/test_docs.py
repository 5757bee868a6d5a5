"""The generated reference pages (docs/methods.md from the method registry,
docs/configuration.md from the config dataclasses) must not drift from the code."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from xsys.docs import TARGETS, config_keys, config_reference, config_sections, method_table, render

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("path", TARGETS, ids=lambda p: p.name)
def test_generated_page_is_current(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert render(text) == text, f"{path.name} is stale: run `make methods-doc`"


def test_table_lists_core_methods() -> None:
    table = method_table()
    for name in ("rpc.hello", "rpc.ping", "rpc.methods", "sys.info", "sys.processes"):
        assert f"| `{name}` |" in table
    assert "``" not in table, "RST markup leaked into the Markdown table"


def test_config_reference_has_every_field_of_every_section() -> None:
    ref = config_reference()
    keys = set(config_keys())
    for path, cls in config_sections():
        leaves = [f.name for f in dataclasses.fields(cls)
                  if (f"{path}.{f.name}" if path else f.name) in keys]
        if leaves:
            block = ref.split(f"### `{path}`\n", 1)[1].split("\n### ", 1)[0]
            for name in leaves:
                assert f"| `{name}` |" in block, f"{path}.{name} missing from its section"
    for key in ("server.socket", "fs.roots", "monitor.cpu.warning",
                "monitor.alerts.smtp.port", "checks[].http.url", "http.token_file"):
        assert key in config_keys(), key
        section, _, leaf = key.rpartition(".")
        assert f"### `{section}`" in ref and f"| `{leaf}` |" in ref, key


def test_render_refuses_a_file_without_generated_blocks() -> None:
    with pytest.raises(ValueError):
        render("# nothing generated here\n")


def test_every_config_key_has_a_meaning() -> None:
    empty = [line for line in config_reference().splitlines()
             if line.startswith("| `") and line.endswith("|  |")]
    assert not empty, f"config keys without a description (add a docstring): {empty}"
