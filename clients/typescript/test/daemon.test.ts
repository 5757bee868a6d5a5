/**
 * XsysClient against a real daemon (python -m xsys serve on a temp socket): the rpc and
 * sys namespaces, every error class the daemon can be made to answer, framing with the
 * daemon's bytes re-chunked, pipelining, timeouts and AbortSignal, and the drift check of
 * src/generated.ts. Skipped, with the reason, when no daemon can be started here.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import * as net from "node:net";
import { after, before, describe, it } from "node:test";

import { Decoder, Encoder } from "@msgpack/msgpack";

import { GENERATED_PATH, fetchMethods } from "../codegen/gen.js";
import { renderGenerated } from "../codegen/render.js";
import {
  type Caller,
  ConnectionClosedError,
  FrameDecoder,
  InvalidParamsError,
  InvalidRequestError,
  METHOD_NAMES,
  MethodNotFoundError,
  NotFoundError,
  OverloadedError,
  ParseError,
  PermissionDeniedError,
  RequestTimeoutError,
  TooLargeError,
  UnauthorizedError,
  XsysClient,
  XsysError,
  errorFromWire,
  frame,
} from "../src/index.js";
import { ChunkProxy } from "./helpers/chunkProxy.js";
import { Daemon, daemonUnavailable } from "./helpers/daemon.js";

const unavailable = daemonUnavailable();
if (unavailable) console.log(`# SKIP real-daemon tests: ${unavailable}`);

let daemon: Daemon;
let client: XsysClient;

before(async () => {
  if (unavailable) return;
  daemon = await new Daemon().start();
  client = await XsysClient.connect({ socketPath: daemon.socketPath });
});

after(async () => {
  await client?.close();
  await daemon?.dispose();
});

/** Send raw bytes on a fresh connection and collect the decoded answers until it closes or `count` arrive. */
async function rawExchange(socketPath: string, bytes: Uint8Array, count: number): Promise<{ messages: unknown[]; closed: boolean }> {
  const sock = net.createConnection({ path: socketPath });
  const frames = new FrameDecoder();
  const dec = new Decoder({ useBigInt64: false });
  const messages: unknown[] = [];
  return new Promise((resolve, reject) => {
    let closed = false;
    const timer = setTimeout(() => finish(), 3000);
    const finish = (): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ messages, closed });
    };
    sock.on("connect", () => sock.write(bytes));
    sock.on("data", (chunk: Buffer) => {
      for (const p of frames.push(chunk)) messages.push(dec.decode(p));
      if (messages.length >= count) setTimeout(finish, 50);
    });
    sock.on("end", () => {
      closed = true;
    });
    sock.on("close", () => {
      closed = true;
      finish();
    });
    sock.on("error", reject);
  });
}

describe("real daemon: rpc", { skip: unavailable ?? false }, () => {
  it("rpc.hello announces protocol 1 and its methods", async () => {
    const hello = await client.rpc.hello();
    assert.equal(hello.protocol, 1);
    assert.equal(hello.server, "xsys");
    assert.match(hello.version, /^\d+\.\d+\.\d+/);
    assert.equal(hello.pid, daemon.pid);
    assert.ok(hello.methods.includes("rpc.ping"));
    assert.ok(Array.isArray(hello.capabilities));
  });

  it("rpc.ping answers pong with the server time", async () => {
    const pong = await client.rpc.ping();
    assert.equal(pong.pong, true);
    assert.ok(Math.abs(pong.ts - Date.now() / 1000) < 5);
  });

  it("rpc.methods describes every method with its parameters", async () => {
    const { methods } = await client.rpc.methods();
    const names = methods.map((m) => m.name);
    assert.deepEqual(names, [...names].sort());
    for (const m of methods) {
      assert.equal(typeof m.summary, "string");
      for (const p of m.params) {
        assert.equal(typeof p.name, "string");
        assert.equal(typeof p.type, "string");
        assert.equal(typeof p.required, "boolean");
      }
    }
  });

  it("src/generated.ts matches the running daemon's rpc.methods (else run `npm run gen`)", async () => {
    const methods = await fetchMethods(daemon.socketPath);
    const expected = renderGenerated(methods);
    const actual = readFileSync(GENERATED_PATH(), "utf8");
    if (actual !== expected) {
      const have = new Set<string>(METHOD_NAMES);
      const want = new Set(methods.map((m) => m.name));
      const added = [...want].filter((n) => !have.has(n));
      const removed = [...have].filter((n) => !want.has(n));
      assert.fail(
        "src/generated.ts drifted from the daemon's rpc.methods; regenerate it with `npm run gen` " +
          `(daemon running, XSYS_SOCKET set). New methods: ${added.join(", ") || "none"}; ` +
          `gone: ${removed.join(", ") || "none"}; otherwise parameters changed.`,
      );
    }
  });
});

