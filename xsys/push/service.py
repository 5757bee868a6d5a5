"""Push mode: the daemon dials out to each ``push.targets`` backend over WebSocket
(aiohttp's client) and streams snapshots, alerts and check states to it, with reconnect
and no silent loss.

Per target, two halves joined by an ``Outbox`` (``xsys.push.buffer``):

- producers (loop callbacks): the snapshot hub calls back every ``interval_s`` with the
  chosen sections; the monitor's alert bus hands over every alert sent. Each becomes one
  message ``{"type": "snapshot"|"alert", "host": {hostname, ip, boot_at}, "seq", "ts",
  "data"}`` with the next ``seq`` of the target, encoded at once and put in the outbox;
- the connection task: connect (backoff with jitter from about 1 s up to
  ``reconnect_max_s``; a 401/403 on the upgrade is reported as such and retried the same
  way), send ``hello`` (``seq`` = the first seq it will send; ``data.dropped``: messages
  dropped since the previous connection), then send the outbox in ``seq`` order (what was
  buffered first, then live messages), each removed only once written. Heartbeat pings
  detect half-open connections; a send that cannot be written within ``send_timeout_s``
  (a backend that does not read) closes the connection and the message stays queued.

Drops (outbox full) are counted per target, logged, announced in the next ``hello`` and
exported as ``xsys_push_dropped_total{target}``. With ``spill: true`` the outbox is
written to ``<push.spill_dir>/<target>.msgpack`` (0600, atomically) at shutdown and read
back at start, so a restart during an outage loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgpack

from xsys.host import booted_at, hostname, route_address
from xsys.live.aloy import ALOY_SECTIONS, aloy_message
from xsys.push.buffer import Outbox, Outgoing
from xsys.push.config import PushConfig, PushTargetConfig

if TYPE_CHECKING:
    import aiohttp

    from xsys.live import LiveSubscription, SnapshotHub

log = logging.getLogger(__name__)

#: First reconnect delay (s); doubled per failure up to ``reconnect_max_s``.
FIRST_BACKOFF_S = 1.0
#: A connection that lasted this long (s) resets the backoff to its first delay.
STABLE_CONNECTION_S = 10.0
#: Spill file format version.
SPILL_VERSION = 1


#: ``subscribe_alerts(listener) -> unsubscribe``: the monitor's alert bus; the listener
#: gets each alert's wire form (``Alert.to_wire()``).
AlertSubscribe = Callable[[Callable[[dict[str, Any]], None]], Callable[[], None]]


def backoff_delays(max_s: float, rng: random.Random | None = None) -> Iterator[float]:
    """Reconnect delays (s): about 1, 2, 4... capped at ``max_s``, each with +-20 % jitter
    (never above ``max_s``)."""
    rng = rng or random.Random()
    base = FIRST_BACKOFF_S
    while True:
        yield min(max_s, base * rng.uniform(0.8, 1.2))
        base = min(max_s, base * 2)


def host_identity() -> dict[str, Any]:
    """``{"hostname", "ip" (the default route's source address), "boot_at" (epoch s)}``
    (``xsys.host``; blocking)."""
    return {"hostname": hostname(), "ip": route_address(), "boot_at": booted_at()}


class Target:
    """One backend's state and tasks (see the module docstring). Read by ``status``."""

    def __init__(self, config: PushTargetConfig, host: dict[str, Any],
                 spill_path: Path | None) -> None:
        self.config = config
        self.host = host
        self.spill_path = spill_path
        self.outbox = Outbox(config.buffer_max_messages, config.buffer_max_bytes)
        self.next_seq = 1
        self.connected = False
        self.since: float | None = None
        self.last_error = ""
        self.last_error_at: float | None = None
        self.sent = 0
        self.reconnects = 0
        self.connects = 0
        self.dropped_announced = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stream: LiveSubscription | None = None
        self._unsubscribe: Callable[[], None] | None = None

    @property
    def label(self) -> str:
        """The target's name in status and metrics."""
        return self.config.label

    # ------------------------------------------------------------------ producers

    def encode(self, message: dict[str, Any]) -> str | bytes:
        """``message`` as one frame in the target's format."""
        if self.config.format == "msgpack":
            return bytes(msgpack.packb(message, use_bin_type=True))
        return json.dumps(message, separators=(",", ":"), default=str)

    def enqueue(self, kind: str, data: dict[str, Any], ts: float | None = None) -> None:
        """Queue one ``snapshot`` or ``alert`` message with the next ``seq``."""
        seq = self.next_seq
        self.next_seq += 1
        if self.config.format == "aloy":
            frame = self.encode(aloy_message(data, self.host["ip"]))
        else:
            frame = self.encode({"type": kind, "host": self.host, "seq": seq,
                                 "ts": time.time() if ts is None else ts, "data": data})
        dropped = self.outbox.put(Outgoing(seq, kind, frame))
        if dropped:
            log.warning("push target %s: outbox full (%d messages, %d bytes): dropped %d "
                        "(total %d)", self.label, len(self.outbox), self.outbox.bytes,
                        dropped, self.outbox.dropped)
        self._wake.set()

    def on_snapshot(self, snap: dict[str, Any]) -> None:
        """The hub's callback: one snapshot (its own ``seq``/``dropped`` left out)."""
        data = {k: v for k, v in snap.items() if k not in ("seq", "ts", "dropped")}
        self.enqueue("snapshot", data, snap.get("ts"))

    def on_alert(self, alert: dict[str, Any]) -> None:
        """The alert bus's callback (``aloy`` targets get no alerts: ALOY has none)."""
        if self.config.format != "aloy":
            self.enqueue("alert", {"alert": alert})

    # ------------------------------------------------------------------ connection

    def hello(self) -> str | bytes:
        """The ``hello`` frame: host identity (its ``ip`` looked up again on every
        connection), the first ``seq`` to come and the drops since the previous connection
        (``data.dropped``; ``data.dropped_total``)."""
        head = self.outbox.peek()
        first = head.seq if head is not None else self.next_seq
        dropped = self.outbox.dropped - self.dropped_announced
        self.dropped_announced = self.outbox.dropped
        return self.encode({"type": "hello", "host": self.host, "seq": first,
                            "ts": time.time(),
                            "data": {"dropped": dropped, "dropped_total": self.outbox.dropped,
                                     "buffered": len(self.outbox),
                                     "interval_s": self.config.interval_s,
                                     "format": self.config.format}})

    def ssl_context(self) -> ssl.SSLContext | bool:
        """The TLS context of a ``wss://`` URL from ``tls`` (True: aiohttp's default)."""
        tls = self.config.tls
        if not self.config.url.startswith("wss://"):
            return True
        ctx = ssl.create_default_context(cafile=tls.ca_file or None)
        if tls.cert_file:
            ctx.load_cert_chain(tls.cert_file, tls.key_file)
        if not tls.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    async def run(self, session: aiohttp.ClientSession) -> None:
        """Connect, send, reconnect with backoff, until cancelled."""
        import aiohttp

        cfg = self.config
        delays = backoff_delays(cfg.reconnect_max_s)
        server_hostname = cfg.tls.server_hostname or None
        while True:
            try:
                ssl_arg = await asyncio.to_thread(self.ssl_context)
                # the whole dial (TCP, TLS, the upgrade's answer) within connect_timeout_s:
                # the session's own timeouts do not cover a peer that never answers
                ws = await asyncio.wait_for(session.ws_connect(
                    cfg.url, headers=cfg.headers, heartbeat=cfg.heartbeat_s,
                    ssl=ssl_arg, server_hostname=server_hostname,
                    timeout=aiohttp.ClientWSTimeout(ws_close=cfg.connect_timeout_s),
                    max_msg_size=1 << 20, autoclose=True, autoping=True),
                    cfg.connect_timeout_s)
            except asyncio.TimeoutError:
                self._failed(f"no connection and WebSocket handshake within "
                             f"{cfg.connect_timeout_s:g}s (connect_timeout_s)")
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status in (401, 403):
                    self._failed(f"the backend refused the connection with {exc.status} "
                                 f"{exc.message or ''}: check the target's headers (token)")
                else:
                    self._failed(f"WebSocket upgrade failed: {exc.status} {exc.message}")
            except (aiohttp.ClientError, OSError, ssl.SSLError) as exc:
                self._failed(f"cannot connect: {type(exc).__name__}: {exc}")
            else:
                up_since = time.monotonic()
                await self._serve(ws)
                # back to about 1 s only after a connection that held: one closed right
                # after the upgrade (a token checked late) keeps backing off
                if time.monotonic() - up_since >= STABLE_CONNECTION_S:
                    delays = backoff_delays(cfg.reconnect_max_s)
            self.connected = False
            delay = next(delays)
            log.info("push target %s: reconnecting in %.1fs", self.label, delay)
            await asyncio.sleep(delay)

    def _failed(self, why: str) -> None:
        self.last_error = why
        self.last_error_at = time.time()
        log.warning("push target %s (%s): %s", self.label, self.config.url, why)

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """One connection: hello, then the outbox in order, until it closes."""
        cfg = self.config
        self.connects += 1
        if self.connects > 1:
            self.reconnects += 1
        reader = asyncio.ensure_future(self._read(ws))
        try:
            # the address may have changed since start (a laptop on another network)
            ip = await asyncio.to_thread(route_address)
            if ip != self.host.get("ip"):
                self.host = {**self.host, "ip": ip}
            if cfg.format != "aloy":
                await asyncio.wait_for(self._send(ws, self.hello()), cfg.send_timeout_s)
            self.connected = True
            self.since = time.time()
            log.info("push target %s: connected to %s (%d buffered)", self.label, cfg.url,
                     len(self.outbox))
            while not reader.done():
                item = self.outbox.peek()
                if item is None:
                    self._wake.clear()
                    waiter = asyncio.ensure_future(self._wake.wait())
                    await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                    continue
                await asyncio.wait_for(self._send(ws, item.frame), cfg.send_timeout_s)
                if self.outbox.peek() is item:
                    self.outbox.pop()
                self.sent += 1
            code = ws.close_code
            self._failed(f"the backend closed the connection (code {code})")
        except asyncio.TimeoutError:
            self._failed(f"a message could not be written within {cfg.send_timeout_s}s "
                         "(the backend does not read); reconnecting")
        except (ConnectionError, RuntimeError, OSError) as exc:
            self._failed(f"connection lost: {type(exc).__name__}: {exc}")
        finally:
            self.connected = False
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 1.0)

    @staticmethod
    async def _send(ws: aiohttp.ClientWebSocketResponse, frame: str | bytes) -> None:
        if isinstance(frame, bytes):
            await ws.send_bytes(frame)
        else:
            await ws.send_str(frame)

    @staticmethod
    async def _read(ws: aiohttp.ClientWebSocketResponse) -> None:
        """Drain what the backend sends (ignored) so pongs and close frames are seen;
        returns when the connection is closed."""
        async for _msg in ws:
            pass

    def take_over(self, previous: Target) -> None:
        """Continue ``previous`` (same name, changed config): its ``seq``, counters and
        unsent messages (into this target's bounds, drops counted); when the format
        changed, the messages are dropped, counted and logged instead."""
        self.next_seq = previous.next_seq
        self.sent = previous.sent
        self.reconnects = previous.reconnects
        self.connects = previous.connects
        self.outbox.dropped = previous.outbox.dropped
        self.dropped_announced = previous.dropped_announced
        if previous.config.format == self.config.format:
            self.outbox.extend(previous.outbox)
        elif len(previous.outbox):
            self.outbox.dropped += len(previous.outbox)
            log.warning("push target %s: format changed from %s to %s: %d buffered "
                        "messages dropped", self.label, previous.config.format,
                        self.config.format, len(previous.outbox))

    # ------------------------------------------------------------------ spill

    def load_spill(self) -> None:
        """Read back a spilled outbox (then delete the file); a bad file is logged and
        moved aside, never fatal."""
        path = self.spill_path
        if path is None or not path.exists():
            return
        try:
            data = msgpack.unpackb(path.read_bytes(), raw=False)
            if data.get("version") != SPILL_VERSION or data.get("url") != self.config.url:
                raise ValueError("written for another version or URL")
            self.outbox.extend(Outgoing(int(s), str(k), f) for s, k, f in data["items"])
            self.next_seq = max(self.next_seq, int(data["next_seq"]))
            self.outbox.dropped += int(data.get("dropped_unannounced", 0))
            path.unlink()
            log.info("push target %s: %d buffered messages read back from %s", self.label,
                     len(self.outbox), path)
        except (OSError, ValueError, KeyError, TypeError, msgpack.UnpackException) as exc:
            log.error("push target %s: cannot read the spill file %s (%s); moved aside",
                      self.label, path, exc)
            with contextlib.suppress(OSError):
                path.rename(path.with_suffix(".bad"))

    def write_spill(self) -> None:
        """Write the outbox to the spill file (0600, atomically) when it holds anything."""
        path = self.spill_path
        if path is None:
            return
        if not len(self.outbox):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return
        data = {"version": SPILL_VERSION, "url": self.config.url, "next_seq": self.next_seq,
                "dropped_unannounced": self.outbox.dropped - self.dropped_announced,
                "items": [[o.seq, o.kind, o.frame] for o in self.outbox]}
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(msgpack.packb(data, use_bin_type=True))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        log.info("push target %s: %d unsent messages spilled to %s", self.label,
                 len(self.outbox), path)

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        """This target's row of ``push.status``."""
        return {"target": self.label, "url": self.config.url, "format": self.config.format,
                "interval_s": self.config.interval_s, "connected": self.connected,
                "since": self.since if self.connected else None,
                "last_error": self.last_error or None, "last_error_at": self.last_error_at,
                "buffered": len(self.outbox), "buffered_bytes": self.outbox.bytes,
                "sent": self.sent, "dropped": self.outbox.dropped,
                "reconnects": self.reconnects, "next_seq": self.next_seq}


class PushService:
    """Every push target of the config (see the module docstring).

    ``hub``: the snapshot hub; ``subscribe_alerts``: the monitor's alert bus;
    ``state_dir``: the daemon's state directory (spill files go to ``push.spill_dir`` or
    ``<state_dir>/push/``). ``start``/``stop`` run
    with the daemon; ``reload(config)`` restarts the targets whose config changed and
    leaves the others connected."""

    def __init__(self, config: PushConfig, hub: SnapshotHub,
                 subscribe_alerts: AlertSubscribe, state_dir: Path) -> None:
        self.config = config
        self.hub = hub
        self.subscribe_alerts = subscribe_alerts
        self.state_dir = state_dir
        self.targets: dict[str, Target] = {}
        self._session: aiohttp.ClientSession | None = None
        self._host: dict[str, Any] | None = None

    async def start(self) -> None:
        """Start every target (no target: nothing, not even aiohttp's import)."""
        for cfg in self.config.targets:
            await self._start_target(cfg)

    async def _start_target(self, cfg: PushTargetConfig,
                            previous: Target | None = None) -> None:
        """Start one target; ``previous``: the same-named target a reload replaces, whose
        unsent messages, ``seq`` and counters carry over (its messages are dropped, and
        counted, only when the format changed: they are encoded for the old one)."""
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, connect=cfg.connect_timeout_s,
                                              sock_connect=cfg.connect_timeout_s))
        if self._host is None:
            self._host = await asyncio.to_thread(host_identity)
        spill_dir = (Path(self.config.spill_dir).expanduser() if self.config.spill_dir
                     else self.state_dir / "push")
        spill = spill_dir / f"{_safe_name(cfg.label)}.msgpack" if cfg.spill else None
        target = Target(cfg, self._host, spill)
        if previous is not None:
            target.take_over(previous)
        elif spill is not None:
            await asyncio.to_thread(target.load_spill)
        sections = [s for s in cfg.include if s != "alerts"]
        if cfg.format == "aloy":
            sections = list(ALOY_SECTIONS)
        if sections:
            target._stream = self.hub.subscribe(cfg.interval_s, sections,
                                                on_snapshot=target.on_snapshot)
        if "alerts" in cfg.include and cfg.format != "aloy":
            target._unsubscribe = self.subscribe_alerts(target.on_alert)
        target._task = asyncio.ensure_future(target.run(self._session))
        target._task.set_name(f"xsys-push-{cfg.label}")
        self.targets[cfg.label] = target

    async def _stop_target(self, target: Target, spill: bool = True) -> None:
        if target._stream is not None:
            target._stream.close()
        if target._unsubscribe is not None:
            target._unsubscribe()
        if target._task is not None:
            target._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await target._task
        if spill and target.spill_path is not None:
            try:
                await asyncio.to_thread(target.write_spill)
            except OSError as exc:
                log.error("push target %s: cannot spill %d messages to %s: %s",
                          target.label, len(target.outbox), target.spill_path, exc)
        elif spill and len(target.outbox):
            log.warning("push target %s: %d unsent messages lost: the target stopped and "
                        "spill is off", target.label, len(target.outbox))

    async def stop(self) -> None:
        """Stop every target (spilling those with ``spill``) and close the session."""
        for target in list(self.targets.values()):
            await self._stop_target(target)
        self.targets.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def reload(self, config: PushConfig) -> None:
        """Apply a new ``push`` section: removed targets stop (spilling), added ones
        start, changed ones restart keeping their unsent messages and ``seq`` (a new
        token must not cost the buffer); unchanged ones keep their connection."""
        new = {c.label: c for c in config.targets}
        replaced: dict[str, Target] = {}
        for label, target in list(self.targets.items()):
            if new.get(label) != target.config:
                await self._stop_target(target, spill=label not in new)
                del self.targets[label]
                if label in new:
                    replaced[label] = target
        self.config = config
        for label, cfg in new.items():
            if label not in self.targets:
                await self._start_target(cfg, replaced.get(label))

    def status(self) -> dict[str, Any]:
        """The ``push.status`` result: ``{"targets": [Target.status()]}``."""
        return {"targets": [t.status() for t in self.targets.values()]}


def _safe_name(label: str) -> str:
    """``label`` as a file name (anything but letters, digits, ``.-_`` becomes ``_``)."""
    return "".join(c if c.isalnum() or c in ".-_" else "_" for c in label) or "target"
