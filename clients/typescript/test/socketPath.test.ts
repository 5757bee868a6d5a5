import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { XsysClient } from "../src/index.js";
import { WINDOWS_PIPE, defaultSocketPath } from "../src/socketPath.js";
import { FakeServer } from "./helpers/fakeServer.js";

describe("defaultSocketPath (docs/protocol.md, Transport)", () => {
  it("prefers $XSYS_SOCKET", () => {
    assert.equal(
      defaultSocketPath({ env: { XSYS_SOCKET: "/x/y.sock", XDG_RUNTIME_DIR: "/run/user/1" }, platform: "linux", uid: 0 }),
      "/x/y.sock",
    );
    assert.equal(defaultSocketPath({ env: { XSYS_SOCKET: "\\\\.\\pipe\\other" }, platform: "win32" }), "\\\\.\\pipe\\other");
  });
  it("then $XDG_RUNTIME_DIR/xsys/xsys.sock", () => {
    assert.equal(
      defaultSocketPath({ env: { XDG_RUNTIME_DIR: "/run/user/1000" }, platform: "linux", uid: 1000 }),
      "/run/user/1000/xsys/xsys.sock",
    );
  });
  it("then /run/xsys/xsys.sock for root", () => {
    assert.equal(defaultSocketPath({ env: {}, platform: "linux", uid: 0 }), "/run/xsys/xsys.sock");
  });
  it("then /tmp/xsys-$UID/xsys.sock", () => {
    assert.equal(defaultSocketPath({ env: {}, platform: "darwin", uid: 501 }), "/tmp/xsys-501/xsys.sock");
  });
  it("treats empty variables as unset", () => {
    assert.equal(defaultSocketPath({ env: { XSYS_SOCKET: "", XDG_RUNTIME_DIR: "" }, platform: "linux", uid: 7 }), "/tmp/xsys-7/xsys.sock");
  });
  it("uses the named pipe on Windows", () => {
    assert.equal(defaultSocketPath({ env: { XDG_RUNTIME_DIR: "/x" }, platform: "win32" }), WINDOWS_PIPE);
    assert.equal(WINDOWS_PIPE, "\\\\.\\pipe\\xsys");
  });
  it("uses the named pipe on Windows whatever the uid and the Unix variables say", () => {
    for (const uid of [0, 1000, -1]) {
      assert.equal(defaultSocketPath({ env: { XDG_RUNTIME_DIR: "C:\\run" }, platform: "win32", uid }), WINDOWS_PIPE);
    }
    assert.equal(defaultSocketPath({ env: {}, platform: "win32" }), WINDOWS_PIPE);
    // the same name the Python client and the daemon use (xsys/protocol.py DEFAULT_PIPE_NAME)
    assert.equal(WINDOWS_PIPE, String.raw`\\.\pipe\xsys`);
  });
});

describe("named pipe (Windows only; the CI workflow's windows job runs this)", () => {
  it("talks to a server listening on \\\\.\\pipe\\<name>", { skip: process.platform !== "win32" && "named pipes exist only on Windows" }, async () => {
    const server = await new FakeServer().start();
    assert.ok(server.socketPath.startsWith("\\\\.\\pipe\\"));
    const client = new XsysClient({ socketPath: server.socketPath });
    try {
      await client.connect();
      const pong = await client.call("rpc.ping");
      assert.equal(pong.pong, true);
      const answers = await Promise.all(Array.from({ length: 16 }, () => client.call("rpc.ping")));
      assert.equal(answers.length, 16);
    } finally {
      await client.close();
      await server.dispose();
    }
  });
});
