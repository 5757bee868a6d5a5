/**
 * The fs, watch and monitor namespaces against a real daemon, through the generated
 * wrappers. A namespace the daemon does not offer (rpc.hello's methods) is skipped with
 * a message saying so.
 */
import assert from "node:assert/strict";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";

import {
  AlreadyExistsError,
  ConflictError,
  InvalidParamsError,
  NotFoundError,
  PermissionDeniedError,
  type Progress,
  type SubscriptionItem,
  TooLargeError,
  type WatchEventParams,
  XsysClient,
  pathText,
} from "../src/index.js";
import { Daemon, daemonUnavailable, pythonPath } from "./helpers/daemon.js";

const unavailable = daemonUnavailable();
if (unavailable) console.log(`# SKIP real-daemon namespace tests: ${unavailable}`);

let daemon: Daemon | null = null;
let client: XsysClient;
let offered: string[] = [];

if (!unavailable) {
  daemon = await new Daemon({
    fs: { max_read_bytes: 65_536 },
    monitor: {
      refresh: 0.2,
      repeat_interval: 0.3,
      memory: { warning: 0.01, critical: null, duration: 0 },
      reboot: { enabled: false },
    },
  }).start();
  client = await XsysClient.connect({ socketPath: daemon.socketPath });
  offered = (await client.rpc.hello()).methods;
}

after(async () => {
  await client?.close();
  await daemon?.dispose();
});

function skipUnless(ns: string): false | string {
  if (unavailable) return unavailable;
  if (offered.some((m) => m.startsWith(`${ns}.`))) return false;
  const msg = `${ns}.* is not offered by this daemon (rpc.hello lists no ${ns} method)`;
  console.log(`# SKIP ${msg}`);
  return msg;
}

/** `promise`, or a rejection after `ms` (the timer is cleared either way). */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function nextEvent<P>(it: AsyncIterator<SubscriptionItem<P>>, ms = 5000): Promise<SubscriptionItem<P>> {
  const r = await within(it.next(), ms, "subscription item");
  if (r.done) throw new Error("subscription ended");
  return r.value;
}

describe("real daemon: fs", { skip: skipUnless("fs") }, () => {
  const root = (): string => (daemon as Daemon).fsRoot;

  it("writes, reads (bin and text), stats and lists", async () => {
    const file = path.join(root(), "a.bin");
    const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
    const w = await client.fs.write({ path: file, data: bytes, mode: "create" });
    assert.equal(w.written_bytes, 256);
    assert.equal(w.created, true);
    const r = await client.fs.read(file);
    assert.ok(r.data instanceof Uint8Array);
    assert.deepEqual(r.data, bytes);
    assert.equal(r.eof, true);
    const part = await client.fs.read(file, { offset: 10, length: 5 });
    assert.deepEqual([...(part.data as Uint8Array)], [10, 11, 12, 13, 14]);

    await client.fs.write({ path: path.join(root(), "t.txt"), data: "héllo\nworld\n" });
    const text = await client.fs.read(path.join(root(), "t.txt"), { encoding: "utf-8" });
    assert.equal(text.data, "héllo\nworld\n");
    assert.deepEqual((await client.fs.tail(path.join(root(), "t.txt"), { lines: 1 })).lines, ["world"]);

    const st = await client.fs.stat(file);
    assert.equal(st.type, "file");
    assert.equal(st.size, 256);
    assert.deepEqual(await client.fs.exists(file), { path: file, exists: true, type: "file" });
    assert.equal((await client.fs.exists(path.join(root(), "nope"))).exists, false);
    const ls = await client.fs.list(root());
    assert.deepEqual(
      ls.entries.map((e) => e.name),
      ["a.bin", "t.txt"],
    );
  });

  it("mkdir, copy with progress, move, hash, du, chmod, find, remove", async () => {
    const dir = path.join(root(), "tree", "sub");
    assert.equal((await client.fs.mkdir(dir, { parents: true })).created, true);
    const big = path.join(dir, "big.bin");
    writeFileSync(big, Buffer.alloc(3 * 1024 * 1024, 7));
    const seen: Progress[] = [];
    const copy = await client.fs.copy({ src: path.join(root(), "tree"), dst: path.join(root(), "tree2") }, { onProgress: (p) => seen.push(p) });
    assert.equal(copy.files, 1);
    assert.equal(copy.copied_bytes, 3 * 1024 * 1024);
    assert.ok(seen.length >= 1, "at least one fs.progress");
    assert.equal(seen.at(-1)?.method, "fs.progress");
    assert.equal(seen.at(-1)?.unit, "bytes");
    const moved = await client.fs.move({ src: path.join(root(), "tree2"), dst: path.join(root(), "tree3") });
    assert.equal(moved.renamed, true);
    const h = await client.fs.hash(path.join(root(), "tree3", "sub", "big.bin"), { algorithm: "sha256" });
    assert.match(h.digest, /^[0-9a-f]{64}$/);
    const du = await client.fs.du(path.join(root(), "tree3"));
    assert.equal(du.size, 3 * 1024 * 1024);
    assert.equal((await client.fs.chmod({ path: big, mode: 0o600 })).mode, 0o600);
    const found = await client.fs.find(root(), { name: "*.bin", type: "file" });
    assert.ok(found.entries.some((e) => pathText(e.name).endsWith("big.bin")));
    const rm = await client.fs.remove(path.join(root(), "tree3"), { recursive: true });
    assert.equal(rm.removed, true);
  });

  it("maps fs failures to AlreadyExists, Conflict, NotFound, PermissionDenied, TooLarge, InvalidParams", async () => {
    const file = path.join(root(), "exists.txt");
    writeFileSync(file, "x");
    await assert.rejects(client.fs.write({ path: file, data: "y", mode: "create" }), AlreadyExistsError);
    const full = path.join(root(), "full");
    mkdirSync(full, { recursive: true });
    writeFileSync(path.join(full, "f"), "");
    await assert.rejects(client.fs.remove(full), ConflictError);
    await assert.rejects(client.fs.write({ path: file, data: "z", expected_sha256: "0".repeat(64) }), ConflictError);
    await assert.rejects(client.fs.stat(path.join(root(), "missing")), (e: unknown) => {
      assert.ok(e instanceof NotFoundError);
      assert.equal((e.data as { errno?: string }).errno, "ENOENT");
      return true;
    });
    await assert.rejects(client.fs.read("/etc/hostname"), PermissionDeniedError);
    const big = path.join(root(), "big.txt");
    writeFileSync(big, Buffer.alloc(100_000));
    await assert.rejects(client.fs.read(big), TooLargeError);
    assert.equal((await client.fs.read(big, { length: 1000 })).length, 1000);
    await assert.rejects(client.fs.chmod({ path: file, mode: "rwx-nonsense" }), InvalidParamsError);
    rmSync(full, { recursive: true });
  });
});

