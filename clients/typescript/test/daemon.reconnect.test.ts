/**
 * Reconnection against a real daemon: the daemon is stopped and started again on the same
 * socket; the client reconnects with backoff, re-establishes its watch and monitor
 * subscriptions, marks the gap in each and emits `reconnected`.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import { ConnectionClosedError, type SubscriptionItem, XsysClient } from "../src/index.js";
import { Daemon, daemonUnavailable } from "./helpers/daemon.js";

const unavailable = daemonUnavailable();
if (unavailable) console.log(`# SKIP real-daemon reconnect tests: ${unavailable}`);

let daemon: Daemon;

before(async () => {
  if (unavailable) return;
  daemon = await new Daemon({
    monitor: {
      refresh: 0.2,
      repeat_interval: 0.3,
      memory: { warning: 0.01, critical: null, duration: 0 },
      reboot: { enabled: false },
    },
  }).start();
});

after(async () => {
  await daemon?.dispose();
});

/** Collect items of `sub` into `into` until `stop(items)` or `ms`. */
function collect<P>(sub: AsyncIterable<SubscriptionItem<P>>, into: SubscriptionItem<P>[], stop: (items: SubscriptionItem<P>[]) => boolean): Promise<void> {
  return (async () => {
    for await (const item of sub) {
      into.push(item);
      if (stop(into)) break;
    }
  })();
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("real daemon: restart with reconnect", { skip: unavailable ?? false }, () => {
  it("reconnects, re-subscribes watch and monitor, marks the gap, emits reconnected", async () => {
    const client = await XsysClient.connect({
      socketPath: daemon.socketPath,
      reconnect: { initialDelayMs: 50, maxDelayMs: 400 },
    });
    try {
      const dir = path.join(daemon.fsRoot, "watched");
      mkdirSync(dir, { recursive: true });
      const watch = client.watch.add({ paths: [dir] });
      const alerts = client.monitor.subscribe({ check: "memory" });
      const firstWatchId = await watch.ready;
      const firstAlertId = await alerts.ready;

      const watchItems: SubscriptionItem[] = [];
      const alertItems: SubscriptionItem[] = [];
      const sawFile = (name: string) => (items: SubscriptionItem[]): boolean =>
        items.some((i) => i.type === "event" && (i.params["events"] as { path: string }[]).some((e) => e.path.endsWith(name)));
      const watching = collect(watch, watchItems, (items) => items.some((i) => i.type === "gap") && sawFile("after.txt")(items));
      const alerting = collect(alerts, alertItems, (items) => {
        const gap = items.findIndex((i) => i.type === "gap");
        return gap >= 0 && items.slice(gap + 1).some((i) => i.type === "event");
      });

      writeFileSync(path.join(dir, "before.txt"), "1");
      await waitFor(() => sawFile("before.txt")(watchItems), 5000, "the first watch event");
      await waitFor(() => alertItems.some((i) => i.type === "event"), 8000, "the first alert");

      const disconnected = once(client, "disconnected");
      // sys.process takes >= 100 ms: still in flight when the daemon goes.
      const inflight = client.sys.process(process.pid).then(
        () => "answered",
        (e: unknown) => e,
      );
      const oldPid = daemon.pid;
      await daemon.stop();
      await disconnected;
      const outcome = await inflight;
      assert.ok(outcome === "answered" || outcome instanceof ConnectionClosedError, String(outcome));
      assert.equal(client.state, "reconnecting");
      const queued = client.rpc.ping(); // waits for the new connection

      const reconnected = once(client, "reconnected");
      await daemon.start();
      const [info] = (await reconnected) as [{ attempts: number; resubscribed: number; failed: number }];
      assert.equal(info.resubscribed, 2);
      assert.equal(info.failed, 0);
      assert.ok(info.attempts >= 1);
      assert.equal((await queued).pong, true);
      assert.notEqual((await client.rpc.hello()).pid, oldPid);
      assert.equal(watch.state, "active");
      assert.notEqual(watch.id, null);
      void firstWatchId;
      void firstAlertId;

      writeFileSync(path.join(dir, "after.txt"), "2");
      await Promise.race([
        Promise.all([watching, alerting]),
        new Promise((_, reject) => setTimeout(() => reject(new Error("no events after the reconnect")), 10_000).unref()),
      ]);
      const gap = watchItems.find((i) => i.type === "gap");
      assert.deepEqual(gap, { type: "gap", reason: "reconnect", method: null, dropped: null });
      assert.ok(alertItems.some((i) => i.type === "gap" && i.reason === "reconnect"));
      // The breaks above unsubscribed on the new daemon.
      await waitFor(() => watch.state === "closed" && alerts.state === "closed", 2000, "unsubscribe");
      const list = await client.watch.list();
      assert.equal(list.subscriptions.filter((s) => s.own).length, 0);
    } finally {
      await client.close();
    }
  });

  it("without reconnect, a restart ends subscriptions with ConnectionClosedError", async () => {
    const client = await XsysClient.connect({ socketPath: daemon.socketPath });
    try {
      const alerts = client.monitor.subscribe();
      await alerts.ready;
      const drained = (async () => {
        for await (const _ of alerts) {
          /* keep reading */
        }
      })().then(
        () => null,
        (e: unknown) => e,
      );
      await daemon.stop();
      assert.ok((await drained) instanceof ConnectionClosedError);
      assert.equal(client.state, "disconnected");
      await daemon.start();
      await assert.rejects(client.rpc.ping(), ConnectionClosedError);
      await client.connect();
      assert.equal((await client.rpc.ping()).pong, true, "connect() again after a loss");
    } finally {
      await client.close();
    }
  });
});
