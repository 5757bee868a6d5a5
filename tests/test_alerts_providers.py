"""Each provider against a real local server, checking the request format its service
documents: ntfy (publish headers), Gotify (POST /message), Google Chat (cardsV2),
generic webhook (TinyMonitor's document), Alertmanager API v2, SMTP (aiosmtpd: plain,
STARTTLS, implicit TLS, login), and console/log."""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path

import pytest

from tests.alerts_support import HOST, Recorder, SmtpSink, make_alert, self_signed, server_tls
from xsys.alerts.config import (
    AlertmanagerConfig,
    ConsoleConfig,
    GoogleChatConfig,
    GotifyConfig,
    NtfyConfig,
    SmtpConfig,
    WebhookConfig,
)
from xsys.alerts.providers import (
    AlertmanagerProvider,
    ConsoleProvider,
    DeliveryError,
    GoogleChatProvider,
    GotifyProvider,
    HttpClient,
    NtfyProvider,
    SmtpProvider,
    WebhookProvider,
)
from xsys.alerts.providers.base import parse_retry_after


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    made = self_signed(tmp_path_factory.mktemp("tls"))
    if made is None:
        pytest.skip("the openssl CLI is needed to make a test certificate")
    return made


# --------------------------------------------------------------------------- ntfy


async def test_ntfy_publish_format(server: Recorder, http: HttpClient) -> None:
    p = NtfyProvider(NtfyConfig(enabled=True, topic_url=f"{server.url}/alerts",
                                token="tk_secret"), http)
    await p.send(make_alert(severity="critical"))
    await p.send(make_alert(severity="warning", value=75.0))
    await p.send(make_alert(severity="warning", status="resolved", value=20.0))
    crit, warn, resolved = server.on("/alerts")
    assert crit.method == "POST"
    assert crit.headers["Title"] == "ALERT CRITICAL : cpu"
    assert crit.headers["Priority"] == "5"
    assert crit.headers["Tags"] == "rotating_light,critical"
    assert crit.headers["Markdown"] == "yes"
    assert crit.headers["Authorization"] == "Bearer tk_secret"
    body = crit.body.decode("utf-8")
    assert "**Component**: cpu" in body and "95.5%" in body and "testhost" in body
    assert "192.0.2.10" in body and "__Machine Context__" in body
    assert (warn.headers["Priority"], warn.headers["Tags"]) == ("3", "warning")
    assert resolved.headers["Title"] == "RESOLVED : cpu"
    assert "white_check_mark" in resolved.headers["Tags"]


async def test_ntfy_without_token_and_non_ascii_title(server: Recorder,
                                                      http: HttpClient) -> None:
    p = NtfyProvider(NtfyConfig(enabled=True, topic_url=f"{server.url}/t"), http)
    await p.send(make_alert(check="filesystem", component="filesystem:/mnt/données"))
    (req,) = server.on("/t")
    assert "Authorization" not in req.headers
    assert req.headers["Title"].startswith("=?utf-8?")  # RFC 2047, decoded by ntfy


# --------------------------------------------------------------------------- gotify


@pytest.mark.parametrize("suffix", ["", "/", "/message"])
async def test_gotify_message_format(server: Recorder, http: HttpClient, suffix: str) -> None:
    p = GotifyProvider(GotifyConfig(enabled=True, url=server.url + suffix, token="A1b2C3"), http)
    await p.send(make_alert(severity="critical"))
    (req,) = server.on("/message")
    assert req.method == "POST"
    assert req.headers["X-Gotify-Key"] == "A1b2C3"
    assert req.headers["Content-Type"].startswith("application/json")
    doc = req.json()
    assert doc["title"] == "ALERT CRITICAL : cpu"
    assert doc["priority"] == 8
    assert doc["extras"]["client::display"]["contentType"] == "text/markdown"
    assert "**Value**: 95.5%" in doc["message"] and "  \n" in doc["message"]


async def test_gotify_priorities(server: Recorder, http: HttpClient) -> None:
    p = GotifyProvider(GotifyConfig(enabled=True, url=server.url, token="t"), http)
    await p.send(make_alert(severity="warning"))
    await p.send(make_alert(severity="warning", status="resolved"))
    assert [r.json()["priority"] for r in server.on("/message")] == [5, 2]


# --------------------------------------------------------------------------- google chat


