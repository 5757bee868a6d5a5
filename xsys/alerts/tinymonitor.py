"""TinyMonitor's notification formats, for alerts made under ``monitor.compat: tinymonitor``
(``Alert.tinymonitor``): what the Python TinyMonitor (github.com/Gu1llaum-3/tinymonitor,
``src/tinymonitor/alerts/*.py``) sends for the same situation, so that webhook receivers,
ntfy topics, Gotify clients, Google Chat spaces and mail filters keep working.

Each builder takes the alert; the machine context comes from its ``host``
(``HostContext.ip_private``: the default route's source address, ``ip_public``,
``load_text``, ``uptime_hm``), the time from ``created_at`` in local time. The only
addition xsys makes is the webhook document's top-level ``xsys`` object; ntfy, Gotify and
Google Chat requests carry nothing TinyMonitor does not send.

JSON bodies are serialised as ``requests`` does (``json.dumps`` defaults: ASCII escapes,
``", "``/``": "`` separators), so receivers get the same bytes apart from the values of
the moment.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import TYPE_CHECKING, Any

from xsys.alerts.model import Alert

if TYPE_CHECKING:  # the email package loads with the first message (not at daemon start)
    from email.mime.multipart import MIMEMultipart

#: The avatar TinyMonitor puts in its Google Chat card header.
GOOGLE_CHAT_IMAGE = ("https://upload.wikimedia.org/wikipedia/commons/thumb/3/35/Tux.svg/"
                     "1200px-Tux.svg.png")

#: Provider names as TinyMonitor logs them when it loads them (``Alert Provider loaded:``).
LOADED_NAMES = {"google_chat": "Google Chat", "ntfy": "Ntfy", "smtp": "SMTP",
                "webhook": "Webhook", "gotify": "Gotify"}


def local_time(ts: float) -> str:
    """``2025-12-03 14:30:00`` (local time, TinyMonitor's ``execution_time``)."""
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def iso_timestamp(ts: float) -> str:
    """Naive local ISO time with microseconds, as ``datetime.now().isoformat()``."""
    return dt.datetime.fromtimestamp(ts).isoformat()


def dumps(doc: Any) -> bytes:
    """JSON as ``requests`` serialises ``json=``: ``json.dumps`` defaults, UTF-8."""
    return json.dumps(doc).encode("utf-8")


def level(alert: Alert) -> str:
    """``WARNING``/``CRITICAL`` (TinyMonitor sends nothing else)."""
    return alert.severity.upper()


# ------------------------------------------------------------------------ webhook


def webhook_document(alert: Alert) -> dict[str, Any]:
    """TinyMonitor's webhook JSON (``alerts/webhook.py``), plus the top-level ``xsys``
    object (``id``, ``fingerprint``, ``check``, ``severity``, ``status``, ``unit``,
    ``raw_value``, ``threshold``, ``started_at``, ``created_at``, ``test``, ``addresses``,
    ``uptime_s``)."""
    h = alert.host
    return {
        "timestamp": iso_timestamp(alert.created_at),
        "alert": {
            "level": level(alert),
            "component": alert.component,
            "value": alert.value_text,
            "title": alert.title,
            "message": alert.message,
        },
        "host": {
            "hostname": h.hostname,
            "ip_private": h.ip_private,
            "ip_public": h.ip_public,
            "uptime": h.uptime_hm,
            "load_average": h.load_text,
        },
        "xsys": {
            "id": alert.id,
            "fingerprint": alert.fingerprint,
            "check": alert.check,
            "severity": alert.severity,
            "status": alert.status,
            "unit": alert.unit,
            "raw_value": alert.value,
            "threshold": alert.threshold,
            "started_at": alert.started_at,
            "created_at": alert.created_at,
            "test": alert.test,
            "addresses": list(h.addresses),
            "uptime_s": h.uptime_s,
        },
    }


# ------------------------------------------------------------------- ntfy, gotify


def markdown(alert: Alert, line_end: str = "\n") -> str:
    """The Markdown body of ntfy (``line_end="\\n"``) and Gotify (``"  \\n"``: two
    trailing spaces force Markdown line breaks), as ``alerts/ntfy.py`` and
    ``alerts/gotify.py`` build it."""
    h = alert.host
    e = line_end
    return (
        f"**Component** : {alert.component}{e}"
        f"**Value**     : {alert.value_text}{e}"
        f"**Level**     : {level(alert)}{e}\n"
        f"__Machine Context__{e}"
        f"\U0001f5a5\ufe0f **Server**    : `{h.hostname}`{e}"
        f"\U0001f3e0 **Private IP**: `{h.ip_private}`{e}"
        f"\U0001f30d **Public IP** : `{h.ip_public}`{e}"
        f"\u2699\ufe0f **Load Avg**  : `{h.load_text}`{e}"
        f"\u23f1\ufe0f **Uptime**    : `{h.uptime_hm}`{e}"
        f"\U0001f552 **Time**      : {local_time(alert.created_at)}"
    )


def ntfy_request(alert: Alert, token: str = "") -> tuple[dict[str, str], bytes]:
    """ntfy's headers (``Title``, ``Priority`` 5/3/1, ``Tags``, ``Markdown: yes``, and
    ``Authorization: Bearer`` with a token) and UTF-8 body."""
    lvl = level(alert)
    if lvl == "CRITICAL":
        priority, tags = "5", "rotating_light,critical"
    elif lvl == "WARNING":
        priority, tags = "3", "warning"
    else:
        priority, tags = "1", "information_source"
    headers = {"Title": alert.title, "Priority": priority, "Tags": tags, "Markdown": "yes"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers, markdown(alert).encode("utf-8")


def gotify_message(alert: Alert) -> dict[str, Any]:
    """Gotify's JSON message (priority 8/5/2, Markdown display extra)."""
    lvl = level(alert)
    priority = 8 if lvl == "CRITICAL" else 5 if lvl == "WARNING" else 2
    return {
        "title": alert.title,
        "message": markdown(alert, "  \n"),
        "priority": priority,
        "extras": {"client::display": {"contentType": "text/markdown"}},
    }


# -------------------------------------------------------------------- google chat


def google_chat_card(alert: Alert) -> dict[str, Any]:
    """The ``cardsV2`` message of ``alerts/google_chat.py``: card id
    ``tinymonitor-<host>-<component>`` (sanitised), header ``⚠️ WARNING : <component>`` or
    ``🚨 CRITICAL ALERT : <component>``, an "Incident Details" section and a collapsible
    "Machine Context" section."""
    h = alert.host
    lvl = level(alert)
    if lvl == "CRITICAL":
        icon, colour, title = "\U0001f6a8", "#FF0000", f"CRITICAL ALERT : {alert.component}"
    elif lvl == "WARNING":
        icon, colour, title = "\u26a0\ufe0f", "#FFA500", f"WARNING : {alert.component}"
    else:
        icon, colour, title = "\u2139\ufe0f", "#000000", f"INFO : {alert.component}"
    safe_host = re.sub(r"[^a-zA-Z0-9_-]", "_", h.hostname)
    safe_component = re.sub(r"[^a-zA-Z0-9_-]", "_", alert.component)
    return {
        "cardsV2": [{
            "cardId": f"tinymonitor-{safe_host}-{safe_component}",
            "card": {
                "header": {
                    "title": f"{icon} {title}",
                    "subtitle": f"Server : {h.hostname}",
                    "imageUrl": GOOGLE_CHAT_IMAGE,
                    "imageType": "CIRCLE",
                },
                "sections": [
                    {"header": "Incident Details", "widgets": [
                        {"decoratedText": {"topLabel": "Monitored Component",
                                           "text": f"<b>{alert.component}</b>",
                                           "startIcon": {"knownIcon": "MEMBERSHIP"}}},
                        {"decoratedText": {"topLabel": "Current Value",
                                           "text": f'<font color="{colour}"><b>'
                                                   f"{alert.value_text}</b></font>",
                                           "startIcon": {"knownIcon": "DESCRIPTION"}}},
                        {"decoratedText": {"topLabel": "Alert Level",
                                           "text": f"<b>{lvl}</b>",
                                           "startIcon": {"knownIcon": "STAR"}}},
                    ]},
                    {"header": "Machine Context", "collapsible": True,
                     "uncollapsibleWidgetsCount": 2, "widgets": [
                         {"textParagraph": {"text": f"<b>Private IP:</b> {h.ip_private}<br>"
                                                    f"<b>Public IP:</b> {h.ip_public}"}},
                         {"textParagraph": {"text": f"<b>Load:</b> {h.load_text}<br>"
                                                    f"<b>Uptime:</b> {h.uptime_hm}"}},
                         {"textParagraph": {"text": '<font color="#808080">Alert Time: '
                                                    f"{local_time(alert.created_at)}</font>"}},
                     ]},
                ],
            },
        }],
    }


# -------------------------------------------------------------------------- e-mail


def email_html(alert: Alert) -> str:
    """The HTML body of ``alerts/smtp.py``, indentation included (values are not
    escaped, as TinyMonitor's)."""
    h = alert.host
    return f"""
        <html>
        <body>
            <h2>{alert.title}</h2>
            <p><strong>Component:</strong> {alert.component}</p>
            <p><strong>Value:</strong> {alert.value_text}</p>
            <p><strong>Level:</strong> {level(alert)}</p>
            <hr>
            <h3>Machine Context</h3>
            <ul>
                <li><strong>Server:</strong> {h.hostname}</li>
                <li><strong>Private IP:</strong> {h.ip_private}</li>
                <li><strong>Public IP:</strong> {h.ip_public}</li>
                <li><strong>Load Avg:</strong> {h.load_text}</li>
                <li><strong>Uptime:</strong> {h.uptime_hm}</li>
                <li><strong>Time:</strong> {local_time(alert.created_at)}</li>
            </ul>
        </body>
        </html>
        """


def email_message(alert: Alert, from_addr: str, to_addrs: list[str]) -> MIMEMultipart:
    """TinyMonitor's e-mail: ``multipart/mixed`` with one ``text/html`` part, headers
    ``From``, ``To`` (comma-joined) and ``Subject: [<LEVEL>] <component> on <host> -
    <value>``, nothing else."""
    from email.mime.multipart import MIMEMultipart
    from email.mime.text import MIMEText

    msg = MIMEMultipart()
    msg["From"] = from_addr
    msg["To"] = ", ".join(to_addrs)
    msg["Subject"] = (f"[{level(alert)}] {alert.component} on {alert.host.hostname} - "
                      f"{alert.value_text}")
    msg.attach(MIMEText(email_html(alert), "html"))
    return msg
