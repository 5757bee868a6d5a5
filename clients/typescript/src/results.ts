/**
 * Result shapes. `rpc.methods` describes parameters but not results, so the shapes of
 * results are written here by hand from PROTOCOL.md and the daemon's handlers; the
 * generated wrappers (generated.ts) pick them up by method name through `ResultOf`, and
 * fall back to a generic map for methods not listed.
 *
 * Naming: nothing here ends in `Params` or `Result`; those names belong to generated.ts.
 */

/** A generic result map, for methods whose result shape is not described here. */
export type AnyResult = Record<string, unknown>;

/** One parameter in `rpc.methods`. */
export interface MethodParamInfo {
  name: string;
  /** Wire type: `int`, `float`, `str`, `bool`, `bin`, `map`, `any`, `list[T]`, unions `a|b`. */
  type: string;
  required: boolean;
  default?: unknown;
  nullable?: boolean;
  choices?: unknown[];
  min?: number;
  max?: number;
  summary: string;
  [key: string]: unknown;
}

/** One method in `rpc.methods`. */
export interface MethodInfo {
  name: string;
  summary: string;
  description?: string;
  params: MethodParamInfo[];
  /** For subscription methods: the notification they push, e.g. `watch.event`. */
  streams?: string;
  /** Honours `progress: true`. */
  progress?: boolean;
  [key: string]: unknown;
}

export interface Hello {
  protocol: number;
  server: string;
  version: string;
  pid: number;
  methods: string[];
  capabilities: string[];
  [key: string]: unknown;
}

export interface Pong {
  pong: boolean;
  /** Seconds since the Unix epoch. */
  ts: number;
}

export interface MethodList {
  methods: MethodInfo[];
  [key: string]: unknown;
}

/** The answer of a subscription method. */
export interface SubscriptionStarted {
  subscription: string;
  [key: string]: unknown;
}

/** Result shapes by method name. */
export interface KnownResults {
  "rpc.hello": Hello;
  "rpc.ping": Pong;
  "rpc.methods": MethodList;
}

/** The result of method `M`. */
export type ResultOf<M extends string> = M extends keyof KnownResults ? KnownResults[M] : AnyResult;
