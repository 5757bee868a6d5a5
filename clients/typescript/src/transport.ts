/**
 * Transport: open a stream to the daemon and hand back a socket that moves bytes. Unix
 * domain socket on Linux/macOS, named pipe on Windows; Node's `net` handles both through
 * `createConnection({ path })`. Nothing here knows about frames or messages.
 */
import * as net from "node:net";

import { ConnectionClosedError } from "./errors.js";

export interface ConnectSocketOptions {
  /** Give up after this long (default 5000 ms). */
  timeoutMs?: number;
  signal?: AbortSignal | undefined;
}

/** Connect to `path`; resolves with the connected socket, rejects with `ConnectionClosedError`. */
export function connectSocket(path: string, opts: ConnectSocketOptions = {}): Promise<net.Socket> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const signal = opts.signal;
  return new Promise<net.Socket>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const socket = net.createConnection({ path });
    let timer: NodeJS.Timeout | undefined;
    const cleanup = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      socket.removeListener("connect", onConnect);
      socket.removeListener("error", onError);
      signal?.removeEventListener("abort", onAbort);
    };
    const onConnect = (): void => {
      cleanup();
      resolve(socket);
    };
    const onError = (err: NodeJS.ErrnoException): void => {
      cleanup();
      socket.destroy();
      const what = err.code === "ENOENT" || err.code === "ECONNREFUSED" ? "xsys daemon is not running" : "cannot connect";
      reject(new ConnectionClosedError(`${what} (socket ${path}): ${err.message}`, { cause: err }));
    };
    const onAbort = (): void => {
      cleanup();
      socket.destroy();
      reject(signal?.reason);
    };
    socket.once("connect", onConnect);
    socket.once("error", onError);
    signal?.addEventListener("abort", onAbort, { once: true });
    if (timeoutMs > 0) {
      timer = setTimeout(() => {
        cleanup();
        socket.destroy();
        reject(new ConnectionClosedError(`timed out after ${timeoutMs} ms connecting to ${path}`));
      }, timeoutMs);
    }
  });
}
