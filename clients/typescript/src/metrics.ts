/**
 * App metrics helpers in the style of prometheus_client (Counter, Gauge, Histogram): each
 * update is one `metrics.*` call to the daemon, which exposes the series on its
 * `/metrics` (docs/metrics.md).
 *
 *     import { Counter, Histogram, XsysClient } from "@xsys/client";
 *     const client = await XsysClient.connect();
 *     const jobs = new Counter(client, "myapp_jobs_total", { help: "Jobs done.", labelNames: ["queue"] });
 *     await jobs.labels({ queue: "mail" }).inc();
 *     const latency = new Histogram(client, "myapp_request_seconds", { buckets: [0.01, 0.1, 1] });
 *     const result = await latency.time(async () => handle());   // observes the seconds
 *
 * `labels` (options) are constant labels sent with every update; `labelNames` are the
 * names a child gets from `.labels({...})` (a metric with `labelNames` is updated through
 * its children: updating the parent throws, as prometheus_client does). The daemon's
 * errors (InvalidParamsError, ConflictError, TooLargeError) reject the returned promises.
 * For many updates per second batch them with `client.metrics.push({ samples })`.
 */
import type { Caller } from "./caller.js";

/** Options of every metric helper. */
export interface MetricOptions {
  /** The HELP text. */
  help?: string;
  /** The unit: the name must end in `_<unit>` (before `_total`). */
  unit?: string;
  /** Label names whose values `.labels({...})` gives. */
  labelNames?: readonly string[];
  /** Constant labels sent with every update. */
  labels?: Readonly<Record<string, string>>;
}

/** Options of a histogram: its bucket upper bounds (increasing; +Inf implied). */
export interface HistogramOptions extends MetricOptions {
  buckets?: readonly number[];
}

abstract class Metric<Self> {
  protected readonly children = new Map<string, Self>();

  constructor(
    readonly client: Pick<Caller, "call">,
    readonly name: string,
    readonly options: HistogramOptions = {},
    protected readonly values?: Readonly<Record<string, string>>,
  ) {}

  protected abstract child(values: Record<string, string>): Self;

  /** The child of these label values (exactly the `labelNames`). */
  labels(values: Readonly<Record<string, string>>): Self {
    const names = this.options.labelNames ?? [];
    if (names.length === 0) throw new Error(`${this.name}: no labelNames declared`);
    const keys = Object.keys(values).sort();
    if (keys.length !== names.length || [...names].sort().some((n, i) => n !== keys[i])) {
      throw new Error(`${this.name}: labels must be ${JSON.stringify(names)}`);
    }
    const ordered: Record<string, string> = {};
    for (const n of names) ordered[n] = String(values[n]);
    const key = JSON.stringify(names.map((n) => ordered[n]));
    let c = this.children.get(key);
    if (c === undefined) {
      c = this.child(ordered);
      this.children.set(key, c);
    }
    return c;
  }

  protected async send(op: string, value: number): Promise<Record<string, number>> {
    if ((this.options.labelNames?.length ?? 0) > 0 && this.values === undefined) {
      throw new Error(`${this.name}: has labelNames; update a child (.labels({...})) instead`);
    }
    const params: Record<string, unknown> = { name: this.name, value };
    const labels = { ...(this.options.labels ?? {}), ...(this.values ?? {}) };
    if (Object.keys(labels).length > 0) params["labels"] = labels;
    if (this.options.help) params["help"] = this.options.help;
    if (this.options.unit) params["unit"] = this.options.unit;
    if (op === "observe" && this.options.buckets) params["buckets"] = [...this.options.buckets];
    return (await this.client.call(`metrics.${op}`, params)) as Record<string, number>;
  }
}

/** A counter (the name ends in `_total`): `inc(amount = 1)`, amount >= 0. */
export class Counter extends Metric<Counter> {
  protected child(values: Record<string, string>): Counter {
    return new Counter(this.client, this.name, this.options, values);
  }

  /** Add `amount`; resolves to the new total. */
  async inc(amount = 1): Promise<number> {
    return (await this.send("inc", amount))["value"] as number;
  }
}

/** A gauge: `set`, `inc`, `dec`, `setToCurrentTime`. */
export class Gauge extends Metric<Gauge> {
  protected child(values: Record<string, string>): Gauge {
    return new Gauge(this.client, this.name, this.options, values);
  }

  /** Set the value; resolves to it. */
  async set(value: number): Promise<number> {
    return (await this.send("set", value))["value"] as number;
  }

  /** Add `amount`; resolves to the new value. */
  async inc(amount = 1): Promise<number> {
    return (await this.send("add", amount))["value"] as number;
  }

  /** Subtract `amount`; resolves to the new value. */
  async dec(amount = 1): Promise<number> {
    return this.inc(-amount);
  }

  /** Set the value to the current time (epoch seconds). */
  async setToCurrentTime(): Promise<number> {
    return this.set(Date.now() / 1000);
  }
}

/** A histogram: `observe(value)` and `time(fn)` / `startTimer()` (seconds). */
export class Histogram extends Metric<Histogram> {
  constructor(
    client: Pick<Caller, "call">,
    name: string,
    options: HistogramOptions = {},
    values?: Readonly<Record<string, string>>,
  ) {
    super(client, name, options, values);
  }

  protected child(values: Record<string, string>): Histogram {
    return new Histogram(this.client, this.name, this.options, values);
  }

  /** Record `value`; resolves to the series' `{ count, sum }`. */
  async observe(value: number): Promise<{ count: number; sum: number }> {
    const out = await this.send("observe", value);
    return { count: out["count"] as number, sum: out["sum"] as number };
  }

  /** Start a timer; calling the returned function observes the seconds since. */
  startTimer(): () => Promise<{ count: number; sum: number }> {
    const start = process.hrtime.bigint();
    return () => this.observe(Number(process.hrtime.bigint() - start) / 1e9);
  }

  /** Run `fn` (sync or async) and observe the seconds it took, also when it throws;
   * resolves to its result. */
  async time<T>(fn: () => T | Promise<T>): Promise<T> {
    const stop = this.startTimer();
    try {
      return await fn();
    } finally {
      await stop();
    }
  }
}
