import assert from "node:assert/strict";
import { describe, it } from "node:test";

import * as api from "../src/index.js";

const TABLE: [number, string][] = [
  [-32700, "ParseError"],
  [-32600, "InvalidRequestError"],
  [-32601, "MethodNotFoundError"],
  [-32602, "InvalidParamsError"],
  [-32603, "InternalError"],
  [-32001, "NotFoundError"],
  [-32002, "PermissionDeniedError"],
  [-32003, "AlreadyExistsError"],
  [-32004, "TooLargeError"],
  [-32005, "OverloadedError"],
  [-32006, "UnauthorizedError"],
  [-32007, "ConflictError"],
];

describe("errors", () => {
  it("maps every protocol code to its class", () => {
    for (const [code, name] of TABLE) {
      const cls = (api as unknown as Record<string, new (m: string, d?: unknown) => api.XsysError>)[name];
      assert.ok(cls, `${name} exported`);
      const err = api.errorFromWire({ code, message: "boom", data: { path: "/x" } });
      assert.ok(err instanceof cls, `${code} -> ${name}`);
      assert.ok(err instanceof api.XsysError);
      assert.ok(err instanceof Error);
      assert.equal(err.code, code);
      assert.equal(err.name, name);
      assert.equal(err.message, "boom");
      assert.deepEqual(err.data, { path: "/x" });
      assert.equal(api.errorClassFor(code), cls);
      assert.equal(new cls("direct").code, code);
    }
    assert.equal(Object.keys(api.ErrorCode).length, TABLE.length);
  });

  it("keeps unknown codes as a plain XsysError and tolerates malformed errors", () => {
    const err = api.errorFromWire({ code: -32099, message: "new" });
    assert.equal(err.constructor, api.XsysError);
    assert.equal(err.code, -32099);
    assert.equal(err.data, null);
    assert.ok(api.errorFromWire("nope") instanceof api.XsysError);
    assert.deepEqual(api.errorFromWire({ code: -32001, message: "m" }).toJSON(), { code: -32001, message: "m", data: null });
  });

  it("gives client-side errors code 0, under XsysError like the Python client", () => {
    const cause = new Error("EPIPE");
    const closed = new api.ConnectionClosedError("gone", { cause });
    assert.ok(closed instanceof api.XsysClientError);
    assert.ok(closed instanceof api.XsysError);
    assert.equal(closed.code, api.CLIENT_ERROR_CODE);
    assert.equal(closed.code, 0);
    assert.equal(closed.cause, cause);
    assert.equal(closed.name, "ConnectionClosedError");
    assert.ok(!(closed instanceof api.NotFoundError));
    const t = new api.RequestTimeoutError("sys.info", 5);
    assert.equal(t.timeoutMs, 5);
    assert.match(t.message, /sys\.info timed out after 5 ms/);
  });
});
