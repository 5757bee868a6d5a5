"""A minimal Docker Engine API client over aiohttp (a Unix socket through
``aiohttp.UnixConnector``, or TCP): the two documented endpoints the checks use,
``GET /containers/{id}/json`` (inspect) and ``POST /containers/{id}/restart``.

The engine is found at the probe's ``host``, else ``$DOCKER_HOST``, else
``unix:///var/run/docker.sock``. An engine that is absent or unreachable raises
``EngineUnavailable`` (the check is then ``unknown`` with the reason, never a crash).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    import aiohttp


DEFAULT_HOST = "unix:///var/run/docker.sock"


class EngineUnavailable(Exception):
    """The Docker engine cannot be reached (no socket, refused, not an engine)."""


class EngineError(Exception):
    """The engine answered with an error (``status``: its HTTP status; 404: no such
    container)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ContainerState:
    """What the checks read of ``State`` in an inspect answer: ``status`` (running,
    exited...), ``running``, ``health`` (healthy, unhealthy, starting; None without a
    healthcheck)."""

    status: str
    running: bool
    health: str | None


def resolve_host(host: str = "", environ: dict[str, str] | None = None) -> str:
    """The engine address: ``host``, else ``$DOCKER_HOST``, else the default socket."""
    env = os.environ if environ is None else environ
    return host or env.get("DOCKER_HOST", "") or DEFAULT_HOST


class DockerEngine:
    """One engine at ``host`` (see ``resolve_host``) with its own aiohttp session, made
    on first use and closed by ``close``. Every call is bounded by its ``timeout_s``."""

    def __init__(self, host: str) -> None:
        self.host = host
        self._session: aiohttp.ClientSession | None = None
        if host.startswith("unix://"):
            self.socket_path: str | None = host[len("unix://"):]
            self.base_url = "http://docker"
        else:
            self.socket_path = None
            self.base_url = "http://" + host.split("://", 1)[-1].rstrip("/")

    def _client(self) -> aiohttp.ClientSession:

        import aiohttp

        if self._session is None or self._session.closed:
            connector: aiohttp.BaseConnector
            if self.socket_path is not None:
                connector = aiohttp.UnixConnector(path=self.socket_path)
            else:
                connector = aiohttp.TCPConnector()
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def _request(self, method: str, path: str, timeout_s: float) -> tuple[int, Any]:

        import aiohttp

        if self.socket_path is not None and not os.path.exists(self.socket_path):
            raise EngineUnavailable(f"no Docker engine: {self.socket_path} does not exist")
        try:
            async with self._client().request(
                    method, self.base_url + path,
                    timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
                body: Any = None
                if resp.content_type == "application/json":
                    body = await resp.json()
                else:
                    body = (await resp.content.read(4096)).decode("utf-8", "replace")
                return resp.status, body
        except aiohttp.ClientConnectionError as exc:
            raise EngineUnavailable(f"no Docker engine at {self.host}: {exc}") from exc

    @staticmethod
    def _message(body: Any) -> str:
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            return str(body["message"])
        return str(body or "")[:200]

    async def inspect(self, container: str, timeout_s: float) -> ContainerState:
        """The container's state. Raises ``EngineUnavailable``, ``EngineError`` (404 for
        an unknown container), ``TimeoutError``."""
        status, body = await self._request(
            "GET", f"/containers/{quote(container, safe='')}/json", timeout_s)
        if status != 200 or not isinstance(body, dict):
            raise EngineError(status, self._message(body) or f"HTTP {status}")
        state = body.get("State") or {}
        health = state.get("Health") or {}
        return ContainerState(status=str(state.get("Status", "")),
                              running=bool(state.get("Running")),
                              health=str(health["Status"]) if health.get("Status") else None)

    async def restart(self, container: str, timeout_s: float) -> None:
        """Restart the container (the engine stops it within 10 s, then starts it).
        Raises ``EngineUnavailable``, ``EngineError``, ``TimeoutError``."""
        status, body = await self._request(
            "POST", f"/containers/{quote(container, safe='')}/restart?t=10", timeout_s)
        if status not in (200, 204):
            raise EngineError(status, self._message(body) or f"HTTP {status}")

    async def close(self) -> None:
        """Close the session (idempotent)."""
        if self._session is not None:
            await self._session.close()
            self._session = None
