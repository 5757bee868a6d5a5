"""TinyMonitor compatibility: the documented examples of the Python TinyMonitor
(github.com/Gu1llaum-3/tinymonitor: configs/config.example.json, docs/configuration.md,
docs/metrics/*.md, docs/alerts/*.md, README.md) are detected, translated into xsys's
``monitor`` section, load through the normal config cascade, and route like TinyMonitor's
``should_send``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from xsys.alerts.model import Alert, HostContext
from xsys.alerts.providers import build_providers
from xsys.alerts.providers.base import HttpClient
from xsys.cli import main
from xsys.config import Config, ConfigError, from_dict, load_config, looks_like_tinymonitor
from xsys.monitor.config import convert_tinymonitor
from xsys.monitor.engine import rule_specs

NOWHERE = Path("/nonexistent/xsys-test")

# configs/config.example.json
EXAMPLE_CONFIG = {
    "refresh": 2,
    "cooldown": 60,
    "log_file": "",
    "load": {"warning": 7.0, "critical": 9.0, "enabled": True, "duration": 60},
    "cpu": {"warning": 70, "critical": 90, "enabled": True, "duration": 0},
    "memory": {"warning": 70, "critical": 90, "enabled": True, "duration": 0},
    "filesystem": {"warning": 80, "critical": 90, "enabled": True, "duration": 0,
                   "exclude": []},
    "reboot": {"enabled": True, "duration": 0},
    "io": {"enabled": True, "duration": 0},
    "alerts": {
        "google_chat": {"enabled": False, "webhook_url": ""},
        "ntfy": {"enabled": False, "topic_url": "", "token": ""},
        "smtp": {"enabled": False, "host": "", "port": 587, "user": "", "password": "",
                 "from_addr": "", "to_addrs": "", "use_tls": True},
        "webhook": {"enabled": False, "url": "", "headers": {}, "timeout": 10},
        "gotify": {"enabled": False, "url": "", "token": ""},
    },
}

# docs/configuration.md ("Example Configuration", with its // annotations)
CONFIGURATION_MD = """{
    "refresh": 5,          // (1)
    "cooldown": 60,        // (2)
    "log_file": "",        // (3)

    "cpu": {
        "enabled": true,
        "warning": 70,
        "critical": 90,
        "duration": 30     // (4)
    },
    "memory": {
        "enabled": true,
        "warning": 80,
        "critical": 95,
        "duration": 60
    },
    "filesystem": {
        "enabled": true,
        "warning": 85,
        "critical": 95,
        "duration": 0      // (5)
    },
    "alerts": {
        "ntfy": {
            "enabled": true,
            "topic_url": "https://ntfy.sh/my_secret_topic",
            "rules": {
                "default": ["WARNING", "CRITICAL"]
            }
        }
    }
}"""

# docs/alerts/*.md
WEBHOOK_MD = {"enabled": True, "url": "https://your-endpoint.com/api/alert",
              "headers": {"Authorization": "Bearer your-secret-token",
                          "X-Custom-Header": "TinyMonitor"},
              "timeout": 10, "rules": {"default": ["WARNING", "CRITICAL"]}}
SMTP_MD = {"enabled": True, "host": "smtp.gmail.com", "port": 587,
           "user": "your_email@gmail.com", "password": "your_app_password",
           "from_addr": "monitor@server01.com",
           "to_addrs": ["admin@company.com", "oncall@company.com"], "use_tls": True,
           "rules": {"default": ["CRITICAL"]}}
GOTIFY_MD = {"enabled": True, "url": "https://gotify.yourdomain.com", "token": "A1b2C3d4E5f6G7h",
             "rules": {"default": ["WARNING", "CRITICAL"]}}
NTFY_MD = {"enabled": True, "topic_url": "https://ntfy.sh/my_secret_topic",
           "token": "optional_token", "rules": {"default": ["WARNING", "CRITICAL"]}}
GOOGLE_CHAT_MD = {"enabled": True, "webhook_url": "https://chat.googleapis.com/v1/spaces/x",
                  "rules": {"default": ["WARNING", "CRITICAL"]}}

# README.md ("Minimal config.json example", an older form)
README_MINIMAL = {
    "check_interval": 5,
    "metrics": {
        "cpu": {"enabled": True, "threshold": 90},
        "memory": {"enabled": True, "threshold": 85},
        "disk": {"enabled": True, "threshold": 90, "path": "/"},
    },
    "alerts": {
        "console": {"enabled": True},
        "google_chat": {"enabled": False, "webhook_url": "YOUR_WEBHOOK_URL"},
    },
}


def strip_comments(text: str) -> str:
    return re.sub(r"\s//[^\n]*", "", text)


def load(data: dict[str, Any], tmp_path: Path) -> Config:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    return load_config(path, environ={}, system_file=NOWHERE, user_file=NOWHERE).config


def converted(data: dict[str, Any]) -> Config:
    cfg: Config = from_dict(Config, convert_tinymonitor(data, warn=lambda m: None))
    return cfg


# ----------------------------------------------------------------------- detection


@pytest.mark.parametrize("data,expected", [
    (EXAMPLE_CONFIG, True),
    ({"refresh": 5}, True),
    ({"alerts": {"ntfy": NTFY_MD}}, True),
    (README_MINIMAL, True),
    ({"monitor": {"refresh": 5}}, False),
    ({"metrics": {"max_series": 100, "ttl_s": 60}}, False),  # xsys's own metrics section
    ({"metrics": {"cpu": {"enabled": True, "threshold": 90}}}, True),
    ({"server": {}, "cpu": {}}, False),
    ({}, False),
])
def test_detection(data: dict[str, Any], expected: bool) -> None:
    assert looks_like_tinymonitor(data) is expected


# ----------------------------------------------------------------------- translation


def test_example_config_loads_through_the_cascade(tmp_path: Path) -> None:
    m = load(EXAMPLE_CONFIG, tmp_path).monitor
    assert (m.refresh, m.repeat_interval, m.log_file) == (2.0, 60.0, "")
    assert (m.cpu.warning, m.cpu.critical, m.cpu.duration) == (70, 90, 0)
    assert (m.memory.warning, m.memory.critical) == (70, 90)
    assert (m.filesystem.warning, m.filesystem.critical, m.filesystem.exclude) == (80, 90, ())
    assert (m.load.warning, m.load.critical, m.load.duration, m.load.per_cpu) == (
        7.0, 9.0, 60.0, False)
    assert m.io.enabled and m.io.thresholds() == (None, None)
    assert m.reboot.enabled and m.reboot.severity == "warning" and not m.reboot.detect_boot
    assert not (m.swap.enabled or m.inodes.enabled or m.network.enabled)
    assert not any(p.enabled for name, p in m.alerts.providers().items() if name != "console")
    assert m.alerts.smtp.port == 587 and m.alerts.webhook.timeout == 10


def test_configuration_md_example(tmp_path: Path) -> None:
    data = json.loads(strip_comments(CONFIGURATION_MD))
    assert looks_like_tinymonitor(data)
    m = load(data, tmp_path).monitor
    assert (m.refresh, m.repeat_interval) == (5.0, 60.0)
    assert (m.cpu.warning, m.cpu.critical, m.cpu.duration) == (70, 90, 30)
    assert (m.memory.warning, m.memory.critical, m.memory.duration) == (80, 95, 60)
    assert (m.filesystem.warning, m.filesystem.critical) == (85, 95)
    assert m.alerts.ntfy.enabled and m.alerts.ntfy.topic_url == "https://ntfy.sh/my_secret_topic"
    assert m.alerts.ntfy.rules == {"default": ("WARNING", "CRITICAL")}
    # sections the file leaves out take TinyMonitor's defaults
    assert (m.load.warning, m.load.critical, m.load.duration, m.load.per_cpu) == (
        0.7, 0.9, 60.0, True)
    assert m.reboot.enabled


def test_cooldown_negative_is_alert_once() -> None:
    assert converted({"cooldown": -1}).monitor.repeat_interval == -1


def test_section_keys_missing_take_the_metric_defaults() -> None:
    m = converted({"cpu": {"duration": 15}, "load": {"warning": 3}}).monitor
    assert (m.cpu.warning, m.cpu.critical, m.cpu.duration) == (70, 90, 15)
    assert (m.load.warning, m.load.critical, m.load.per_cpu) == (3, 9.0, False)


@pytest.mark.parametrize("io,expected", [
    # docs/metrics/io.md
    ({"enabled": True, "warning": "10MB", "critical": "50MB", "duration": 0},
     (10 * 1024**2, 50 * 1024**2)),
    ({"enabled": True, "max_speed": "100MB", "warning": "70%", "critical": "90%",
      "duration": 0}, (70 * 1024**2, 90 * 1024**2)),
    ({"warning": "500K", "critical": 1048576}, (500 * 1024, 1024**2)),
    ({"warning": "500KB", "critical": "1G"}, (500 * 1024, 1024**3)),
])
def test_io_thresholds(io: dict[str, Any], expected: tuple[float, float]) -> None:
    m = converted({"io": io}).monitor
    assert m.io.thresholds() == pytest.approx(expected)
    assert rule_specs(m)["io"][1].warning == pytest.approx(expected[0])


def test_io_percent_without_max_speed_is_an_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"monitor\.io: warning: .*max_speed"):
        converted({"io": {"warning": "70%"}})


def test_filesystem_exclude() -> None:
    m = converted({"filesystem": {"warning": 80, "critical": 90, "exclude": ["/boot", "/snap"]}})
    assert m.monitor.filesystem.exclude == ("/boot", "/snap")


def test_provider_examples_from_the_docs() -> None:
    m = converted({"alerts": {"webhook": WEBHOOK_MD, "smtp": SMTP_MD, "gotify": GOTIFY_MD,
                              "ntfy": NTFY_MD, "google_chat": GOOGLE_CHAT_MD}}).monitor
    a = m.alerts
    assert a.webhook.url == WEBHOOK_MD["url"] and a.webhook.headers == WEBHOOK_MD["headers"]
    assert a.webhook.timeout == 10
    assert a.smtp.recipients() == ["admin@company.com", "oncall@company.com"]
    assert (a.smtp.host, a.smtp.port, a.smtp.user, a.smtp.use_tls) == (
        "smtp.gmail.com", 587, "your_email@gmail.com", True)
    assert a.smtp.rules == {"default": ("CRITICAL",)}
    assert (a.gotify.url, a.gotify.token) == (GOTIFY_MD["url"], GOTIFY_MD["token"])
    assert a.ntfy.token == "optional_token"
    assert a.google_chat.webhook_url == GOOGLE_CHAT_MD["webhook_url"]
    assert all(p.enabled for n, p in a.providers().items() if n != "alertmanager")


def test_smtp_to_addrs_comma_string() -> None:
    smtp = {**SMTP_MD, "to_addrs": "a@example.com, b@example.com"}
    m = converted({"alerts": {"smtp": smtp}}).monitor
    assert m.alerts.smtp.recipients() == ["a@example.com", "b@example.com"]


def test_readme_minimal_example() -> None:
    warnings: list[str] = []
    data = convert_tinymonitor(README_MINIMAL, warn=warnings.append)
    m = from_dict(Config, data).monitor
    assert m.refresh == 5
    assert (m.cpu.warning, m.cpu.critical) == (90, None)
    assert (m.memory.warning, m.memory.critical) == (85, None)
    assert m.filesystem.include == ("/",) and m.filesystem.warning == 90
    assert m.alerts.console.enabled and not m.alerts.google_chat.enabled
    assert warnings == []


def test_unknown_keys_are_reported_and_dropped() -> None:
    warnings: list[str] = []
    data = convert_tinymonitor({"refresh": 1, "colour": "blue", "cpu": {"warnng": 5},
                                "alerts": {"telegram": {}, "ntfy": {**NTFY_MD, "x": 1},
                                           "webhook": {"enabled": True}}},
                               warn=warnings.append)
    m = from_dict(Config, data).monitor
    assert any(w.startswith("colour") for w in warnings)
    assert any("cpu.warnng" in w for w in warnings)
    assert any("alerts.telegram" in w for w in warnings)
    assert any("alerts.ntfy.x" in w for w in warnings)
    # enabled without its url: TinyMonitor could not send either; xsys disables it
    assert any("alerts.webhook" in w and "url" in w for w in warnings)
    assert not m.alerts.webhook.enabled and m.alerts.ntfy.enabled


def test_bad_value_error_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"monitor\.cpu\.warning"):
        load({"cpu": {"warning": "high"}}, tmp_path)


def test_log_file(tmp_path: Path) -> None:
    m = converted({"log_file": str(tmp_path / "tm.log")}).monitor
    assert m.log_file == str(tmp_path / "tm.log")


# ----------------------------------------------------------------------- routing


def _alert(check: str, severity: str, status: str = "firing") -> Alert:
    return Alert(id="a1", check=check, component=check, severity=severity,  # type: ignore[arg-type]
                 status=status, value=1.0, unit="percent", threshold=1.0,  # type: ignore[arg-type]
                 started_at=0.0, host=HostContext("h"))


@pytest.mark.parametrize("provider_cfg,check,severity,expected", [
    # no rules: levels, default WARNING + CRITICAL (TinyMonitor's should_send)
    ({}, "cpu", "warning", True),
    ({}, "cpu", "critical", True),
    ({"levels": ["CRITICAL"]}, "cpu", "warning", False),
    ({"levels": ["CRITICAL"]}, "cpu", "critical", True),
    # rules: the check's entry, else default, else nothing
    ({"rules": {"default": ["CRITICAL"]}}, "memory", "warning", False),
    ({"rules": {"default": ["CRITICAL"]}}, "memory", "critical", True),
    ({"rules": {"cpu": ["WARNING"], "default": ["CRITICAL"]}}, "cpu", "warning", True),
    ({"rules": {"cpu": ["WARNING"], "default": ["CRITICAL"]}}, "cpu", "critical", False),
    ({"rules": {"cpu": ["WARNING"]}}, "memory", "critical", False),
    ({"rules": {"filesystem": ["CRITICAL"]}}, "filesystem", "critical", True),
    ({"rules": {"load": ["WARNING", "CRITICAL"]}}, "load", "warning", True),
    ({"rules": {"reboot": ["WARNING"]}}, "reboot", "warning", True),
    # TinyMonitor normalised its I/O component to "i/o"
    ({"rules": {"i/o": ["CRITICAL"]}}, "io", "critical", True),
    ({"rules": {"io": ["CRITICAL"]}}, "io", "critical", True),
    # xsys's extra checks fall back to the closest TinyMonitor section
    ({"rules": {"filesystem": ["CRITICAL"]}}, "inodes", "critical", True),
])
def test_routing_like_should_send(provider_cfg: dict[str, Any], check: str, severity: str,
                                  expected: bool) -> None:
    cfg = converted({"alerts": {"webhook": {"enabled": True, "url": "http://127.0.0.1:9/x",
                                            **provider_cfg}}})
    provider = build_providers(cfg.monitor.alerts, HttpClient())["webhook"]
    assert provider.accepts(_alert(check, severity)) is expected
    # resolved alerts follow the severity that fired
    assert provider.accepts(_alert(check, severity, "resolved")) is expected


# ----------------------------------------------------------------------- CLI


def test_cli_import_tinymonitor(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**EXAMPLE_CONFIG, "bogus": 1}))
    result = CliRunner().invoke(main, ["config", "import-tinymonitor", str(path)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out == convert_tinymonitor({**EXAMPLE_CONFIG, "bogus": 1}, warn=lambda m: None)
    assert "bogus" in result.stderr
    # the printed config is a valid xsys config file
    xsys_file = tmp_path / "xsys.json"
    xsys_file.write_text(result.stdout)
    cfg = load_config(xsys_file, environ={}, system_file=NOWHERE, user_file=NOWHERE).config
    assert cfg.monitor.refresh == 2


def test_cli_import_rejects_other_files(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"monitor": {}}))
    result = CliRunner().invoke(main, ["config", "import-tinymonitor", str(path)])
    assert result.exit_code == 1
    assert "not a TinyMonitor config" in result.stderr
