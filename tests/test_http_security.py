"""The HTTP gateway's trust boundary (docs/security.md) against real daemons: bearer
token, JSON-only bodies, Origin/Host checks (CSRF, DNS rebinding), safe methods without
``http.allow_write``, refusal to start when unsafe, bounded JSON depth, and the
exporter-toolkit web config (TLS, basic auth) on /metrics and /health."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import signal
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from tests.conftest import DaemonHandle
from tests.launcher import free_port
from xsys.http.guard import Listener, parse_json
from xsys.http.token import TokenFileError, load_or_create_token, read_token, state_dir
from xsys.http.webconfig import BasicAuth, WebConfigError, parse_web_config
from xsys.protocol import ParseError

Factory = Callable[..., DaemonHandle]



class Reply:
    """One HTTP answer: status, headers (case-insensitive get) and body."""

    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


def request(port: int, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None, *, host: str = "127.0.0.1",
            tls: ssl.SSLContext | None = None) -> Reply:
    """Send one request with exactly ``headers`` (``Host`` too when given)."""
    conn: http.client.HTTPConnection
    if tls is not None:
        conn = http.client.HTTPSConnection(host, port, timeout=30, context=tls)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return Reply(r.status, r.headers, r.read())
    finally:
        conn.close()


def api(port: int, method: str, params: Any = None, token: str | None = None,
        headers: dict[str, str] | None = None, **kw: Any) -> Reply:
    """POST ``params`` as JSON to ``/api/v1/<method>`` with the bearer ``token``."""
    h = {"Content-Type": "application/json"}
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    h.update(headers or {})
    body = json.dumps({} if params is None else params).encode()
    return request(port, "POST", f"/api/v1/{method}", body, h, **kw)


def http_config(tmp_path: Path, port: int, **extra: Any) -> dict[str, Any]:
    cfg = {"enabled": True, "port": port, "api": True,
           "token_file": str(tmp_path / "state" / "http-token")}
    cfg.update(extra)
    return {"http": cfg}


class ApiDaemon:
    def __init__(self, handle: DaemonHandle, port: int, token_file: Path) -> None:
        self.handle = handle
        self.port = port
        self.token_file = token_file
        self.token = token_file.read_text().strip()


@pytest.fixture
def api_daemon(daemon_factory: Factory, tmp_path: Path) -> ApiDaemon:
    port = free_port()
    d = daemon_factory(http_config(tmp_path, port))
    return ApiDaemon(d, port, tmp_path / "state" / "http-token")


def serve_and_fail(handle: DaemonHandle) -> subprocess.CompletedProcess[str]:
    """Run ``xsys serve`` with ``handle``'s config, expecting it to exit by itself."""
    return subprocess.run(
        [sys.executable, "-m", "xsys", "serve", "--config", str(handle.config_path)],
        capture_output=True, text=True, timeout=60, env=handle.env,
        stdin=subprocess.DEVNULL)


# --------------------------------------------------------------------------- bearer token


