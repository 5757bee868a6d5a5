"""Push mode's cost (issue 15), in one run:

1. CPU: the daemon's CPU time (utime + stime from ``/proc/<pid>/stat``) over a window,
   with no push target and with one target at ``interval_s: 1`` streaming to a local
   aiohttp WebSocket backend (same config otherwise), as percent of one core.
2. Replay: 1,000 buffered messages (a spill file of real snapshot messages, read back at
   start) replayed after the connection is made: time from the backend's ``hello`` to the
   1,000th message, next to sending 1,000 frames of the same size over a bare aiohttp
   WebSocket in this process (the floor).

    .venv/bin/python bench/push.py [--window 20]

Prints a table and writes ``bench/results/push.json``. Targets: under 0.5 % of one core
added; 1,000 messages replayed in under 1 s.
"""

# ruff: noqa: E402
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgpack
from aiohttp import ClientSession, WSMsgType, web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._daemon import cpu_s, free_port, spawned_daemon


def daemon_pid(sock: str) -> int:
    from xsys.client import Client

    with Client(sock) as c:
        return int(c.call("rpc.hello")["pid"])


class Sink:
    """A backend that counts messages and notes when the hello and the n-th arrive."""

    def __init__(self, port: int, want: int = 0) -> None:
        self.port = port
        self.want = want
        self.count = 0
        self.hello_at = 0.0
        self.done_at = 0.0
        self.done = asyncio.Event()
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            if not self.hello_at and '"type":"hello"' in msg.data:
                self.hello_at = time.perf_counter()
                continue
            self.count += 1
            if self.want and self.count == self.want:
                self.done_at = time.perf_counter()
                self.done.set()
        return ws

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def base_config(workdir: Path) -> dict[str, Any]:
    off = {"enabled": False}
    return {"server": {"socket": str(workdir / "s" / "xsys.sock"), "log_level": "WARNING"},
            "fs": {"roots": [str(workdir)]},
            "monitor": {"cpu": off, "memory": off, "swap": off, "load": off,
                        "filesystem": off, "inodes": off, "network": off, "io": off,
                        "reboot": {"state_file": str(workdir / "boot"),
                                   "required_files": []}}}


async def measure_cpu(workdir: Path, window_s: float, push: dict[str, Any] | None) -> float:
    config = base_config(workdir)
    if push is not None:
        config["push"] = push
    name = "with.json" if push else "without.json"
    with spawned_daemon(config, workdir, config_name=name) as sock:
        pid = daemon_pid(sock)
        await asyncio.sleep(2.0)  # settle: imports, first samples, connection
        start_cpu, start = cpu_s(pid), time.perf_counter()
        await asyncio.sleep(window_s)
        used = cpu_s(pid) - start_cpu
        return 100.0 * used / (time.perf_counter() - start)


def snapshot_frame(seq: int) -> str:
    data = {"cpu": {"percent": 12.5, "times_percent": {"user": 8.0, "system": 4.5}},
            "memory": {"total_bytes": 24 << 30, "available_bytes": 20 << 30,
                       "percent": 16.7}, "load": {"load1": 0.5, "load5": 0.4}}
    return json.dumps({"type": "snapshot", "host": {"hostname": "h", "ip": "10.0.0.1",
                                                    "boot_at": 1.0},
                       "seq": seq, "ts": time.time(), "data": data}, separators=(",", ":"))


async def measure_replay(workdir: Path, n: int) -> tuple[float, float]:
    port = free_port()
    url = f"ws://127.0.0.1:{port}/"
    spill = workdir / "spill"
    spill.mkdir(exist_ok=True)
    items = [[seq, "snapshot", snapshot_frame(seq)] for seq in range(1, n + 1)]
    (spill / "replay.msgpack").write_bytes(msgpack.packb(
        {"version": 1, "url": url, "next_seq": n + 1, "dropped_unannounced": 0,
         "items": items}, use_bin_type=True))
    os.chmod(spill / "replay.msgpack", 0o600)
    sink = Sink(port, want=n)
    await sink.start()
    config = base_config(workdir)
    config["push"] = {"spill_dir": str(spill), "targets": [
        {"name": "replay", "url": url, "interval_s": 3600, "include": ["load"],
         "spill": True}]}
    try:
        with spawned_daemon(config, workdir, config_name="replay.json"):
            await asyncio.wait_for(sink.done.wait(), 60)
    finally:
        await sink.stop()
    replay = sink.done_at - sink.hello_at
    # the floor: the same frames over a bare aiohttp WebSocket, in this process
    floor_sink = Sink(free_port(), want=n)
    await floor_sink.start()
    try:
        async with ClientSession() as session, \
                session.ws_connect(f"ws://127.0.0.1:{floor_sink.port}/") as ws:
            await ws.send_str('{"type":"hello"}')
            for _seq, _kind, frame in items:
                await ws.send_str(frame)
            await asyncio.wait_for(floor_sink.done.wait(), 60)
    finally:
        await floor_sink.stop()
    return replay, floor_sink.done_at - floor_sink.hello_at


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--messages", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="xsys-push-") as d:
        workdir = Path(d)
        sink = Sink(free_port())
        await sink.start()
        try:
            without = await measure_cpu(workdir, args.window, None)
            with_one = await measure_cpu(workdir, args.window, {"targets": [
                {"url": f"ws://127.0.0.1:{sink.port}/", "interval_s": 1}]})
        finally:
            await sink.stop()
        received = sink.count
        replay_s, floor_s = await measure_replay(workdir, args.messages)
    rows = [
        ("daemon CPU, no push target", f"{without:.2f} % of a core"),
        ("daemon CPU, 1 target at 1 s", f"{with_one:.2f} % of a core"),
        ("added by the target", f"{with_one - without:.2f} % of a core (target < 0.5)"),
        (f"snapshots received in {args.window:.0f} s", str(received)),
        (f"replay {args.messages} buffered messages", f"{replay_s * 1000:.1f} ms (target < 1000)"),
        (f"{args.messages} frames, bare aiohttp (floor)", f"{floor_s * 1000:.1f} ms"),
        ("replay / floor", f"{replay_s / floor_s:.2f}x"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "push.json").write_text(json.dumps({
        "window_s": args.window, "cpu_percent_without": without,
        "cpu_percent_with_one_target": with_one, "cpu_percent_added": with_one - without,
        "snapshots_received": received, "replay_messages": args.messages,
        "replay_s": replay_s, "floor_s": floor_s, "replay_over_floor": replay_s / floor_s},
        indent=2))


if __name__ == "__main__":
    asyncio.run(main())
