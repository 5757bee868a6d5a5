#!/usr/bin/env node
/**
 * TypeScript client benchmark: what a Node application pays per call with @xsys/client
 * (one socket kept open) next to spawning `xsys sys memory --json` per call (the
 * one-process-per-call pattern it replaces).
 *
 * A real daemon (`python -m xsys serve` on a temporary socket, monitor off) serves:
 *
 * - sequential `rpc.ping` and `sys.memory`: one call at a time, latency p50/p99 and calls/s;
 * - pipelined `rpc.ping` and `sys.memory`: `--depth` calls kept in flight on one
 *   connection, calls/s;
 * - spawn per call: `xsys sys memory --json` run `--spawn-calls` times, one after another.
 *
 * Targets (issue 5): sequential rpc.ping p50 under 100 µs, pipelined rpc.ping at least
 * 30,000 calls/s, sequential sys.memory at least 100x faster than spawn-per-call (p50).
 * Prints a table and writes JSON to --json-out (default bench/results/ts_client.json).
 *
 *     (cd clients/typescript && npm ci && npm run build)
 *     node bench/ts_client.mjs [--duration 2] [--depth 64] [--spawn-calls 15] [--strict]
 *
 * Python comes from $XSYS_PYTHON, else .venv/bin/python; the CLI from the same directory.
 */
import { execFile, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const PKG = path.join(ROOT, "clients", "typescript");
const TARGETS = { seqP50Us: 100, pipelinedCallsPerS: 30_000, spawnRatio: 100 };

function parseArgs(argv) {
  const args = {
    duration: 2,
    depth: 64,
    spawnCalls: 15,
    warmup: 2000,
    jsonOut: path.join(ROOT, "bench", "results", "ts_client.json"),
    strict: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => argv[++i];
    if (a === "--duration") args.duration = Number(next());
    else if (a === "--depth") args.depth = Number(next());
    else if (a === "--spawn-calls") args.spawnCalls = Number(next());
    else if (a === "--warmup") args.warmup = Number(next());
    else if (a === "--json-out") args.jsonOut = path.resolve(next());
    else if (a === "--strict") args.strict = true;
    else if (a === "-h" || a === "--help") {
      console.log(readFileSync(fileURLToPath(import.meta.url), "utf8").split("*/")[0]);
      process.exit(0);
    } else {
      console.error(`unknown argument ${a}`);
      process.exit(2);
    }
  }
  return args;
}

const progress = (msg) => process.stderr.write(`${msg}\n`);

async function loadClient() {
  const entry = path.join(PKG, "dist", "esm", "index.js");
  if (!existsSync(entry)) {
    console.error(`no build at ${entry}: run (cd clients/typescript && npm ci && npm run build) first`);
    process.exit(2);
  }
  return import(pathToFileURL(entry).href);
}

function pythonPath() {
  return process.env.XSYS_PYTHON ?? path.join(ROOT, ".venv", "bin", "python");
}

async function startDaemon(dir, XsysClient) {
  const socketPath = path.join(dir, "xsys.sock");
  const configPath = path.join(dir, "config.json");
  mkdirSync(path.join(dir, "home"), { recursive: true });
  writeFileSync(
    configPath,
    JSON.stringify({ server: { socket: socketPath, log_level: "WARNING" }, monitor: { enabled: false }, fs: { roots: [dir] } }),
  );
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("XSYS_")));
  env.HOME = path.join(dir, "home");
  const log = openSync(path.join(dir, "daemon.log"), "a");
  const proc = spawn(pythonPath(), ["-m", "xsys", "serve", "--socket", socketPath, "--config", configPath], {
    cwd: ROOT,
    env,
    stdio: ["ignore", log, log],
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`daemon exited: ${readFileSync(path.join(dir, "daemon.log"), "utf8")}`);
    if (existsSync(socketPath)) {
      try {
        const c = await XsysClient.connect({ socketPath, connectTimeoutMs: 1000 });
        await c.rpc.ping({ timeoutMs: 1000 });
        await c.close();
        return { proc, socketPath };
      } catch {
        /* not ready */
      }
    }
    if (Date.now() > deadline) throw new Error("daemon did not become ready");
    await new Promise((r) => setTimeout(r, 50));
  }
}

