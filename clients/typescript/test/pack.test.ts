/**
 * The published package as a stranger gets it: `npm pack` makes the tarball, a fresh Node
 * project outside this tree installs it (`npm install <tarball>`; its one dependency from
 * the registry or npm's cache), and a script there imports it by name (ESM and CommonJS)
 * and talks to a real daemon.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import { packageRoot } from "../codegen/gen.js";
import { Daemon, daemonUnavailable } from "./helpers/daemon.js";

const unavailable = daemonUnavailable();
const npm = process.platform === "win32" ? "npm.cmd" : "npm";

describe("npm pack: a fresh project installs and uses the package", { skip: unavailable ?? false }, () => {
  let daemon: Daemon;
  let project: string;
  let packed: string;

  before(async () => {
    daemon = await new Daemon().start();
    packed = mkdtempSync(path.join(os.tmpdir(), "xsys-pack-"));
    execFileSync(npm, ["pack", "--silent", "--pack-destination", packed], { cwd: packageRoot(), encoding: "utf8" });
    const tarball = readdirSync(packed).find((f) => f.endsWith(".tgz"));
    assert.ok(tarball, "npm pack wrote a tarball");
    project = mkdtempSync(path.join(os.tmpdir(), "xsys-consumer-"));
    writeFileSync(path.join(project, "package.json"), JSON.stringify({ name: "consumer", version: "1.0.0", private: true }));
    try {
      execFileSync(npm, ["install", "--no-audit", "--no-fund", "--prefer-offline", "--silent", path.join(packed, tarball)], {
        cwd: project,
        encoding: "utf8",
        timeout: 120_000,
      });
    } catch (err) {
      throw new Error(`npm install of the packed tarball failed (registry or cache needed for @msgpack/msgpack): ${String(err)}`);
    }
  });

  after(async () => {
    await daemon?.dispose();
    for (const dir of [project, packed]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("imports by name (ESM) and calls the daemon", () => {
    writeFileSync(
      path.join(project, "esm.mjs"),
      `import { XsysClient } from "@xsys/client";
const c = new XsysClient({ socketPath: process.argv[2] });
const mem = await c.sys.memory();
const pong = await c.rpc.ping();
console.log(JSON.stringify({ total: mem.virtual.total_bytes, pong: pong.pong }));
await c.close();`,
    );
    const out = execFileSync(process.execPath, ["esm.mjs", daemon.socketPath], { cwd: project, encoding: "utf8" });
    const got = JSON.parse(out) as { total: number; pong: boolean };
    assert.ok(got.total > 0);
    assert.equal(got.pong, true);
  });

  it("requires by name (CommonJS) and calls the daemon", () => {
    writeFileSync(
      path.join(project, "cjs.cjs"),
      `const { XsysClient } = require("@xsys/client");
(async () => {
  const c = new XsysClient({ socketPath: process.argv[2] });
  const info = await c.sys.info();
  console.log(info.hostname.length > 0);
  await c.close();
})();`,
    );
    const out = execFileSync(process.execPath, ["cjs.cjs", daemon.socketPath], { cwd: project, encoding: "utf8" });
    assert.equal(out.trim(), "true");
  });

  it("ships only the built files and the README", () => {
    const listing = execFileSync(npm, ["pack", "--dry-run", "--json"], { cwd: packageRoot(), encoding: "utf8" });
    const [entry] = JSON.parse(listing) as Array<{ files: Array<{ path: string }> }>;
    const files = entry!.files.map((f) => f.path);
    assert.ok(files.includes("package.json") && files.includes("README.md"));
    assert.ok(files.every((f) => f.startsWith("dist/") || f === "package.json" || f === "README.md" || f === "LICENSE"), files.join(", "));
    assert.ok(!files.some((f) => f.includes("/test/") || f.startsWith("src/")));
  });
});
