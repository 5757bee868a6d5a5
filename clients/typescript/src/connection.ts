/**
 * Connection: turns a byte stream into messages and back. Frames (framing.ts) carry one
 * msgpack map each; this layer encodes outgoing messages, batches the frames written in one
 * tick into a single socket write, decodes incoming frames and hands each message up. It
 * knows nothing about ids, methods or subscriptions.
 */
import type * as net from "node:net";

import { Decoder, Encoder } from "@msgpack/msgpack";

import { ConnectionClosedError, FrameError } from "./errors.js";
import { DEFAULT_MAX_FRAME, FrameDecoder, frame } from "./framing.js";
import { socketReader } from "./transport.js";

export interface ConnectionHandlers {
  /** One decoded message (the payload of one frame). */
  onMessage(message: unknown): void;
  /** A frame that was not msgpack: the framing is intact, so the stream continues. */
  onUndecodable(error: FrameError): void;
  /** The stream ended; `error` says why when it was not a clean close. Called once. */
  onClose(error: Error | undefined): void;
}

export interface ConnectionOptions {
  maxFrame?: number;
}

export class Connection {
  readonly maxFrame: number;
  private readonly socket: net.Socket;
  private readonly handlers: ConnectionHandlers;
  private readonly encoder = new Encoder({ useBigInt64: false, ignoreUndefined: true });
  private readonly decoder = new Decoder({ useBigInt64: false });
  private readonly frames: FrameDecoder;
  private outbox: Buffer[] = [];
  private flushScheduled = false;
  private isClosed = false;
  private closeError: Error | undefined;
  private resolveClosed!: () => void;
  /** Resolves once the socket has closed. */
  readonly closed: Promise<void> = new Promise((resolve) => {
    this.resolveClosed = resolve;
  });

  constructor(socket: net.Socket, handlers: ConnectionHandlers, opts: ConnectionOptions = {}) {
    this.socket = socket;
    this.handlers = handlers;
    this.maxFrame = opts.maxFrame ?? DEFAULT_MAX_FRAME;
    this.frames = new FrameDecoder(this.maxFrame);
    const reader = socketReader(socket);
    if (reader) {
      // Large frames are read straight into their own buffer (see SocketReader).
      reader.attach(
        () => this.frames.readTarget(),
        (n, buf) => this.onPayloads(this.frames.filled(n, buf)),
        () => {
          if (socket.destroyed) this.finish(); // closed before this connection listened
        },
      );
    } else {
      socket.on("data", (chunk: Buffer) => this.onData(chunk));
    }
    socket.on("error", (err: Error) => {
      this.closeError ??= err;
    });
    socket.on("close", () => this.finish());
  }

  get isOpen(): boolean {
    return !this.isClosed;
  }

  /**
   * Encode and queue one message. Throws `TooLargeError` (nothing is sent) when its frame
   * would exceed `maxFrame`, `ConnectionClosedError` after close.
   */
  send(message: object): void {
    if (this.isClosed) throw new ConnectionClosedError("connection is closed");
    const bytes = frame(this.encoder.encodeSharedRef(message), this.maxFrame);
    this.outbox.push(bytes);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(this.flush);
    }
  }

  /** Close after the queued frames are written. */
  end(): void {
    if (this.isClosed) return;
    this.flush();
    this.socket.end();
  }

  /** Close now, dropping anything queued. */
  destroy(error?: Error): void {
    if (error) this.closeError ??= error;
    this.outbox = [];
    this.socket.destroy();
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    const out = this.outbox;
    if (out.length === 0 || this.isClosed) return;
    this.outbox = [];
    this.socket.write(out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out));
  };

  private onData(chunk: Buffer): void {
    this.onPayloads(this.frames.push(chunk));
  }

  private onPayloads(payloads: Uint8Array[]): void {
    for (const payload of payloads) {
      if (this.isClosed) return;
      let message: unknown;
      try {
        message = this.decoder.decode(payload);
      } catch (err) {
        this.handlers.onUndecodable(new FrameError(`undecodable frame: ${(err as Error).message}`, { cause: err }));
        continue;
      }
      try {
        this.handlers.onMessage(message);
      } catch (err) {
        // A user callback (listener, onProgress) threw: keep this client consistent by
        // finishing the chunk, then surface the error as Node would (uncaught).
        process.nextTick(() => {
          throw err;
        });
      }
    }
    if (this.frames.error) this.destroy(this.frames.error);
  }

  private finish(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.outbox = [];
    this.handlers.onClose(this.closeError);
    this.resolveClosed();
  }
}
