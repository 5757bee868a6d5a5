"""The Prometheus exporter-toolkit web configuration file (``http.web_config_file``):
optional TLS for the whole gateway and HTTP basic auth for ``/metrics`` and ``/health``.

The format is exporter-toolkit's (https://prometheus.io/docs/prometheus/latest/configuration/https/)::

    tls_server_config:
      cert_file: server.crt          # relative paths are relative to this file
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # optional
      client_ca_file: clients-ca.crt                 # needed for the Verify* types
      min_version: TLS12             # optional: TLS10..TLS13 (default TLS12)
      max_version: TLS13
    http_server_config:
      headers: {X-Frame-Options: deny}               # the toolkit's allowed set only
    basic_auth_users:
      alice: $2y$10$...              # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\\n')

What Python's ``ssl`` module cannot do is refused with a clear error instead of being
silently ignored: ``client_auth_type`` ``RequestClientCert``/``RequireAnyClientCert``
(asking for a client certificate without verifying it), ``cipher_suites``,
``curve_preferences``, ``client_allowed_sans``, inline ``cert``/``key``/``client_ca``,
``rate_limit``. ``http2`` is accepted and has no effect (aiohttp speaks HTTP/1.1).

Basic auth follows the toolkit's handler: an unknown user is checked against a fixed
decoy hash so that timing does not reveal which users exist, one bcrypt check runs at a
time (bcrypt is slow by design: it runs in the thread pool, never on the event loop), and
successful checks are cached (keyed by a SHA-256 of user, hash and password, never the
password itself) for ``CACHE_TTL_S`` seconds, at most ``CACHE_SIZE`` entries.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
import ssl
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: How long a successful basic-auth check is remembered (seconds).
CACHE_TTL_S = 60.0
#: Most remembered successful checks.
CACHE_SIZE = 100
#: Requests allowed to wait for the (single) bcrypt check before 429 is answered.
MAX_BCRYPT_WAITERS = 16
#: bcrypt of "fakepassword", checked for unknown users (exporter-toolkit's decoy).
DECOY_HASH = b"$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi"

_BCRYPT_RE = re.compile(rb"^\$2[aby]?\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")
_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3,
}
_CLIENT_AUTH = {
    "": ssl.CERT_NONE, "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_TLS_KEYS = {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version",
             "max_version"}
_UNSUPPORTED_TLS_KEYS = {"cert", "key", "client_ca", "cipher_suites", "curve_preferences",
                         "prefer_server_cipher_suites", "client_allowed_sans"}
#: exporter-toolkit's configurable response headers (None = any value).
_HEADERS: dict[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None, "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"), "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}


class WebConfigError(ValueError):
    """The web config file is unreadable or invalid; the message names the file and key."""


@dataclass(frozen=True)
class TlsSettings:
    """``tls_server_config`` with paths made absolute."""

    cert_file: Path
    key_file: Path
    client_auth_type: str = ""
    client_ca_file: Path | None = None
    min_version: str = "TLS12"
    max_version: str = "TLS13"


@dataclass(frozen=True)
class WebConfig:
    """A parsed web config file: ``tls`` (None = plain HTTP), ``users`` (name -> bcrypt
    hash; empty = no basic auth) and extra response ``headers``."""

    path: Path
    tls: TlsSettings | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)


def _fail(path: Path, key: str, message: str) -> WebConfigError:
    return WebConfigError(f"{path}: {key}: {message}" if key else f"{path}: {message}")


def _map(value: Any, path: Path, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(path, key, f"expected a map, got {type(value).__name__}")
    return value


def _str(value: Any, path: Path, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(path, key, "expected a non-empty string")
    return value


def parse_web_config(text: str, path: Path) -> WebConfig:
    """Parse and validate the YAML ``text`` of the web config at ``path`` (used to
    resolve relative file names). Raises ``WebConfigError``; does not read certificates
    (``ssl_context`` does)."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _fail(path, "", f"invalid YAML: {exc}".replace("\n", " ")) from None
    top = _map(data, path, "")
    for key in top:
        if key not in ("tls_server_config", "http_server_config", "basic_auth_users"):
            what = "not supported by xsys" if key == "rate_limit" else "unknown key"
            raise _fail(path, str(key), what)
    base = path.parent
    tls: TlsSettings | None = None
    tls_map = _map(top.get("tls_server_config"), path, "tls_server_config")
    for key in tls_map:
        if key in _UNSUPPORTED_TLS_KEYS:
            raise _fail(path, f"tls_server_config.{key}", "not supported by xsys")
        if key not in _TLS_KEYS:
            raise _fail(path, f"tls_server_config.{key}", "unknown key")
    if tls_map:
        def file_of(key: str) -> Path:
            return base / Path(_str(tls_map.get(key), path, f"tls_server_config.{key}"))

        auth = tls_map.get("client_auth_type", "") or ""
        if auth in ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert"):
            raise _fail(path, "tls_server_config.client_auth_type",
                        f"{auth} (a client certificate without verification) is not "
                        "supported by xsys; use VerifyClientCertIfGiven or "
                        "RequireAndVerifyClientCert")
        if auth not in _CLIENT_AUTH:
            raise _fail(path, "tls_server_config.client_auth_type",
                        f"invalid value {auth!r}")
        ca = file_of("client_ca_file") if tls_map.get("client_ca_file") else None
        if ca is not None and _CLIENT_AUTH[auth] == ssl.CERT_NONE:
            raise _fail(path, "tls_server_config.client_ca_file",
                        "client CAs are configured without a client_auth_type")
        if ca is None and _CLIENT_AUTH[auth] != ssl.CERT_NONE:
            raise _fail(path, "tls_server_config.client_ca_file",
                        f"client_auth_type {auth} needs client_ca_file")
        versions = {}
        for key, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
            v = tls_map.get(key, default)
            if v not in _TLS_VERSIONS:
                raise _fail(path, f"tls_server_config.{key}",
                            f"expected one of {', '.join(_TLS_VERSIONS)}, got {v!r}")
            versions[key] = v
        if _TLS_VERSIONS[versions["min_version"]] > _TLS_VERSIONS[versions["max_version"]]:
            raise _fail(path, "tls_server_config", "min_version is above max_version")
        tls = TlsSettings(cert_file=file_of("cert_file"), key_file=file_of("key_file"),
                          client_auth_type=auth, client_ca_file=ca, **versions)
    http_map = _map(top.get("http_server_config"), path, "http_server_config")
    headers: dict[str, str] = {}
    for key, value in http_map.items():
        if key == "http2":
            if not isinstance(value, bool):
                raise _fail(path, "http_server_config.http2", "expected a boolean")
        elif key == "headers":
            for name, hv in _map(value, path, "http_server_config.headers").items():
                if name not in _HEADERS:
                    raise _fail(path, f"http_server_config.headers.{name}",
                                "this header can not be configured")
                allowed = _HEADERS[name]
                if not isinstance(hv, str) or (allowed is not None and hv not in allowed):
                    raise _fail(path, f"http_server_config.headers.{name}",
                                f"invalid value {hv!r}")
                headers[name] = hv
        else:
            raise _fail(path, f"http_server_config.{key}", "unknown key")
    users: dict[str, bytes] = {}
    for name, hashed in _map(top.get("basic_auth_users"), path, "basic_auth_users").items():
        key = f"basic_auth_users.{name}"
        if not isinstance(name, str) or not name or ":" in name:
            raise _fail(path, key, "a user name is a non-empty string without ':'")
        raw = _str(hashed, path, key).encode()
        if not _BCRYPT_RE.match(raw):
            raise _fail(path, key, "expected a bcrypt hash ($2y$10$...)")
        users[name] = raw
    return WebConfig(path=path, tls=tls, users=users, headers=headers)


