"""The ``checks`` config section: a list of service checks, each with one probe and an
optional restart action. Ground level: imports only the standard library, so
``xsys.config`` assembles it into the root tree without cycles.

Units: every duration is in seconds (``interval_s``, ``timeout_s``, ``duration_s``,
``backoff_s``...). The shape (one probe per check; ``tcp`` is a ``"host:port"`` string)::

    {"checks": [
      {"name": "redis", "tcp": "127.0.0.1:6379", "interval_s": 5, "timeout_s": 2,
       "retries": 2, "critical": true,
       "restart": {"command": ["systemctl", "restart", "redis"], "restart_after": 2,
                   "backoff_s": 1, "backoff_max_s": 300, "max_restarts": 5,
                   "restart_window_s": 3600}},
      {"name": "api", "http": {"url": "http://127.0.0.1:8100/health", "status": [200, 299],
                               "body_contains": "ok"}},
      {"name": "worker", "process": {"name": "worker.py"}},
      {"name": "report", "command": {"argv": ["/usr/local/bin/check-report"]}},
      {"name": "postgres", "docker": {"container": "jarvis_postgres"},
       "restart": {"docker": true}}
    ]}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from xsys.bounds import at_least

#: The probe keys of a check; exactly one is given.
PROBES = ("tcp", "http", "process", "command", "docker")

#: A check's name: what labels, components and ``checks.run`` use.
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")

#: The shortest ``interval_s``.
MIN_INTERVAL_S = 0.5


def split_host_port(value: str) -> tuple[str, int]:
    """``"127.0.0.1:6379"`` -> ``("127.0.0.1", 6379)``; ``"[::1]:80"`` -> ``("::1", 80)``.

    Raises ``ValueError`` when there is no port or it is not in 1..65535.
    """
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected \"host:port\", got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    number = int(port)
    if not 0 < number < 65536:
        raise ValueError(f"port must be in 1..65535, got {number}")
    return host, number


@dataclass(frozen=True)
class HttpProbe:
    """``url`` answers (GET) with a status in the inclusive range ``status`` ([lo, hi]),
    a body containing ``body_contains`` (when not empty; the first ``max_body_bytes``
    are searched) and, for each ``header`` name, a response header containing that value
    (name case-insensitive). Redirects are not followed."""

    url: str
    status: tuple[int, ...] = (200, 399)
    body_contains: str = ""
    header: dict[str, str] = field(default_factory=dict)
    max_body_bytes: int = 1024 * 1024

    def validate(self) -> None:
        """Raise ``ValueError`` for a URL that is not http(s), a status range that is not
        two codes lo <= hi in 100..599, or a non-positive ``max_body_bytes``."""
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url: expected an http:// or https:// URL, got {self.url!r}")
        if len(self.status) != 2 or not 100 <= self.status[0] <= self.status[1] <= 599:
            raise ValueError(f"status: expected [lo, hi] with 100 <= lo <= hi <= 599, "
                             f"got {list(self.status)}")
        if self.max_body_bytes <= 0:
            raise ValueError("max_body_bytes: must be > 0")


@dataclass(frozen=True)
class ProcessProbe:
    """A process is alive: one of ``name`` (the process name, or the file name of its
    executable or of its first two command-line words: ``worker.py`` matches
    ``python3 /srv/worker.py``), ``cmdline`` (a regular expression searched in the
    command line joined by spaces) or ``pidfile`` (the pid written in that file is a
    running process that is not a zombie)."""

    name: str | None = None
    cmdline: str | None = None
    pidfile: str | None = None

    def validate(self) -> None:
        """Raise ``ValueError`` unless exactly one selector is given, or for a
        ``cmdline`` that is not a valid regular expression."""
        given = [k for k in ("name", "cmdline", "pidfile") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of name, cmdline, pidfile")
        if self.cmdline:
            try:
                re.compile(self.cmdline)
            except re.error as exc:
                raise ValueError(f"cmdline: invalid regular expression: {exc}") from None


@dataclass(frozen=True)
class CommandProbe:
    """``argv`` (run without a shell) exits 0 within the check's ``timeout_s``."""

    argv: tuple[str, ...]

    def validate(self) -> None:
        """Raise ``ValueError`` for an empty ``argv``."""
        if not self.argv or not self.argv[0]:
            raise ValueError("argv: must name a program")


@dataclass(frozen=True)
class DockerProbe:
    """The container ``container`` (name or id) is running and, when it has a
    healthcheck, healthy, asked of the Docker Engine API at ``host`` (``unix:///path``
    or ``tcp://host:port``; empty: ``$DOCKER_HOST``, else
    ``unix:///var/run/docker.sock``). No engine: the check is ``unknown``."""

    container: str
    host: str = ""

    def validate(self) -> None:
        """Raise ``ValueError`` for an empty container or a host of another scheme."""
        if not self.container:
            raise ValueError("container: must not be empty")
        if self.host and not self.host.startswith(("unix://", "tcp://", "http://")):
            raise ValueError(f"host: expected unix://PATH or tcp://HOST:PORT, got "
                             f"{self.host!r}")


