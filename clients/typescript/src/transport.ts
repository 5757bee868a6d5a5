/**
 * Transport: open a stream to the daemon and hand back a socket that moves bytes. Unix
 * domain socket on Linux/macOS, named pipe on Windows; Node's `net` handles both through
 * `createConnection({ path })`. Nothing here knows about frames or messages.
 *
 * Before connecting, the socket file must belong to a trusted uid (see `trustedServerUids`),
 * and after connecting the path must still name that same socket; otherwise the connection
 * is refused with `UntrustedServerError` before a byte is written. Node cannot read the
 * peer's credentials (`SO_PEERCRED`), so unlike the Python client this check rests on the
 * file: it holds when the socket's directory is writable only by trusted users, as the
 * daemon ensures for the directory it listens in.
 */
import { readFileSync } from "node:fs";
import { stat } from "node:fs/promises";
import * as net from "node:net";

import { ConnectionClosedError, UntrustedServerError } from "./errors.js";

/** Environment variable naming the uid (or user name) the daemon runs as. */
export const SERVER_UID_ENV = "XSYS_SERVER_UID";

export interface ConnectSocketOptions {
  /** Give up after this long (default 5000 ms). */
  timeoutMs?: number;
  signal?: AbortSignal | undefined;
  /**
   * Uids trusted to own the socket: default `trustedServerUids()`; null skips the check
   * (the caller verified otherwise).
   */
  trustedUids?: ReadonlySet<number> | null;
}

function uidOfUser(name: string): number | undefined {
  let passwd: string;
  try {
    passwd = readFileSync("/etc/passwd", "utf8");
  } catch {
    return undefined;
  }
  for (const line of passwd.split("\n")) {
    const fields = line.split(":");
    if (fields[0] === name && fields[2] !== undefined && /^\d+$/.test(fields[2])) return Number(fields[2]);
  }
  return undefined;
}

/**
 * The uids a client accepts as the daemon's: root and `expectedUid` when given, else root
 * and `$XSYS_SERVER_UID` (a uid, or a user name from /etc/passwd) when set, else root and
 * this process's effective uid. Null where the platform has no uids (Windows: no check).
 * Throws `TypeError` for an unknown user name.
 */
export function trustedServerUids(
  expectedUid?: number,
  env: Readonly<Record<string, string | undefined>> = process.env,
): ReadonlySet<number> | null {
  if (typeof process.geteuid !== "function") return null;
  let uid = expectedUid;
  if (uid === undefined) {
    const named = (env[SERVER_UID_ENV] ?? "").trim();
    if (/^\d+$/.test(named)) uid = Number(named);
    else if (named) {
      uid = uidOfUser(named);
      if (uid === undefined) throw new TypeError(`${SERVER_UID_ENV}=${JSON.stringify(named)} is neither a uid nor a known user name`);
    }
  }
  return new Set([0, uid ?? process.geteuid()]);
}

interface SocketFile {
  uid: number;
  dev: bigint;
  ino: bigint;
}

/** Owner and identity of the file at `path` (symlinks followed, as connect does); null when absent or unreadable. */
async function socketFile(path: string): Promise<SocketFile | null> {
  try {
    const st = await stat(path, { bigint: true });
    return { uid: Number(st.uid), dev: st.dev, ino: st.ino };
  } catch {
    return null; // the connect reports a missing path
  }
}

function untrusted(path: string, uid: number, trusted: ReadonlySet<number>, check: string): UntrustedServerError {
  const expectedUids = [...trusted].sort((a, b) => a - b);
  const what = check === "socket_replaced" ? `the socket was replaced while connecting (now owned by uid ${uid})` : `the socket file is owned by uid ${uid}`;
  return new UntrustedServerError(
    `refusing to talk to ${path}: ${what}, not a trusted uid (${expectedUids.join(", ")}); another user may be ` +
      `impersonating the xsys daemon (if it runs as another user, pass expectedUid or set ${SERVER_UID_ENV})`,
    { socket: path, uid, expectedUids, check },
  );
}