async def test_google_chat_card(server: Recorder, http: HttpClient) -> None:
    p = GoogleChatProvider(GoogleChatConfig(enabled=True,
                                            webhook_url=f"{server.url}/v1/spaces/X/messages"),
                           http)
    await p.send(make_alert(check="filesystem", component="filesystem:/var", value=96.0,
                            threshold=95.0))
    (req,) = server.on("/v1/spaces/X/messages")
    assert req.headers["Content-Type"].startswith("application/json")
    doc = req.json()
    (card,) = doc["cardsV2"]
    assert re.fullmatch(r"[A-Za-z0-9_-]+", card["cardId"])
    header = card["card"]["header"]
    assert "ALERT CRITICAL : filesystem:/var" in header["title"]
    assert header["subtitle"] == "Server : testhost"
    details, context = card["card"]["sections"]
    texts = [w["decoratedText"]["text"] for w in details["widgets"]]
    assert any('color="#FF0000"' in t and "96.0%" in t for t in texts)
    assert context["collapsible"] is True
    joined = " ".join(w["textParagraph"]["text"] for w in context["widgets"])
    assert "192.0.2.10" in joined and "1d 2h 3m" in joined and "0.50, 0.40, 0.30" in joined


async def test_google_chat_colours(server: Recorder, http: HttpClient) -> None:
    p = GoogleChatProvider(GoogleChatConfig(enabled=True, webhook_url=f"{server.url}/c"), http)
    await p.send(make_alert(severity="warning"))
    await p.send(make_alert(severity="warning", status="resolved"))
    warn, resolved = server.on("/c")
    assert "#FFA500" in warn.body.decode() and "#008000" in resolved.body.decode()


# --------------------------------------------------------------------------- webhook


async def test_webhook_tinymonitor_document(server: Recorder, http: HttpClient) -> None:
    p = WebhookProvider(WebhookConfig(enabled=True, url=f"{server.url}/hook",
                                      headers={"Authorization": "Bearer s3cret",
                                               "X-Custom-Header": "TinyMonitor"}), http)
    alert = make_alert(severity="critical", value=95.5)
    await p.send(alert)
    (req,) = server.on("/hook")
    assert req.method == "POST"
    assert req.headers["Authorization"] == "Bearer s3cret"
    assert req.headers["X-Custom-Header"] == "TinyMonitor"
    assert req.headers["Content-Type"] == "application/json"
    doc = req.json()
    # the documented keys (docs/alerts/webhook.md), all present and of the documented types
    assert set(doc) >= {"timestamp", "alert", "host"}
    dt.datetime.fromisoformat(doc["timestamp"])
    assert doc["alert"]["level"] == "CRITICAL"
    assert doc["alert"]["component"] == "cpu"
    assert doc["alert"]["value"] == "95.5%"
    assert doc["alert"]["title"] == "ALERT CRITICAL : cpu"
    assert doc["alert"]["message"].startswith("Component cpu is in state CRITICAL. Value: 95.5%")
    host = doc["host"]
    assert set(host) >= {"hostname", "ip_private", "ip_public", "uptime", "load_average"}
    assert (host["hostname"], host["ip_private"]) == ("testhost", "192.0.2.10")
    assert all(isinstance(host[k], str) for k in ("ip_public", "uptime", "load_average"))
    # xsys's additions
    assert doc["alert"]["id"] == alert.id and doc["alert"]["status"] == "firing"
    assert doc["alert"]["threshold"] == 90.0


async def test_webhook_method_and_content_type(server: Recorder, http: HttpClient) -> None:
    p = WebhookProvider(WebhookConfig(enabled=True, url=f"{server.url}/put", method="PUT",
                                      headers={"content-type": "application/vnd.x+json"}), http)
    await p.send(make_alert(status="resolved"))
    (req,) = server.on("/put")
    assert req.method == "PUT"
    assert req.headers["Content-Type"] == "application/vnd.x+json"
    assert req.json()["alert"]["level"] == "RESOLVED"


@pytest.mark.parametrize("status,retryable", [(500, True), (503, True), (429, True),
                                              (400, False), (404, False)])
async def test_http_errors_are_classified(server: Recorder, http: HttpClient, status: int,
                                          retryable: bool) -> None:
    server.set("/e", (status, {"Retry-After": "7"}, 0.0))
    p = WebhookProvider(WebhookConfig(enabled=True, url=f"{server.url}/e"), http)
    with pytest.raises(DeliveryError) as info:
        await p.send(make_alert())
    assert info.value.status_code == status
    assert info.value.retryable is retryable
    assert info.value.retry_after == 7.0


def test_parse_retry_after() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0


# --------------------------------------------------------------------------- alertmanager