def test_token_file_is_created_0600_and_the_cli_prints_it(api_daemon: ApiDaemon) -> None:
    st = os.lstat(api_daemon.token_file)
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.geteuid()
    assert stat.S_IMODE(os.stat(api_daemon.token_file.parent).st_mode) == 0o700
    assert len(api_daemon.token) >= 40
    assert not [p for p in api_daemon.token_file.parent.iterdir() if p.name.endswith(".tmp")]
    r = subprocess.run([sys.executable, "-m", "xsys", "http", "token", "--config",
                        str(api_daemon.handle.config_path)],
                       capture_output=True, text=True, timeout=60,
                       env=api_daemon.handle.env, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == api_daemon.token


def test_token_survives_a_restart(daemon_factory: Factory, tmp_path: Path) -> None:
    port = free_port()
    d = daemon_factory(http_config(tmp_path, port))
    first = (tmp_path / "state" / "http-token").read_text()
    d.stop()
    d.start()
    assert (tmp_path / "state" / "http-token").read_text() == first
    assert api(port, "rpc.ping", token=first.strip()).status == 200


@pytest.mark.parametrize(("auth", "status"), [
    (None, 401),
    ("Bearer wrong-token-wrong-token-wrong", 401),
    ("Basic dXNlcjpwYXNz", 401),
    ("RIGHT", 200),
])
def test_the_api_needs_the_bearer_token(api_daemon: ApiDaemon, auth: str | None,
                                        status: int) -> None:
    headers = {"Content-Type": "application/json"}
    if auth == "RIGHT":
        headers["Authorization"] = f"Bearer {api_daemon.token}"
    elif auth is not None:
        headers["Authorization"] = auth
    r = request(api_daemon.port, "POST", "/api/v1/sys.memory", b"{}", headers)
    assert r.status == status, r.body
    if status == 401:
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert r.json()["error"]["code"] == -32006
    else:
        assert r.json()["result"]["virtual"]["total_bytes"] > 0


def test_explicit_token_is_used_and_no_file_is_made(daemon_factory: Factory,
                                                    tmp_path: Path) -> None:
    port = free_port()
    token = "explicit-token-0123456789"
    daemon_factory(http_config(tmp_path, port, token=token))
    assert not (tmp_path / "state" / "http-token").exists()
    assert api(port, "rpc.ping", token=token).status == 200
    assert api(port, "rpc.ping", token=token + "x").status == 401


# --------------------------------------------------------------------------- bodies


def test_a_body_that_is_not_json_gets_415(api_daemon: ApiDaemon) -> None:
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                  "application/json; charset=latin-1"):
        r = request(api_daemon.port, "POST", "/api/v1/rpc.ping", b"{}",
                    {"Content-Type": ctype, "Authorization": f"Bearer {api_daemon.token}"})
        assert r.status == 415, (ctype, r.body)
    ok = api(api_daemon.port, "rpc.ping", token=api_daemon.token,
             headers={"Content-Type": "application/json; charset=utf-8"})
    assert ok.status == 200


def test_deep_json_gets_400_and_the_daemon_keeps_serving(api_daemon: ApiDaemon) -> None:
    headers = {"Content-Type": "application/json",
               "Authorization": f"Bearer {api_daemon.token}"}
    deep = b"[" * 100_000 + b"]" * 100_000
    r = request(api_daemon.port, "POST", "/api/v1/rpc.ping", deep, headers)
    assert r.status == 400 and r.json()["error"]["code"] == -32700, r.body
    nested = b'{"a":' * 200 + b"1" + b"}" * 200  # under the parser's limit, over ours
    r = request(api_daemon.port, "POST", "/api/v1/rpc.ping", nested, headers)
    assert r.status == 400 and "deeper" in r.json()["error"]["message"]
    r = request(api_daemon.port, "POST", "/api/v1/rpc.ping", b"{nope", headers)
    assert r.status == 400 and r.json()["error"]["code"] == -32700
    assert api(api_daemon.port, "sys.memory", token=api_daemon.token).status == 200
    with api_daemon.handle.client() as c:
        assert c.call("rpc.ping")["pong"] is True


