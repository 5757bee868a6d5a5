#!/usr/bin/env python3
"""IPC benchmark: the xsys daemon's round trips against two bare stdlib echo servers.

Measures, in one run and side by side, over Unix sockets only:

* ``rpc.ping`` and ``sys.memory`` against a real daemon (``python -m xsys serve`` in a
  subprocess on a temporary socket), on uvloop (the default where installed) and, as a
  secondary row, on the stdlib loop (``--no-uvloop``);
* the same request frames against two baselines written here with the stdlib, each in its
  own process (so client and server never share a GIL, as with the daemon): a bare
  blocking echo server (a thread per connection, ``recv`` -> ``sendall``) and a bare
  ``asyncio.Protocol`` echo server on the stdlib loop (plus the same on uvloop, for
  reference: it is the floor an asyncio server on uvloop can reach);
* reference rows (``--no-reference`` skips them): a minimal msgpack ping server, an
  ``asyncio.Protocol`` that frames, decodes, answers ``{"pong", "ts"}`` and encodes with
  nothing else, on uvloop and on the stdlib loop: the floor for any Python daemon here;
* with ``--baseline-root DIR``, the daemon of another source tree (e.g. an older checkout)
  beside this one, for before/after comparisons under the same conditions.

For every target: sequential latency (p50/p99) and requests/second with one minimal
blocking client (send a frame, read a frame; identical client code for every target);
throughput with 8 concurrent clients (8 client *processes*, each the same blocking loop,
so that the clients' GIL never bounds the server); pipelined throughput on one connection
keeping 64 requests in flight (one blocking client thread: it tops the window up with as
many frames as answers it just read). All servers run for the whole benchmark and each
measurement is split into ``--rounds`` slices taken in turn across the targets, so the
ratios compare servers under the same background load. Before the load, the daemon's idle
CPU (psutil ``cpu_times`` over ``--idle-seconds``) and RSS.

Prints a table with the ratios and targets (docs/protocol.md / the Core issue) and writes a
JSON file (``--json-out``, default ``bench/results/ipc.json``).

    .venv/bin/python bench/ipc.py [--duration 2] [--rounds 4] [--idle-seconds 10]
                                  [--json-out F] [--baseline-root DIR] [--strict]

A warning follows the table when the bare echo itself was slow (a busy machine).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import shutil
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _stats import percentile  # noqa: E402

from tests.launcher import DaemonProcess  # noqa: E402
from xsys.protocol import encode_request  # noqa: E402

HEADER = struct.Struct(">I")
CLIENTS = 8
DEPTH = 64
RECV_BUF = 1 << 20
BUSY_ECHO_P50_US = 80.0  # a bare echo slower than this: the machine is busy
WARMUP_S = 0.1  # per connection (each round reconnects)

if sys.platform != "win32" and "fork" in mp.get_all_start_methods():
    MP = mp.get_context("fork")  # fast client start; the parent holds no threads then
else:  # pragma: no cover
    MP = mp.get_context("spawn")


# =========================================================================== servers


def _blocking_echo_main(path: str) -> None:
    """The bare blocking echo: one thread per connection, bytes back as they come."""

    def serve(conn: socket.socket) -> None:
        with conn:
            recv, sendall = conn.recv, conn.sendall
            while True:
                data = recv(65536)
                if not data:
                    return
                sendall(data)

    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(path)
    lsock.listen(128)
    while True:
        conn, _ = lsock.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


class _EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.write = transport.write  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.write(data)


class _MiniPingProtocol(asyncio.Protocol):
    """The floor for an asyncio msgpack server: framing, decode, answer, encode, write."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.write = transport.write  # type: ignore[attr-defined]
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        import msgpack

        buf = self.buf + data if self.buf else data
        pos, end, out = 0, len(buf), []
        while end - pos >= 4:
            n = HEADER.unpack_from(buf, pos)[0]
            if end - pos - 4 < n:
                break
            msg = msgpack.unpackb(buf[pos + 4 : pos + 4 + n])
            payload = msgpack.packb({"id": msg["id"], "result": {"pong": True,
                                                                 "ts": time.time()}})
            out.append(HEADER.pack(len(payload)) + payload)
            pos += 4 + n
        self.buf = buf[pos:]
        self.write(b"".join(out))


