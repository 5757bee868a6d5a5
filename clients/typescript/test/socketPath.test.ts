import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { WINDOWS_PIPE, defaultSocketPath } from "../src/socketPath.js";

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
});