@dataclass(frozen=True)
class RestartConfig:
    """What to do when a check keeps failing: ``command`` (argv, no shell, bounded by
    ``timeout_s``) or ``docker: true`` (restart the check's container through the Engine
    API), run once ``restart_after`` consecutive probes have failed; the next restarts
    wait ``backoff_s``, doubling each time up to ``backoff_max_s`` (reset when the check
    is up again). Once ``max_restarts`` restarts have run within ``restart_window_s`` and
    another is due, the check becomes ``failed`` (a critical alert) and no more restarts
    run until it is up again."""

    command: tuple[str, ...] | None = None
    docker: bool = False
    restart_after: int = 1
    backoff_s: float = 1.0
    backoff_max_s: float = 300.0
    max_restarts: int = 5
    restart_window_s: float = 3600.0
    timeout_s: float = 60.0

    def validate(self) -> None:
        """Raise ``ValueError`` unless exactly one of ``command``/``docker`` is set, or
        for a count below 1 or a duration that is negative (``timeout_s``: not positive)."""
        if bool(self.command) == bool(self.docker):
            raise ValueError("give exactly one of command (argv) or docker: true")
        if self.command is not None and not self.command[0]:
            raise ValueError("command: must name a program")
        at_least(self, ("restart_after", "max_restarts"), 1)
        at_least(self, ("backoff_s", "backoff_max_s", "restart_window_s"), 0)
        at_least(self, ("timeout_s",), 0, strictly=True)


@dataclass(frozen=True)
class CheckConfig:
    """One service check.

    - ``name``: letters, digits, ``_ . -`` (up to 64); unique.
    - one probe: ``tcp`` (``"host:port"`` accepts a connection), ``http``, ``process``,
      ``command`` or ``docker`` (see their classes).
    - ``interval_s`` (>= 0.5): between the starts of two probes; ``timeout_s``: the
      longest one probe may take (a probe still running at the next slot delays it);
    - ``retries``: consecutive failed probes before the state is ``down``;
    - ``critical``: its failure makes ``/health`` ``failed`` (else ``degraded``) and its
      alert critical (else warning);
    - ``duration_s``: how long it must stay ``down`` before the monitor's alert fires
      (Prometheus ``for:``; ``failed`` fires at once);
    - ``restart``: the restart action (``RestartConfig``), or None.
    """

    name: str
    tcp: str | None = None
    http: HttpProbe | None = None
    process: ProcessProbe | None = None
    command: CommandProbe | None = None
    docker: DockerProbe | None = None
    interval_s: float = 30.0
    timeout_s: float = 5.0
    retries: int = 1
    critical: bool = False
    duration_s: float = 0.0
    restart: RestartConfig | None = None

    def validate(self) -> None:
        """Raise ``ValueError`` for a bad name, not exactly one probe, a bad ``tcp``
        address, ``interval_s`` under 0.5, a non-positive ``timeout_s``, ``retries`` < 1,
        a negative ``duration_s``, or ``restart.docker`` without a docker probe."""
        if not NAME_RE.match(self.name):
            raise ValueError(f"name: expected letters, digits, _ . - (up to 64), got "
                             f"{self.name!r}")
        given = [p for p in PROBES if getattr(self, p) is not None]
        if len(given) != 1:
            raise ValueError(f"{self.name}: give exactly one probe of "
                             f"{', '.join(PROBES)} (got {', '.join(given) or 'none'})")
        if self.tcp is not None:
            try:
                split_host_port(self.tcp)
            except ValueError as exc:
                raise ValueError(f"tcp: {exc}") from None
        if self.interval_s < MIN_INTERVAL_S:
            raise ValueError(f"interval_s: must be >= {MIN_INTERVAL_S}, got {self.interval_s}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s: must be > 0, got {self.timeout_s}")
        if self.retries < 1:
            raise ValueError(f"retries: must be >= 1, got {self.retries}")
        if self.duration_s < 0:
            raise ValueError(f"duration_s: must be >= 0, got {self.duration_s}")
        if self.restart is not None and self.restart.docker and self.docker is None:
            raise ValueError("restart.docker: needs a docker probe")

    @property
    def probe(self) -> str:
        """The probe's kind: tcp, http, process, command or docker."""
        return next(p for p in PROBES if getattr(self, p) is not None)


def validate_checks(checks: tuple[CheckConfig, ...]) -> None:
    """Raise ``ValueError`` when two checks share a name."""
    seen: set[str] = set()
    for check in checks:
        if check.name in seen:
            raise ValueError(f"checks: the name {check.name!r} is used twice")
        seen.add(check.name)