def _asyncio_echo_main(path: str, use_uvloop: bool,
                       protocol: type[asyncio.Protocol] = _EchoProtocol) -> None:
    """The bare asyncio echo: an ``asyncio.Protocol`` writing back what it receives (or,
    with ``_MiniPingProtocol``, the minimal ping server)."""
    if use_uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_unix_server(protocol, path)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def _uvloop_available() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return sys.platform != "win32"


class Target:
    """A server under test: started in its own process, stopped at the end."""

    def __init__(self, name: str, path: str) -> None:
        self.name = name
        self.path = path
        self.pid = 0

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def wait_ready(self, probe: bytes, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(2.0)
                    s.connect(self.path)
                    buf = bytearray(RECV_BUF)
                    _roundtrip(s, probe, buf, memoryview(buf))
                return
            except OSError as exc:
                last = exc
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not come up on {self.path}: {last}")

    def check_alive(self) -> None:
        pass


class ProcTarget(Target):
    def __init__(self, name: str, path: str, func: Callable[..., None], *args: Any) -> None:
        super().__init__(name, path)
        self.proc = MP.Process(target=func, args=(path, *args), daemon=True)

    def start(self) -> None:
        self.proc.start()
        self.pid = self.proc.pid or 0

    def check_alive(self) -> None:
        if not self.proc.is_alive():
            raise RuntimeError(f"{self.name} exited with {self.proc.exitcode}")

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.terminate()
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


class DaemonTarget(Target):
    """An xsys daemon of ``root``'s code (``tests.launcher.DaemonProcess``) on ``path``;
    ready once it answers the probe frame (``Target.wait_ready``)."""

    def __init__(self, name: str, path: str, workdir: str, use_uvloop: bool,
                 config: str | None, root: Path = ROOT) -> None:
        super().__init__(name, path)
        args = ["--socket", path, "--log-level", "WARNING"]
        if not use_uvloop:
            args.append("--no-uvloop")
        if config:
            args += ["--config", config]
        log_path = Path(workdir) / f"{name.replace(' ', '_')}.log"
        self.daemon = DaemonProcess(path, args, log_path=log_path, source_root=root)

    def start(self) -> None:
        self.daemon.launch()
        self.pid = self.daemon.pid

    def check_alive(self) -> None:
        self.daemon.check_alive()

    def stop(self) -> None:
        self.daemon.stop()


# =========================================================================== clients


def _roundtrip(sock: socket.socket, frame: bytes, buf: bytearray, mv: memoryview) -> int:
    """Send one frame and read one frame back (the minimal client; returns its size)."""
    sock.sendall(frame)
    n = sock.recv_into(buf)
    while True:
        if n >= 4:
            need = 4 + HEADER.unpack_from(buf)[0]
            if n >= need:
                return need
        got = sock.recv_into(mv[n:])
        if not got:
            raise ConnectionError("server closed the connection")
        n += got


def _sequential(path: str, frame: bytes, duration: float,
                barrier: Any = None) -> tuple[int, float, list[int]]:
    """One blocking client, one request at a time for ``duration`` s (after a warm-up).
    Returns (requests, elapsed s, latencies ns)."""
    buf = bytearray(RECV_BUF)
    mv = memoryview(buf)
    clock = time.perf_counter_ns
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        end = time.monotonic() + WARMUP_S
        while time.monotonic() < end:
            _roundtrip(sock, frame, buf, mv)
        if barrier is not None:
            barrier.wait()
        lat: list[int] = []
        append = lat.append
        start = clock()
        stop = start + int(duration * 1e9)
        t = start
        while t < stop:
            _roundtrip(sock, frame, buf, mv)
            t2 = clock()
            append(t2 - t)
            t = t2
        return len(lat), (t - start) / 1e9, lat


def _pool_worker(conn: Any, barrier: Any) -> None:
    """One of the concurrent clients: runs ``_sequential`` for each command it is sent."""
    while True:
        cmd = conn.recv()
        if cmd is None:
            return
        path, frame, duration = cmd
        try:
            conn.send(_sequential(path, frame, duration, barrier))
        except BaseException as exc:
            with contextlib.suppress(Exception):
                barrier.abort()
            conn.send(exc)
            return


class ClientPool:
    """``CLIENTS`` client processes kept for the whole run; each measurement starts them
    together (a barrier after their warm-up) and sums their requests/second."""

    def __init__(self, clients: int = CLIENTS) -> None:
        self.barrier = MP.Barrier(clients)
        self.conns: list[Any] = []
        self.procs: list[Any] = []
        for _ in range(clients):
            ours, theirs = MP.Pipe()
            p = MP.Process(target=_pool_worker, args=(theirs, self.barrier), daemon=True)
            p.start()
            theirs.close()
            self.conns.append(ours)
            self.procs.append(p)

    def run(self, path: str, frame: bytes, duration: float) -> tuple[float, list[int]]:
        """Returns (total requests/s, all latencies ns)."""
        for conn in self.conns:
            conn.send((path, frame, duration))
        rps = 0.0
        lat: list[int] = []
        errors: list[BaseException] = []
        for conn in self.conns:
            if not conn.poll(duration + 60):
                errors.append(TimeoutError("a client process did not report"))
                continue
            out = conn.recv()
            if isinstance(out, BaseException):
                errors.append(out)
                continue
            n, elapsed, client_lat = out
            rps += n / elapsed
            lat += client_lat
        if errors:
            raise RuntimeError(f"concurrent clients failed: {errors[0]!r}")
        return rps, lat

    def close(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(None)
        for p in self.procs:
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join(5)


def _pipelined(path: str, frames: list[bytes], duration: float,
               depth: int = DEPTH) -> float:
    """One connection keeping ``depth`` requests in flight; returns responses/second.

    ``frames`` are requests with distinct ids (more of them than ``depth``), sent in a
    cycle, so an id is reused only once its previous request has been answered.
    """
    assert len(frames) > depth
    size = len(frames[0])
    assert all(len(f) == size for f in frames), "pipelined frames must be the same size"
    count = len(frames)
    blob = memoryview(b"".join(frames) * 2)
    buf = bytearray(RECV_BUF)
    mv = memoryview(buf)
    unpack = HEADER.unpack_from
    clock = time.perf_counter
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        sendall, recv_into = sock.sendall, sock.recv_into
        nxt = 0  # index of the next frame to send
        outstanding = depth
        sendall(blob[: depth * size])
        nxt = depth
        have = 0
        done = 0
        t0 = clock()
        warm_end = t0 + WARMUP_S
        measuring = False
        start = 0.0
        base = 0
        end_at = warm_end + duration
        sending = True
        result = 0.0
        while outstanding:
            got = recv_into(mv[have:])
            if not got:
                raise ConnectionError("server closed the connection")
            have += got
            pos = 0
            k = 0
            while have - pos >= 4:
                need = 4 + unpack(buf, pos)[0]
                if have - pos < need:
                    break
                pos += need
                k += 1
            if pos:
                if pos < have:
                    buf[: have - pos] = buf[pos:have]
                have -= pos
            done += k
            outstanding -= k
            now = clock()
            if not measuring and now >= warm_end:
                measuring, start, base = True, now, done
            if sending and measuring and now >= end_at:
                sending = False
                result = (done - base) / (now - start)
            if sending and k:
                off = (nxt % count) * size
                sendall(blob[off: off + k * size])
                nxt += k
                outstanding += k
    return result


# =========================================================================== measuring


@dataclass
class Row:
    target: str
    measurement: str
    client: str
    p50_us: float | None = None
    p99_us: float | None = None
    rps: float | None = None
    ratio: float | None = None
    ratio_of: str = ""
    goal: str = ""
    status: str = ""
    primary: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def _pct(ns: list[int], q: float) -> float:
    """The ``q``-quantile (0..1) of ``ns`` in microseconds (``_stats.percentile``)."""
    return percentile(ns, q) / 1000.0


@dataclass
class Case:
    """One (server, request) pair to measure."""

    key: str
    label: str
    path: str
    frame: bytes
    cycle: list[bytes]
    primary: bool


KINDS = {
    "seq": ("sequential", "1 blocking client"),
    "conc": (f"{CLIENTS} clients", f"{CLIENTS} client processes"),
    "pipe": (f"pipelined x{DEPTH}", f"1 conn, {DEPTH} in flight"),
}


def _measure_kind(kind: str, cases: list[Case], duration: float, rounds: int,
                  pool: ClientPool) -> dict[str, Row]:
    """Measure every case for ``duration`` s in total, as ``rounds`` slices taken in turn
    (rotating the order), so that the ratios compare servers under the same background
    load even on a busy machine."""
    slice_s = duration / rounds
    lat: dict[str, list[int]] = {c.key: [] for c in cases}
    reqs: dict[str, float] = dict.fromkeys(lat, 0.0)
    secs: dict[str, float] = dict.fromkeys(lat, 0.0)
    per_round: dict[str, list[float]] = {c.key: [] for c in cases}
    for r in range(rounds):
        k = r % len(cases)
        for case in cases[k:] + cases[:k]:
            if kind == "seq":
                n, elapsed, got = _sequential(case.path, case.frame, slice_s)
                lat[case.key] += got
                per_round[case.key].append(round(_pct(got, 0.5), 2))
            elif kind == "conc":
                rps, got = pool.run(case.path, case.frame, slice_s)
                n, elapsed = rps * slice_s, slice_s
                lat[case.key] += got
                per_round[case.key].append(round(rps))
            else:
                rps = _pipelined(case.path, case.cycle, slice_s)
                n, elapsed = rps * slice_s, slice_s
                per_round[case.key].append(round(rps))
            reqs[case.key] += n
            secs[case.key] += elapsed
    measurement, client = KINDS[kind]
    out: dict[str, Row] = {}
    for case in cases:
        samples = lat[case.key]
        row = Row(case.label, measurement, client, primary=case.primary,
                  rps=reqs[case.key] / secs[case.key],
                  extra={"per_round": per_round[case.key]})
        if samples:
            row.p50_us, row.p99_us = _pct(samples, 0.50), _pct(samples, 0.99)
            row.extra["mean_us"] = round(statistics.fmean(samples) / 1000, 2)
            row.extra["samples"] = len(samples)
        out[case.key] = row
        _progress(f"  {row.target:<32} {row.measurement:<14} p50={_fmt(row.p50_us, 1):>7} us"
                  f"  req/s={_fmt(row.rps, 0):>9}  rounds={per_round[case.key]}")
    return out


def _idle(pid: int, seconds: float, settle: float = 2.0) -> dict[str, float]:
    """CPU use (% of one core) of process ``pid`` over ``seconds`` at idle, and its RSS."""
    proc = psutil.Process(pid)
    time.sleep(settle)
    t0 = time.monotonic()
    c0 = proc.cpu_times()
    time.sleep(seconds)
    c1 = proc.cpu_times()
    wall = time.monotonic() - t0
    used = (c1.user - c0.user) + (c1.system - c0.system)
    return {"cpu_percent": 100.0 * used / wall, "seconds": wall,
            "rss_mib": proc.memory_info().rss / 2**20, "threads": proc.num_threads()}


def _frames(method: str) -> tuple[bytes, list[bytes]]:
    """The sequential request frame and the pipelined cycle (ids 1..127, one size)."""
    return encode_request(1, method), [encode_request(i, method) for i in range(1, 128)]


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _fmt(v: float | None, digits: int) -> str:
    if v is None or v != v:
        return "-"
    return f"{v:,.{digits}f}"


# =========================================================================== judging


def _judge(rows: dict[str, dict[str, Row]], idle: dict[str, float] | None,
           idle_label: str = "xsys daemon [uvloop]") -> list[Row]:
    """Fill in ratios and PASS/MISS; return the table rows in order."""
    ordered: list[Row] = []
    eb, ea = rows["echo-blocking"], rows["echo-asyncio"]
    for key in ("echo-blocking", "echo-asyncio", "echo-uvloop", "mini-uvloop", "mini-asyncio"):
        if key not in rows:
            continue
        for m in ("seq", "conc", "pipe"):
            r = rows[key][m]
            if key != "echo-blocking" and m == "seq":
                r.ratio, r.ratio_of = r.p50_us / eb["seq"].p50_us, "p50 / echo-blocking p50"
            elif key not in ("echo-blocking", "echo-asyncio") and m != "seq":
                r.ratio, r.ratio_of = r.rps / ea[m].rps, "req/s / echo-asyncio req/s"
            ordered.append(r)

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    for loop in ("uvloop", "asyncio", "uvloop, baseline", "asyncio, baseline"):
        ping, mem = rows.get(f"ping-{loop}"), rows.get(f"memory-{loop}")
        if ping is None or mem is None:
            continue
        r = ping["seq"]
        r.ratio, r.ratio_of = r.p50_us / eb["seq"].p50_us, "p50 / echo-blocking p50"
        r.goal, r.status = "<= 1.50x", verdict(r.ratio <= 1.5)
        r = ping["conc"]
        r.ratio, r.ratio_of = r.rps / ea["conc"].rps, "req/s / echo-asyncio req/s"
        r.goal, r.status = ">= 0.50x", verdict(r.ratio >= 0.5)
        r = ping["pipe"]
        r.ratio, r.ratio_of = r.rps / ea["pipe"].rps, "req/s / echo-asyncio req/s"
        r.goal, r.status = ">= 100,000/s", verdict(r.rps >= 100_000)
        r = mem["seq"]
        r.ratio, r.ratio_of = r.p50_us / ping["seq"].p50_us, "p50 / rpc.ping p50"
        r.goal, r.status = "<= 2.00x", verdict(r.ratio <= 2.0)
        for m in ("conc", "pipe"):
            r = mem[m]
            r.ratio, r.ratio_of = r.rps / ping[m].rps, "req/s / rpc.ping req/s"
            r.goal, r.status = ">= 0.50x", verdict(r.ratio >= 0.5)
        ordered += [ping["seq"], ping["conc"], ping["pipe"], mem["seq"], mem["conc"],
                    mem["pipe"]]
    if idle is not None:
        ordered.append(Row(f"{idle_label} idle", "idle CPU",
                           f"{idle['seconds']:.0f} s, no clients",
                           extra={"value": idle["cpu_percent"], "unit": "% of a core"},
                           goal="< 1%", status=verdict(idle["cpu_percent"] < 1.0)))
        ordered.append(Row(f"{idle_label} idle", "idle RSS", "after start",
                           extra={"value": idle["rss_mib"], "unit": "MiB"},
                           goal="< 40 MiB", status=verdict(idle["rss_mib"] < 40.0)))
        if "rss_after_load_mib" in idle:
            ordered.append(Row(idle_label, "RSS after load", "after the runs",
                               extra={"value": idle["rss_after_load_mib"], "unit": "MiB"},
                               primary=False))
    return ordered


def _table(rows: list[Row]) -> str:
    head = ("target", "measurement", "client", "p50 us", "p99 us", "req/s", "ratio",
            "target", "result")
    lines: list[tuple[str, ...]] = [head]
    for r in rows:
        if "value" in r.extra:
            value = f"{r.extra['value']:.2f} {r.extra['unit']}"
            lines.append((r.target, r.measurement, r.client, "", "", value, "", r.goal,
                          r.status))
            continue
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else ""
        status = r.status if r.primary or not r.status else f"({r.status})"
        lines.append((r.target, r.measurement, r.client, _fmt(r.p50_us, 1),
                      _fmt(r.p99_us, 1), _fmt(r.rps, 0), ratio, r.goal, status))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    right = {3, 4, 5, 6}

    def fmt(line: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(line, widths, strict=True))).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(lines[0]), sep, *(fmt(line) for line in lines[1:])])


