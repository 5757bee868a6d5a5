/**
 * Error classes.
 *
 * `XsysError` and its subclasses are errors *answered by the daemon*: they carry the
 * protocol's `code`, `message` and `data` (see docs/protocol.md, "Error codes"). Catch at the
 * level you care about: `instanceof NotFoundError`, or `instanceof XsysError` for any.
 *
 * `XsysClientError` and its subclasses are raised *by this client* without a server
 * answer: the connection went away (`ConnectionClosedError`), a call timed out
 * (`RequestTimeoutError`), or the byte stream broke the framing rules (`FrameError`).
 * Like the Python client's `ConnectionClosed`, they are `XsysError`s too, with `code` 0
 * (not a wire code), so `instanceof XsysError` catches everything xsys raises.
 * An aborted call rejects with its `AbortSignal`'s `reason`, as Node's own APIs do.
 */

/** The protocol's error codes, by name. */
export const ErrorCode = {
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL_ERROR: -32603,
  NOT_FOUND: -32001,
  PERMISSION_DENIED: -32002,
  ALREADY_EXISTS: -32003,
  TOO_LARGE: -32004,
  OVERLOADED: -32005,
  UNAUTHORIZED: -32006,
  CONFLICT: -32007,
} as const;

export type ErrorCodeName = keyof typeof ErrorCode;

/** The `error` member of an error response, as it travels on the wire. */
export interface WireError {
  code: number;
  message: string;
  data?: unknown;
}

/** An error answered by the daemon. `code` is one of {@link ErrorCode} (or a newer one). */
export class XsysError extends Error {
  readonly code: number;
  readonly data: unknown;

  constructor(code: number, message: string, data?: unknown, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.data = data ?? null;
  }

  toJSON(): WireError {
    return { code: this.code, message: this.message, data: this.data };
  }
}

/** -32700: the payload was not msgpack. */
export class ParseError extends XsysError {
  constructor(message: string, data?: unknown) {
    super(ErrorCode.PARSE_ERROR, message, data);
  }
}
/** -32600: not a map, missing/ill-typed `id`/`method`, bad frame length. */
export class InvalidRequestError extends XsysError {
  constructor(message: string, data?: unknown) {
    super(ErrorCode.INVALID_REQUEST, message, data);
  }
}
/** -32601: unknown method. */
export class MethodNotFoundError extends XsysError {
  constructor(message: string, data?: unknown) {
    super(ErrorCode.METHOD_NOT_FOUND, message, data);
  }
}
/** -32602: a parameter is missing, of the wrong type or out of range; `data` names it. */
export class InvalidParamsError extends XsysError {
  constructor(message: string, data?: unknown) {
    super(ErrorCode.INVALID_PARAMS, message, data);
  }
}
/** -32603: a bug in the daemon (it logged a traceback and keeps serving). */
export class InternalError extends XsysError {
  constructor(message: string, data?: unknown) {
    super(ErrorCode.INTERNAL_ERROR, message, data);
  }
}
/** -32001: path, pid, subscription or check does not exist. */
export class NotFoundError extends XsysError {
  constructor(message: string, data?: unknown) {
    super(ErrorCode.NOT_FOUND, message, data);
  }
}
/** -32002: the OS refused, or the path is outside the configured fs roots. */
export class PermissionDeniedError extends XsysError {
  constructor(message: string, data?: unknown) {
    super(ErrorCode.PERMISSION_DENIED, message, data);
  }
}
/** -32003: the target exists and overwrite was not asked for. */
export class AlreadyExistsError extends XsysError {
  constructor(message: string, data?: unknown) {
    super(ErrorCode.ALREADY_EXISTS, message, data);
  }
}
/** -32004: a result or input above a configured limit (also raised locally for frames above `maxFrame`). */
export class TooLargeError extends XsysError {
  constructor(message: string, data?: unknown) {
    super(ErrorCode.TOO_LARGE, message, data);
  }
}
/** -32005: the server is at a capacity limit; retry later. */
export class OverloadedError extends XsysError {
  constructor(message: string, data?: unknown) {
    super(ErrorCode.OVERLOADED, message, data);
  }
}
/** -32006: the peer's uid/gid is not allowed. */
export class UnauthorizedError extends XsysError {
  constructor(message: string, data?: unknown) {
    super(ErrorCode.UNAUTHORIZED, message, data);
  }
}
/**
 * -32006, raised by this client before sending anything: the socket file, or the process
 * behind it, belongs to a uid the client does not trust as the daemon's (root and the
 * client's own uid, or root and `expectedUid` / `$XSYS_SERVER_UID`). Another local user may
 * be impersonating the daemon. A subclass of `UnauthorizedError`, like the Python client's
 * `UntrustedServer`. `data`: `{socket, uid, expectedUids, check}` where `check` is
 * `"socket_owner"` (before connecting) or `"socket_replaced"` (the path changed while connecting).
 */
