/**
 * A small in-process server speaking the xsys framing, for tests that must control the
 * byte stream exactly (chunking, bad frames, restarts) or exercise behaviour independent
 * of any daemon method. Methods: rpc.ping, rpc.hello, rpc.methods (from the fixture),
 * test.echo, test.fail, test.sleep, test.copy (progress), test.subscribe/unsubscribe,
 * test.write, test.notify.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

import { Decoder, Encoder } from "@msgpack/msgpack";

import { FrameDecoder, frame } from "../../src/framing.js";

export type WriteMode = "normal" | "bytewise" | "coalesce";

interface Conn {
  socket: net.Socket;
  subs: Map<string, NodeJS.Timeout>;
}

type Msg = Record<string, unknown>;

export function fixtureMethods(): unknown {
  const here = path.dirname(fileURLToPath(import.meta.url));
  // compiled to dist/test/test/helpers; the fixture stays in test/fixtures of the package
  const pkg = path.resolve(here, "..", "..", "..", "..");
  return JSON.parse(readFileSync(path.join(pkg, "test", "fixtures", "methods.json"), "utf8")) as unknown;
}

export class FakeServer {
  readonly dir: string;
  readonly socketPath: string;
  writeMode: WriteMode = "normal";
  /** Frames per write in coalesce mode. */
  coalesceCount = 50;
  maxFrame: number;
  requests: Msg[] = [];
  /** Refuse the next connections: answer their first request with this nil-id error, then close. */
  refuseWith: { code: number; message: string } | null = null;
  /** Largest number of bytes seen in one incoming chunk. */
  private server: net.Server | null = null;
  private readonly conns = new Set<Conn>();
  private readonly encoder = new Encoder({ useBigInt64: false, ignoreUndefined: true });
  private readonly decoder = new Decoder({ useBigInt64: false });
  private nextSub = 1;
  private coalesced: Buffer[] = [];
  private coalesceTimer: NodeJS.Timeout | null = null;
  private methods: unknown = fixtureMethods();

  constructor(opts: { maxFrame?: number } = {}) {
    this.dir = mkdtempSync(path.join(os.tmpdir(), "xsys-fake-"));
    // On Windows, Node's net listens on a named pipe when the path is \\.\pipe\<name>.
    this.socketPath =
      process.platform === "win32" ? `\\\\.\\pipe\\${path.basename(this.dir)}` : path.join(this.dir, "fake.sock");
    this.maxFrame = opts.maxFrame ?? 16 * 1024 * 1024;
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  async start(): Promise<this> {
    const server = net.createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.socketPath, () => resolve());
    });
    this.server = server;
    return this;
  }

  /** Stop listening and drop every connection (a daemon crash). */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const c of this.conns) {
      for (const t of c.subs.values()) clearInterval(t);
      c.socket.destroy();
    }
    this.conns.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(this.socketPath, { force: true });
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Write raw bytes to every connection. */
  writeRaw(bytes: Uint8Array): void {
    for (const c of this.conns) c.socket.write(bytes);
  }

  /** Send a message (any map) to every connection. */
  broadcast(msg: Msg): void {
    for (const c of this.conns) this.send(c, msg);
  }

  private accept(socket: net.Socket): void {
    const conn: Conn = { socket, subs: new Map() };
    this.conns.add(conn);
    const frames = new FrameDecoder(this.maxFrame);
    socket.on("data", (chunk: Buffer) => {
      for (const payload of frames.push(chunk)) {
        let msg: unknown;
        try {
          msg = this.decoder.decode(payload);
        } catch {
          this.send(conn, { id: null, error: { code: -32700, message: "payload is not valid msgpack" } });
          continue;
        }
        this.handle(conn, msg as Msg);
      }
      if (frames.error) {
        this.send(conn, { id: null, error: { code: -32600, message: `frame length outside 1..${this.maxFrame}` } });
        this.flushCoalesced();
        socket.end();
      }
    });
    socket.on("error", () => undefined);
    socket.on("close", () => {
      for (const t of conn.subs.values()) clearInterval(t);
      this.conns.delete(conn);
    });
  }

  private send(conn: Conn, msg: Msg): void {
    if (conn.socket.destroyed) return;
    const bytes = frame(this.encoder.encode(msg), 1 << 30);
    switch (this.writeMode) {
      case "normal":
        conn.socket.write(bytes);
        return;
      case "bytewise":
        this.writeBytewise(conn.socket, bytes);
        return;
      case "coalesce":
        this.coalesced.push(bytes);
        if (this.coalesced.length >= this.coalesceCount) this.flushCoalesced(conn.socket);
        else this.coalesceTimer ??= setTimeout(() => this.flushCoalesced(conn.socket), 5);
        return;
    }
  }

  private bytewiseQueue: Promise<void> = Promise.resolve();

  /** One write per byte, each after the previous one drained, so they arrive as separate chunks. */
  private writeBytewise(socket: net.Socket, bytes: Buffer): void {
    this.bytewiseQueue = this.bytewiseQueue.then(async () => {
      for (const b of bytes) {
        if (socket.destroyed) return;
        await new Promise<void>((resolve) => socket.write(Buffer.of(b), () => resolve()));
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    });
  }

  private flushCoalesced(socket?: net.Socket): void {
    if (this.coalesceTimer) clearTimeout(this.coalesceTimer);
    this.coalesceTimer = null;
    const all = this.coalesced;
    this.coalesced = [];
    if (all.length === 0) return;
    const target = socket ?? [...this.conns][0]?.socket;
    target?.write(Buffer.concat(all));
  }

  private reply(conn: Conn, id: unknown, result: unknown): void {
    this.send(conn, { id, result });
  }

  private fail(conn: Conn, id: unknown, code: number, message: string, data?: unknown): void {
    this.send(conn, { id, error: data === undefined ? { code, message } : { code, message, data } });
  }

  private handle(conn: Conn, msg: Msg): void {
    this.requests.push(msg);
    if (this.refuseWith) {
      this.send(conn, { id: null, error: this.refuseWith });
      conn.socket.end();
      return;
    }
    const id = msg["id"];
    const method = msg["method"];
    const params = (msg["params"] ?? {}) as Msg;
    if (typeof id !== "number" || typeof method !== "string") {
      this.fail(conn, null, -32600, "missing or ill-typed id/method");
      return;
    }
    switch (method) {
      case "rpc.ping":
        return this.reply(conn, id, { pong: true, ts: Date.now() / 1000 });
      case "rpc.hello":
        return this.reply(conn, id, {
          protocol: 1,
          server: "xsys-fake",
          version: "0.0.0",
          pid: process.pid,
          methods: ((this.methods as { methods: { name: string }[] }).methods ?? []).map((m) => m.name),
          capabilities: [],
        });
      case "rpc.methods":
        return this.reply(conn, id, this.methods);
      case "test.echo":
        return this.reply(conn, id, params);
      case "test.fail":
        return this.fail(conn, id, Number(params["code"]), String(params["message"] ?? "failed"), params["data"]);
      case "test.sleep":
        setTimeout(() => this.reply(conn, id, { slept: params["ms"] }), Number(params["ms"]));
        return;
      case "test.copy": {
        const steps = Number(params["steps"] ?? 3);
        if (params["progress"] === true) {
          for (let i = 1; i <= steps; i++) {
            this.send(conn, { method: "test.progress", params: { request: id, done: i, total: steps, unit: "files" } });
          }
        }
        return this.reply(conn, id, { copied: steps });
      }
      case "test.write": {
        const data = params["data"];
        return this.reply(conn, id, { size: data instanceof Uint8Array ? data.byteLength : -1, first: data instanceof Uint8Array ? data[0] : null });
      }
      case "test.notify":
        // A notification that belongs to no subscription, then the answer.
        this.send(conn, { method: "test.announce", params: { text: params["text"] ?? "" } });
        return this.reply(conn, id, {});
      case "test.subscribe": {
        const sid = `s${this.nextSub++}`;
        const interval = Number(params["interval_ms"] ?? 10);
        const overflowEvery = Number(params["count"] ?? 0);
        const burst = Number(params["burst"] ?? 0);
        let seq = 0;
        this.reply(conn, id, { subscription: sid });
        // Events right behind the answer, in the same tick (same chunk, often).
        for (let i = 0; i < burst; i++) this.send(conn, { method: "test.tick", params: { subscription: sid, seq: seq++ } });
        const timer = setInterval(() => {
          if (overflowEvery > 0 && seq > 0 && seq % overflowEvery === 0) {
            this.send(conn, { method: "test.overflow", params: { subscription: sid, dropped: 7 } });
          }
          this.send(conn, { method: "test.tick", params: { subscription: sid, seq: seq++ } });
        }, interval);
        conn.subs.set(sid, timer);
        return;
      }
      case "test.unsubscribe": {
        const sid = String(params["subscription"]);
        const timer = conn.subs.get(sid);
        if (!timer) return this.fail(conn, id, -32001, `no subscription ${sid}`, { subscription: sid });
        clearInterval(timer);
        conn.subs.delete(sid);
        return this.reply(conn, id, { removed: sid });
      }
      default:
        return this.fail(conn, id, -32601, `unknown method '${method}'`, { method });
    }
  }

  /** Live subscriptions across connections. */
  get subscriptionCount(): number {
    let n = 0;
    for (const c of this.conns) n += c.subs.size;
    return n;
  }
}