# =========================================================================== main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--duration", type=float, default=2.0,
                    help="seconds per measurement and target (default 2; the whole run "
                         "takes about 25x that plus the idle window)")
    ap.add_argument("--rounds", type=int, default=4,
                    help="slices each measurement is split into, taken in turn across the "
                         "targets (default 4)")
    ap.add_argument("--idle-seconds", type=float, default=10.0,
                    help="window for the daemon's idle CPU (default 10)")
    ap.add_argument("--json-out", default=str(ROOT / "bench" / "results" / "ipc.json"))
    ap.add_argument("--config", default=None, help="daemon config file (default: none)")
    ap.add_argument("--no-stdlib-loop", action="store_true",
                    help="skip the secondary --no-uvloop daemon rows")
    ap.add_argument("--no-reference", action="store_true",
                    help="skip the minimal msgpack ping servers (reference rows)")
    ap.add_argument("--baseline-root", default=None, metavar="DIR",
                    help="also measure the daemon of another source tree (a directory "
                         "holding an xsys/ package, e.g. an older checkout), as extra rows")
    ap.add_argument("--strict", action="store_true",
                    help="exit 1 when a primary target is missed")
    args = ap.parse_args(argv)
    d, rounds = args.duration, max(1, args.rounds)

    uv = _uvloop_available()
    ping_frame, ping_cycle = _frames("rpc.ping")
    mem_frame, mem_cycle = _frames("sys.memory")
    t_start = time.monotonic()
    load_before = os.getloadavg()
    pool = ClientPool()  # forked first, while this process holds no threads
    targets: list[Target] = []
    cases: list[Case] = []
    idle: dict[str, float] | None = None
    rows: dict[str, dict[str, Row]] = {}
    tmp = tempfile.mkdtemp(prefix="xsys-bench-")
    try:
        def sock(name: str) -> str:
            return os.path.join(tmp, f"{name}.sock")

        echoes: list[tuple[str, str, Target]] = [
            ("echo-blocking", "echo (blocking, threads)",
             ProcTarget("echo-blocking", sock("eb"), _blocking_echo_main)),
            ("echo-asyncio", "echo (asyncio.Protocol)",
             ProcTarget("echo-asyncio", sock("ea"), _asyncio_echo_main, False)),
        ]
        if uv:
            echoes.append(("echo-uvloop", "echo (asyncio.Protocol, uvloop)",
                           ProcTarget("echo-uvloop", sock("eu"), _asyncio_echo_main, True)))
        if not args.no_reference:
            for name, use_uv in ([("uvloop", True)] if uv else []) + [("asyncio", False)]:
                echoes.append((f"mini-{name}", f"minimal ping server [{name}]",
                               ProcTarget(f"mini-{name}", sock(f"m{name}"),
                                          _asyncio_echo_main, use_uv, _MiniPingProtocol)))
        loops = [("uvloop", True)] if uv else []
        if not args.no_stdlib_loop or not uv:
            loops.append(("asyncio", False))
        daemons = [(name, DaemonTarget(f"xsys-{name}", sock(f"x{name}"), tmp, use_uv,
                                       args.config)) for name, use_uv in loops]
        if args.baseline_root:  # another checkout's daemon, measured beside this one
            for name, use_uv in loops:
                daemons.append((f"{name}, baseline", DaemonTarget(
                    f"xsys-{name}-baseline", sock(f"b{name}"), tmp, use_uv, args.config,
                    Path(args.baseline_root).resolve())))
        for key, label, target in echoes:
            targets.append(target)
            cases.append(Case(key, label, target.path, ping_frame, ping_cycle, True))
        for i, (name, daemon) in enumerate(daemons):
            targets.append(daemon)
            for key, method, frame, cycle in (("ping", "rpc.ping", ping_frame, ping_cycle),
                                              ("memory", "sys.memory", mem_frame, mem_cycle)):
                cases.append(Case(f"{key}-{name}", f"xsys {method} [{name}]", daemon.path,
                                  frame, cycle, i == 0))
        _progress(f"starting {len(targets)} servers in {tmp} ...")
        for target in targets:
            target.start()
        for target in targets:
            target.wait_ready(ping_frame)

        main_daemon = daemons[0][1]
        _progress(f"xsys daemon [{daemons[0][0]}] idle for {args.idle_seconds:g} s ...")
        idle = _idle(main_daemon.pid, args.idle_seconds)
        _progress(f"  cpu {idle['cpu_percent']:.2f}% of a core, rss {idle['rss_mib']:.1f} MiB")

        for kind in ("seq", "conc", "pipe"):
            _progress(f"{KINDS[kind][0]} ({KINDS[kind][1]}), {d:g} s per target in "
                      f"{rounds} rounds ...")
            for key, row in _measure_kind(kind, cases, d, rounds, pool).items():
                rows.setdefault(key, {})[kind] = row
        main_daemon.check_alive()
        idle["rss_after_load_mib"] = psutil.Process(main_daemon.pid).memory_info().rss / 2**20
    finally:
        pool.close()
        for target in targets:
            target.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    load_after = os.getloadavg()
    table = _judge(rows, idle, f"xsys daemon [{loops[0][0]}]")
    print()
    print(f"xsys IPC benchmark: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"uvloop {_uvloop_version() or 'absent'}; {d:g} s per measurement in {rounds} "
          f"interleaved rounds; load average {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after")
    print(_table(table))
    print("\nratios: rpc.ping sequential p50 / echo-blocking p50; 8-client and pipelined "
          "req/s / echo-asyncio req/s;\nsys.memory / rpc.ping on the same loop. "
          "Results in parentheses are secondary rows (stdlib loop).")

    warnings = []
    echo_rounds = rows["echo-blocking"]["seq"].extra.get("per_round", [])
    busy = [p50 for p50 in echo_rounds if p50 > BUSY_ECHO_P50_US]
    if busy:
        warnings.append(
            f"in {len(busy)} of {len(echo_rounds)} rounds the bare echo's p50 was above "
            f"{BUSY_ECHO_P50_US:.0f} us ({', '.join(f'{v:.0f}' for v in busy)} us; about "
            "35-40 us expected on a quiet 2-core machine): other processes held the CPUs, "
            "so those rounds measure the scheduler more than the servers (per-round values "
            "are in the JSON); run again on a quieter machine")
    for w in warnings:
        print(f"\nWARNING: {w}")

    primary_miss = [r for r in table if r.primary and r.status == "MISS"]
    out = Path(args.json_out)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": "ipc",
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "uvloop": _uvloop_version(),
                    "loadavg_before": load_before, "loadavg_after": load_after},
        "settings": {"duration_s": d, "rounds": rounds, "idle_s": args.idle_seconds,
                     "clients": CLIENTS, "clients_are": "processes",
                     "pipeline_depth": DEPTH, "warmup_s": WARMUP_S},
        "rows": [asdict(r) for r in table],
        "misses": [f"{r.target} {r.measurement}" for r in primary_miss],
        "warnings": warnings,
        "elapsed_s": round(time.monotonic() - t_start, 1),
    }
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwrote {out} ({doc['elapsed_s']} s)")
    return 1 if args.strict and primary_miss else 0


def _uvloop_version() -> str | None:
    try:
        import uvloop
    except ImportError:
        return None
    return str(uvloop.__version__)


if __name__ == "__main__":
    sys.exit(main())
