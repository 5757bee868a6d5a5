"""Human renderings of an ``Alert`` shared by the providers: Markdown (ntfy, Gotify), HTML
and plain text (e-mail), in the layout TinyMonitor used (details, then machine context)."""

from __future__ import annotations

import html

from xsys.alerts.model import Alert
from xsys.units import format_time


def local_time(ts: float) -> str:
    """``2025-12-03T14:30:00``: local ISO-8601 in the daemon's time zone, the format of
    every time people read (``xsys.units.format_time``, as the CLI's)."""
    return format_time(ts)


def facts(alert: Alert) -> list[tuple[str, str]]:
    """The alert's details as (label, text) pairs."""
    rows = [
        ("Component", alert.component),
        ("Value", alert.value_text),
        ("Level", alert.level),
        ("Threshold", alert.threshold_text),
        ("Started", local_time(alert.started_at)),
    ]
    if alert.ended_at is not None:
        rows.append(("Resolved", local_time(alert.ended_at)))
    return rows


def context(alert: Alert) -> list[tuple[str, str]]:
    """The machine context as (label, text) pairs."""
    h = alert.host
    return [
        ("Server", h.hostname),
        ("Addresses", ", ".join(h.addresses) or "-"),
        ("Load Avg", h.load_text),
        ("Uptime", h.uptime_text),
        ("Time", local_time(alert.created_at)),
    ]


def markdown(alert: Alert, line_end: str = "\n") -> str:
    """Markdown body; ``line_end="  \\n"`` forces breaks where Markdown would join lines
    (Gotify)."""
    lines = [f"**{k}**: {v}" for k, v in facts(alert)]
    lines.append("")
    lines.append("__Machine Context__")
    lines += [f"**{k}**: `{v}`" for k, v in context(alert)]
    return line_end.join(lines)


def text(alert: Alert) -> str:
    """Plain-text body."""
    out = [alert.title, "", alert.message, ""]
    out += [f"{k}: {v}" for k, v in facts(alert)]
    out += ["", "Machine context"]
    out += [f"{k}: {v}" for k, v in context(alert)]
    return "\n".join(out) + "\n"


def html_body(alert: Alert) -> str:
    """HTML body (every value escaped)."""
    e = html.escape
    detail = "".join(f"<p><strong>{e(k)}:</strong> {e(v)}</p>" for k, v in facts(alert))
    ctx = "".join(f"<li><strong>{e(k)}:</strong> {e(v)}</li>" for k, v in context(alert))
    return (f"<html><body><h2>{e(alert.title)}</h2>{detail}<hr>"
            f"<h3>Machine Context</h3><ul>{ctx}</ul></body></html>")
