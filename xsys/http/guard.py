"""Request checks of the HTTP gateway that do not depend on aiohttp: which ``Host`` and
``Origin`` values name this listener (against CSRF and DNS rebinding), and a bounded JSON
body parser.

A listener's *authorities* are ``name:port`` strings: the configured ``http.host``
(unless it is a wildcard address), the address the connection actually arrived on
(an IP literal cannot be rebound to another host), ``localhost``/``127.0.0.1``/``[::1]``
when bound to loopback or when the connection arrived on a loopback address (a wildcard
bind reached locally), and ``http.allowed_hosts`` (``name`` or ``name:port``). A ``Host``
without a port matches when the listener uses the scheme's default port.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from typing import Any

from xsys.protocol import ParseError

#: Deepest JSON nesting a request body may have (arrays and objects).
MAX_JSON_DEPTH = 64
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
_WILDCARDS = ("", "0.0.0.0", "::", "[::]")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address or name) is loopback: ``localhost``, 127/8, ::1."""
    host = host.strip().lower().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalize_host(host: str) -> str:
    """A host name or IP literal in the form used inside a ``Host`` header: lowercase,
    IPv6 in brackets, IPv4-mapped IPv6 as IPv4, no trailing dot."""
    bare = host.strip().lower().rstrip(".")
    inner = bare[1:-1] if bare.startswith("[") and bare.endswith("]") else bare
    try:
        ip = ipaddress.ip_address(inner.split("%", 1)[0])
    except ValueError:
        return bare
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return f"[{ip.compressed}]"
    return str(ip)


def split_authority(authority: str) -> tuple[str, int | None] | None:
    """``(host, port)`` of ``host[:port]`` / ``[v6][:port]``, host normalized; None when
    malformed."""
    authority = authority.strip()
    if not authority or any(c in authority for c in "/@?# \t"):
        return None
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            return None
        host, rest = authority[: end + 1], authority[end + 1:]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else None
    else:
        host, sep, port_text_s = authority.rpartition(":")
        if not sep:
            host, port_text = authority, None
        else:
            port_text = port_text_s
            if ":" in host:  # a bare IPv6 address is not a valid Host
                return None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            return None
        return normalize_host(host), int(port_text)
    return normalize_host(host), None


class Listener:
    """The authorities (``host:port``) that name one gateway listener; see the module
    docstring. ``scheme`` is ``"http"`` or ``"https"``."""

    def __init__(self, host: str, scheme: str, allowed_hosts: Iterable[str] = ()) -> None:
        self.scheme = scheme
        self.default_port = 443 if scheme == "https" else 80
        names = set()
        if host.strip() not in _WILDCARDS:
            names.add(normalize_host(host))
        if is_loopback(host):
            names.update(LOOPBACK_NAMES)
        self.names = frozenset(names)
        extra_names, extra_exact = set(), set()
        for entry in allowed_hosts:
            parts = split_authority(entry)
            if parts is None:
                continue
            name, port = parts
            if port is None:
                extra_names.add(name)
            else:
                extra_exact.add((name, port))
        self.extra_names = frozenset(extra_names)
        self.extra_exact = frozenset(extra_exact)

    def matches(self, authority: str, local_addr: str | None, local_port: int) -> bool:
        """Whether the ``Host``-style ``authority`` names this listener, reached on
        ``local_addr``:``local_port`` (the connection's socket name)."""
        parts = split_authority(authority)
        if parts is None:
            return False
        name, port = parts
        if port is None:
            if local_port != self.default_port:
                return False
            port = local_port
        if (name, port) in self.extra_exact:
            return True
        if port != local_port:
            return False
        if name in self.names or name in self.extra_names:
            return True
        if local_addr is None:
            return False
        # a connection that arrived on loopback (a wildcard bind reached locally): the
        # loopback names are this listener too (a rebinding page's Host is its own name)
        return name == normalize_host(local_addr) or (
            name in LOOPBACK_NAMES and is_loopback(normalize_host(local_addr)))

    def origin_matches(self, origin: str, local_addr: str | None, local_port: int) -> bool:
        """Whether the ``Origin`` header value (``scheme://authority``) is this listener.
        ``null`` and anything with a path never match."""
        scheme, sep, authority = origin.strip().partition("://")
        if not sep or scheme.lower() != self.scheme:
            return False
        return self.matches(authority, local_addr, local_port)


def _depth_ok(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return False
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return True


def parse_json(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Decode a UTF-8 JSON request body. Raises ``ParseError`` (-32700, HTTP 400) for
    invalid UTF-8 or JSON, a number too long to convert, or nesting deeper than
    ``max_depth`` (the parser's own recursion limit is caught, never a 500)."""
    try:
        value = json.loads(body.decode("utf-8"))
    except RecursionError:
        raise ParseError(f"the JSON body nests deeper than {max_depth} levels",
                         {"max_depth": max_depth}) from None
    except UnicodeDecodeError:
        raise ParseError("the body is not UTF-8") from None
    except ValueError as exc:  # JSONDecodeError, int digit limits
        raise ParseError(f"the body is not valid JSON: {exc}") from None
    if not _depth_ok(value, max_depth):
        raise ParseError(f"the JSON body nests deeper than {max_depth} levels",
                         {"max_depth": max_depth})
    return value
