/**
 * Subscriptions: a method such as `watch.add` or `monitor.subscribe` answers
 * `{subscription: id}`, then the daemon pushes notifications carrying that id until the
 * matching remove/unsubscribe call (docs/protocol.md, "Subscriptions").
 *
 * A `Subscription` is both an async iterable and an event emitter:
 *
 *     for await (const item of client.watch.add({ paths: ["/tmp"] })) { ... }  // break unsubscribes
 *     sub.on("event", (item) => ...); sub.on("gap", (gap) => ...);
 *
 * Items are `{ type: "event", method, params }` for notifications and
 * `{ type: "gap", reason, ... }` when events were lost: the daemon dropped some
 * (`<ns>.overflow`), the local buffer overflowed, or the connection was re-established
 * (`reason: "reconnect"`). After a gap, resync whatever state you derive from the events.
 */
import { EventEmitter } from "node:events";

import { ConnectionClosedError } from "./errors.js";

/** Parameters of every subscription notification. */
export interface SubscriptionNotificationParams {
  subscription: string;
  [key: string]: unknown;
}

/** A notification delivered to a subscription. */
export interface SubscriptionEvent<P = SubscriptionNotificationParams> {
  type: "event";
  /** The notification's method, e.g. `watch.event` or `monitor.alert`. */
  method: string;
  params: P;
}

/** Events may have been lost: resync. */
export interface SubscriptionGap {
  type: "gap";
  /**
   * `overflow`: the daemon dropped events (it sent `<ns>.overflow`) or this client's
   * buffer for an idle consumer overflowed; `reconnect`: the connection was lost and the
   * subscription re-established, events in between are gone.
   */
  reason: "overflow" | "reconnect";
  /** `<ns>.overflow` when the daemon reported the gap, else null. */
  method: string | null;
  /** How many events were dropped, when known. */
  dropped: number | null;
}

export type SubscriptionItem<P = SubscriptionNotificationParams> = SubscriptionEvent<P> | SubscriptionGap;

export type SubscriptionState = "starting" | "active" | "closed";

/** What a subscription needs from the client; implemented by `XsysClient`. */
export interface SubscriptionHost {
  /** Send the unsubscribe request for an active subscription and forget it. */
  stopSubscription(sub: Subscription<never>): Promise<void>;
}

export interface SubscriptionOptions {
  /** Items kept for a consumer that is not reading; beyond it the oldest are dropped and a gap is queued. */
  bufferSize?: number | undefined;
  /** Timeout of the start request (and of each re-establishing request). */
  timeoutMs?: number | undefined;
}

export interface SubscriptionEvents<P> {
  event: [SubscriptionEvent<P>];
  gap: [SubscriptionGap];
  ready: [string];
  error: [Error];
  close: [];
}

/**
 * One subscription. Created by the typed wrappers (`client.watch.add(...)`) or by
 * `client.subscribe(method, unsubscribeMethod, params)`; starts at once.
 */
