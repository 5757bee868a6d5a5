/**
 * Streaming against a real daemon: `client.readStream` (a Node Readable over fs.chunk
 * notifications with fs.ack flow control) and `client.writeStream` (a Node Writable of
 * fs.write_chunk requests bound to one fs.write), including a consumer that pauses.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { after, before, describe, it } from "node:test";

import { PermissionDeniedError, XsysClient } from "../src/index.js";
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

const sha = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

describe("real daemon: fs streaming", { skip: unavailable ?? false }, () => {
  it("readStream delivers the file in order, with a window smaller than the file", async () => {
    const file = path.join(daemon.fsRoot, "stream-src.bin");
    const payload = randomBytes(5 * 1024 * 1024 + 7);
    writeFileSync(file, payload);
    const parts: Buffer[] = [];
    for await (const chunk of client.readStream(file, { windowBytes: 1024 * 1024 })) {
      parts.push(Buffer.from(chunk as Uint8Array));
    }
    assert.equal(sha(Buffer.concat(parts)), sha(payload));
    const range: Buffer[] = [];
    for await (const chunk of client.readStream(file, { offset: 10, length: 100 })) range.push(Buffer.from(chunk as Uint8Array));
    assert.deepEqual(Buffer.concat(range), payload.subarray(10, 110));
  });

  it("a paused consumer holds the daemon back, then gets everything", async () => {
    const file = path.join(daemon.fsRoot, "stream-pause.bin");
    const payload = randomBytes(6 * 1024 * 1024);
    writeFileSync(file, payload);
    const stream = client.readStream(file, { windowBytes: 1024 * 1024 });
    const first = await new Promise<Uint8Array>((resolve) => stream.once("data", resolve));
    stream.pause();
    // meanwhile the connection still serves other calls
    assert.equal(((await client.call("rpc.ping")) as { pong: boolean }).pong, true);
    assert.ok(stream.readableLength <= 2 * 1024 * 1024, `buffered ${stream.readableLength}`);
    const parts: Buffer[] = [Buffer.from(first)];
    stream.resume();
    for await (const chunk of stream) parts.push(Buffer.from(chunk as Uint8Array));
    assert.equal(sha(Buffer.concat(parts)), sha(payload));
  });

  it("readStream errors with the daemon's typed error", async () => {
    await assert.rejects(async () => {
      for await (const _ of client.readStream("/etc/passwd")) void _;
    }, PermissionDeniedError);
  });

  it("writeStream uploads in chunks and commits atomically on end", async () => {
    const file = path.join(daemon.fsRoot, "stream-dst.bin");
    const payload = randomBytes(3 * 1024 * 1024 + 11);
    const upload = client.writeStream(file, { maxInflight: 3 });
    const pieces = Array.from({ length: Math.ceil(payload.length / 500_000) }, (_, i) =>
      payload.subarray(i * 500_000, (i + 1) * 500_000));
    await pipeline(Readable.from(pieces), upload);
    assert.equal(upload.result?.["written_bytes"], payload.length);
    assert.equal(sha(readFileSync(file)), sha(payload));
  });
});