function stopDaemon(proc) {
  return new Promise((resolve) => {
    if (proc.exitCode !== null) return resolve();
    const t = setTimeout(() => proc.kill("SIGKILL"), 10_000);
    proc.once("exit", () => {
      clearTimeout(t);
      resolve();
    });
    proc.kill("SIGTERM");
  });
}

function percentile(sorted, q) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

/** One call at a time for `seconds`; latencies in µs. */
async function sequential(call, seconds, warmup) {
  for (let i = 0; i < warmup; i++) await call();
  const lat = [];
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  while (performance.now() < end) {
    const s = process.hrtime.bigint();
    await call();
    lat.push(Number(process.hrtime.bigint() - s) / 1000);
  }
  const elapsed = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  return { calls: lat.length, calls_per_s: lat.length / elapsed, p50_us: percentile(lat, 0.5), p99_us: percentile(lat, 0.99), mean_us: lat.reduce((a, b) => a + b, 0) / lat.length };
}

/** `depth` calls kept in flight for `seconds`. */
async function pipelined(call, seconds, depth, warmup) {
  await Promise.all(Array.from({ length: Math.min(warmup, 1000) }, () => call()));
  let calls = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  const worker = async () => {
    while (performance.now() < end) {
      await call();
      calls++;
    }
  };
  await Promise.all(Array.from({ length: depth }, worker));
  const elapsed = (performance.now() - t0) / 1000;
  return { calls, calls_per_s: calls / elapsed, depth };
}

/** `xsys sys memory --json`, one process per call. */
async function spawnPerCall(socketPath, n) {
  const run = promisify(execFile);
  const cli = path.join(path.dirname(pythonPath()), "xsys");
  const [cmd, argv] = existsSync(cli) ? [cli, []] : [pythonPath(), ["-m", "xsys"]];
  const env = { ...process.env, XSYS_SOCKET: socketPath };
  await run(cmd, [...argv, "sys", "memory", "--json"], { env }); // warm the page cache
  const lat = [];
  for (let i = 0; i < n; i++) {
    const s = process.hrtime.bigint();
    const { stdout } = await run(cmd, [...argv, "sys", "memory", "--json"], { env });
    lat.push(Number(process.hrtime.bigint() - s) / 1000);
    if (!JSON.parse(stdout).virtual) throw new Error("unexpected xsys output");
  }
  lat.sort((a, b) => a - b);
  return { calls: n, command: [path.basename(cmd), ...argv, "sys", "memory", "--json"].join(" "), p50_us: percentile(lat, 0.5), p99_us: percentile(lat, 0.99), calls_per_s: 1e6 / (lat.reduce((a, b) => a + b, 0) / n) };
}

function fmtUs(us) {
  if (!Number.isFinite(us)) return "-";
  return us >= 10_000 ? `${(us / 1000).toFixed(1)} ms` : `${us.toFixed(1)} µs`;
}

function fmtRate(r) {
  return Number.isFinite(r) ? Math.round(r).toLocaleString("en-US") : "-";
}

