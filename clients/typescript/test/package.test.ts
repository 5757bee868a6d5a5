/**
 * The package as a consumer sees it: the `exports` map (ESM and CommonJS entry points
 * with their type declarations), `types`, the single runtime dependency.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";
import { describe, it } from "node:test";

import { packageRoot } from "../codegen/gen.js";

const root = packageRoot();
const pkg = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as {
  name: string;
  type: string;
  types: string;
  main: string;
  exports: { ".": { import: { types: string; default: string }; require: { types: string; default: string } } };
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

describe("package", () => {
  it("is @xsys/client with one runtime dependency", () => {
    assert.equal(pkg.name, "@xsys/client");
    assert.deepEqual(Object.keys(pkg.dependencies), ["@msgpack/msgpack"]);
    assert.ok("typescript" in pkg.devDependencies);
    assert.ok(existsSync(path.join(root, "package-lock.json")), "lockfile committed");
  });

  it("points exports and types at built files", () => {
    const dot = pkg.exports["."];
    for (const rel of [pkg.types, pkg.main, dot.import.types, dot.import.default, dot.require.types, dot.require.default]) {
      assert.ok(existsSync(path.join(root, rel)), `${rel} exists (npm run build)`);
    }
  });

  it("loads through the ESM entry by name", async () => {
    const mod = (await import("@xsys/client")) as Record<string, unknown>;
    assert.equal(typeof mod["XsysClient"], "function");
    assert.equal(typeof mod["NotFoundError"], "function");
    assert.equal(typeof mod["defaultSocketPath"], "function");
  });

  it("loads through the CommonJS entry by name", () => {
    const require = createRequire(path.join(root, "package.json"));
    const cjs = require("@xsys/client") as Record<string, unknown>;
    assert.equal(typeof cjs["XsysClient"], "function");
    const out = execFileSync(process.execPath, ["-e", "const x = require('@xsys/client'); const c = new x.XsysClient({socketPath: '/nonexistent'}); console.log(typeof c.sys.memory, x.ErrorCode.NOT_FOUND)"], { cwd: root, encoding: "utf8" });
    assert.equal(out.trim(), "function -32001");
    assert.ok(readFileSync(path.join(root, "dist", "cjs", "package.json"), "utf8").includes('"commonjs"'));
  });
});
