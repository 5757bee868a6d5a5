/**
 * The metrics helpers (Counter, Gauge, Histogram) against a real daemon: the values the
 * daemon holds after each update (metrics.list and the helpers' answers), the daemon's
 * errors as typed rejections, and the label checks done before anything is sent.
 * Skipped, with the reason, when no daemon can be started here.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { ConflictError, Counter, Gauge, Histogram, InvalidParamsError, XsysClient } from "../src/index.js";
import { Daemon, daemonUnavailable } from "./helpers/daemon.js";

const unavailable = daemonUnavailable();
if (unavailable) console.log(`# SKIP metrics helper tests: ${unavailable}`);

let daemon: Daemon;
let client: XsysClient;

before(async () => {
  if (unavailable) return;
  daemon = await new Daemon().start();
  client = await XsysClient.connect({ socketPath: daemon.socketPath });
});

after(async () => {
  if (unavailable) return;
  await client.close();
  await daemon.stop();
});

describe("metrics helpers", { skip: unavailable ?? false }, () => {
  it("Counter counts per label set and refuses going down", async () => {
    const jobs = new Counter(client, "ts_jobs_total", { help: "Jobs.", labelNames: ["queue"] });
    assert.equal(await jobs.labels({ queue: "a" }).inc(), 1);
    assert.equal(await jobs.labels({ queue: "a" }).inc(2), 3);
    assert.equal(await jobs.labels({ queue: "b" }).inc(), 1);
    await assert.rejects(jobs.labels({ queue: "a" }).inc(-1), InvalidParamsError);
    await assert.rejects(jobs.inc(), /labelNames/);
    assert.throws(() => jobs.labels({ other: "x" }), /labels must be/);
    const listed = (await client.metrics.list()).metrics.find((m) => m.name === "ts_jobs_total");
    assert.deepEqual(
      { type: listed?.type, help: listed?.help, labels: listed?.labels, series: listed?.series },
      { type: "counter", help: "Jobs.", labels: ["queue"], series: 2 },
    );
  });

  it("Gauge sets, adds and subtracts", async () => {
    const temp = new Gauge(client, "ts_temperature_celsius", { unit: "celsius", labels: { room: "x" } });
    assert.equal(await temp.set(20), 20);
    assert.equal(await temp.inc(), 21);
    assert.equal(await temp.dec(3), 18);
    // a counter ts_temperature_celsius_total would expose ts_temperature_celsius too
    await assert.rejects(new Counter(client, "ts_temperature_celsius_total").inc(), ConflictError);
    await assert.rejects(new Histogram(client, "ts_temperature_celsius", { labels: { room: "x" } }).observe(1), ConflictError);
  });

  it("Histogram.time observes the seconds of sync and async work, also on a throw", async () => {
    const lat = new Histogram(client, "ts_latency_seconds", { buckets: [0.5, 10] });
    assert.equal(await lat.time(() => 7), 7);
    assert.equal(await lat.time(async () => "done"), "done");
    await assert.rejects(lat.time(() => { throw new Error("boom"); }), /boom/);
    const out = await lat.observe(3);
    assert.equal(out.count, 4);
    assert.ok(out.sum >= 3 && out.sum < 3.5, `sum ${out.sum}`);
    const listed = (await client.metrics.list()).metrics.find((m) => m.name === "ts_latency_seconds");
    assert.deepEqual(listed?.buckets, [0.5, 10]);
  });
});
