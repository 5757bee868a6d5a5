/**
 * `XsysClient`: requests and responses matched by id (pipelining), timeouts and
 * AbortSignal, progress callbacks, subscriptions, and opt-in reconnection. It sits on
 * `Connection` (messages) which sits on the transport (bytes).
 */
import { EventEmitter } from "node:events";

import type { CallOptions, Caller, Params, SubscribeOptions } from "./caller.js";
import { Connection } from "./connection.js";
import {
  ConnectionClosedError,
  ErrorCode,
  InvalidRequestError,
  NotFoundError,
  RequestTimeoutError,
  UnauthorizedError,
  type XsysClientError,
  type XsysError,
  errorFromWire,
} from "./errors.js";
import { DEFAULT_MAX_FRAME } from "./framing.js";
import { type MethodMap, type XsysNamespaces, createNamespaces } from "./generated.js";
import { defaultSocketPath } from "./socketPath.js";
import { Subscription, type SubscriptionNotificationParams } from "./subscription.js";
import type { Readable } from "node:stream";
import {
  type ReadStreamOptions,
  type UploadStream,
  type WriteStreamOptions,
  createReadStream,
  createWriteStream,
} from "./streams.js";
import { connectSocket, trustedServerUids } from "./transport.js";

/** Reconnection policy: exponential backoff with jitter between attempts. */
export interface ReconnectOptions {
  /** Delay before the first attempt (default 100 ms). */
  initialDelayMs?: number;
  /** Cap of the delay (default 5000 ms). */
  maxDelayMs?: number;
  /** Give up after this many failed attempts in a row (default: never). */
  maxAttempts?: number;
}

export interface ClientOptions {
  /** Socket path or pipe name (default: `defaultSocketPath()`, i.e. `$XSYS_SOCKET` then the protocol's defaults). */
  socketPath?: string;
  /** Largest frame sent or accepted (default 16 MiB, the daemon's default `max_frame`). */
  maxFrame?: number;
  /** Timeout of each connection attempt (default 5000 ms). */
  connectTimeoutMs?: number;
  /** Default timeout of each call (default 0 = none). */
  timeoutMs?: number;
  /** Reconnect after the connection drops (default off). `true` uses the default policy. */
  reconnect?: boolean | ReconnectOptions;
  /** Default buffer of each subscription, in items (default 10,000). */
  subscriptionBufferSize?: number;
  /**
   * The uid the daemon runs as, when it is neither root nor this process's uid (default:
   * `$XSYS_SERVER_UID`). A socket owned by any other uid is refused with
   * `UntrustedServerError` before anything is sent; see `trustedServerUids`.
   */
  expectedUid?: number;
}

export type ClientState = "idle" | "connecting" | "open" | "reconnecting" | "disconnected" | "closed";

export interface ReconnectingInfo {
  attempt: number;
  delayMs: number;
  error: Error | undefined;
}

export interface ReconnectedInfo {
  /** Attempts it took. */
  attempts: number;
  /** Subscriptions re-established (each received a `reconnect` gap marker). */
  resubscribed: number;
  /** Subscriptions the daemon refused to re-establish (they ended with that error). */
  failed: number;
}

export interface ClientEvents {
  /** The connection opened (first time and after each reconnect). */
  connected: [];
  /** The connection was lost; `error` says why when known. */
  disconnected: [Error | undefined];
  /** A reconnection attempt is scheduled. */
  reconnecting: [ReconnectingInfo];
  /** Reconnected, with subscriptions re-established. Resync state derived from events. */
  reconnected: [ReconnectedInfo];
  /** A notification that belongs to no subscription or request of this client. */
  notification: [string, Params];
  /** The daemon answered an error with a nil id (a frame it could not parse), or sent an undecodable frame. */
  protocolError: [XsysError | XsysClientError];
  /** `close()` finished, or reconnection gave up. */
  close: [];
}

interface Pending {
  method: string;
  params: Params | undefined;
  onResult(result: unknown): void;
  onError(error: Error): void;
  onProgress: CallOptions["onProgress"];
  timer: NodeJS.Timeout | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  /** Request id once sent, 0 while queued. */
  id: number;
  done: boolean;
  /** Called with the request id as it is sent (streams bind their chunks to it). */
  onSent?: (id: number) => void;
}

