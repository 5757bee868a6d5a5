/**
 * XsysClient against the in-process fake server (test/helpers/fakeServer.ts): behaviour
 * that needs exact control of the byte stream or of the server's life.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { afterEach, beforeEach, describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";

import {
  ConnectionClosedError,
  FrameError,
  InvalidParamsError,
  MethodNotFoundError,
  NotFoundError,
  OverloadedError,
  RequestTimeoutError,
  UnauthorizedError,
  TooLargeError,
  XsysClient,
  XsysError,
  type Progress,
  type SubscriptionItem,
} from "../src/index.js";
import { FakeServer } from "./helpers/fakeServer.js";

let server: FakeServer;
let clients: XsysClient[] = [];

function client(opts: ConstructorParameters<typeof XsysClient>[0] = {}): XsysClient {
  const c = new XsysClient({ socketPath: server.socketPath, ...opts });
  clients.push(c);
  return c;
}

async function waitFor(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await delay(5);
  }
}

beforeEach(async () => {
  server = await new FakeServer().start();
  clients = [];
});

afterEach(async () => {
  for (const c of clients) await c.close();
  await server.dispose();
});

describe("calls", () => {
  it("connects, pings and closes", async () => {
    const c = await client().connect();
    assert.equal(c.state, "open");
    const pong = await c.call("rpc.ping");
    assert.equal(pong.pong, true);
    assert.equal(typeof pong.ts, "number");
    await c.close();
    assert.equal(c.state, "closed");
    await assert.rejects(c.call("rpc.ping"), ConnectionClosedError);
  });

  it("connects lazily on the first call", async () => {
    const c = client();
    assert.equal(c.state, "idle");
    assert.deepEqual(await c.call("test.echo", { a: 1 }), { a: 1 });
    assert.equal(c.state, "open");
  });

  it("sends requests exactly as docs/protocol.md says", async () => {
    const c = await client().connect();
    await c.call("rpc.ping");
    await c.call("test.echo", { s: "é", n: 1.5, b: new Uint8Array([1, 2]), l: [1, "a"], skip: undefined });
    const [ping, echo] = server.requests;
    assert.deepEqual(Object.keys(ping as object), ["id", "method"]);
    assert.equal(typeof (ping as { id: unknown }).id, "number");
    assert.deepEqual((echo as { params: unknown }).params, { s: "é", n: 1.5, b: new Uint8Array([1, 2]), l: [1, "a"] });
  });

  it("round-trips binary data as msgpack bin", async () => {
    const c = await client().connect();
    const data = new Uint8Array(100_000).map((_, i) => i & 0xff);
    const res = (await c.call("test.write", { data })) as { size: number; first: number };
    assert.deepEqual(res, { size: 100_000, first: 0 });
    const echo = (await c.call("test.echo", { data: Uint8Array.of(9, 8) })) as { data: Uint8Array };
    assert.ok(echo.data instanceof Uint8Array);
    assert.deepEqual([...echo.data], [9, 8]);
  });

  it("pipelines 1,000 calls and matches out-of-order answers by id", async () => {
    const c = await client().connect();
    const calls = Array.from({ length: 1000 }, (_, i) => c.call("test.echo", { i }));
    const order: string[] = [];
    const slow = c.call("test.sleep", { ms: 30 }).then(() => order.push("slow"));
    const fast = c.call("rpc.ping").then(() => order.push("fast"));
    const results = (await Promise.all(calls)) as { i: number }[];
    results.forEach((r, i) => assert.equal(r.i, i));
    await Promise.all([slow, fast]);
    assert.deepEqual(order, ["fast", "slow"], "the later request answered first");
    const ids = server.requests.map((r) => r["id"] as number);
    assert.equal(new Set(ids).size, ids.length, "ids unique among in-flight requests");
  });

  it("rejects with the class of every protocol error code", async () => {
    const c = await client().connect();
    const table: [number, string][] = [
      [-32700, "ParseError"], [-32600, "InvalidRequestError"], [-32601, "MethodNotFoundError"],
      [-32602, "InvalidParamsError"], [-32603, "InternalError"], [-32001, "NotFoundError"],
      [-32002, "PermissionDeniedError"], [-32003, "AlreadyExistsError"], [-32004, "TooLargeError"],
      [-32005, "OverloadedError"], [-32006, "UnauthorizedError"], [-32007, "ConflictError"],
    ];
    for (const [code, name] of table) {
      await assert.rejects(c.call("test.fail", { code, message: name, data: { code } }), (e: unknown) => {
        assert.ok(e instanceof XsysError);
        assert.equal(e.name, name);
        assert.equal(e.code, code);
        assert.deepEqual(e.data, { code });
        return true;
      });
    }
  });

  it("maps error answers to XsysError subclasses", async () => {
    const c = await client().connect();
    await assert.rejects(c.call("nope.nothing"), MethodNotFoundError);
    await assert.rejects(c.call("test.fail", { code: -32001, message: "gone", data: { path: "/x" } }), (err: unknown) => {
      assert.ok(err instanceof NotFoundError);
      assert.equal(err.code, -32001);
      assert.equal(err.message, "gone");
      assert.deepEqual(err.data, { path: "/x" });
      return true;
    });
    await assert.rejects(c.call("test.fail", { code: -32602 }), InvalidParamsError);
    await assert.rejects(c.call("test.fail", { code: -31000 }), (e: unknown) => e instanceof XsysError && e.code === -31000);
  });
});

describe("framing over the socket", () => {
  it("reads answers and notifications that arrive one byte per chunk", async () => {
    server.writeMode = "bytewise";
    const c = await client().connect();
    const seen: string[] = [];
    c.on("notification", (m) => seen.push(m));
    const [a, b] = await Promise.all([c.call("test.echo", { x: "α".repeat(20) }), c.call("test.notify", { text: "hi" })]);
    assert.deepEqual(a, { x: "α".repeat(20) });
    assert.deepEqual(b, {});
    assert.deepEqual(seen, ["test.announce"]);
  });

  it("reads many answers packed into one chunk", async () => {
    server.writeMode = "coalesce";
    server.coalesceCount = 200;
    const c = await client().connect();
    const res = (await Promise.all(Array.from({ length: 400 }, (_, i) => c.call("test.echo", { i })))) as { i: number }[];
    res.forEach((r, i) => assert.equal(r.i, i));
  });

  it("batches the requests of one tick into one write", async () => {
    const c = await client().connect();
    let writes = 0;
    const conn = (c as unknown as { conn: { socket: { write: (...a: unknown[]) => boolean } } }).conn;
    const orig = conn.socket.write.bind(conn.socket);
    conn.socket.write = (...a: unknown[]) => {
      writes += 1;
      return orig(...a);
    };
    await Promise.all(Array.from({ length: 100 }, () => c.call("rpc.ping")));
    assert.equal(writes, 1);
  });

  it("rejects a request above maxFrame locally, without sending it", async () => {
    const c = await client({ maxFrame: 1024 }).connect();
    await assert.rejects(c.call("test.write", { data: new Uint8Array(2000) }), TooLargeError);
    assert.equal(server.requests.length, 0);
    assert.deepEqual(await c.call("test.echo", { ok: 1 }), { ok: 1 }, "connection still usable");
  });

  it("closes on an incoming frame above maxFrame and rejects in-flight calls", async () => {
    const c = await client({ maxFrame: 1024 }).connect();
    const pending = c.call("test.sleep", { ms: 200 });
    await c.call("rpc.ping");
    const disconnected = once(c, "disconnected");
    server.writeRaw(Buffer.from([0, 0, 8, 0])); // announces 2048 bytes
    await assert.rejects(pending, ConnectionClosedError);
    const [err] = (await disconnected) as [Error | undefined];
    assert.ok(err instanceof FrameError);
    assert.equal(c.state, "disconnected");
    await assert.rejects(c.call("rpc.ping"), ConnectionClosedError);
  });

  it("reports a nil-id error and an undecodable frame as protocolError, and keeps going", async () => {
    const c = await client().connect();
    const errors: Error[] = [];
    c.on("protocolError", (e) => errors.push(e));
    server.broadcast({ id: null, error: { code: -32700, message: "payload is not valid msgpack" } });
    server.writeRaw(Buffer.from([0, 0, 0, 1, 0xc1])); // 0xc1 is never valid msgpack
    assert.deepEqual(await c.call("test.echo", { a: 1 }), { a: 1 });
    assert.equal(errors.length, 2);
    assert.equal((errors[0] as XsysError).code, -32700);
    assert.ok(errors[1] instanceof FrameError);
  });
});

describe("timeouts and cancellation", () => {
  it("rejects with RequestTimeoutError and ignores the late answer", async () => {
    const c = await client().connect();
    const t0 = Date.now();
    await assert.rejects(c.call("test.sleep", { ms: 200 }, { timeoutMs: 30 }), (e: unknown) => {
      assert.ok(e instanceof RequestTimeoutError);
      assert.equal(e.timeoutMs, 30);
      return true;
    });
    assert.ok(Date.now() - t0 < 150);
    assert.equal(c.inflightCount, 0);
    await delay(220);
    assert.deepEqual(await c.call("test.echo", { after: true }), { after: true });
  });

  it("applies the client's default timeout", async () => {
    const c = await client({ timeoutMs: 20 }).connect();
    await assert.rejects(c.call("test.sleep", { ms: 100 }), RequestTimeoutError);
    await c.call("test.sleep", { ms: 100 }, { timeoutMs: 0 });
  });

  it("rejects with the AbortSignal's reason", async () => {
    const c = await client().connect();
    const ac = new AbortController();
    const p = c.call("test.sleep", { ms: 200 }, { signal: ac.signal });
    setTimeout(() => ac.abort(), 10);
    await assert.rejects(p, (e: unknown) => e instanceof Error && e.name === "AbortError");
    assert.equal(c.inflightCount, 0);
    const reason = new Error("mine");
    await assert.rejects(c.call("rpc.ping", undefined, { signal: AbortSignal.abort(reason) }), (e) => e === reason);
    await assert.rejects(c.call("test.sleep", { ms: 200 }, { signal: AbortSignal.timeout(10) }), (e: unknown) => e instanceof Error && e.name === "TimeoutError");
  });
});

describe("progress", () => {
  it("delivers <ns>.progress notifications to onProgress before the answer", async () => {
    const c = await client().connect();
    const seen: Progress[] = [];
    const res = await c.call("test.copy", { steps: 4 }, { onProgress: (p) => seen.push(p) });
    assert.deepEqual(res, { copied: 4 });
    assert.equal(seen.length, 4);
    assert.deepEqual(seen[3], { method: "test.progress", done: 4, total: 4, unit: "files" });
    const last = server.requests.at(-1) as { params: Record<string, unknown> };
    assert.equal(last.params["progress"], true);
  });

  it("does not ask for progress without onProgress", async () => {
    const c = await client().connect();
    await c.call("test.copy", { steps: 2 });
    const last = server.requests.at(-1) as { params: Record<string, unknown> };
    assert.equal(last.params["progress"], undefined);
  });
});

describe("subscriptions", () => {
  it("iterates notifications and unsubscribes on break", async () => {
    const c = await client().connect();
    const items: SubscriptionItem[] = [];
    for await (const item of c.subscribe("test.subscribe", "test.unsubscribe", { interval_ms: 2 })) {
      items.push(item);
      if (items.length === 5) break;
    }
    assert.deepEqual(
      items.map((i) => (i.type === "event" ? i.params["seq"] : -1)),
      [0, 1, 2, 3, 4],
    );
    assert.equal(items[0]?.type === "event" && items[0].method, "test.tick");
    await waitFor(() => server.subscriptionCount === 0);
    const unsub = server.requests.find((r) => r["method"] === "test.unsubscribe") as { params: { subscription: string } };
    assert.match(unsub.params.subscription, /^s\d+$/);
  });

  it("routes the notifications that arrive in the same chunk as the answer", async () => {
    server.writeMode = "coalesce";
    const c = await client().connect();
    const sub = c.subscribe("test.subscribe", "test.unsubscribe", { interval_ms: 1000, burst: 20 });
    const seqs: unknown[] = [];
    for await (const item of sub) {
      if (item.type === "event") seqs.push(item.params["seq"]);
      if (seqs.length === 20) break;
    }
    assert.deepEqual(seqs, Array.from({ length: 20 }, (_, i) => i));
  });

  it("works as an event emitter, with ready and unsubscribe()", async () => {
    const c = await client().connect();
    const sub = c.subscribe("test.subscribe", "test.unsubscribe", { interval_ms: 2 });
    const got: number[] = [];
    sub.on("event", (ev) => got.push(ev.params["seq"] as number));
    const id = await sub.ready;
    assert.equal(sub.id, id);
    assert.equal(sub.state, "active");
    await waitFor(() => got.length >= 3);
    const closed = once(sub, "close");
    await sub.unsubscribe();
    await closed;
    assert.equal(sub.state, "closed");
    assert.equal(server.subscriptionCount, 0);
    const n = got.length;
    await delay(20);
    assert.equal(got.length, n, "no events after unsubscribe");
  });

  it("turns <ns>.overflow into a gap marker", async () => {
    const c = await client().connect();
    const sub = c.subscribe("test.subscribe", "test.unsubscribe", { interval_ms: 1, count: 3 });
    const gaps: unknown[] = [];
    sub.on("gap", (g) => gaps.push(g));
    const items: SubscriptionItem[] = [];
    for await (const item of sub) {
      items.push(item);
      if (item.type === "gap") break;
    }
    assert.deepEqual(items.at(-1), { type: "gap", reason: "overflow", method: "test.overflow", dropped: 7 });
    assert.equal(gaps.length, 1);
  });

  it("bounds the buffer of an idle consumer and reports what it dropped", async () => {
    const c = await client().connect();
    const sub = c.subscribe("test.subscribe", "test.unsubscribe", { interval_ms: 1000, burst: 30 }, { bufferSize: 10 });
    await sub.ready;
    await delay(30);
    const items: SubscriptionItem[] = [];
    for await (const item of sub) {
      items.push(item);
      if (items.length === 11) break;
    }
    assert.deepEqual(items[0], { type: "gap", reason: "overflow", method: null, dropped: 20 });
    assert.deepEqual(
      items.slice(1).map((i) => (i.type === "event" ? i.params["seq"] : null)),
      [20, 21, 22, 23, 24, 25, 26, 27, 28, 29],
    );
  });

  it("surfaces a refused subscription through ready, the iterator and 'error'", async () => {
    const c = await client().connect();
    const sub = c.subscribe("test.nope", "test.unsubscribe", {});
    const errs: Error[] = [];
    sub.on("error", (e) => errs.push(e));
    await assert.rejects(sub.ready, MethodNotFoundError);
    await assert.rejects(async () => {
      for await (const _ of sub) assert.fail("no items");
    }, MethodNotFoundError);
    assert.equal(errs.length, 1);
  });

  it("does not start with an already-aborted signal", async () => {
    const c = await client().connect();
    const sub = c.subscribe("test.subscribe", "test.unsubscribe", {}, { signal: AbortSignal.abort() });
    assert.equal(sub.state, "closed");
    await assert.rejects(sub.ready, ConnectionClosedError);
    for await (const _ of sub) assert.fail("no items");
    assert.equal(server.requests.length, 0);
  });

  it("unsubscribes when its AbortSignal fires", async () => {
    const c = await client().connect();
    const ac = new AbortController();
    const sub = c.subscribe("test.subscribe", "test.unsubscribe", { interval_ms: 2 }, { signal: ac.signal });
    await sub.ready;
    ac.abort();
    await once(sub, "close");
    await waitFor(() => server.subscriptionCount === 0);
  });

  it("ends subscriptions with ConnectionClosedError when the daemon goes away (no reconnect)", async () => {
    const c = await client().connect();
    const sub = c.subscribe("test.subscribe", "test.unsubscribe", { interval_ms: 5 });
    await sub.ready;
    const iterating = (async () => {
      for await (const _ of sub) {
        /* drain */
      }
    })();
    await server.stop();
    await assert.rejects(iterating, ConnectionClosedError);
  });

  it("finishes iterators quietly on close()", async () => {
    const c = await client().connect();
    const sub = c.subscribe("test.subscribe", "test.unsubscribe", { interval_ms: 5 });
    await sub.ready;
    const done = (async () => {
      let n = 0;
      for await (const _ of sub) n++;
      return n;
    })();
    await delay(20);
    await c.close();
    assert.ok((await done) >= 1);
  });
});

