"""``xsys config show`` prints effective values and marks defaults; ``xsys config example``
prints a complete config that loads and covers every key of the config dataclasses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from xsys.config import Config, load_config, to_dict
from xsys.docs import config_keys

ROOT = Path(__file__).resolve().parent.parent


def xsys(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    full.pop("XSYS_SOCKET", None)
    return subprocess.run([sys.executable, "-m", "xsys", *args], capture_output=True,
                          text=True, env=full, timeout=60)


def _has_key(tree: Any, key: str) -> bool:
    node = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_example_loads_and_covers_every_key(tmp_path: Path) -> None:
    r = xsys("config", "example", env={"HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    path = tmp_path / "example.json"
    path.write_text(r.stdout)
    loaded = load_config(path, environ={}, system_file=tmp_path / "none",
                         user_file=tmp_path / "none")
    assert loaded.config == Config(), "the example is not every key at its default"
    missing = [k for k in config_keys() if "[]" not in k and not _has_key(data, k)]
    assert not missing, f"config example lacks {missing}"
    # list items (checks[]) have no default instance; the list itself is there, empty
    assert data["checks"] == [] and to_dict(Config())["checks"] == []


def test_show_prints_effective_roots_and_marks_defaults(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    r = xsys("config", "show", env={"HOME": str(home)})
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line for line in r.stdout.splitlines()[1:]}
    roots = rows["fs.roots"]
    assert str(home) in roots and tempfile.gettempdir() in roots and "[]" not in roots
    assert "defaults (home and temp dir)" in roots
    assert rows["server.workers"].split()[-1] == "defaults"
    j = json.loads(xsys("config", "show", "--json", env={"HOME": str(home)}).stdout)
    assert j["config"]["fs"]["roots"] == [str(home), tempfile.gettempdir()]
    assert "fs.roots" in j["resolved"]


def test_show_keeps_configured_values_and_their_source(tmp_path: Path) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"fs": {"roots": [str(tmp_path)]},
                               "server": {"socket": str(tmp_path / "s.sock")}}))
    r = xsys("config", "show", "--config", str(cfg), env={"HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines()[1:]}
    assert rows["fs.roots"][1:] == [str(tmp_path), str(cfg)]
    assert rows["server.socket"][1:] == [str(tmp_path / "s.sock"), str(cfg)]
