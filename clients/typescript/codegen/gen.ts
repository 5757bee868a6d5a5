/**
 * `npm run gen`: ask a running daemon for `rpc.methods` and (re)write src/generated.ts.
 *
 *     node dist/test/codegen/gen.js [--socket PATH] [--check] [--from methods.json]
 *
 * --socket  the daemon's socket (default: $XSYS_SOCKET, then the protocol's defaults)
 * --check   do not write; exit 1 when src/generated.ts differs from what the daemon gives
 * --from    render from a saved rpc.methods answer instead of asking a daemon
 *
 * Uses only the transport and connection layers, so it works even when the checked-in
 * generated.ts is stale.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

import { Connection } from "../src/connection.js";
import { errorFromWire } from "../src/errors.js";
import type { MethodInfo } from "../src/results.js";
import { defaultSocketPath } from "../src/socketPath.js";
import { connectSocket } from "../src/transport.js";
import { renderGenerated } from "./render.js";

/** The package root (the directory holding package.json named @xsys/client). */
export function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = path.join(dir, "package.json");
    if (existsSync(pj)) {
      const json = JSON.parse(readFileSync(pj, "utf8")) as { name?: string };
      if (json.name === "@xsys/client") return dir;
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error("package root of @xsys/client not found");
    dir = up;
  }
}

export const GENERATED_PATH = (): string => path.join(packageRoot(), "src", "generated.ts");

/** One raw call over a fresh connection (no generated code involved). */
export async function rawCall(socketPath: string, method: string, params?: Record<string, unknown>): Promise<unknown> {
  const socket = await connectSocket(socketPath, { timeoutMs: 5000 });
  return new Promise<unknown>((resolve, reject) => {
    const conn = new Connection(socket, {
      onMessage: (msg) => {
        const m = msg as Record<string, unknown>;
        if (m["id"] === null && m["error"] !== undefined) {
          reject(errorFromWire(m["error"])); // refused (unauthorized, overloaded) or a framing error
          conn.end();
          return;
        }
        if (m["id"] !== 1) return;
        if (m["error"] !== undefined && m["error"] !== null) reject(errorFromWire(m["error"]));
        else resolve(m["result"]);
        conn.end();
      },
      onUndecodable: (err) => reject(err),
      onClose: (err) => reject(err ?? new Error("connection closed before the answer")),
    });
    conn.send(params === undefined ? { id: 1, method } : { id: 1, method, params });
  });
}

/** The daemon's `rpc.methods` list. */
export async function fetchMethods(socketPath: string): Promise<MethodInfo[]> {
  const result = (await rawCall(socketPath, "rpc.methods")) as { methods?: MethodInfo[] };
  if (!Array.isArray(result.methods)) throw new Error("rpc.methods answered without a methods list");
  return result.methods;
}

async function main(argv: string[]): Promise<number> {
  let socketPath = defaultSocketPath();
  let check = false;
  let from: string | null = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--socket") socketPath = argv[++i] ?? socketPath;
    else if (a === "--check") check = true;
    else if (a === "--from") from = argv[++i] ?? null;
    else {
      process.stderr.write(`unknown argument ${a}\n`);
      return 2;
    }
  }
  let methods: MethodInfo[];
  if (from !== null) {
    const json = JSON.parse(readFileSync(from, "utf8")) as { methods?: MethodInfo[] } | MethodInfo[];
    methods = Array.isArray(json) ? json : (json.methods ?? []);
  } else {
    try {
      methods = await fetchMethods(socketPath);
    } catch (err) {
      process.stderr.write(`gen: cannot read rpc.methods from ${socketPath}: ${(err as Error).message}\n` +
        "gen: start the daemon first (python -m xsys serve) or pass --socket PATH\n");
      return 1;
    }
  }
  const text = renderGenerated(methods);
  const target = GENERATED_PATH();
  const current = existsSync(target) ? readFileSync(target, "utf8") : "";
  if (check) {
    if (current === text) {
      process.stdout.write(`gen: ${path.relative(process.cwd(), target)} is up to date (${methods.length} methods)\n`);
      return 0;
    }
    process.stderr.write(`gen: ${target} differs from the daemon's rpc.methods; run npm run gen\n`);
    return 1;
  }
  if (current !== text) writeFileSync(target, text);
  process.stdout.write(`gen: wrote ${path.relative(process.cwd(), target)} (${methods.length} methods)\n`);
  return 0;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`gen: ${String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
