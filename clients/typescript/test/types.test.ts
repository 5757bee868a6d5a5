/**
 * Compile-time checks of the public types (this file must type-check under the strict
 * tsconfig; `@ts-expect-error` lines must be errors). The function is never run.
 */
import assert from "node:assert/strict";
import { it } from "node:test";

import type { Subscription, SubscriptionItem, WatchEventParams, XsysClient } from "../src/index.js";

export async function typeChecks(c: XsysClient): Promise<void> {
  // typed call(): parameters required when the method has required ones
  await c.call("rpc.ping");
  await c.call("sys.process", { pid: 1 });
  // @ts-expect-error pid is required
  await c.call("sys.process");
  // @ts-expect-error pid is a number
  await c.call("sys.process", { pid: "1" });
  const pong: boolean = (await c.call("rpc.ping")).pong;
  // untyped call() for methods this build does not know
  const anything: unknown = await c.call("future.method", { x: 1 });

  // wrappers: positional and object forms, choices as literal types
  const total: number = (await c.sys.memory()).virtual.total_bytes;
  await c.sys.process(1, {}, { timeoutMs: 10 });
  await c.sys.process({ pid: 1 });
  // @ts-expect-error not one of the choices
  await c.sys.processes({ sort: "size" });
  const data: Uint8Array | string = (await c.fs.read("/tmp/x", { length: 10 })).data;

  // subscriptions are typed by their notification
  const sub: Subscription<WatchEventParams> = c.watch.add({ paths: ["/tmp"] });
  for await (const item of sub) {
    const typed: SubscriptionItem<WatchEventParams> = item;
    if (typed.type === "event") {
      const path: string | Uint8Array | undefined = typed.params.events[0]?.path;
      void path;
    } else {
      const reason: "overflow" | "reconnect" = typed.reason;
      void reason;
    }
    break;
  }
  c.monitor.subscribe({ severity: "critical" }).on("event", (ev) => {
    const severity: "warning" | "critical" = ev.params.alert.severity;
    void severity;
  });
  void pong;
  void anything;
  void total;
  void data;
}

it("public types compile (see the function above)", () => {
  assert.equal(typeof typeChecks, "function");
});