def test_bodies_are_bounded(daemon_factory: Factory, tmp_path: Path) -> None:
    port = free_port()
    cfg = http_config(tmp_path, port)
    cfg["server"] = {"max_frame_bytes": 64 * 1024}
    d = daemon_factory(cfg)
    token = (tmp_path / "state" / "http-token").read_text().strip()
    big = json.dumps({"path": "x" * (100 * 1024)}).encode()
    r = request(port, "POST", "/api/v1/fs.stat", big,
                {"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    assert r.status == 413 and r.json()["error"]["code"] == -32004, r.body
    assert api(port, "rpc.ping", token=token).status == 200
    with d.client() as c:
        assert c.call("rpc.ping")["pong"] is True


def test_deep_json_parser_unit() -> None:
    with pytest.raises(ParseError):
        parse_json(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(ParseError):
        parse_json(b"[" * 65 + b"]" * 65)
    assert parse_json(b"[" * 64 + b"]" * 64) is not None
    with pytest.raises(ParseError):
        parse_json(b"1" * 10_000)  # past int's digit limit: 400, not 500
    with pytest.raises(ParseError):
        parse_json(b"\xff")


# --------------------------------------------------------------------------- Origin / Host


def test_csrf_text_plain_post_from_a_foreign_origin_is_refused(api_daemon: ApiDaemon,
                                                                tmp_path: Path) -> None:
    target = tmp_path / "csrf.txt"
    body = json.dumps({"path": str(target), "data": "pwned"}).encode()
    r = request(api_daemon.port, "POST", "/api/v1/fs.write", body,
                {"Content-Type": "text/plain", "Origin": "http://evil.example"})
    assert r.status == 403 and r.json()["error"]["data"]["reason"] == "foreign_origin"
    # even with the token and a JSON body, a foreign or opaque Origin is refused
    for origin in ("http://evil.example", "null", f"http://127.0.0.1:{api_daemon.port}.evil",
                   f"https://127.0.0.1:{api_daemon.port}"):
        r = api(api_daemon.port, "rpc.ping", token=api_daemon.token,
                headers={"Origin": origin})
        assert r.status == 403, origin
    # and on every endpoint
    for path in ("/metrics", "/health", "/nope"):
        r = request(api_daemon.port, "GET", path, headers={"Origin": "http://evil.example"})
        assert r.status == 403, path
    assert not target.exists()
    # the listener's own origin (and its loopback equivalents) is fine
    for origin in (f"http://127.0.0.1:{api_daemon.port}", f"http://localhost:{api_daemon.port}",
                   f"http://[::1]:{api_daemon.port}"):
        r = api(api_daemon.port, "rpc.ping", token=api_daemon.token,
                headers={"Origin": origin})
        assert r.status == 200, origin


def test_dns_rebinding_host_is_refused(api_daemon: ApiDaemon) -> None:
    port = api_daemon.port
    for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1:{port + 1}", ""):
        r = api(port, "rpc.ping", token=api_daemon.token, headers={"Host": host})
        assert r.status == 403, host
        assert r.json()["error"]["data"]["reason"] == "foreign_host"
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}",
                 f"[::1]:{port}"):
        r = api(port, "rpc.ping", token=api_daemon.token, headers={"Host": host})
        assert r.status == 200, host
    # Prometheus scrapes by any name: /metrics does not check Host
    r = request(port, "GET", "/metrics", headers={"Host": "monitoring.example"})
    assert r.status == 200


@pytest.mark.parametrize(("bind", "authority", "local", "ok"), [
    ("127.0.0.1", "127.0.0.1:9847", "127.0.0.1", True),
    ("127.0.0.1", "localhost:9847", "127.0.0.1", True),
    ("127.0.0.1", "[::1]:9847", "127.0.0.1", True),
    ("127.0.0.1", "evil.example:9847", "127.0.0.1", False),
    ("127.0.0.1", "127.0.0.1", "127.0.0.1", False),  # no port: not the default 80
    ("127.0.0.1", "127.0.0.1:80", "127.0.0.1", False),
    ("0.0.0.0", "192.0.2.7:9847", "192.0.2.7", True),  # the address it arrived on
    ("0.0.0.0", "192.0.2.8:9847", "192.0.2.7", False),
    ("0.0.0.0", "0.0.0.0:9847", "192.0.2.7", False),
    ("0.0.0.0", "localhost:9847", "192.0.2.7", False),
    # a wildcard bind reached on loopback: the loopback names are its own
    ("0.0.0.0", "localhost:9847", "127.0.0.1", True),
    ("0.0.0.0", "127.0.0.1:9847", "127.0.0.1", True),
    ("::", "localhost:9847", "::1", True),
    ("::", "[::1]:9847", "::ffff:127.0.0.1", True),
    ("0.0.0.0", "localhost:9848", "127.0.0.1", False),
    ("0.0.0.0", "evil.example:9847", "127.0.0.1", False),
    ("192.0.2.7", "localhost:9847", "192.0.2.7", False),
    ("::", "[2001:db8::1]:9847", "::ffff:2001:db8::1", False),
    ("::", "192.0.2.7:9847", "::ffff:192.0.2.7", True),
    ("192.0.2.7", "myhost.lan:9847", "192.0.2.7", True),  # allowed_hosts
    ("192.0.2.7", "other.lan:9847", "192.0.2.7", False),
    ("192.0.2.7", "pinned.lan:1234", "192.0.2.7", True),  # allowed with its own port
    ("192.0.2.7", "bad host:9847", "192.0.2.7", False),
    ("192.0.2.7", "a@192.0.2.7:9847", "192.0.2.7", False),
])
def test_listener_authorities(bind: str, authority: str, local: str, ok: bool) -> None:
    listener = Listener(bind, "http", ("myhost.lan", "pinned.lan:1234"))
    assert listener.matches(authority, local, 9847) is ok


def test_a_wildcard_bind_reached_locally_owns_the_loopback_origins() -> None:
    """Issue 10: http://127.0.0.1:<port> and http://localhost:<port> are the listener's
    own origins, also when it is bound to 0.0.0.0 and opened from this machine."""
    wild = Listener("0.0.0.0", "http")
    for origin in ("http://localhost:9847", "http://127.0.0.1:9847"):
        assert wild.origin_matches(origin, "127.0.0.1", 9847), origin
        assert not wild.origin_matches(origin, "192.0.2.7", 9847), origin
    assert not wild.origin_matches("http://evil.example:9847", "127.0.0.1", 9847)


def test_origin_scheme_must_match() -> None:
    https = Listener("127.0.0.1", "https")
    assert https.origin_matches("https://localhost:8443", "127.0.0.1", 8443)
    assert not https.origin_matches("http://localhost:8443", "127.0.0.1", 8443)
    assert https.origin_matches("https://localhost", "127.0.0.1", 443)
    assert not https.origin_matches("null", "127.0.0.1", 443)


# --------------------------------------------------------------------------- safe methods


def test_unsafe_methods_need_allow_write(api_daemon: ApiDaemon, daemon_factory: Factory,
                                         tmp_path: Path) -> None:
    target = tmp_path / "written.txt"
    params = {"path": str(target), "data": "hello"}
    r = api(api_daemon.port, "fs.write", params, token=api_daemon.token)
    assert r.status == 403 and r.json()["error"]["code"] == -32002, r.body
    assert r.json()["error"]["data"]["setting"] == "http.allow_write"
    assert not target.exists()
    for method, p in (("fs.remove", {"path": str(tmp_path)}), ("sys.kill", {"pid": 1}),
                      ("monitor.silence", {"check": "cpu", "duration_s": 60})):
        r = api(api_daemon.port, method, p, token=api_daemon.token)
        assert r.status == 403, (method, r.body)
    assert tmp_path.exists()
    # safe methods work, by POST and by GET with query parameters
    (tmp_path / "r.txt").write_text("readable")
    r = api(api_daemon.port, "fs.read", {"path": str(tmp_path / "r.txt")},
            token=api_daemon.token)
    assert r.status == 200 and base64.b64decode(r.json()["result"]["data"]) == b"readable"
    auth = {"Authorization": f"Bearer {api_daemon.token}"}
    r = request(api_daemon.port, "GET", "/api/v1/sys.processes?sort=pid", headers=auth)
    assert r.status == 200 and r.json()["result"]
    r = request(api_daemon.port, "GET", f"/api/v1/fs.write?path={target}&data=x",
                headers=auth)
    assert r.status == 405 and r.headers["Allow"] == "POST"
    assert not target.exists()
    r = api(api_daemon.port, "watch.add", {"paths": [str(tmp_path)]}, token=api_daemon.token)
    assert r.status == 400 and "socket" in r.json()["error"]["message"]

    port = free_port()
    daemon_factory(http_config(tmp_path / "w", port, allow_write=True))
    token = (tmp_path / "w" / "state" / "http-token").read_text().strip()
    r = api(port, "fs.write", params, token=token)
    assert r.status == 200, r.body
    assert target.read_text() == "hello"
    assert os.stat(target).st_uid == os.geteuid()  # the daemon's own user


def test_rpc_methods_marks_safe_methods(api_daemon: ApiDaemon) -> None:
    with api_daemon.handle.client() as c:
        methods = {m["name"]: m for m in c.call("rpc.methods")["methods"]}
    for name in ("sys.memory", "sys.processes", "rpc.ping", "fs.read", "fs.list", "fs.du",
                 "monitor.status", "monitor.history"):
        assert methods[name].get("safe") is True, name
    for name in ("sys.kill", "fs.write", "fs.remove", "fs.chmod", "fs.move", "watch.add",
                 "monitor.silence", "monitor.test"):
        assert "safe" not in methods[name], name


# --------------------------------------------------------------------------- refusals


def test_non_loopback_host_without_token_refuses_to_start(daemon_factory: Factory,
                                                          tmp_path: Path) -> None:
    port = free_port()
    d = daemon_factory(http_config(tmp_path, port, host="0.0.0.0"), start=False)
    proc = serve_and_fail(d)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "http.token" in lines[0] and "0.0.0.0" in lines[0], lines


def test_non_loopback_host_with_token_checks_host(daemon_factory: Factory,
                                                  tmp_path: Path) -> None:
    port = free_port()
    token = "network-token-0123456789"
    daemon_factory(http_config(tmp_path, port, host="0.0.0.0", token=token))
    assert api(port, "rpc.ping", token=token).status == 200  # Host 127.0.0.1:port
    r = api(port, "rpc.ping", token=token, headers={"Host": f"rebound.example:{port}"})
    assert r.status == 403


@pytest.mark.parametrize("problem", ["mode_0644", "symlink", "directory", "empty",
                                     "dir_world_writable"])
def test_unsafe_token_file_refuses_to_start(daemon_factory: Factory, tmp_path: Path,
                                            problem: str) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    token_file = state / "http-token"
    if problem == "mode_0644":
        token_file.write_text("a-planted-token-0123456789\n")
        token_file.chmod(0o644)
    elif problem == "symlink":
        (tmp_path / "elsewhere").write_text("a-planted-token-0123456789\n")
        (tmp_path / "elsewhere").chmod(0o600)
        token_file.symlink_to(tmp_path / "elsewhere")
    elif problem == "directory":
        token_file.mkdir()
    elif problem == "empty":
        token_file.touch(mode=0o600)
    else:
        state.chmod(0o777)
    d = daemon_factory(http_config(tmp_path, free_port()), start=False)
    proc = serve_and_fail(d)
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "cannot start" in line]
    assert len(errors) == 1 and str(state) in errors[0], proc.stderr
    assert "monitor started" not in proc.stderr  # refused before other services start