describe("real daemon: watch", { skip: skipUnless("watch") }, () => {
  const root = (): string => (daemon as Daemon).fsRoot;

  it("for await over watch.add; break unsubscribes with watch.remove", async () => {
    const dir = path.join(root(), "w1");
    mkdirSync(dir);
    const sub = client.watch.add({ paths: [dir] });
    await sub.ready;
    const target = path.join(dir, "new.txt");
    setTimeout(() => writeFileSync(target, "hello"), 50);
    const seen: string[] = [];
    for await (const item of sub) {
      if (item.type !== "event") continue;
      for (const ev of item.params.events) seen.push(`${ev.type}:${path.basename(pathText(ev.path))}`);
      if (seen.some((s) => s.endsWith(":new.txt"))) break;
    }
    assert.ok(seen.includes("created:new.txt"), seen.join(","));
    assert.equal(sub.state, "closed");
    const list = await client.watch.list();
    assert.equal(list.subscriptions.filter((s) => s.own).length, 0, "removed on the daemon");
  });

  it("as an event emitter, positional paths", async () => {
    const dir = path.join(root(), "w2");
    mkdirSync(dir);
    const sub = client.watch.add([dir], { recursive: true });
    const events: WatchEventParams[] = [];
    sub.on("event", (item) => events.push(item.params));
    await sub.ready;
    mkdirSync(path.join(dir, "inner"));
    writeFileSync(path.join(dir, "inner", "deep.txt"), "x");
    const deadline = Date.now() + 5000;
    while (!events.some((e) => e.events.some((f) => pathText(f.path).endsWith("deep.txt"))) && Date.now() < deadline) await delay(20);
    assert.ok(events.some((e) => e.events.some((f) => pathText(f.path).endsWith("deep.txt") && f.is_dir === false)));
    assert.ok(events.every((e) => e.subscription === sub.id));
    await sub.unsubscribe();
    await assert.rejects(client.watch.remove(sub.id as string), NotFoundError);
  });

  it("ends the iteration when the watched directory is deleted (final event)", async () => {
    const dir = path.join(root(), "w3");
    mkdirSync(dir);
    const sub = client.watch.add({ paths: [dir] });
    await sub.ready;
    setTimeout(() => rmSync(dir, { recursive: true }), 50);
    const it = sub[Symbol.asyncIterator]();
    let last: SubscriptionItem<WatchEventParams> | null = null;
    for (;;) {
      const r = await within(it.next(), 5000, "the subscription did not end");
      if (r.done) break;
      last = r.value;
    }
    assert.equal(last?.type === "event" && last.params.final, true);
    assert.equal(sub.state, "closed");
  });

  it("refuses paths outside the roots and missing paths", async () => {
    await assert.rejects(client.watch.add({ paths: ["/etc"] }).ready, PermissionDeniedError);
    await assert.rejects(client.watch.add({ paths: [path.join(root(), "none")] }).ready, NotFoundError);
  });
});