const MAX_ID = 0xffffffff;

/**
 * Nil-id errors by which the daemon refuses a connection before closing it; calls in
 * flight on it reject with that error rather than a bare ConnectionClosedError.
 */
const REFUSAL_CODES: ReadonlySet<number> = new Set([ErrorCode.OVERLOADED, ErrorCode.UNAUTHORIZED]);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null;
}

function sleep(ms: number): { promise: Promise<void>; cancel(): void } {
  let timer: NodeJS.Timeout | undefined;
  let resolveFn: () => void = () => undefined;
  const promise = new Promise<void>((resolve) => {
    resolveFn = resolve;
    timer = setTimeout(resolve, ms);
  });
  return {
    promise,
    cancel: () => {
      clearTimeout(timer);
      resolveFn();
    },
  };
}

/** `(params, options?)`, with `params` optional when the method has no required parameter. */
export type CallArgs<P> = Record<string, never> extends P
  ? [params?: P, options?: CallOptions]
  : {} extends P
    ? [params?: P, options?: CallOptions]
    : [params: P, options?: CallOptions];

export interface XsysClient extends XsysNamespaces {}

/**
 * A connection to the xsys daemon.
 *
 *     const client = await XsysClient.connect();
 *     const mem = await client.sys.memory();
 *     await client.close();
 */
export class XsysClient extends EventEmitter<ClientEvents> implements Caller {
  readonly socketPath: string;
  readonly maxFrame: number;
  private readonly connectTimeoutMs: number;
  private readonly defaultTimeoutMs: number;
  private readonly reconnectPolicy: Required<ReconnectOptions> | null;
  private readonly subscriptionBufferSize: number;
  private readonly trustedUids: ReadonlySet<number> | null;

  private _state: ClientState = "idle";
  private conn: Connection | null = null;
  private connecting: Promise<this> | null = null;
  private nextId = 1;
  private readonly chunkSinks = new Map<number, (params: Params) => void>();
  private readonly inflight = new Map<number, Pending>();
  private queued: { pending: Pending; method: string; params: Params | undefined }[] = [];
  private readonly subscriptions = new Set<Subscription<never>>();
  private readonly subsById = new Map<string, Subscription<never>>();
  private readonly starting = new Set<Subscription<never>>();
  private reconnectSleep: { cancel(): void } | null = null;
  /** The daemon refused this connection (see REFUSAL_CODES); set until the close. */
  private closingReason: XsysError | null = null;
  private closing: Promise<void> | null = null;

  constructor(options: ClientOptions = {}) {
    super();
    this.socketPath = options.socketPath ?? defaultSocketPath();
    this.maxFrame = options.maxFrame ?? DEFAULT_MAX_FRAME;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 5000;
    this.defaultTimeoutMs = options.timeoutMs ?? 0;
    this.subscriptionBufferSize = options.subscriptionBufferSize ?? 10_000;
    this.trustedUids = trustedServerUids(options.expectedUid);
    const rc = options.reconnect;
    if (rc) {
      const o: ReconnectOptions = rc === true ? {} : rc;
      this.reconnectPolicy = {
        initialDelayMs: o.initialDelayMs ?? 100,
        maxDelayMs: o.maxDelayMs ?? 5000,
        maxAttempts: o.maxAttempts ?? Number.POSITIVE_INFINITY,
      };
    } else {
      this.reconnectPolicy = null;
    }
    Object.assign(this, createNamespaces(this));
  }

  /** Create a client and connect it. */
  static async connect(options: ClientOptions = {}): Promise<XsysClient> {
    return new XsysClient(options).connect();
  }

  get state(): ClientState {
    return this._state;
  }

  /** Is the connection open right now? */
  get connected(): boolean {
    return this._state === "open";
  }

  /** Requests sent and not yet answered. */
  get inflightCount(): number {
    return this.inflight.size;
  }

