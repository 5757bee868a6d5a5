/**
 * Runs every example of README.md (extracted and type-checked by `npm run build:readme`)
 * against a real daemon, as a separate Node process importing the package by its name.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";

import { packageRoot } from "../codegen/gen.js";
import { Daemon, daemonUnavailable } from "./helpers/daemon.js";

const run = promisify(execFile);
const root = packageRoot();
const outDir = path.join(root, "dist", "readme");

interface Example {
  index: number;
  lang: "ts" | "js";
  line: number;
  code: string;
}

function countBlocks(): number {
  return (readFileSync(path.join(root, "README.md"), "utf8").match(/^```(ts|js)\n/gm) ?? []).length;
}

const examples: Example[] = existsSync(path.join(outDir, "examples.json"))
  ? (JSON.parse(readFileSync(path.join(outDir, "examples.json"), "utf8")) as Example[])
  : [];

const unavailable = daemonUnavailable();
if (unavailable) console.log(`# SKIP README examples: ${unavailable}`);

let daemon: Daemon;

before(async () => {
  if (unavailable) return;
  daemon = await new Daemon({
    fs: { roots: [os.tmpdir()] },
    monitor: { refresh: 0.2, memory: { warning: 0.01, critical: null, duration: 0 }, reboot: { enabled: false } },
  }).start();
});

after(async () => {
  await daemon?.dispose();
});

describe("README examples", () => {
  it("were extracted from the current README (npm run build:readme)", () => {
    assert.ok(examples.length > 0, "no extracted examples: run npm run build:readme");
    assert.equal(examples.length, countBlocks(), "stale extraction: run npm run build:readme");
  });

  for (const ex of examples) {
    const file = path.join(outDir, `example${String(ex.index).padStart(2, "0")}.${ex.lang === "ts" ? "js" : "cjs"}`);
    it(`example ${ex.index} (README.md line ${ex.line}, ${ex.lang}) runs`, { skip: unavailable ?? false }, async () => {
      const env: NodeJS.ProcessEnv = { ...process.env, XSYS_SOCKET: daemon.socketPath };
      const { stdout, stderr } = await run(process.execPath, [file], { cwd: root, env, timeout: 20_000 }).catch((err: { stdout?: string; stderr?: string; message: string }) => {
        assert.fail(`example ${ex.index} failed: ${err.message}\n${err.stdout ?? ""}\n${err.stderr ?? ""}`);
      });
      assert.ok(stdout.trim().length > 0, `example ${ex.index} printed nothing (stderr: ${stderr})`);
    });
  }
});
