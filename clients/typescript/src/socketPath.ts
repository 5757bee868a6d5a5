/**
 * Where the daemon listens (docs/protocol.md, "Transport"): `$XSYS_SOCKET`, else
 * `$XDG_RUNTIME_DIR/xsys/xsys.sock`, else `/run/xsys/xsys.sock` when running as root,
 * else `/tmp/xsys-$UID/xsys.sock`. On Windows the default is the named pipe `\\.\pipe\xsys`.
 */
import * as path from "node:path";

/** The default named pipe on Windows. */
export const WINDOWS_PIPE = "\\\\.\\pipe\\xsys";

export interface SocketPathEnv {
  env?: Readonly<Record<string, string | undefined>>;
  platform?: NodeJS.Platform;
  uid?: number;
}

function currentUid(): number {
  return typeof process.getuid === "function" ? process.getuid() : -1;
}

/** Resolve the daemon's socket path (or pipe name) the same way every xsys client does. */
export function defaultSocketPath(opts: SocketPathEnv = {}): string {
  const env = opts.env ?? process.env;
  const platform = opts.platform ?? process.platform;
  const explicit = env["XSYS_SOCKET"];
  if (explicit) return explicit;
  if (platform === "win32") return WINDOWS_PIPE;
  const runtimeDir = env["XDG_RUNTIME_DIR"];
  if (runtimeDir) return path.posix.join(runtimeDir, "xsys", "xsys.sock");
  const uid = opts.uid ?? currentUid();
  if (uid === 0) return "/run/xsys/xsys.sock";
  return `/tmp/xsys-${uid}/xsys.sock`;
}
