"""Config: defaults, the cascade and its provenance, validation naming key paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from xsys.config import Config, ConfigError, from_dict, load_config


def write(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_defaults(tmp_path: Path) -> None:
    lc = load_config(None, environ={}, system_file=tmp_path / "none",
                     user_file=tmp_path / "none2")
    assert lc.config == Config()
    assert lc.config.server.max_frame_bytes == 16 * 1024 * 1024
    assert lc.sources["server.socket"] == "defaults"
    assert lc.files == ()


def test_cascade_order_and_sources(tmp_path: Path) -> None:
    system = write(tmp_path / "etc.json", {"server": {"max_inflight": 10, "workers": 3}})
    user = write(tmp_path / "user.json", {"server": {"max_inflight": 20}})
    cli = write(tmp_path / "cli.json", {"server": {"socket": "/tmp/from-file.sock"},
                                        "sys": {"allow_kill": True}})
    lc = load_config(cli, environ={"XSYS_SOCKET": "/tmp/from-env.sock",
                                   "XSYS_LOG_LEVEL": "debug"},
                     system_file=system, user_file=user)
    c = lc.config
    assert c.server.workers == 3 and c.server.max_inflight == 20
    assert c.server.socket == "/tmp/from-env.sock"
    assert c.server.log_level == "DEBUG" and c.sys.allow_kill is True
    assert lc.sources["server.workers"] == str(system)
    assert lc.sources["server.max_inflight"] == str(user)
    assert lc.sources["sys.allow_kill"] == str(cli)
    assert lc.sources["server.socket"] == "env:XSYS_SOCKET"
    assert lc.sources["server.max_frame_bytes"] == "defaults"
    assert lc.files == (str(system), str(user), str(cli))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"server": {"max_inflight": "many"}}, "server.max_inflight: expected an integer"),
        ({"server": {"log_format": "xml"}}, "server.log_format: expected one of"),
        ({"server": {"allowed_uids": [0, "root"]}}, "server.allowed_uids[1]"),
        ({"server": {"bogus": 1}}, "server.bogus: unknown key"),
        ({"nosuchsection": {}}, "nosuchsection: unknown key"),
        ({"sys": {"allow_kill": "yes"}}, "sys.allow_kill: expected a boolean"),
        ({"fs": {"roots": "/tmp"}}, "fs.roots: expected a list"),
        ({"server": 5}, "server: expected a map"),
    ],
)
def test_errors_name_the_key_path(tmp_path: Path, data: dict[str, Any], message: str) -> None:
    f = write(tmp_path / "c.json", data)
    with pytest.raises(ConfigError) as info:
        load_config(f, environ={}, system_file=tmp_path / "x", user_file=tmp_path / "y")
    assert message in str(info.value)


def test_invalid_json_names_file_and_line(tmp_path: Path) -> None:
    f = write(tmp_path / "c.json", '{\n "server": {,}\n}')
    with pytest.raises(ConfigError, match=r"c\.json: invalid JSON at line 2"):
        load_config(f, environ={}, system_file=tmp_path / "x", user_file=tmp_path / "y")


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.json", environ={}, system_file=tmp_path / "x",
                    user_file=tmp_path / "y")


def test_ints_are_accepted_for_floats_but_not_bools() -> None:
    c = from_dict(Config, {"server": {"shutdown_timeout_s": 3}})
    assert c.server.shutdown_timeout_s == 3.0
    with pytest.raises(ConfigError):
        from_dict(Config, {"server": {"shutdown_timeout_s": True}})


def test_overrides_win(tmp_path: Path) -> None:
    lc = load_config(None, environ={"XSYS_SOCKET": "/env.sock"}, system_file=tmp_path / "x",
                     user_file=tmp_path / "y", overrides={"server": {"socket": "/cli.sock"}})
    assert lc.config.server.socket == "/cli.sock"
    assert lc.sources["server.socket"] == "command line"