describe("real daemon: sys", { skip: unavailable ?? false }, () => {
  it("sys.info", async () => {
    const info = await client.sys.info();
    assert.equal(typeof info.hostname, "string");
    assert.ok(info.cpu_count_logical >= 1);
    assert.ok(info.memory_total_bytes > 0);
    assert.ok(info.booted_at < Date.now() / 1000);
    assert.equal(info.load.length, 3);
    assert.ok(Array.isArray(info.disks));
  });

  it("sys.cpu with and without per_cpu", async () => {
    const cpu = await client.sys.cpu();
    assert.ok(cpu.percent >= 0 && cpu.percent <= 100);
    assert.equal(cpu.per_cpu_percent?.length, cpu.count_logical);
    const lean = await client.sys.cpu({ per_cpu: false });
    assert.equal(lean.per_cpu_percent, undefined);
  });

  it("sys.memory", async () => {
    const mem = await client.sys.memory();
    assert.ok(mem.virtual.total_bytes > 0);
    assert.ok(mem.virtual.available_bytes <= mem.virtual.total_bytes);
    assert.equal(typeof mem.swap.total_bytes, "number");
    assert.equal(typeof mem.ts, "number");
  });

  it("sys.disks, sys.disk_io, sys.network, sys.load", async () => {
    const [disks, io, net_, load] = await Promise.all([
      client.sys.disks({ all: true }),
      client.sys.diskIo({ per_disk: false }),
      client.sys.network(),
      client.sys.load(),
    ]);
    assert.ok(Array.isArray(disks.disks) && disks.disks.length > 0);
    assert.equal(typeof io.total, "object");
    assert.equal(io.disks, undefined);
    assert.ok(net_.interfaces.some((i) => i.name === "lo" || i.isup));
    assert.equal(typeof load.load1, "number");
    assert.ok(load.cpu_count >= 1);
  });

  it("sys.processes and sys.process (positional and object forms)", async () => {
    const list = await client.sys.processes({ sort: "pid", limit: 5 });
    assert.ok(list.processes.length <= 5);
    assert.ok(list.total >= list.processes.length);
    const pids = list.processes.map((p) => p.pid);
    assert.deepEqual(pids, [...pids].sort((a, b) => a - b));
    const mine = await client.sys.process(process.pid);
    assert.equal(mine.pid, process.pid);
    assert.equal(mine.name, "node");
    const again = await client.sys.process({ pid: process.pid });
    assert.equal(again.pid, process.pid);
    const named = await client.sys.processes({ name: "node", limit: 1000 });
    assert.ok(named.processes.some((p) => p.pid === process.pid));
  });

  it("sys.sensors, sys.users, sys.ports", async () => {
    const [sensors, users, ports] = await Promise.all([client.sys.sensors(), client.sys.users(), client.sys.ports({ kind: "all" })]);
    assert.ok(Array.isArray(sensors.temperatures));
    assert.ok(Array.isArray(users.users));
    assert.ok(Array.isArray(ports.ports));
  });

  it("sys.kill signals one of the caller's processes", async () => {
    const child = spawn("sleep", ["30"], { stdio: "ignore" });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once("exit", (_c, sig) => resolve(sig)));
    const res = await client.sys.kill(child.pid as number, { signal: "KILL" });
    assert.deepEqual(res, { pid: child.pid, signal: "SIGKILL", sent: true });
    assert.equal(await exited, "SIGKILL");
  });
});