export class Subscription<P = SubscriptionNotificationParams>
  extends EventEmitter<SubscriptionEvents<P>>
  implements AsyncIterable<SubscriptionItem<P>>
{
  /** The method that started it, e.g. `watch.add`. */
  readonly method: string;
  /** The method that ends it, e.g. `watch.remove`. */
  readonly unsubscribeMethod: string;
  /** The start parameters (re-sent on reconnect). */
  readonly params: Readonly<Record<string, unknown>>;
  /** Resolves with the subscription id once the daemon accepted it; rejects if it refused. */
  readonly ready: Promise<string>;
  /** Timeout of the start request. */
  readonly startTimeoutMs: number | undefined;

  private _id: string | null = null;
  private _state: SubscriptionState = "starting";
  private readonly host: SubscriptionHost;
  private readonly bufferSize: number;
  private queue: SubscriptionItem<P>[] = [];
  private localDropped = 0;
  private waiter: { resolve: (r: IteratorResult<SubscriptionItem<P>>) => void; reject: (e: unknown) => void } | null =
    null;
  private failure: Error | null = null;
  private iterating = false;
  private resolveReady!: (id: string) => void;
  private rejectReady!: (err: Error) => void;
  private stopping: Promise<void> | null = null;
  private readySettled = false;

  constructor(
    host: SubscriptionHost,
    method: string,
    unsubscribeMethod: string,
    params: Record<string, unknown>,
    opts: SubscriptionOptions = {},
  ) {
    super();
    this.host = host;
    this.method = method;
    this.unsubscribeMethod = unsubscribeMethod;
    this.params = params;
    this.bufferSize = Math.max(1, opts.bufferSize ?? 10_000);
    this.startTimeoutMs = opts.timeoutMs;
    this.ready = new Promise<string>((resolve, reject) => {
      this.resolveReady = (id) => {
        this.readySettled = true;
        resolve(id);
      };
      this.rejectReady = (err) => {
        this.readySettled = true;
        reject(err);
      };
    });
    // A refused subscription surfaces through next()/'error'; don't also report it unhandled.
    this.ready.catch(() => undefined);
  }

  /** The daemon's id for it (changes after a reconnect); null until started. */
  get id(): string | null {
    return this._id;
  }

  get state(): SubscriptionState {
    return this._state;
  }

  /** Stop it: sends the unsubscribe method (unless the connection is gone) and ends iteration. */
  unsubscribe(): Promise<void> {
    if (this.stopping) return this.stopping;
    const wasActive = this._state === "active";
    const wasStarting = this._state === "starting";
    this.stopping = (async () => {
      if (wasStarting) {
        try {
          await this.ready;
        } catch {
          return;
        }
      }
      if (wasActive || wasStarting) {
        if (this._state === "active") await this.host.stopSubscription(this as unknown as Subscription<never>);
      }
    })().finally(() => this._end(null));
    return this.stopping;
  }

  [Symbol.asyncIterator](): AsyncIterator<SubscriptionItem<P>> {
    this.iterating = true;
    return {
      next: () => this.next(),
      return: async () => {
        await this.unsubscribe();
        return { done: true, value: undefined };
      },
      throw: async (err: unknown) => {
        await this.unsubscribe();
        throw err;
      },
    };
  }

  private next(): Promise<IteratorResult<SubscriptionItem<P>>> {
    const item = this.shift();
    if (item) return Promise.resolve({ done: false, value: item });
    if (this.failure) return Promise.reject(this.failure);
    if (this._state === "closed") return Promise.resolve({ done: true, value: undefined });
    if (this.waiter) return Promise.reject(new Error("Subscription: next() called while a previous next() is pending"));
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  private shift(): SubscriptionItem<P> | undefined {
    if (this.localDropped > 0) {
      const dropped = this.localDropped;
      this.localDropped = 0;
      return { type: "gap", reason: "overflow", method: null, dropped };
    }
    return this.queue.shift();
  }

  // ---------------------------------------------------------------- called by the client

  /** @internal The daemon accepted (or, after a reconnect, re-accepted) it. */
  _started(id: string, resumed: boolean): void {
    this._id = id;
    if (this._state === "closed") return;
    this._state = "active";
    if (resumed || this.readySettled) {
      this._push({ type: "gap", reason: "reconnect", method: null, dropped: null });
    } else {
      this.resolveReady(id);
      this.emit("ready", id);
    }
  }

  /** @internal A notification carrying this subscription's id. */
  _notify(method: string, params: P): void {
    if (this._state === "closed") return;
    if (method.endsWith(".overflow")) {
      const raw = (params as Record<string, unknown>)["dropped"];
      this._push({ type: "gap", reason: "overflow", method, dropped: typeof raw === "number" ? raw : null });
    } else {
      this._push({ type: "event", method, params });
      // `final: true` (e.g. the watched directory was deleted): the daemon ended it.
      if ((params as Record<string, unknown>)["final"] === true) this._end(null);
    }
  }

  /** @internal The start request failed, or the connection ended for good. */
  _fail(err: Error): void {
    this._end(err);
  }

  /** @internal The client closed: end quietly. */
  _finish(): void {
    this._end(null);
  }

  /** @internal The connection dropped; the client will try to re-establish it. */
  _suspend(): void {
    if (this._state === "active") this._state = "starting";
  }

  private _push(item: SubscriptionItem<P>): void {
    if (item.type === "event") {
      if (this.listenerCount("event") > 0) this.emit("event", item);
    } else if (this.listenerCount("gap") > 0) {
      this.emit("gap", item);
    }
    // Queue for an iterator, or for a consumer that has not attached yet; an emitter
    // consumer (listening to `event` or `gap`) gets nothing queued.
    if (!this.iterating && (this.listenerCount("event") > 0 || this.listenerCount("gap") > 0)) return;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w.resolve({ done: false, value: item });
      return;
    }
    this.queue.push(item);
    if (this.queue.length > this.bufferSize) {
      const lost = this.queue.shift();
      if (lost?.type === "event") this.localDropped += 1;
      else if (lost?.type === "gap") this.localDropped += lost.dropped ?? 0;
    }
  }

  private _end(err: Error | null): void {
    if (this._state === "closed") return;
    this._state = "closed";
    if (!this.readySettled) this.rejectReady(err ?? new ConnectionClosedError("subscription closed before it started"));
    if (err) {
      this.failure = err;
      if (this.listenerCount("error") > 0) this.emit("error", err);
    }
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      if (err) w.reject(err);
      else w.resolve({ done: true, value: undefined });
    }
    this.emit("close");
  }
}