def load_web_config(path: str | Path) -> WebConfig:
    """Read and validate the web config file at ``path``; the TLS files named in it must
    load too. Blocking (file reads): run it in the thread pool. Raises
    ``WebConfigError``."""
    p = Path(path).expanduser().absolute()
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise WebConfigError(f"{p}: cannot read the web config file: {reason}") from None
    config = parse_web_config(text, p)
    if config.tls is not None:
        ssl_context(config.tls, p)
    return config


def ssl_context(tls: TlsSettings, path: Path,
                context: ssl.SSLContext | None = None) -> ssl.SSLContext:
    """A server ``SSLContext`` for ``tls`` (or ``context`` with its certificate reloaded,
    for a SIGHUP: new connections get the new certificate). Raises ``WebConfigError``
    naming the file that did not load."""
    ctx = context or ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.minimum_version = _TLS_VERSIONS[tls.min_version]
        ctx.maximum_version = _TLS_VERSIONS[tls.max_version]
    except (ValueError, ssl.SSLError) as exc:
        raise _fail(path, "tls_server_config", f"TLS versions refused: {exc}") from None
    try:
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise _fail(path, "tls_server_config",
                    f"cannot load cert_file {tls.cert_file} / key_file {tls.key_file}: "
                    f"{getattr(exc, 'strerror', None) or exc}") from None
    if tls.client_ca_file is not None:
        try:
            ctx.load_verify_locations(cafile=tls.client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise _fail(path, "tls_server_config.client_ca_file",
                        f"cannot load {tls.client_ca_file}: "
                        f"{getattr(exc, 'strerror', None) or exc}") from None
    ctx.verify_mode = _CLIENT_AUTH[tls.client_auth_type]
    return ctx


def parse_basic_auth(header: str) -> tuple[str, str] | None:
    """``(user, password)`` from an ``Authorization: Basic ...`` header value, or None
    when it is absent or malformed."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _bcrypt_ok(password: bytes, hashed: bytes) -> bool:
    import bcrypt

    try:
        return bool(bcrypt.checkpw(password, hashed))
    except ValueError:  # e.g. a password over bcrypt's 72 bytes, a malformed hash
        return False


class BasicAuth:
    """Checks basic-auth credentials against ``users`` (see the module docstring).

    ``run_blocking`` runs a function in the daemon's thread pool (``App.run_blocking``).
    ``await check(header)`` -> True (allowed), False (wrong or missing credentials);
    raises ``Busy`` when more than ``MAX_BCRYPT_WAITERS`` checks are already waiting.
    """

    class Busy(Exception):
        """Too many basic-auth checks are waiting for bcrypt (answer 429)."""

    def __init__(self, users: Mapping[str, bytes],
                 run_blocking: Callable[..., Awaitable[Any]]) -> None:
        self.users = dict(users)
        self._run_blocking = run_blocking
        self._lock = asyncio.Lock()
        self._waiting = 0
        self._cache: OrderedDict[bytes, float] = OrderedDict()

    def _key(self, user: str, hashed: bytes, password: str) -> bytes:
        h = hashlib.sha256()
        for part in (user.encode(), hashed, password.encode()):
            h.update(len(part).to_bytes(4, "big"))
            h.update(part)
        return h.digest()

    async def check(self, header: str | None) -> bool:
        """Whether ``header`` (the ``Authorization`` value) holds valid credentials."""
        creds = parse_basic_auth(header or "")
        if creds is None:
            return False
        user, password = creds
        known = user in self.users
        hashed = self.users.get(user, DECOY_HASH)
        key = self._key(user, hashed, password)
        now = time.monotonic()
        expires = self._cache.get(key)
        if expires is not None:
            if expires > now:
                return known
            del self._cache[key]
        if self._waiting >= MAX_BCRYPT_WAITERS:
            raise self.Busy()
        self._waiting += 1
        try:
            async with self._lock:
                ok = await self._run_blocking(_bcrypt_ok, password.encode(), hashed)
        finally:
            self._waiting -= 1
        ok = ok and known
        if ok:
            self._cache[key] = time.monotonic() + CACHE_TTL_S
            self._cache.move_to_end(key)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return bool(ok)
