"""The ``http`` config section (``HttpConfig``): the HTTP gateway's listener, token and
what it serves. Owned by ``xsys.http``; ground level (imports only the standard
library), so ``xsys.config`` assembles it into the root tree without cycles.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HttpConfig:
    """The HTTP gateway (Prometheus ``/metrics``, ``/health``, the REST mirror); see
    docs/security.md for what each key guards."""

    enabled: bool = False
    """Start the HTTP listener (``/metrics``, ``/health``; the REST mirror needs ``api``)."""
    host: str = "127.0.0.1"
    """Address to bind; loopback by default (HTTP carries no peer credentials). A
    non-loopback address needs an explicit ``token``."""
    port: int = 9847
    """TCP port to listen on."""
    api: bool = False
    """Serve the REST mirror ``/api/v1/<method>``: bearer token required; it acts as the
    daemon's own user; only safe (read-only) methods unless ``allow_write``."""
    token: str = ""
    """Bearer token the REST mirror requires (at least 16 characters); empty = one is
    generated at first start into ``token_file`` (``xsys http token`` prints it)."""
    token_file: str = ""
    """Where the generated token lives (0600, owned by the daemon's uid); empty =
    ``<state dir>/http-token``: ``/var/lib/xsys`` as root, else ``$XDG_STATE_HOME/xsys``
    or ``~/.local/state/xsys``."""
    allow_write: bool = False
    """Let the REST mirror run methods that are not safe (writes, kill, alert tests)."""
    allowed_hosts: tuple[str, ...] = ()
    """Extra ``Host``/``Origin`` names accepted besides the listener's own address (e.g.
    ``"myhost.lan"`` or ``"myhost.lan:9847"``), against DNS rebinding."""
    web_config_file: str = ""
    """Prometheus exporter-toolkit web config (YAML): ``tls_server_config`` makes the
    gateway serve HTTPS; ``basic_auth_users`` (bcrypt hashes) guard /metrics and /health."""

    def validate(self) -> None:
        """Raise ``ValueError`` for a bad port or token, or when a non-loopback ``host``
        would serve without an explicit ``token``."""
        import ipaddress

        if not 0 < self.port < 65536:
            raise ValueError(f"port: must be 1..65535, got {self.port}")
        if self.token and (len(self.token) < 16 or any(c.isspace() for c in self.token)):
            raise ValueError("token: must be at least 16 characters without whitespace")
        for i, name in enumerate(self.allowed_hosts):
            if not name.strip() or any(c.isspace() or c in "/@" for c in name):
                raise ValueError(f"allowed_hosts[{i}]: not a host name: {name!r}")
        try:
            loopback = self.host == "localhost" or ipaddress.ip_address(
                self.host.strip("[]")).is_loopback
        except ValueError:
            loopback = False
        if self.enabled and not loopback and not self.token:
            raise ValueError(f"host: {self.host!r} is not a loopback address; serving HTTP "
                             "beyond this machine needs an explicit http.token")