function table(rows, header) {
  const cells = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => String(r[i]).length)));
  const line = (r) => r.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const { XsysClient } = await loadClient();
  const started = performance.now();
  const dir = mkdtempSync(path.join(os.tmpdir(), "xsys-bench-ts-"));
  const loadBefore = os.loadavg();
  let daemon;
  const results = {};
  try {
    progress(`starting the daemon (${pythonPath()}) in ${dir} ...`);
    daemon = await startDaemon(dir, XsysClient);
    const client = await XsysClient.connect({ socketPath: daemon.socketPath });
    const ping = () => client.rpc.ping();
    const memory = () => client.sys.memory();
    progress(`sequential rpc.ping, ${args.duration} s ...`);
    results.seq_ping = await sequential(ping, args.duration, args.warmup);
    progress(`sequential sys.memory, ${args.duration} s ...`);
    results.seq_memory = await sequential(memory, args.duration, args.warmup);
    progress(`pipelined rpc.ping, depth ${args.depth}, ${args.duration} s ...`);
    results.pipe_ping = await pipelined(ping, args.duration, args.depth, args.warmup);
    progress(`pipelined sys.memory, depth ${args.depth}, ${args.duration} s ...`);
    results.pipe_memory = await pipelined(memory, args.duration, args.depth, args.warmup);
    await client.close();
    progress(`spawn per call: ${args.spawnCalls} x xsys sys memory --json ...`);
    results.spawn_memory = await spawnPerCall(daemon.socketPath, args.spawnCalls);
  } finally {
    if (daemon) await stopDaemon(daemon.proc);
    rmSync(dir, { recursive: true, force: true });
  }
  const loadAfter = os.loadavg();

  const ratio = results.spawn_memory.p50_us / results.seq_memory.p50_us;
  const checks = [
    { what: "sequential rpc.ping p50", value: `${fmtUs(results.seq_ping.p50_us)}`, target: `< ${TARGETS.seqP50Us} µs`, ok: results.seq_ping.p50_us < TARGETS.seqP50Us },
    { what: "pipelined rpc.ping", value: `${fmtRate(results.pipe_ping.calls_per_s)} calls/s`, target: `>= ${fmtRate(TARGETS.pipelinedCallsPerS)} calls/s`, ok: results.pipe_ping.calls_per_s >= TARGETS.pipelinedCallsPerS },
    { what: "sys.memory vs spawn per call (p50)", value: `${ratio.toFixed(0)}x faster`, target: `>= ${TARGETS.spawnRatio}x`, ok: ratio >= TARGETS.spawnRatio },
  ];

  console.log();
  console.log(`@xsys/client benchmark: Node ${process.version}, ${os.cpus().length} CPUs; ${args.duration} s per measurement; load average ${loadBefore[0].toFixed(2)} before, ${loadAfter[0].toFixed(2)} after`);
  console.log(
    table(
      [
        ["rpc.ping, sequential", fmtUs(results.seq_ping.p50_us), fmtUs(results.seq_ping.p99_us), fmtRate(results.seq_ping.calls_per_s)],
        ["sys.memory, sequential", fmtUs(results.seq_memory.p50_us), fmtUs(results.seq_memory.p99_us), fmtRate(results.seq_memory.calls_per_s)],
        [`rpc.ping, pipelined (depth ${args.depth})`, "-", "-", fmtRate(results.pipe_ping.calls_per_s)],
        [`sys.memory, pipelined (depth ${args.depth})`, "-", "-", fmtRate(results.pipe_memory.calls_per_s)],
        [`spawn \`${results.spawn_memory.command}\``, fmtUs(results.spawn_memory.p50_us), fmtUs(results.spawn_memory.p99_us), results.spawn_memory.calls_per_s.toFixed(1)],
      ],
      ["measurement", "p50", "p99", "calls/s"],
    ),
  );
  console.log();
  console.log(table(checks.map((c) => [c.what, c.value, c.target, c.ok ? "ok" : "MISS"]), ["target", "measured", "wanted", ""]));

  const doc = {
    benchmark: "ts_client",
    when: new Date().toISOString(),
    machine: { cpus: os.cpus().length, platform: `${os.type()} ${os.release()} ${os.arch()}`, node: process.version, loadavg_before: loadBefore, loadavg_after: loadAfter },
    settings: { duration_s: args.duration, depth: args.depth, spawn_calls: args.spawnCalls, warmup_calls: args.warmup },
    results,
    spawn_ratio: ratio,
    targets: TARGETS,
    checks,
    misses: checks.filter((c) => !c.ok).map((c) => c.what),
    elapsed_s: Math.round((performance.now() - started) / 100) / 10,
  };
  mkdirSync(path.dirname(args.jsonOut), { recursive: true });
  writeFileSync(args.jsonOut, `${JSON.stringify(doc, null, 2)}\n`);
  console.log(`\nwrote ${path.relative(process.cwd(), args.jsonOut) || args.jsonOut} (${doc.elapsed_s} s)`);
  return args.strict && doc.misses.length > 0 ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(err);
    process.exitCode = 1;
  },
);