  /**
   * Open the connection (calls made before this connect lazily). Rejects with
   * `ConnectionClosedError` when nothing listens on the socket and `UntrustedServerError`
   * when the socket belongs to an untrusted uid (see `ClientOptions.expectedUid`).
   */
  connect(): Promise<this> {
    if (this._state === "open") return Promise.resolve(this);
    if (this.connecting) return this.connecting;
    if (this._state === "closed") return Promise.reject(new ConnectionClosedError("client is closed"));
    if (this._state === "reconnecting") {
      return new Promise<this>((resolve, reject) => {
        const onUp = (): void => {
          this.off("close", onDown);
          resolve(this);
        };
        const onDown = (): void => {
          this.off("connected", onUp);
          reject(new ConnectionClosedError("client closed while reconnecting"));
        };
        this.once("connected", onUp);
        this.once("close", onDown);
      });
    }
    this._state = "connecting";
    this.connecting = this.open().then(
      () => {
        this.connecting = null;
        return this;
      },
      (err: unknown) => {
        this.connecting = null;
        if (this._state === "connecting") this._state = "disconnected";
        this.failQueued(err instanceof Error ? err : new ConnectionClosedError(String(err)));
        throw err;
      },
    );
    return this.connecting;
  }

  /**
   * Close the connection. In-flight and queued calls reject with `ConnectionClosedError`,
   * subscriptions end (their iterators finish), reconnection stops. Final.
   */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this._state = "closed";
    this.reconnectSleep?.cancel();
    const err = new ConnectionClosedError("client closed");
    this.failQueued(err);
    this.failInflight(err);
    for (const sub of [...this.subscriptions]) sub._finish();
    this.subscriptions.clear();
    this.subsById.clear();
    const conn = this.conn;
    if (conn?.isOpen) conn.end();
    this.closing = (conn ? conn.closed : Promise.resolve()).then(() => {
      this.emit("close");
    });
    return this.closing;
  }

  /**
   * Call `method` with `params`; resolves with its result, rejects with the
   * `XsysError` subclass of the daemon's error code, `RequestTimeoutError`,
   * `ConnectionClosedError`, `TooLargeError` (request above `maxFrame`) or the signal's reason.
   */
  call<M extends keyof MethodMap>(method: M, ...args: CallArgs<MethodMap[M]["params"]>): Promise<MethodMap[M]["result"]>;
  call<M extends string>(method: M extends keyof MethodMap ? never : M, params?: Params, options?: CallOptions): Promise<unknown>;
  call(method: string, params?: object, options?: CallOptions): Promise<unknown> {
    return new Promise<unknown>((resolve, reject) => {
      this.request(method, params as Params | undefined, options, resolve, reject);
    });
  }

  /**
   * Start a subscription with `method` (answers `{subscription}`), ended with
   * `unsubscribeMethod({subscription})`. The typed wrappers (`client.watch.add(...)`) call this.
   */
  subscribe<P = SubscriptionNotificationParams>(
    method: string,
    unsubscribeMethod: string,
    params?: object,
    options: SubscribeOptions = {},
  ): Subscription<P> {
    const sub = new Subscription<P>(this, method, unsubscribeMethod, { ...params }, {
      bufferSize: options.bufferSize ?? this.subscriptionBufferSize,
      timeoutMs: options.timeoutMs,
    });
    const erased = sub as unknown as Subscription<never>;
    if (this._state === "closed") {
      erased._fail(new ConnectionClosedError("client is closed"));
      return sub;
    }
    this.subscriptions.add(erased);
    sub.once("close", () => {
      this.subscriptions.delete(erased);
      if (sub.id !== null && this.subsById.get(sub.id) === erased) this.subsById.delete(sub.id);
    });
    const signal = options.signal;
    if (signal) {
      const onAbort = (): void => {
        void sub.unsubscribe();
      };
      if (signal.aborted) {
        erased._finish(); // never started
        return sub;
      }
      signal.addEventListener("abort", onAbort, { once: true });
      sub.once("close", () => signal.removeEventListener("abort", onAbort));
    }
    void this.startSubscription(erased);
    return sub;
  }

  /**
   * Send `sub`'s start request. Resolves true once the daemon accepted it, false when it
   * refused (the subscription then ended with that error) or the connection dropped first
   * (with reconnection on, the next reconnect retries it).
   */
  private startSubscription(sub: Subscription<never>): Promise<boolean> {
    this.starting.add(sub);
    return new Promise<boolean>((resolve) => {
      this.request(
        sub.method,
        { ...sub.params },
        { timeoutMs: sub.startTimeoutMs },
        (result) => {
          // Runs synchronously on the answer, before any notification behind it is routed.
          this.starting.delete(sub);
          const id = isRecord(result) ? result["subscription"] : undefined;
          if (typeof id !== "string") {
            sub._fail(new InvalidRequestError(`${sub.method} did not answer a subscription id`, { result }));
            resolve(false);
            return;
          }
          if (sub.state === "closed") {
            // Unsubscribed while the (re)start was in flight: stop it on the daemon too.
            this.call(sub.unsubscribeMethod, { subscription: id }).catch(() => undefined);
            resolve(false);
            return;
          }
          this.subsById.set(id, sub);
          sub._started(id, false);
          resolve(true);
        },
        (err) => {
          this.starting.delete(sub);
          if (!(err instanceof ConnectionClosedError && this.reconnectPolicy && this._state !== "closed")) {
            sub._fail(err);
          }
          resolve(false);
        },
      );
    });
  }

  /** @internal */
  async stopSubscription(sub: Subscription<never>): Promise<void> {
    const id = sub.id;
    if (id === null) return;
    if (this.subsById.get(id) === sub) this.subsById.delete(id);
    if (this._state !== "open") return; // the daemon ended it with the connection
    try {
      await this.call(sub.unsubscribeMethod, { subscription: id });
    } catch (err) {
      if (!(err instanceof NotFoundError) && !(err instanceof ConnectionClosedError)) throw err;
    }
  }

  // ------------------------------------------------------------------ streams

  /**
   * Call `method` like `call`, and learn its request id as it is sent (`onSent`): the
   * handle streams use to bind notifications and chunks to their request.
   * @internal
   */
  callWithId(method: string, params: Params, onSent: (id: number) => void, options?: CallOptions): Promise<unknown> {
    return new Promise<unknown>((resolve, reject) => {
      this.request(method, params, { ...options, onSent } as CallOptions, resolve, reject);
    });
  }

  /**
   * Route `fs.chunk` notifications of request `id` to `sink` (undefined: stop).
   * @internal
   */
  setChunkSink(id: number, sink: ((params: Params) => void) | undefined): void {
    if (sink === undefined) this.chunkSinks.delete(id);
    else this.chunkSinks.set(id, sink);
  }

  /**
   * A streamed `fs.read` as a Node `Readable` of `Uint8Array` chunks, with flow control: the
   * daemon runs at most `windowBytes` ahead of what this stream's consumer has taken (each
   * half window consumed is acknowledged with `fs.ack`), so a consumer that stops reading
   * holds the daemon back instead of filling memory. Errors (outside the roots, missing
   * file...) destroy the stream with the typed `XsysError`.
   */
  readStream(path: string | Uint8Array, options: ReadStreamOptions = {}): Readable {
    return createReadStream(this, path, options);
  }

  /**
   * A streamed `fs.write` (a chunked upload bound to one request) as a Node `Writable`:
   * each write is an `fs.write_chunk` (at most `maxInflight` unanswered); `end()` sends the
   * last one and finishes once the daemon renamed the file into place (atomic). The
   * `fs.write` result is then in `writable.result` (and the `"result"` event).
   */
  writeStream(path: string | Uint8Array, options: WriteStreamOptions = {}): UploadStream {
    return createWriteStream(this, path, options);
  }

  // ------------------------------------------------------------------ requests

  private request(
    method: string,
    params: Params | undefined,
    options: CallOptions | undefined,
    resolve: (v: unknown) => void,
    reject: (e: Error) => void,
  ): void {
    const signal = options?.signal;
    if (signal?.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const onProgress = options?.onProgress;
    if (onProgress) params = { ...params, progress: true };
    const onSent = (options as { onSent?: (id: number) => void } | undefined)?.onSent;
    const pending: Pending = {
      method,
      params,
      onResult: resolve,
      onError: reject,
      onProgress,
      timer: undefined,
      signal,
      onAbort: undefined,
      id: 0,
      done: false,
      onSent,
    };
    const timeoutMs = options?.timeoutMs ?? this.defaultTimeoutMs;
    if (timeoutMs > 0) {
      pending.timer = setTimeout(() => this.settle(pending, undefined, new RequestTimeoutError(method, timeoutMs)), timeoutMs);
    }
    if (signal) {
      pending.onAbort = () => this.settle(pending, undefined, signal.reason as Error);
      signal.addEventListener("abort", pending.onAbort, { once: true });
    }
    const conn = this.conn;
    if (conn !== null && this._state === "open") {
      this.send(conn, pending);
      return;
    }
    switch (this._state) {
      case "idle":
        this.queued.push({ pending, method, params });
        this.connect().catch(() => undefined); // failure rejects the queue
        return;
      case "connecting":
      case "reconnecting":
        this.queued.push({ pending, method, params });
        return;
      default:
        this.settle(pending, undefined, new ConnectionClosedError(`not connected (${this._state})`));
    }
  }

  private send(conn: Connection, pending: Pending): void {
    let id = this.nextId;
    while (this.inflight.has(id)) id = id >= MAX_ID ? 1 : id + 1;
    this.nextId = id >= MAX_ID ? 1 : id + 1;
    const msg = pending.params === undefined
      ? { id, method: pending.method }
      : { id, method: pending.method, params: pending.params };
    try {
      conn.send(msg);
    } catch (err) {
      this.settle(pending, undefined, err as Error);
      return;
    }
    pending.id = id;
    this.inflight.set(id, pending);
    pending.onSent?.(id);
  }

  private settle(pending: Pending, result: unknown, error: Error | undefined): void {
    if (pending.done) return;
    pending.done = true;
    if (pending.timer !== undefined) clearTimeout(pending.timer);
    if (pending.onAbort) pending.signal?.removeEventListener("abort", pending.onAbort);
    if (pending.id !== 0) {
      if (this.inflight.get(pending.id) === pending) this.inflight.delete(pending.id);
    } else {
      const i = this.queued.findIndex((q) => q.pending === pending);
      if (i >= 0) this.queued.splice(i, 1);
    }
    if (error) pending.onError(error);
    else pending.onResult(result);
  }

  private failInflight(err: Error): void {
    const all = [...this.inflight.values()];
    this.inflight.clear();
    for (const p of all) {
      p.id = -1;
      this.settle(p, undefined, err);
    }
  }

  private failQueued(err: Error): void {
    const all = this.queued;
    this.queued = [];
    for (const q of all) {
      q.pending.id = -1;
      this.settle(q.pending, undefined, err);
    }
  }

  // ------------------------------------------------------------------ incoming

  private readonly onMessage = (msg: unknown): void => {
    if (!isRecord(msg)) return;
    const id = msg["id"];
    if (typeof id === "number") {
      const pending = this.inflight.get(id);
      this.closingReason = null;
      if (pending === undefined) return; // timed out or aborted: the late answer is dropped
      if ("error" in msg && msg["error"] !== undefined && msg["error"] !== null) {
        this.settle(pending, undefined, errorFromWire(msg["error"]));
      } else {
        this.settle(pending, msg["result"], undefined);
      }
      return;
    }
    const method = msg["method"];
    if (typeof method === "string") {
      const params = isRecord(msg["params"]) ? msg["params"] : {};
      this.onNotification(method, params);
      return;
    }
    if ("error" in msg) {
      const err = errorFromWire(msg["error"]);
      if (REFUSAL_CODES.has(err.code)) this.closingReason = err;
      this.emit("protocolError", err);
    }
  };

  private onNotification(method: string, params: Params): void {
    if (method === "fs.chunk") {
      const sink = this.chunkSinks.get(params["request"] as number);
      if (sink !== undefined) {
        sink(params);
        return;
      }
    }
    const sid = params["subscription"];
    if (typeof sid === "string") {
      const sub = this.subsById.get(sid);
      if (sub !== undefined) {
        sub._notify(method, params as never);
        return;
      }
    }
    const req = params["request"];
    if (typeof req === "number" && method.endsWith(".progress")) {
      const pending = this.inflight.get(req);
      if (pending?.onProgress) {
        const total = params["total"];
        pending.onProgress({
          method,
          done: typeof params["done"] === "number" ? params["done"] : 0,
          total: typeof total === "number" ? total : null,
          unit: typeof params["unit"] === "string" ? params["unit"] : "",
        });
        return;
      }
    }
    this.emit("notification", method, params);
  }

  // ------------------------------------------------------------------ connection life

  private async open(): Promise<void> {
    const socket = await connectSocket(this.socketPath, { timeoutMs: this.connectTimeoutMs, trustedUids: this.trustedUids });
    if (this._state === "closed") {
      socket.destroy();
      throw new ConnectionClosedError("client closed while connecting");
    }
    const conn = new Connection(
      socket,
      {
        onMessage: this.onMessage,
        onUndecodable: (err) => this.emit("protocolError", err),
        onClose: (err) => this.onConnectionClose(conn, err),
      },
      { maxFrame: this.maxFrame },
    );
    this.conn = conn;
    this._state = "open";
    this.emit("connected");
    const queued = this.queued;
    this.queued = [];
    for (const q of queued) if (!q.pending.done) this.send(conn, q.pending);
  }

  private onConnectionClose(conn: Connection, err: Error | undefined): void {
    if (this.conn !== conn) return;
    this.conn = null;
    const reason = this.closingReason;
    this.closingReason = null;
    const closedErr: Error =
      reason ??
      new ConnectionClosedError(
        err ? `connection lost: ${err.message}` : "connection closed by the daemon",
        err ? { cause: err } : undefined,
      );
    this.failInflight(closedErr);
    this.subsById.clear();
    if (this._state === "closed") return;
    this.emit("disconnected", reason ?? err);
    if (this.reconnectPolicy && !(reason instanceof UnauthorizedError)) {
      for (const sub of this.subscriptions) sub._suspend();
      this._state = "reconnecting";
      void this.reconnectLoop(this.reconnectPolicy, err);
    } else {
      this._state = "disconnected";
      this.failQueued(closedErr);
      for (const sub of [...this.subscriptions]) sub._fail(closedErr);
    }
  }

  private async reconnectLoop(policy: Required<ReconnectOptions>, lastError: Error | undefined): Promise<void> {
    let attempt = 0;
    while (this._state === "reconnecting") {
      const base = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** attempt);
      const delayMs = Math.round(base / 2 + Math.random() * (base / 2));
      attempt += 1;
      this.emit("reconnecting", { attempt, delayMs, error: lastError });
      const nap = sleep(delayMs);
      this.reconnectSleep = nap;
      await nap.promise;
      this.reconnectSleep = null;
      if (this._state !== "reconnecting") return;
      try {
        await this.open();
      } catch (err) {
        lastError = err as Error;
        if (attempt >= policy.maxAttempts && this._state === "reconnecting") {
          this.giveUp(new ConnectionClosedError(`gave up reconnecting after ${attempt} attempts`, { cause: err }));
          return;
        }
        continue;
      }
      await this.resubscribe(attempt);
      return;
    }
  }

  private async resubscribe(attempts: number): Promise<void> {
    const subs = [...this.subscriptions].filter((s) => s.state !== "closed" && !this.starting.has(s));
    const outcomes = await Promise.all(subs.map((sub) => this.startSubscription(sub)));
    if (this._state !== "open") return; // dropped again: the next round retries
    const resubscribed = outcomes.filter(Boolean).length;
    this.emit("reconnected", { attempts, resubscribed, failed: outcomes.length - resubscribed });
  }

  private giveUp(err: ConnectionClosedError): void {
    this._state = "disconnected";
    this.failQueued(err);
    for (const sub of [...this.subscriptions]) sub._fail(err);
    this.emit("close");
  }
}
