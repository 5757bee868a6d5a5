"""The browser side of the gateway: token/cookie authentication, the dashboard page and
its assets (``xsys/http/static/``, shipped as package data), and ``GET /system/infos``.

Authentication of the dashboard paths (``/``, ``/static/*``, ``/ws``, ``/system/infos``):
the token (``http.token`` or the token file) given as ``Authorization: Bearer T``, as
``?token=T``, or the session cookie. ``GET /?token=T`` answers 303 to ``/`` with the cookie
``xsys_dashboard_<port>`` = HMAC-SHA256(token, "xsys dashboard cookie v1") (``HttpOnly``,
``SameSite=Strict``, ``Path=/``, ``Secure`` over HTTPS, 7 days): the cookie is not the token
itself, and changing the token invalidates it.
"""

from __future__ import annotations

import hashlib
import hmac
import platform
import time
from dataclasses import dataclass
from importlib import resources
from typing import TypedDict

from xsys.http.token import tokens_equal

COOKIE_PREFIX = "xsys_dashboard_"
#: Seconds the dashboard cookie lasts.
COOKIE_MAX_AGE_S = 7 * 24 * 3600
_COOKIE_LABEL = b"xsys dashboard cookie v1"
#: The page's Content-Security-Policy: everything from the gateway itself, nothing else.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}


def cookie_name(port: int) -> str:
    """The cookie's name for a listener on ``port`` (browsers share cookies across ports
    of one host; two daemons must not overwrite each other's)."""
    return f"{COOKIE_PREFIX}{port}"


def cookie_value(token: str) -> str:
    """The session cookie for ``token``: hex HMAC-SHA256 keyed by the token."""
    return hmac.new(token.encode("utf-8", "surrogateescape"), _COOKIE_LABEL,
                    hashlib.sha256).hexdigest()


def authenticated(token: str | None, authorization: str, query_token: str | None,
                  cookie: str | None) -> bool:
    """Whether a request carries ``token`` (constant-time comparisons): a bearer
    ``authorization`` header, the ``query_token`` or the session ``cookie``. False when no
    token is configured, and when a bearer or ``?token=`` is given and wrong (a wrong
    credential is refused even beside a valid one; a stale cookie is only ignored, so a
    browser can log in again with a new token)."""
    if not token:
        return False
    scheme, _, given = authorization.partition(" ")
    ok = False
    explicit = []
    if scheme.lower() == "bearer" and given.strip():
        explicit.append(tokens_equal(given.strip(), token))
    if query_token is not None:
        explicit.append(tokens_equal(query_token, token))
    if explicit:
        return all(explicit)
    if cookie:
        ok = tokens_equal(cookie, cookie_value(token))
    return ok


@dataclass(frozen=True)
class Asset:
    """One file of the dashboard: ``body`` bytes, ``content_type`` and ``etag``."""

    body: bytes
    content_type: str
    etag: str


def load_assets() -> dict[str, Asset]:
    """Every file of ``xsys/http/static`` by name (``index.html``, ``dashboard.js``...).
    Blocking (file reads)."""
    out: dict[str, Asset] = {}
    root = resources.files("xsys.http") / "static"
    for entry in root.iterdir():
        name = entry.name
        suffix = name[name.rfind("."):] if "." in name else ""
        if not entry.is_file() or suffix not in _TYPES:
            continue
        body = entry.read_bytes()
        out[name] = Asset(body, _TYPES[suffix],
                          '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
    return out


class SystemInfos(TypedDict):
    """``GET /system/infos`` (ALOY's endpoint): ``hostname``, ``ip`` (primary address),
    ``os`` (os-release ``PRETTY_NAME``), ``kernel`` (release), ``arch`` (machine),
    ``uptime_s`` (seconds since boot) and ``boot_at`` (epoch seconds)."""

    hostname: str
    ip: str
    os: str
    kernel: str
    arch: str
    uptime_s: float
    boot_at: float


def system_infos() -> SystemInfos:
    """The ``/system/infos`` answer. Blocking (psutil, os-release)."""
    from xsys.host.info import booted_at, hostname, os_name
    from xsys.http.ws import primary_ip

    boot = booted_at()
    return {"hostname": hostname(), "ip": primary_ip(), "os": os_name(),
            "kernel": platform.release(), "arch": platform.machine(),
            "uptime_s": round(time.time() - boot, 3), "boot_at": boot}