def test_token_file_of_another_owner_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to create a file owned by another uid")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    planted = state / "http-token"
    planted.write_text("a-planted-token-0123456789\n")
    planted.chmod(0o600)
    os.chown(planted, 65534, 65534)
    with pytest.raises(TokenFileError, match="owned by uid 65534"):
        load_or_create_token(planted)


def test_token_helpers(tmp_path: Path) -> None:
    assert state_dir(0, {}) == Path("/var/lib/xsys")
    assert state_dir(1000, {"XDG_STATE_HOME": "/x/state", "HOME": "/h"}) == Path("/x/state/xsys")
    assert state_dir(1000, {"XDG_STATE_HOME": "rel", "HOME": "/h"}) == \
        Path("/h/.local/state/xsys")
    path = tmp_path / "d" / "tok"
    token, created = load_or_create_token(path)
    assert created and load_or_create_token(path) == (token, False)
    assert read_token(path) == token
    with pytest.raises(TokenFileError, match="no token file"):
        read_token(tmp_path / "missing")


def test_cli_token_without_a_file_prints_one_clear_line(tmp_path: Path) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"http": {"token_file": str(tmp_path / "none")}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("XSYS_")}
    env["HOME"] = str(tmp_path)
    r = subprocess.run([sys.executable, "-m", "xsys", "http", "token", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=60, env=env,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 1 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "no token file" in lines[0] and str(tmp_path / "none") in lines[0]


# --------------------------------------------------------------------------- web config


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(ca.pem, server.pem, server.key) from trustme, for 127.0.0.1 and localhost."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost", "::1")
    d = tmp_path / "tls"
    d.mkdir()
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    cert.cert_chain_pems[0].write_to_path(str(d / "server.pem"))
    cert.private_key_pem.write_to_path(str(d / "server.key"))
    return d / "ca.pem", d / "server.pem", d / "server.key"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_web_config_tls_and_basic_auth(daemon_factory: Factory, tmp_path: Path,
                                       tls_files: tuple[Path, Path, Path]) -> None:
    ca, cert, key = tls_files
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "tls" / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {cert.name}\n  key_file: {key}\n"
                   f"basic_auth_users:\n  prom: '{hashed}'\n"
                   "http_server_config:\n  headers:\n    X-Frame-Options: deny\n")
    port = free_port()
    d = daemon_factory(http_config(tmp_path, port, web_config_file=str(web)))
    client_tls = ssl.create_default_context(cafile=str(ca))
    for path in ("/metrics", "/health"):
        r = request(port, "GET", path, tls=client_tls)
        assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Basic"), path
        for wrong in (basic("prom", "nope"), basic("nobody", "s3cret"),
                      {"Authorization": "Basic !!"}):
            assert request(port, "GET", path, headers=wrong, tls=client_tls).status == 401
        r = request(port, "GET", path, headers=basic("prom", "s3cret"), tls=client_tls)
        assert r.status == 200, (path, r.body)
        assert r.headers["X-Frame-Options"] == "deny"
    r = request(port, "GET", "/metrics", headers=basic("prom", "s3cret"), tls=client_tls,
                host="localhost")
    assert b"node_cpu_seconds_total" in r.body
    # the API is HTTPS too, with its bearer token and an https Origin
    token = (tmp_path / "state" / "http-token").read_text().strip()
    r = api(port, "rpc.ping", token=token, tls=client_tls,
            headers={"Origin": f"https://127.0.0.1:{port}"})
    assert r.status == 200
    r = api(port, "rpc.ping", token=token, tls=client_tls,
            headers={"Origin": f"http://127.0.0.1:{port}"})
    assert r.status == 403
    # plain HTTP to the TLS port gets no HTTP answer
    with pytest.raises((http.client.HTTPException, OSError)):
        request(port, "GET", "/health")
    with d.client() as c:
        assert c.call("rpc.ping")["pong"] is True


