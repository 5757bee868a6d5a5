/**
 * Start a real xsys daemon for tests: `python -m xsys serve --socket <tmp>/xsys.sock
 * --config <tmp>/config.json`, on a temp socket, with a temp HOME and an fs root in the
 * temp dir. Python comes from $XSYS_PYTHON, else ../../.venv/bin/python relative to the
 * package (the repo's virtualenv).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { setTimeout as delay } from "node:timers/promises";

import { packageRoot, rawCall } from "../../codegen/gen.js";
import { XsysClientError, XsysError } from "../../src/errors.js";

export function pythonPath(): string {
  return process.env["XSYS_PYTHON"] ?? path.resolve(packageRoot(), "..", "..", ".venv", "bin", "python");
}

let availability: string | null | undefined;

/** Null when a daemon can be started here, else why not (for the skip message). */
export function daemonUnavailable(): string | null {
  if (availability !== undefined) return availability;
  const py = pythonPath();
  if (!existsSync(py)) {
    availability = `no python at ${py} (set XSYS_PYTHON, or create the repo's .venv)`;
    return availability;
  }
  const probe = spawnSync(py, ["-c", "import xsys.daemon"], { cwd: path.resolve(packageRoot(), "..", ".."), encoding: "utf8" });
  availability = probe.status === 0 ? null : `the xsys daemon cannot be imported with ${py}: ${probe.stderr.trim().split("\n").pop() ?? ""}`;
  return availability;
}

function deepMerge(base: Record<string, unknown>, extra: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(extra)) {
    const cur = out[k];
    if (v && typeof v === "object" && !Array.isArray(v) && cur && typeof cur === "object" && !Array.isArray(cur)) {
      out[k] = deepMerge(cur as Record<string, unknown>, v as Record<string, unknown>);
    } else {
      out[k] = v;
    }
  }
  return out;
}

/** Daemons still running, killed if this process exits without disposing them. */
const live = new Set<ChildProcess>();
process.on("exit", () => {
  for (const proc of live) proc.kill("SIGKILL");
});

export class Daemon {
  readonly dir: string;
  readonly socketPath: string;
  readonly configPath: string;
  readonly logPath: string;
  /** A directory inside the daemon's fs roots. */
  readonly fsRoot: string;
  readonly config: Record<string, unknown>;
  private proc: ChildProcess | null = null;

  constructor(config: Record<string, unknown> = {}) {
    // Short path: Unix socket paths are limited to ~107 bytes.
    this.dir = mkdtempSync(path.join(os.tmpdir(), "xsys-ts-"));
    this.socketPath = path.join(this.dir, "xsys.sock");
    this.configPath = path.join(this.dir, "config.json");
    this.logPath = path.join(this.dir, "daemon.log");
    this.fsRoot = path.join(this.dir, "root");
    mkdirSync(this.fsRoot);
    mkdirSync(path.join(this.dir, "home"));
    this.config = deepMerge(
      {
        server: { socket: this.socketPath, log_level: "DEBUG", shutdown_timeout_s: 1.0 },
        fs: { roots: [this.fsRoot] },
        sys: { sample_interval_s: 0.5, allow_kill: true },
      },
      config,
    );
    writeFileSync(this.configPath, JSON.stringify(this.config));
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** Start and wait until it answers rpc.ping. */
  async start(timeoutMs = 20_000): Promise<this> {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("XSYS_") && k !== "XDG_RUNTIME_DIR") env[k] = v;
    env["HOME"] = path.join(this.dir, "home");
    env["XSYS_SOCKET"] = this.socketPath;
    const log = openSync(this.logPath, "a");
    const proc = spawn(pythonPath(), ["-m", "xsys", "serve", "--socket", this.socketPath, "--config", this.configPath], {
      cwd: path.resolve(packageRoot(), "..", ".."),
      env,
      stdio: ["ignore", log, log],
    });
    this.proc = proc;
    live.add(proc);
    let exited: number | null = null;
    proc.once("exit", (code) => {
      exited = code ?? -1;
      live.delete(proc);
    });
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (exited !== null) throw new Error(`daemon exited with ${exited}:\n${this.log()}`);
      if (existsSync(this.socketPath)) {
        try {
          await rawCall(this.socketPath, "rpc.ping");
          return this;
        } catch (err) {
          if (err instanceof XsysError && !(err instanceof XsysClientError)) return this; // it answers (refusing us, maybe)
        }
      }
      await delay(25);
    }
    throw new Error(`daemon did not become ready in ${timeoutMs} ms:\n${this.log()}`);
  }

  /** SIGTERM (or `signal`), wait for the exit; SIGKILL after 10 s. */
  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    const proc = this.proc;
    this.proc = null;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  }

  log(): string {
    try {
      return readFileSync(this.logPath, "utf8");
    } catch {
      return "";
    }
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