export class UntrustedServerError extends UnauthorizedError {}

/** -32007: a precondition failed (directory not empty, expected hash mismatch, ...). */
export class ConflictError extends XsysError {
  constructor(message: string, data?: unknown) {
    super(ErrorCode.CONFLICT, message, data);
  }
}

type XsysErrorClass = new (message: string, data?: unknown) => XsysError;

const BY_CODE: ReadonlyMap<number, XsysErrorClass> = new Map<number, XsysErrorClass>([
  [ErrorCode.PARSE_ERROR, ParseError],
  [ErrorCode.INVALID_REQUEST, InvalidRequestError],
  [ErrorCode.METHOD_NOT_FOUND, MethodNotFoundError],
  [ErrorCode.INVALID_PARAMS, InvalidParamsError],
  [ErrorCode.INTERNAL_ERROR, InternalError],
  [ErrorCode.NOT_FOUND, NotFoundError],
  [ErrorCode.PERMISSION_DENIED, PermissionDeniedError],
  [ErrorCode.ALREADY_EXISTS, AlreadyExistsError],
  [ErrorCode.TOO_LARGE, TooLargeError],
  [ErrorCode.OVERLOADED, OverloadedError],
  [ErrorCode.UNAUTHORIZED, UnauthorizedError],
  [ErrorCode.CONFLICT, ConflictError],
]);

/** The error class for a protocol code (`XsysError` itself for codes this client does not know). */
export function errorClassFor(code: number): XsysErrorClass | undefined {
  return BY_CODE.get(code);
}

/** Turn the `error` member of a response into the matching `XsysError` subclass. */
export function errorFromWire(raw: unknown): XsysError {
  if (typeof raw !== "object" || raw === null) {
    return new InvalidRequestError("malformed error response", { error: raw });
  }
  const rec = raw as Record<string, unknown>;
  const code = typeof rec["code"] === "number" ? rec["code"] : ErrorCode.INTERNAL_ERROR;
  const message = typeof rec["message"] === "string" ? rec["message"] : `error ${code}`;
  const data = rec["data"];
  const cls = BY_CODE.get(code);
  return cls ? new cls(message, data) : new XsysError(code, message, data);
}

/** `code` of the errors raised by the client itself (not a wire code). */
export const CLIENT_ERROR_CODE = 0;

/** Base class of errors raised by this client without an answer from the daemon (`code` 0). */
export class XsysClientError extends XsysError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(CLIENT_ERROR_CODE, message, undefined, options);
  }
}

/** The connection closed (or could not be opened) before the call was answered. */
export class ConnectionClosedError extends XsysClientError {}

/** The call was not answered within its `timeoutMs`. */
export class RequestTimeoutError extends XsysClientError {
  readonly method: string;
  readonly timeoutMs: number;
  constructor(method: string, timeoutMs: number) {
    super(`${method} timed out after ${timeoutMs} ms`);
    this.method = method;
    this.timeoutMs = timeoutMs;
  }
}

/** The byte stream broke the framing rules (length 0, above max_frame, or an undecodable payload). */
export class FrameError extends XsysClientError {}
