/**
 * File names that are not valid UTF-8 travel as msgpack bin (Uint8Array) in the same field
 * where a string would be: decoding keeps them as bytes, path parameters accept them, and
 * the real daemon round-trips such a name through fs.list and fs.stat.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import * as path from "node:path";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";

import { type Entry, type FsPath, XsysClient, isBinaryPath, pathText } from "../src/index.js";
import { Daemon, daemonUnavailable } from "./helpers/daemon.js";
import { FakeServer } from "./helpers/fakeServer.js";

/** "caf\xe9.txt": Latin-1, so not valid UTF-8. */
const LATIN1_NAME = Uint8Array.from([0x63, 0x61, 0x66, 0xe9, 0x2e, 0x74, 0x78, 0x74]);

describe("bin paths through the fake server", () => {
  let server: FakeServer;
  let client: XsysClient;
  beforeEach(async () => {
    server = await new FakeServer().start();
    client = new XsysClient({ socketPath: server.socketPath });
  });
  afterEach(async () => {
    await client.close();
    await server.dispose();
  });

  it("sends a Uint8Array path as bin and decodes a bin path field as Uint8Array", async () => {
    const sent = Uint8Array.from([0x2f, 0x74, 0x6d, 0x70, 0x2f, ...LATIN1_NAME]);
    const echoed = (await client.call("test.echo", { path: sent, paths: ["/a", sent], name: "plain" })) as Record<string, unknown>;
    // the fake server decoded bin as Uint8Array, so the request carried bin, not str
    const received = server.requests.at(-1)?.["params"] as Record<string, unknown>;
    assert.ok(received["path"] instanceof Uint8Array);
    const back = echoed["path"];
    assert.ok(back instanceof Uint8Array, `got ${typeof back}`);
    assert.deepEqual([...back], [...sent]);
    const paths = echoed["paths"] as FsPath[];
    assert.equal(paths[0], "/a");
    assert.ok(isBinaryPath(paths[1] as FsPath));
    assert.equal(echoed["name"], "plain");
  });

  it("pathText decodes bytes for display, lossily", () => {
    assert.equal(pathText("plain"), "plain");
    assert.equal(pathText(LATIN1_NAME), "caf\ufffd.txt");
    assert.equal(pathText(new TextEncoder().encode("café")), "café");
  });
});

const unavailable = daemonUnavailable();

describe("bin paths through a real daemon", { skip: unavailable ?? false }, () => {
  let daemon: Daemon;
  let client: XsysClient;
  before(async () => {
    daemon = await new Daemon().start();
    client = await XsysClient.connect({ socketPath: daemon.socketPath });
  });
  after(async () => {
    await client?.close();
    await daemon?.dispose();
  });

  it("lists a non-UTF-8 name as bytes and stats it by those bytes", async () => {
    const rootBytes = new TextEncoder().encode(daemon.fsRoot + path.sep);
    const full = Buffer.concat([rootBytes, LATIN1_NAME]);
    writeFileSync(full, "x");
    const listing = await client.fs.list(daemon.fsRoot);
    const entry = listing.entries.find((e: Entry) => isBinaryPath(e.name));
    assert.ok(entry, `no bin name in ${JSON.stringify(listing.entries.map((e) => pathText(e.name)))}`);
    assert.deepEqual([...(entry.name as Uint8Array)], [...LATIN1_NAME]);
    assert.ok(entry.path instanceof Uint8Array);
    const st = await client.fs.stat(entry.path);
    assert.equal(st.size, 1);
    assert.deepEqual([...(st.path as Uint8Array)], [...full]);
  });
});
