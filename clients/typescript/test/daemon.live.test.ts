/**
 * `sys.subscribe` against a real daemon: the stream is an async iterator of
 * `sys.snapshot` items with flat params (seq, ts, dropped, the sections asked for);
 * breaking out of the loop unsubscribes.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";

import { InvalidParamsError, type SysSnapshotParams, XsysClient } from "../src/index.js";
import { Daemon, daemonUnavailable } from "./helpers/daemon.js";

const unavailable = daemonUnavailable();
if (unavailable) console.log(`# SKIP real-daemon live tests: ${unavailable}`);

let daemon: Daemon | null = null;
let client: XsysClient;
let offered: string[] = [];

if (!unavailable) {
  daemon = await new Daemon({ sys: { min_interval_s: 0.1 } }).start();
  client = await XsysClient.connect({ socketPath: daemon.socketPath });
  offered = (await client.rpc.hello()).methods;
}

after(async () => {
  await client?.close();
  await daemon?.dispose();
});

function skip(): false | string {
  if (unavailable) return unavailable;
  if (offered.includes("sys.subscribe")) return false;
  const msg = "sys.subscribe is not offered by this daemon";
  console.log(`# SKIP ${msg}`);
  return msg;
}

describe("real daemon: sys.subscribe", { skip: skip() }, () => {
  it("yields snapshots with the sections asked for, in order, until break", async () => {
    const seen: SysSnapshotParams[] = [];
    for await (const item of client.sys.subscribe({ interval_s: 0.1, sections: ["cpu", "load"], per_cpu: true })) {
      if (item.type !== "event") continue;
      assert.equal(item.method, "sys.snapshot");
      seen.push(item.params);
      if (seen.length === 3) break;
    }
    assert.deepEqual(seen.map((s) => s.seq), [1, 2, 3]);
    for (const snap of seen) {
      assert.equal(typeof snap.ts, "number");
      assert.equal(snap.dropped, 0);
      assert.ok(snap.cpu && snap.load, "cpu and load present");
      assert.equal(snap.cpu.per_cpu_percent?.length, snap.cpu.count_logical);
      assert.equal(snap.memory, undefined, "memory not asked for");
    }
    assert.ok(seen[2]!.ts > seen[0]!.ts);
    const stats = await client.sys.liveStats();
    assert.equal(stats.subscriptions, 0, "break unsubscribed");
  });

  it("rejects an unknown section with InvalidParamsError", async () => {
    const sub = client.sys.subscribe({ interval_s: 1, sections: ["gpu" as "cpu"] });
    await assert.rejects(async () => {
      for await (const _ of sub) break;
    }, InvalidParamsError);
  });
});