/**
 * Connect to `path`; resolves with the connected socket, rejects with `ConnectionClosedError`
 * (nothing listens, timeout) or `UntrustedServerError` (see the module comment).
 */
export async function connectSocket(path: string, opts: ConnectSocketOptions = {}): Promise<net.Socket> {
  const trusted = opts.trustedUids === undefined ? trustedServerUids() : opts.trustedUids;
  const check = trusted !== null && process.platform !== "win32" && !path.startsWith("\0");
  let before: SocketFile | null = null;
  if (check) {
    before = await socketFile(path);
    if (before !== null && !trusted.has(before.uid)) throw untrusted(path, before.uid, trusted, "socket_owner");
  }
  const socket = await openSocket(path, opts);
  if (check) {
    // The path must still name the socket checked above: a swap in between is refused.
    const after = await socketFile(path);
    const replaced = after === null || (before !== null && (after.dev !== before.dev || after.ino !== before.ino));
    if (replaced || !trusted.has(after.uid)) {
      socket.destroy();
      throw untrusted(path, after?.uid ?? -1, trusted, replaced ? "socket_replaced" : "socket_owner");
    }
  }
  return socket;
}

/** Bytes of the reused buffer small reads go into (`SocketReader`). */
const READ_BUFFER_BYTES = 256 * 1024;

/**
 * Reads of a socket opened here (Node's `onread`): each read goes into the buffer the
 * attached consumer names (the rest of a large frame: file chunks land in place, no
 * joining of 64 KiB pieces), else into one reused buffer whose bytes the consumer copies.
 * Bytes read before a consumer attaches are kept (copied) and replayed to it.
 */
export class SocketReader {
  private readonly scratch = Buffer.allocUnsafe(READ_BUFFER_BYTES);
  private target: (() => Uint8Array | null) | null = null;
  private sink: ((n: number, buf: Uint8Array) => void) | null = null;
  private early: Buffer[] = [];

  /** Where the next read goes (called by Node before each read). */
  nextBuffer(): Uint8Array {
    return this.target?.() ?? this.scratch;
  }

  /** `n` bytes were read into `buf` (called by Node; true: keep reading). */
  onRead(n: number, buf: Uint8Array): boolean {
    if (this.sink === null) this.early.push(Buffer.from(buf.subarray(0, n)));
    else this.sink(n, buf);
    return true;
  }

  /**
   * Hand the reads to a consumer: `target` names the buffer for the next read (null: the
   * reused one), `sink` gets every read (the buffer is reused unless it is `target`'s).
   */
  attach(target: () => Uint8Array | null, sink: (n: number, buf: Uint8Array) => void, replayed?: () => void): void {
    // Replayed after the caller's constructor has returned (its callbacks may refer to
    // the object being built), and before any further read (reads come in later turns);
    // then `replayed` (the socket may have closed meanwhile: reads do not wait for a
    // consumer, unlike "data" listeners).
    queueMicrotask(() => {
      const early = this.early;
      this.early = [];
      this.target = target;
      this.sink = sink;
      for (const b of early) sink(b.byteLength, b);
      replayed?.();
    });
  }
}

const readers = new WeakMap<net.Socket, SocketReader>();

/** The `SocketReader` of a socket opened by `connectSocket`, if any. */
export function socketReader(socket: net.Socket): SocketReader | undefined {
  return readers.get(socket);
}

function openSocket(path: string, opts: ConnectSocketOptions): Promise<net.Socket> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const signal = opts.signal;
  return new Promise<net.Socket>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const reader = new SocketReader();
    const socket = net.createConnection({
      path,
      onread: { buffer: () => reader.nextBuffer(), callback: (n: number, buf: Uint8Array) => reader.onRead(n, buf) },
    });
    readers.set(socket, reader);
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