def test_web_config_basic_auth_reloads_on_sighup(daemon_factory: Factory,
                                                 tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    first = bcrypt.hashpw(b"one", bcrypt.gensalt(rounds=4)).decode()
    web.write_text(f"basic_auth_users:\n  a: '{first}'\n")
    port = free_port()
    d = daemon_factory({"http": {"enabled": True, "port": port,
                                 "web_config_file": str(web)}})
    assert request(port, "GET", "/health", headers=basic("a", "one")).status == 200
    second = bcrypt.hashpw(b"two", bcrypt.gensalt(rounds=4)).decode()
    web.write_text(f"basic_auth_users:\n  b: '{second}'\n")
    marker = d.log().count("config reloaded")
    d.signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while request(port, "GET", "/health", headers=basic("b", "two")).status != 200:
        assert time.monotonic() < deadline, d.log()
        time.sleep(0.05)
    assert d.log().count("config reloaded") > marker
    assert request(port, "GET", "/health", headers=basic("b", "two")).status == 200
    assert request(port, "GET", "/health", headers=basic("a", "one")).status == 401


@pytest.mark.parametrize(("text", "message"), [
    ("tls_server_config:\n  cert_file: x.pem\n  key_file: x.key\n  cipher_suites: []\n",
     "cipher_suites: not supported"),
    ("tls_server_config:\n  cert_file: x.pem\n  key_file: x.key\n"
     "  client_auth_type: RequireAnyClientCert\n", "not supported"),
    ("tls_server_config:\n  cert_file: x.pem\n  key_file: x.key\n"
     "  client_auth_type: RequireAndVerifyClientCert\n", "needs client_ca_file"),
    ("tls_server_config:\n  cert_file: x.pem\n", "key_file: expected a non-empty string"),
    ("basic_auth_users:\n  alice: plaintext\n", "expected a bcrypt hash"),
    ("basic_users:\n  alice: x\n", "basic_users: unknown key"),
    ("http_server_config:\n  headers:\n    X-Powered-By: me\n", "can not be configured"),
    ("- a list\n", "expected a map"),
    ("a: [unclosed\n", "invalid YAML"),
])
def test_web_config_errors_name_the_key(text: str, message: str) -> None:
    with pytest.raises(WebConfigError, match=message):
        parse_web_config(text, Path("/etc/xsys/web.yml"))


def test_bad_web_config_refuses_to_start(daemon_factory: Factory, tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_text("tls_server_config:\n  cert_file: missing.pem\n  key_file: missing.key\n")
    d = daemon_factory({"http": {"enabled": True, "port": free_port(),
                                 "web_config_file": str(web)}}, start=False)
    proc = serve_and_fail(d)
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "cannot start" in line]
    assert len(errors) == 1 and "missing.pem" in errors[0], proc.stderr
    assert "monitor started" not in proc.stderr


async def test_basic_auth_checks_bcrypt_off_loop_once_then_caches() -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4))
    calls: list[str] = []

    async def run_blocking(fn: Callable[..., Any], *args: Any) -> Any:
        calls.append(fn.__name__)
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    auth = BasicAuth({"u": hashed}, run_blocking)
    good = basic("u", "pw")["Authorization"]
    assert await auth.check(good) and await auth.check(good)
    assert len(calls) == 1  # the second success came from the cache
    bad = basic("u", "wrong")["Authorization"]
    assert not await auth.check(bad) and not await auth.check(bad)
    assert len(calls) == 3  # failures are never cached
    assert not await auth.check(basic("ghost", "pw")["Authorization"])
    assert len(calls) == 4  # an unknown user costs a bcrypt check too (decoy hash)
    assert not await auth.check(None) and not await auth.check("Bearer x")
    assert len(calls) == 4
