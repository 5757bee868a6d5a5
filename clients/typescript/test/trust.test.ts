/**
 * The client refuses a socket owned by a uid it does not trust, before sending a byte
 * (issue 8, socket squatting). The attacker is a real second user made with `useradd`
 * (skipped, with the reason, when not root or useradd is missing), running its own server.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";

import { ErrorCode, UnauthorizedError, UntrustedServerError, XsysClient, trustedServerUids } from "../src/index.js";
import { rawCall } from "../codegen/gen.js";

describe("trustedServerUids", () => {
  const me = process.geteuid?.() ?? -1;
  it("is root and the own uid by default, root and the configured one otherwise", () => {
    assert.deepEqual([...(trustedServerUids(undefined, {}) ?? [])].sort(), [...new Set([0, me])].sort());
    assert.deepEqual([...(trustedServerUids(4242, {}) ?? [])], [0, 4242]);
    assert.deepEqual([...(trustedServerUids(undefined, { XSYS_SERVER_UID: "4243" }) ?? [])], [0, 4243]);
    assert.deepEqual([...(trustedServerUids(4242, { XSYS_SERVER_UID: "4243" }) ?? [])], [0, 4242]);
    assert.deepEqual([...(trustedServerUids(undefined, { XSYS_SERVER_UID: "root" }) ?? [])], [0]);
    assert.throws(() => trustedServerUids(undefined, { XSYS_SERVER_UID: "no-such-user-xsys" }), /XSYS_SERVER_UID/);
  });

  it("UntrustedServerError is an UnauthorizedError with code -32006", () => {
    const err = new UntrustedServerError("x", {});
    assert.ok(err instanceof UnauthorizedError);
    assert.equal(err.code, ErrorCode.UNAUTHORIZED);
    assert.equal(err.name, "UntrustedServerError");
  });
});

function whyNoSecondUser(): string | null {
  if (process.platform === "win32" || process.geteuid?.() !== 0) return "needs root to create a second local user (useradd)";
  try {
    execFileSync("sh", ["-c", "command -v useradd && command -v userdel"], { stdio: "ignore" });
  } catch {
    return "useradd/userdel not installed";
  }
  return null;
}

// The attacker's server: reports every connection and the bytes it sent, one line each.
const ATTACKER_SERVER = `
const net = require("node:net");
const server = net.createServer((s) => {
  let total = 0;
  s.on("data", (d) => { total += d.length; });
  s.on("close", () => process.stdout.write("connection " + total + "\\n"));
  s.on("error", () => {});
});
server.listen(process.argv[1], () => process.stdout.write("listening\\n"));
`;

const skip = whyNoSecondUser();

describe("an attacker's socket", { skip: skip ?? false }, () => {
  const name = `xsys-t${Math.random().toString(16).slice(2, 12)}`;
  let uid = -1;
  let gid = -1;
  let base = "";
  let socketPath = "";
  let attacker: ChildProcess;
  let lines: AsyncIterator<string>;

  before(async () => {
    execFileSync("useradd", ["--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", name]);
    uid = Number(execFileSync("id", ["-u", name], { encoding: "utf8" }).trim());
    gid = Number(execFileSync("id", ["-g", name], { encoding: "utf8" }).trim());
    base = mkdtempSync(path.join(os.tmpdir(), "xsys-s-"));
    chmodSync(base, 0o711);
    const squat = path.join(base, "squat"); // as if the attacker pre-created the default directory
    mkdirSync(squat);
    chownSync(squat, uid, gid);
    chmodSync(squat, 0o777);
    socketPath = path.join(squat, "xsys.sock");
    attacker = spawn(process.execPath, ["-e", ATTACKER_SERVER, socketPath], { uid, gid, cwd: "/", stdio: ["ignore", "pipe", "inherit"] });
    lines = createInterface({ input: attacker.stdout! })[Symbol.asyncIterator]();
    assert.equal((await lines.next()).value, "listening");
  });

  after(() => {
    attacker?.kill("SIGKILL");
    rmSync(base, { recursive: true, force: true });
    try {
      execFileSync("userdel", [name], { stdio: "ignore" });
    } catch {
      // already gone
    }
  });

  /** Connect once more ourselves (7 bytes) and return the report lines up to its own. */
  async function untilBarrier(): Promise<string[]> {
    await new Promise<void>((resolve, reject) => {
      const s = net.createConnection({ path: socketPath }, () => s.end("barrier", () => resolve()));
      s.on("error", reject);
    });
    const seen: string[] = [];
    for (;;) {
      const next = await lines.next();
      assert.ok(!next.done, "attacker server ended");
      seen.push(next.value);
      if (next.value === "connection 7") return seen;
    }
  }

  it("is refused with UntrustedServerError and receives nothing", async () => {
    assert.equal(statSync(socketPath).uid, uid);
    const client = new XsysClient({ socketPath });
    await assert.rejects(client.fs.write({ path: "/tmp/token", data: new TextEncoder().encode("secret") }), (err: unknown) => {
      assert.ok(err instanceof UntrustedServerError, String(err));
      const data = err.data as Record<string, unknown>;
      assert.equal(data["uid"], uid);
      assert.equal(data["check"], "socket_owner");
      assert.match(err.message, /impersonating/);
      return true;
    });
    await client.close();
    // the codegen's raw calls go through the same transport
    await assert.rejects(rawCall(socketPath, "rpc.methods"), UntrustedServerError);
    assert.deepEqual(await untilBarrier(), ["connection 7"], "no connection reached the attacker");
  });

  it("is accepted when its uid is the expected one", async () => {
    const client = new XsysClient({ socketPath, expectedUid: uid, timeoutMs: 300 });
    await assert.rejects(client.call("rpc.ping"), /timed out/); // it never answers, but it got the request
    await client.close();
    const seen = await untilBarrier();
    assert.equal(seen.length, 2, seen.join(","));
    assert.notEqual(seen[0], "connection 0");
  });
});