describe("real daemon: errors", { skip: unavailable ?? false }, () => {
  it("MethodNotFoundError for an unknown method", async () => {
    await assert.rejects(client.call("nope.nothing"), (e: unknown) => {
      assert.ok(e instanceof MethodNotFoundError);
      assert.equal(e.code, -32601);
      return true;
    });
  });

  it("InvalidParamsError names the parameter", async () => {
    const raw: Caller = client; // untyped calls: these parameters are wrong on purpose
    await assert.rejects(raw.call("sys.process", { pid: "one" }), (e: unknown) => {
      assert.ok(e instanceof InvalidParamsError);
      assert.equal((e.data as { param: string }).param, "pid");
      return true;
    });
    await assert.rejects(raw.call("sys.process", {}), InvalidParamsError);
    await assert.rejects(raw.call("sys.processes", { limit: 0 }), InvalidParamsError);
    await assert.rejects(raw.call("sys.processes", { bogus: 1 }), InvalidParamsError);
  });

  it("NotFoundError for a pid that does not exist", async () => {
    await assert.rejects(client.sys.process(2 ** 31 - 1), (e: unknown) => {
      assert.ok(e instanceof NotFoundError);
      assert.deepEqual(e.data, { pid: 2 ** 31 - 1 });
      return true;
    });
  });

  it("PermissionDeniedError for pid 1 and the daemon itself, whoever asks (root included)", async () => {
    for (const [pid, reason] of [[1, "init"], [daemon.pid as number, "daemon"]] as const) {
      await assert.rejects(client.sys.kill(pid, { signal: "KILL" }), (e: unknown) => {
        assert.ok(e instanceof PermissionDeniedError, String(e));
        assert.equal((e.data as { reason?: string }).reason, reason);
        return true;
      });
    }
    assert.equal((await client.rpc.ping()).pong, true, "the daemon is still there");
  });

  it("ParseError and InvalidRequestError for bad payloads (nil id, connection stays open)", async () => {
    const enc = new Encoder();
    const bytes = Buffer.concat([
      frame(Uint8Array.of(0xc1)), // never valid msgpack
      frame(enc.encode([1, 2, 3])), // not a map
      frame(enc.encode({ id: 7, method: "rpc.ping" })),
    ]);
    const { messages, closed } = await rawExchange(daemon.socketPath, bytes, 3);
    assert.equal(closed, false);
    const [parse, invalid, pong] = messages as Record<string, unknown>[];
    assert.equal(parse?.["id"], null);
    assert.ok(errorFromWire(parse?.["error"]) instanceof ParseError);
    assert.ok(errorFromWire(invalid?.["error"]) instanceof InvalidRequestError);
    assert.equal(pong?.["id"], 7);
  });

  it("the client reports nil-id errors as protocolError and keeps working", async () => {
    const c = await XsysClient.connect({ socketPath: daemon.socketPath });
    try {
      const seen: Error[] = [];
      c.on("protocolError", (e) => seen.push(e));
      const sock = (c as unknown as { conn: { socket: net.Socket } }).conn.socket;
      sock.write(frame(Uint8Array.of(0xc1)));
      assert.equal((await c.rpc.ping()).pong, true);
      assert.equal(seen.length, 1);
      assert.ok(seen[0] instanceof ParseError);
    } finally {
      await c.close();
    }
  });

  it("InvalidRequestError and a closed connection for a frame above the daemon's max_frame", async () => {
    const d = await new Daemon({ server: { max_frame_bytes: 4096 } }).start();
    try {
      const c = await XsysClient.connect({ socketPath: d.socketPath });
      const errors: Error[] = [];
      c.on("protocolError", (e) => errors.push(e));
      await assert.rejects(c.call("sys.processes", { name: "x".repeat(10_000) }), ConnectionClosedError);
      assert.ok(errors[0] instanceof InvalidRequestError, "the daemon named the limit before closing");
      assert.match(errors[0]?.message ?? "", /4096/);
      // TooLargeError: a result above max_frame.
      const c2 = await XsysClient.connect({ socketPath: d.socketPath, maxFrame: 4096 });
      await assert.rejects(c2.sys.processes({ limit: 100_000 }), (e: unknown) => {
        assert.ok(e instanceof TooLargeError);
        assert.equal((e.data as { max_frame: number }).max_frame, 4096);
        return true;
      });
      // and the client refuses to send a request above its own maxFrame
      await assert.rejects(c2.call("sys.processes", { name: "y".repeat(5000) }), TooLargeError);
      assert.equal((await c2.rpc.ping()).pong, true);
      await c.close();
      await c2.close();
    } finally {
      await d.dispose();
    }
  });

  it("OverloadedError at max_connections, UnauthorizedError for a uid not allowed", async () => {
    // The daemon refuses at accept time: an error frame with a nil id, then it closes.
    // (A request written at that moment may hit EPIPE first, which loses the frame, so
    // these clients wait for the refusal; test/client.fake.test.ts covers in-flight calls.)
    const busy = await new Daemon({ server: { max_connections: 1 } }).start();
    const locked = await new Daemon({ server: { allowed_uids: [4242], allowed_gids: [] } }).start();
    try {
      const first = await XsysClient.connect({ socketPath: busy.socketPath });
      const second = new XsysClient({ socketPath: busy.socketPath });
      const refusedBusy = new Promise<Error | undefined>((resolve) => second.once("disconnected", resolve));
      await second.connect();
      const overloaded = await refusedBusy;
      assert.ok(overloaded instanceof OverloadedError, String(overloaded));
      assert.deepEqual(overloaded.data, { limit: 1 });
      await assert.rejects(second.rpc.ping(), ConnectionClosedError);
      assert.equal((await first.rpc.ping()).pong, true);
      await first.close();
      await second.close();

      const refused = new XsysClient({ socketPath: locked.socketPath, reconnect: { initialDelayMs: 10 } });
      const disconnected = new Promise<Error | undefined>((resolve) => refused.once("disconnected", resolve));
      await refused.connect();
      const unauthorized = await disconnected;
      assert.ok(unauthorized instanceof UnauthorizedError, String(unauthorized));
      assert.ok(unauthorized instanceof XsysError);
      assert.equal(refused.state, "disconnected", "no reconnect loop when unauthorized");
      await assert.rejects(refused.rpc.ping(), ConnectionClosedError);
      await refused.close();
    } finally {
      await busy.dispose();
      await locked.dispose();
    }
  });
});

