/**
 * Streaming file transfer (docs/fs.md, "Streaming"): a streamed `fs.read` as a Node
 * `Readable` (chunks arrive as `fs.chunk {request, offset, data}` notifications; the
 * consumer's progress is acknowledged with `fs.ack {request, offset}` so the daemon never
 * runs more than `windowBytes` ahead), and a streamed `fs.write` as a Node `Writable`
 * (pipelined `fs.write_chunk {request, offset, data, eof}` requests bound to one
 * `fs.write {path, stream: true}` request).
 */
import { Readable, Writable } from "node:stream";

import type { CallOptions, Params } from "./caller.js";

/** Options of `XsysClient.readStream`. */
export interface ReadStreamOptions {
  /** First byte (default 0). */
  offset?: number;
  /** Bytes to read (default: to the end). */
  length?: number;
  /** Most bytes the daemon sends beyond what was acknowledged (default 32 MiB). */
  windowBytes?: number;
  /** Per-call timeout of the underlying request in ms (default: none, a stream may be long). */
  timeoutMs?: number;
}

/** Options of `XsysClient.writeStream`. */
export interface WriteStreamOptions {
  /** Most `fs.write_chunk` requests unanswered at once (default 4). */
  maxInflight?: number;
  /** Timeout of the upload as a whole in ms (default: none). */
  timeoutMs?: number;
}

/** The `Writable` of a streamed upload; `result` holds the `fs.write` answer once finished. */
export interface UploadStream extends Writable {
  result: Record<string, unknown> | undefined;
}

/** What the streams need from the client. */
export interface StreamHost {
  callWithId(method: string, params: Params, onSent: (id: number) => void, options?: CallOptions): Promise<unknown>;
  setChunkSink(id: number, sink: ((params: Params) => void) | undefined): void;
  call(method: string, params?: Params, options?: CallOptions): Promise<unknown>;
}

const DEFAULT_WINDOW = 32 * 1024 * 1024;

/** See `XsysClient.readStream`. */
export function createReadStream(host: StreamHost, path: string | Uint8Array, options: ReadStreamOptions = {}): Readable {
  const window = options.windowBytes ?? DEFAULT_WINDOW;
  let id = 0;
  let received = 0;
  let acked = 0;
  let finished = false;
  const ack = (): void => {
    if (id === 0 || finished) return;
    const consumed = received - stream.readableLength;
    if (consumed - acked < window / 2) return;
    acked = consumed;
    host.call("fs.ack", { request: id, offset: consumed }).catch(() => undefined); // ends with the stream
  };
  const stream = new Readable({
    highWaterMark: Math.max(64 * 1024, window / 2),
    read() {
      // Node calls read() before it takes the data out of the buffer: look once it has
      setImmediate(ack);
    },
    destroy(err, cb) {
      if (id !== 0) host.setChunkSink(id, undefined);
      cb(err);
    },
  });
  const params: Params = { path, stream: true, offset: options.offset ?? 0 };
  if (options.length !== undefined) params["length"] = options.length;
  if (options.windowBytes !== undefined) params["window_bytes"] = options.windowBytes;
  host
    .callWithId(
      "fs.read",
      params,
      (sent) => {
        id = sent;
        host.setChunkSink(sent, (p) => {
          const data = p["data"] as Uint8Array;
          received += data.byteLength;
          if (stream.push(data)) ack();
        });
      },
      { timeoutMs: options.timeoutMs ?? 0 },
    )
    .then(
      () => {
        finished = true;
        host.setChunkSink(id, undefined);
        stream.push(null);
      },
      (err: Error) => {
        finished = true;
        stream.destroy(err);
      },
    );
  return stream;
}

/** See `XsysClient.writeStream`. */
export function createWriteStream(host: StreamHost, path: string | Uint8Array, options: WriteStreamOptions = {}): UploadStream {
  const maxInflight = options.maxInflight ?? 4;
  let offset = 0;
  let inflight = 0;
  let failed: Error | undefined;
  const waiters: (() => void)[] = [];
  let resolveId: (id: number) => void = () => undefined;
  const idReady = new Promise<number>((resolve) => {
    resolveId = resolve;
  });
  const final = host.callWithId("fs.write", { path, stream: true }, (id) => resolveId(id), {
    timeoutMs: options.timeoutMs ?? 0,
  });
  final.catch((err: Error) => {
    failed = err;
    while (waiters.length) waiters.shift()?.();
  });
  const chunk = async (data: Uint8Array, eof: boolean): Promise<void> => {
    const request = await idReady;
    const at = offset;
    offset += data.byteLength;
    inflight += 1;
    try {
      await host.call("fs.write_chunk", { request, offset: at, data, eof });
    } finally {
      inflight -= 1;
      waiters.shift()?.();
    }
  };
  const room = async (): Promise<void> => {
    while (inflight >= maxInflight && failed === undefined) {
      await new Promise<void>((resolve) => waiters.push(resolve));
    }
  };
  const errors: Promise<void>[] = [];
  const stream = new Writable({
    write(data: Uint8Array, _enc, cb) {
      if (failed) return cb(failed);
      const sent = chunk(data, false);
      errors.push(sent.catch((err: Error) => {
        failed ??= err;
      }));
      room().then(() => cb(failed), cb);
    },
    final(cb) {
      if (failed) return cb(failed);
      chunk(new Uint8Array(0), true)
        .then(() => Promise.all(errors))
        .then(() => (failed ? Promise.reject(failed) : final))
        .then((result) => {
          (stream as UploadStream).result = result as Record<string, unknown>;
          stream.emit("result", result);
          cb();
        }, (err: Error) => cb(err));
    },
  }) as UploadStream;
  stream.result = undefined;
  return stream;
}
