/**
 * Framing: every message is a 4-byte big-endian length followed by that many bytes of
 * msgpack (docs/protocol.md, "Framing"). This layer knows bytes and frames, nothing about
 * requests or responses.
 */
import { FrameError, TooLargeError } from "./errors.js";

/** Default `max_frame` of the protocol: 16 MiB. */
export const DEFAULT_MAX_FRAME = 16 * 1024 * 1024;

/** Frame header size in bytes. */
export const HEADER_BYTES = 4;

/**
 * Payloads of at least this many bytes are assembled in one buffer of their size, filled
 * as bytes arrive (or read straight into by the socket, see `readTarget`): no list of
 * chunks joined at the end (as `LARGE_FRAME_BYTES` in the Python package).
 */
export const LARGE_FRAME_BYTES = 256 * 1024;

/**
 * Prefix a payload with its length. Throws `TooLargeError` when the payload is empty or
 * above `maxFrame`, so the caller never sends a frame the peer must reject.
 */
export function frame(payload: Uint8Array, maxFrame: number = DEFAULT_MAX_FRAME): Buffer {
  const length = payload.byteLength;
  if (length === 0 || length > maxFrame) {
    throw new TooLargeError(`frame of ${length} bytes is outside 1..max_frame (${maxFrame} bytes)`, {
      size: length,
      max_frame: maxFrame,
    });
  }
  const out = Buffer.allocUnsafe(HEADER_BYTES + length);
  out.writeUInt32BE(length, 0);
  out.set(payload, HEADER_BYTES);
  return out;
}

/**
 * Streaming frame decoder. Feed it the chunks a stream delivers, in order; it returns
 * the payloads completed by each chunk (views, not copies, as plain `Uint8Array`s). Handles frames split across any number of chunks
 * (down to one byte each) and any number of frames packed into one chunk; bytes are
 * copied at most once per frame (only when a frame spans chunks).
 */
export class FrameDecoder {
  private readonly maxFrame: number;
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Payload length of the frame being assembled, or -1 while its header is incomplete. */
  private pending = -1;
  /** The payload of a large frame being received, and its bytes filled so far. */
  private large: Buffer | null = null;
  private largeFilled = 0;
  /** The view of `large` last handed out by `readTarget`. */
  private target: Uint8Array | null = null;

  constructor(maxFrame: number = DEFAULT_MAX_FRAME) {
    this.maxFrame = maxFrame;
  }

  /** Bytes received but not yet returned as part of a frame. */
  get bufferedBytes(): number {
    return this.buffered + (this.large === null ? 0 : HEADER_BYTES + this.largeFilled);
  }

  /**
   * Where the next socket read may go: the unfilled rest of a large frame's payload (the
   * socket then writes into it directly: report it with `filled`), or null (read into
   * any buffer and `push` a copy).
   */
  readTarget(): Uint8Array | null {
    if (this.large === null) return (this.target = null);
    this.target = this.large.subarray(this.largeFilled);
    return this.target;
  }

  /**
   * `n` bytes were read into `buf`. When `buf` is the view `readTarget` returned, they
   * fill the large frame in place; otherwise `buf` is a reused buffer and its bytes are
   * copied and pushed. Returns the payloads completed (see `push`).
   */
  filled(n: number, buf: Uint8Array): Uint8Array[] {
    if (n <= 0 || this.error) return [];
    if (this.large !== null && buf === this.target) {
      this.target = null;
      this.largeFilled += n;
      return this.largeFilled < this.large.byteLength ? [] : [this.finishLarge()];
    }
    return this.push(Buffer.from(buf.subarray(0, n)));
  }

  /**
   * Set when a header announced a length of 0 or above `maxFrame`. The stream cannot be
   * resynchronised after that: the caller must close the connection, and `push` returns
   * nothing more.
   */
  error: FrameError | null = null;

  /**
   * Add a chunk; return every payload it completes (those before a bad header included;
   * check `error` afterwards).
   */
  push(chunk: Uint8Array): Uint8Array[] {
    if (chunk.byteLength === 0 || this.error) return [];
    let buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const out: Uint8Array[] = [];
    if (this.large !== null) {
      const n = Math.min(this.large.byteLength - this.largeFilled, buf.byteLength);
      this.large.set(buf.subarray(0, n), this.largeFilled);
      this.largeFilled += n;
      if (this.largeFilled < this.large.byteLength) return out;
      out.push(this.finishLarge());
      if (n === buf.byteLength) return out;
      buf = buf.subarray(n);
    }
    this.chunks.push(buf);
    this.buffered += buf.byteLength;
    for (;;) {
      if (this.pending < 0) {
        if (this.buffered < HEADER_BYTES) break;
        this.pending = this.readLength();
        if (this.pending < 0) break;
      }
      const total = HEADER_BYTES + this.pending;
      if (this.buffered < total) {
        if (this.pending >= LARGE_FRAME_BYTES) this.startLarge();
        break;
      }
      const f = this.take(total);
      // A plain Uint8Array view (not a Buffer), so msgpack bin values decode as Uint8Array.
      out.push(new Uint8Array(f.buffer, f.byteOffset + HEADER_BYTES, this.pending));
      this.pending = -1;
    }
    return out;
  }

  /** Forget any partial frame and any error (to reuse the decoder on a new stream). */
  reset(): void {
    this.chunks = [];
    this.buffered = 0;
    this.pending = -1;
    this.large = null;
    this.largeFilled = 0;
    this.target = null;
    this.error = null;
  }

  /** Move the pending large frame's buffered bytes into a buffer of its payload's size. */
  private startLarge(): void {
    this.take(HEADER_BYTES);
    const large = Buffer.allocUnsafe(this.pending);
    let at = 0;
    for (const c of this.chunks) {
      large.set(c, at);
      at += c.byteLength;
    }
    this.chunks = [];
    this.buffered = 0;
    this.pending = -1;
    this.large = large;
    this.largeFilled = at;
  }

  private finishLarge(): Uint8Array {
    const f = this.large as Buffer;
    this.large = null;
    this.largeFilled = 0;
    return new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
  }

  private readLength(): number {
    let head = this.chunks[0] as Buffer;
    if (head.byteLength < HEADER_BYTES) {
      this.coalesce();
      head = this.chunks[0] as Buffer;
    }
    const length = head.readUInt32BE(0);
    if (length === 0 || length > this.maxFrame) {
      this.reset();
      this.error = new FrameError(`received a frame length of ${length}, outside 1..max_frame (${this.maxFrame} bytes)`);
      return -1;
    }
    return length;
  }

  /** Remove and return the first `n` buffered bytes (n <= buffered). */
  private take(n: number): Buffer {
    let head = this.chunks[0] as Buffer;
    if (head.byteLength < n) {
      this.coalesce();
      head = this.chunks[0] as Buffer;
    }
    const taken = head.subarray(0, n);
    if (head.byteLength === n) {
      this.chunks.shift();
    } else {
      this.chunks[0] = head.subarray(n);
    }
    this.buffered -= n;
    return taken;
  }

  private coalesce(): void {
    this.chunks = [Buffer.concat(this.chunks, this.buffered)];
  }
}