describe("real daemon: framing, pipelining, timeouts", { skip: unavailable ?? false }, () => {
  it("works when every byte arrives as its own chunk", async () => {
    const proxy = await new ChunkProxy(daemon.socketPath, "bytewise").start();
    const c = await XsysClient.connect({ socketPath: proxy.socketPath });
    try {
      const [pong, mem, hello] = await Promise.all([c.rpc.ping(), c.sys.memory(), c.rpc.hello()]);
      assert.equal(pong.pong, true);
      assert.ok(mem.virtual.total_bytes > 0);
      assert.equal(hello.protocol, 1);
      assert.equal(proxy.largestChunkToClient, 1);
      assert.ok(proxy.chunksToClient > 100);
    } finally {
      await c.close();
      await proxy.dispose();
    }
  });

  it("works when many answers arrive in one chunk", async () => {
    const proxy = await new ChunkProxy(daemon.socketPath, "coalesce", 30).start();
    const c = await XsysClient.connect({ socketPath: proxy.socketPath });
    try {
      const n = 300;
      const res = await Promise.all(Array.from({ length: n }, () => c.rpc.ping()));
      assert.equal(res.length, n);
      assert.ok(res.every((r) => r.pong));
      assert.ok(proxy.chunksToClient < n / 5, `${proxy.chunksToClient} chunks for ${n} answers`);
    } finally {
      await c.close();
      await proxy.dispose();
    }
  });

  it("pipelines 1,000 calls on one connection", async () => {
    const calls = Array.from({ length: 1000 }, (_, i) => (i % 2 ? client.rpc.ping() : client.sys.memory()));
    const results = await Promise.all(calls);
    results.forEach((r, i) => {
      if (i % 2) assert.equal((r as { pong: boolean }).pong, true);
      else assert.ok((r as { virtual: { total_bytes: number } }).virtual.total_bytes > 0);
    });
    assert.equal(client.inflightCount, 0);
  });

  it("times out a slow call and keeps the connection usable", async () => {
    // sys.process samples cpu_percent over 0.1 s, so it takes at least 100 ms.
    await assert.rejects(client.sys.process(process.pid, {}, { timeoutMs: 20 }), RequestTimeoutError);
    assert.equal((await client.rpc.ping()).pong, true);
    await new Promise((r) => setTimeout(r, 150)); // the late answer is dropped quietly
    assert.equal(client.inflightCount, 0);
  });

  it("aborts a call with an AbortSignal", async () => {
    const ac = new AbortController();
    const p = client.sys.process(process.pid, {}, { signal: ac.signal });
    setTimeout(() => ac.abort(), 10);
    await assert.rejects(p, (e: unknown) => e instanceof Error && e.name === "AbortError");
    await assert.rejects(client.rpc.ping({ signal: AbortSignal.abort() }), (e: unknown) => e instanceof Error && e.name === "AbortError");
  });
});
