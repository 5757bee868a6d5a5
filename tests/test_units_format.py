"""One format per kind of value (xsys/units.py), used by the CLI, the monitor and the
alerts alike."""

from __future__ import annotations

import datetime as dt
import math
import re

from xsys.alerts.render import local_time
from xsys.cli.common import cell, field_cell, human_percent, table
from xsys.units import format_bytes, format_field, format_percent, format_time, format_value

ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")


def test_percent_always_carries_its_sign() -> None:
    assert format_percent(22.73) == "22.7%" and format_percent(0) == "0.0%"
    assert format_percent(100) == "100.0%" and format_percent(None) == ""
    assert format_percent(math.nan) == "" and human_percent("x") == ""
    assert format_value(22.73, "percent") == "22.7%"


def test_bytes_are_iec_everywhere() -> None:
    assert format_bytes(1536, iec=True) == "1.5 KiB"
    assert format_bytes(5 * 1024**3, iec=True) == "5.0 GiB"
    assert format_value(1536.0, "bytes_per_second") == "1.5 KiB/s"  # monitor and alerts


def test_times_are_local_iso_8601() -> None:
    ts = 1796042923.3
    expected = dt.datetime.fromtimestamp(ts).isoformat(timespec="seconds")
    assert format_time(ts) == expected and ISO.match(expected)
    assert local_time(ts) == expected  # the alerts' texts
    assert format_time(None) == "" and format_time(float("inf")) == ""


def test_fields_format_by_their_unit_suffix() -> None:
    assert format_field("memory_rss_bytes", 2048) == "2.0 KiB"
    assert format_field("cpu_percent", 3.14159) == "3.1%"
    assert ISO.match(format_field("created_at", 1796042923.3) or "")
    assert format_field("busy_s", 1.25) == "1.2s" and format_field("up_s", 3700) == "1h 1m"
    assert format_field("pid", 12) is None and format_field("name_bytes", "x") is None
    assert field_cell("pid", 12) == "12" and field_cell("flag", True) == "yes"


def test_cells_stay_on_one_line_and_tables_fit() -> None:
    assert cell("python -c \nimport x\tz") == "python -c  import x z"
    out = table([[1, "a" * 200], [22, "b"]], ["PID", "COMMAND"], fit=40)
    assert all(len(line) <= 40 for line in out.splitlines())
    assert out.splitlines()[2] == "22   b"  # short rows untouched
    assert len(table([[1, "a" * 200]], ["PID", "COMMAND"], fit=None).splitlines()[1]) > 200
