/**
 * The call surface the generated namespace wrappers are written against (implemented by
 * `XsysClient`), and the small runtime helpers they share.
 */
import type { Subscription, SubscriptionNotificationParams } from "./subscription.js";

/** Progress of a long request (docs/protocol.md, "Progress of long requests"). */
export interface Progress {
  /** The notification's method, e.g. `fs.progress`. */
  method: string;
  done: number;
  total: number | null;
  unit: string;
}

/** Options of one call. */
export interface CallOptions {
  /** Reject with `RequestTimeoutError` when not answered within this many ms (overrides the client's default; 0 = none). */
  timeoutMs?: number | undefined;
  /** Reject with `signal.reason` when aborted. The daemon may still complete the request. */
  signal?: AbortSignal | undefined;
  /** Ask for progress (`params.progress = true`) and receive each `<ns>.progress` notification. */
  onProgress?: ((progress: Progress) => void) | undefined;
}

/** Options of a subscription. */
export interface SubscribeOptions {
  /** Timeout of the start request. */
  timeoutMs?: number | undefined;
  /** Aborting it unsubscribes. */
  signal?: AbortSignal | undefined;
  /** Items kept for a consumer that is not reading (default 10,000); beyond that the oldest are dropped and a gap is reported. */
  bufferSize?: number | undefined;
}

export type Params = Record<string, unknown>;

export interface Caller {
  call(method: string, params?: object, options?: CallOptions): Promise<unknown>;
  subscribe<P = SubscriptionNotificationParams>(
    method: string,
    unsubscribeMethod: string,
    params?: object,
    options?: SubscribeOptions,
  ): Subscription<P>;
}

/** Is `value` the whole params object rather than a positional first parameter? */
export function isParamsObject(value: unknown): value is Params {
  if (typeof value !== "object" || value === null) return false;
  if (Array.isArray(value) || ArrayBuffer.isView(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Resolve a wrapper's overloads `(first, rest?, options?)` and `(params, options?)` into
 * `[params, options]`. `name` is the parameter the positional `first` stands for.
 */
export function positional<O>(name: string, first: unknown, second: unknown, third: O | undefined): [Params, O | undefined] {
  if (isParamsObject(first)) return [first, second as O | undefined];
  const rest = (second ?? {}) as Params;
  return [{ ...rest, [name]: first }, third];
}