describe("connection loss and reconnect", () => {
  it("rejects in-flight calls with ConnectionClosedError", async () => {
    const c = await client().connect();
    const p = c.call("test.sleep", { ms: 1000 });
    await delay(10);
    await server.stop();
    await assert.rejects(p, ConnectionClosedError);
  });

  it("rejects in-flight calls with the daemon's refusal (unauthorized, overloaded)", async () => {
    server.refuseWith = { code: -32006, message: "uid 0 is not allowed" };
    const c = await client({ reconnect: { initialDelayMs: 5 } }).connect();
    const refusal = once(c, "disconnected");
    await assert.rejects(c.call("rpc.ping"), UnauthorizedError);
    assert.ok((await refusal)[0] instanceof UnauthorizedError);
    assert.equal(c.state, "disconnected", "unauthorized is final: no reconnect");
    server.refuseWith = { code: -32005, message: "connection limit 1 reached" };
    const c2 = await client().connect();
    await assert.rejects(c2.call("rpc.ping"), OverloadedError);
  });

  it("fails to connect with ConnectionClosedError when nothing listens", async () => {
    await server.stop();
    await assert.rejects(client().connect(), (e: unknown) => e instanceof ConnectionClosedError && /not running/.test(e.message));
    await assert.rejects(client().call("rpc.ping"), ConnectionClosedError);
  });

  it("reconnects with backoff, re-subscribes, marks the gap and emits reconnected", async () => {
    const c = await client({ reconnect: { initialDelayMs: 10, maxDelayMs: 40 } }).connect();
    const sub = c.subscribe("test.subscribe", "test.unsubscribe", { interval_ms: 2 });
    const firstId = await sub.ready;
    const items: SubscriptionItem[] = [];
    const consumer = (async () => {
      for await (const item of sub) {
        items.push(item);
        if (item.type === "gap") break;
      }
    })();
    await waitFor(() => items.length >= 2);
    const attempts: number[] = [];
    c.on("reconnecting", (info) => {
      attempts.push(info.delayMs);
    });
    const inflight = c.call("test.sleep", { ms: 1000 });
    await server.stop();
    await assert.rejects(inflight, ConnectionClosedError);
    assert.equal(c.state, "reconnecting");
    // A call made while reconnecting waits for the new connection.
    const queued = c.call("test.echo", { queued: true });
    await delay(120); // a few failed attempts
    const reconnected = once(c, "reconnected");
    await server.start();
    const [info] = (await reconnected) as [{ resubscribed: number; failed: number; attempts: number }];
    assert.equal(info.resubscribed, 1);
    assert.equal(info.failed, 0);
    assert.ok(info.attempts >= 2);
    assert.deepEqual(await queued, { queued: true });
    for (const d of attempts) assert.ok(d >= 5 && d <= 40, `delay ${d} within jitter bounds`);
    await consumer;
    assert.deepEqual(items.at(-1), { type: "gap", reason: "reconnect", method: null, dropped: null });
    assert.notEqual(sub.id, null);
    assert.notEqual(sub.id, firstId);
    // Events flow again on the new subscription.
    const more: SubscriptionItem[] = [];
    for await (const item of sub) {
      more.push(item);
      if (more.length === 3) break;
    }
    assert.ok(more.every((i) => i.type === "event"));
    await waitFor(() => server.subscriptionCount === 0);
  });

  it("lets a call waiting for the reconnect time out", async () => {
    const c = await client({ reconnect: { initialDelayMs: 10, maxDelayMs: 20 } }).connect();
    await server.stop();
    await waitFor(() => c.state === "reconnecting");
    await assert.rejects(c.call("rpc.ping", undefined, { timeoutMs: 30 }), RequestTimeoutError);
  });

  it("gives up after maxAttempts", async () => {
    const c = await client({ reconnect: { initialDelayMs: 5, maxDelayMs: 10, maxAttempts: 3 } }).connect();
    const sub = c.subscribe("test.subscribe", "test.unsubscribe", { interval_ms: 50 });
    await sub.ready;
    const closed = once(c, "close");
    await server.stop();
    await closed;
    assert.equal(c.state, "disconnected");
    assert.equal(sub.state, "closed");
    await assert.rejects(sub.ready.then(() => sub[Symbol.asyncIterator]().next()), ConnectionClosedError);
  });

  it("close() stops reconnecting", async () => {
    const c = await client({ reconnect: { initialDelayMs: 50, maxDelayMs: 50 } }).connect();
    await server.stop();
    await waitFor(() => c.state === "reconnecting");
    await c.close();
    await server.start();
    await delay(80);
    assert.equal(c.state, "closed");
    assert.equal(server.connectionCount, 0);
  });
});