describe("real daemon: monitor", { skip: skipUnless("monitor") }, () => {
  it("status, checks, history", async () => {
    const status = await client.monitor.status();
    assert.equal(status.enabled, true);
    assert.equal(status.refresh_s, 0.2);
    assert.ok(Array.isArray(status.checks));
    const checks = await client.monitor.checks();
    assert.ok(checks.checks.some((c) => c.check === "memory"));
    const hist = await client.monitor.history({ limit: 5 });
    assert.ok(Array.isArray(hist.alerts));
  });

  it("monitor.subscribe streams alerts; return() unsubscribes", async () => {
    const sub = client.monitor.subscribe({ check: "memory" });
    const it = sub[Symbol.asyncIterator]();
    const item = await nextEvent(it, 8000);
    assert.equal(item.type, "event");
    if (item.type === "event") {
      assert.equal(item.method, "monitor.alert");
      assert.equal(item.params.alert.check, "memory");
      assert.equal(item.params.subscription, sub.id);
    }
    await it.return?.();
    assert.equal(sub.state, "closed");
    await assert.rejects(client.monitor.unsubscribe(sub.id as string), NotFoundError);
  });

  it("silence, silences, unsilence, test", async () => {
    const s = await client.monitor.silence({ check: "cpu", duration_s: 60, comment: "ts client test" });
    assert.equal(typeof s.id, "string");
    assert.equal(s.check, "cpu");
    assert.ok((await client.monitor.silences()).silences.some((x) => x.id === s.id));
    assert.deepEqual((await client.monitor.unsilence({ silence: s.id })).removed, [s.id]);
    await assert.rejects(client.monitor.unsilence({ silence: s.id }), NotFoundError);
    await assert.rejects(client.monitor.silence({}), InvalidParamsError);
    const t = await client.monitor.test({ provider: "console" });
    assert.equal(t.alert.test, true);
    assert.equal(t.results[0]?.provider, "console");
  });
});


describe("real daemon: proc", { skip: skipUnless("proc") }, () => {
  it("starts a group, streams its events, reads its logs and stops it", async () => {
    const sub = client.proc.subscribe({ name: "ts-*" });
    const it = sub[Symbol.asyncIterator]();
    const started = await client.proc.start({
      name: "ts-workers",
      command: [pythonPath(), "-c", "import os, time; print('worker', os.environ['XSYS_WORKER_ID'], flush=True); time.sleep(60)"],
      instances: 2,
      restart: "always",
      stop_timeout_s: 5,
    });
    assert.equal(started.state, "running");
    assert.equal(started.instances.length, 2);
    const first = await nextEvent(it);
    assert.equal(first.type, "event");
    if (first.type === "event") {
      assert.equal(first.method, "proc.event");
      assert.equal(first.params.event, "started");
      assert.equal(first.params.name, "ts-workers");
    }
    let lines = 0;
    for (let i = 0; i < 200 && lines < 2; i++) {
      lines = (await client.proc.logs({ name: "ts-workers" })).lines.length;
      if (lines < 2) await delay(25);
    }
    assert.equal(lines, 2);
    const status = await client.proc.status("ts-workers");
    assert.ok(status.instances.every((p) => typeof p.pid === "number"));
    assert.ok((await client.proc.list()).groups.some((g) => g.name === "ts-workers"));
    const stopped = await client.proc.stop("ts-workers");
    assert.equal(stopped.state, "stopped");
    assert.ok(stopped.instances.every((p) => p.pid === null));
    assert.equal((await client.proc.status("ts-workers")).state, "stopped");
    await client.proc.stop({ name: "ts-workers", remove: true });
    await assert.rejects(client.proc.status("ts-workers"), NotFoundError);
    await it.return?.();
    assert.equal(sub.state, "closed");
  });

  it("reports an exec failure with the OS error", async () => {
    await assert.rejects(
      client.proc.start({ name: "ts-ghost", command: ["/nonexistent/program"] }),
      (err: unknown) => err instanceof NotFoundError && (err.data as { errno?: string }).errno === "ENOENT",
    );
    assert.equal((await client.proc.status("ts-ghost")).state, "failed");
    await client.proc.stop({ name: "ts-ghost", remove: true });
  });
});