async def test_alertmanager_v2_format(server: Recorder, http: HttpClient) -> None:
    p = AlertmanagerProvider(AlertmanagerConfig(enabled=True, url=server.url,
                                                labels={"team": "ops"},
                                                generator_url="http://xsys.example/"), http)
    firing = make_alert(check="filesystem", component="filesystem:/", severity="critical",
                        started_at=1_700_000_000.0)
    await p.send(firing)
    resolved = make_alert(check="filesystem", component="filesystem:/", severity="critical",
                          status="resolved", started_at=1_700_000_000.0)
    await p.send(resolved)
    first, second = server.on("/api/v2/alerts")
    assert first.method == "POST" and first.headers["Content-Type"] == "application/json"
    (item,) = first.json()
    assert item["labels"] == {"alertname": "XsysFilesystem", "severity": "critical",
                              "instance": "testhost", "check": "filesystem",
                              "component": "filesystem:/", "job": "xsys", "team": "ops"}
    assert item["annotations"]["summary"] == "ALERT CRITICAL : filesystem:/"
    assert item["startsAt"] == "2023-11-14T22:13:20.000Z"
    ends = dt.datetime.fromisoformat(item["endsAt"].replace("Z", "+00:00"))
    assert ends > dt.datetime.now(dt.timezone.utc)  # firing: endsAt ahead, refreshed
    assert item["generatorURL"] == "http://xsys.example/"
    (done,) = second.json()
    assert done["labels"] == item["labels"]
    assert dt.datetime.fromisoformat(done["endsAt"].replace("Z", "+00:00")) <= \
        dt.datetime.now(dt.timezone.utc)
    assert p.active == {}
    await p.close()


async def test_alertmanager_resends_active_alerts(server: Recorder, http: HttpClient) -> None:
    p = AlertmanagerProvider(AlertmanagerConfig(enabled=True, url=server.url + "/",
                                                resend_interval=0.05), http)
    await p.send(make_alert())
    reqs = await server.wait("/api/v2/alerts", 3)
    assert all(r.json()[0]["labels"]["alertname"] == "XsysCpu" for r in reqs)
    await p.send(make_alert(status="resolved"))
    assert p.active == {}
    await p.close()


# --------------------------------------------------------------------------- smtp


def smtp_config(sink: SmtpSink, **kw: object) -> SmtpConfig:
    base: dict[str, object] = dict(enabled=True, host="127.0.0.1", port=sink.port,
                                   from_addr="xsys@example.com",
                                   to_addrs="ops@example.com, oncall@example.com",
                                   use_tls=False, timeout=10.0)
    base.update(kw)
    return SmtpConfig(**base)  # type: ignore[arg-type]


async def test_smtp_plain_text_and_html() -> None:
    sink = SmtpSink().start()
    try:
        p = SmtpProvider(smtp_config(sink))
        await p.send(make_alert(severity="critical"))
    finally:
        sink.stop()
    ((mail_from, rcpts, msg),) = sink.messages
    assert mail_from == "xsys@example.com"
    assert rcpts == ["ops@example.com", "oncall@example.com"]
    assert msg["Subject"] == "[CRITICAL] cpu on testhost - 95.5%"
    assert msg["To"] == "ops@example.com, oncall@example.com"
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and "Component: cpu" in text.get_content()
    assert html is not None and "<h2>ALERT CRITICAL : cpu</h2>" in html.get_content()


async def test_smtp_starttls_and_login(tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    sink = SmtpSink(tls=server_tls(cert, key), auth=True).start()
    try:
        p = SmtpProvider(smtp_config(sink, use_tls=True, ca_file=str(cert), user="alice",
                                     password="secret", to_addrs=["ops@example.com"]))
        await p.send(make_alert(severity="warning", value=75.0))
    finally:
        sink.stop()
    assert sink.logins == ["alice"]
    ((_, rcpts, msg),) = sink.messages
    assert rcpts == ["ops@example.com"] and msg["Subject"].startswith("[WARNING] cpu")


async def test_smtp_implicit_tls(tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    sink = SmtpSink(tls=server_tls(cert, key), implicit_tls=True).start()
    try:
        p = SmtpProvider(smtp_config(sink, use_ssl=True, ca_file=str(cert)))
        await p.send(make_alert())
    finally:
        sink.stop()
    assert len(sink.messages) == 1


async def test_smtp_bad_login_is_not_retryable(tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    sink = SmtpSink(tls=server_tls(cert, key), auth=True).start()
    try:
        p = SmtpProvider(smtp_config(sink, use_tls=True, ca_file=str(cert), user="alice",
                                     password="wrong"))
        with pytest.raises(DeliveryError) as info:
            await p.send(make_alert())
    finally:
        sink.stop()
    assert info.value.status_code == 535 and not info.value.retryable
    assert sink.messages == []


# --------------------------------------------------------------------------- console


async def test_console_logs(caplog: pytest.LogCaptureFixture) -> None:
    p = ConsoleProvider(ConsoleConfig())
    with caplog.at_level(logging.INFO, logger="xsys.alerts.console"):
        await p.send(make_alert(severity="critical"))
        await p.send(make_alert(severity="warning"))
        await p.send(make_alert(status="resolved"))
    levels = [r.levelno for r in caplog.records if r.name == "xsys.alerts.console"]
    assert levels == [logging.ERROR, logging.WARNING, logging.INFO]
    assert "ALERT CRITICAL : cpu" in caplog.records[0].getMessage()
    assert HOST.hostname in caplog.records[0].getMessage()
