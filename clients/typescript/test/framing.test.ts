import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { Decoder, Encoder } from "@msgpack/msgpack";

import { FrameError, TooLargeError } from "../src/errors.js";
import { DEFAULT_MAX_FRAME, FrameDecoder, LARGE_FRAME_BYTES, frame } from "../src/framing.js";

const enc = new Encoder();
const dec = new Decoder({ useBigInt64: false });

function frames(n: number): { bytes: Buffer; messages: unknown[] } {
  const messages: unknown[] = [];
  const parts: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const msg = { id: i + 1, result: { i, s: "x".repeat(i % 50), b: new Uint8Array(i % 7) } };
    messages.push(msg);
    parts.push(frame(enc.encode(msg)));
  }
  return { bytes: Buffer.concat(parts), messages };
}

describe("frame()", () => {
  it("prefixes a 4-byte big-endian length", () => {
    const out = frame(Uint8Array.of(0x80));
    assert.deepEqual([...out], [0, 0, 0, 1, 0x80]);
    const big = frame(new Uint8Array(0x010203));
    assert.deepEqual([...big.subarray(0, 4)], [0, 1, 2, 3]);
  });

  it("refuses empty payloads and payloads above max_frame", () => {
    assert.throws(() => frame(new Uint8Array(0)), TooLargeError);
    assert.throws(() => frame(new Uint8Array(11), 10), TooLargeError);
    assert.equal(frame(new Uint8Array(10), 10).byteLength, 14);
    assert.equal(DEFAULT_MAX_FRAME, 16 * 1024 * 1024);
  });
});

describe("FrameDecoder", () => {
  it("decodes frames fed one byte at a time", () => {
    const { bytes, messages } = frames(20);
    const d = new FrameDecoder();
    const out: unknown[] = [];
    for (const b of bytes) for (const p of d.push(Buffer.of(b))) out.push(dec.decode(p));
    assert.deepEqual(out, messages);
    assert.equal(d.bufferedBytes, 0);
  });

  it("decodes many frames packed into one chunk", () => {
    const { bytes, messages } = frames(500);
    const d = new FrameDecoder();
    const out = d.push(bytes).map((p) => dec.decode(p));
    assert.deepEqual(out, messages);
  });

  it("decodes any split of the stream (random chunk sizes)", () => {
    const { bytes, messages } = frames(200);
    let seed = 42;
    const rand = (): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    for (let round = 0; round < 20; round++) {
      const d = new FrameDecoder();
      const out: unknown[] = [];
      let pos = 0;
      while (pos < bytes.length) {
        const n = 1 + Math.floor(rand() * (round < 10 ? 8 : 3000));
        for (const p of d.push(bytes.subarray(pos, pos + n))) out.push(dec.decode(p));
        pos += n;
      }
      assert.deepEqual(out, messages);
    }
  });

  it("handles a header split across chunks and a large frame in many chunks", () => {
    const payload = enc.encode({ blob: new Uint8Array(1_000_000).fill(7) });
    const bytes = frame(payload);
    const d = new FrameDecoder();
    assert.deepEqual(d.push(bytes.subarray(0, 2)), []);
    let got: Uint8Array[] = [];
    for (let pos = 2; pos < bytes.length; pos += 65536) got = got.concat(d.push(bytes.subarray(pos, pos + 65536)));
    assert.equal(got.length, 1);
    assert.deepEqual(Buffer.from(got[0] as Uint8Array), Buffer.from(payload));
  });

  it("flags a zero length and a length above max_frame, keeping the frames before it", () => {
    const good = frame(enc.encode({ id: 1 }));
    const d = new FrameDecoder(1024);
    const out = d.push(Buffer.concat([good, Buffer.from([0, 0, 0, 0])]));
    assert.equal(out.length, 1);
    assert.ok(d.error instanceof FrameError);
    assert.deepEqual(d.push(good), [], "nothing more after a framing error");

    const d2 = new FrameDecoder(1024);
    assert.deepEqual(d2.push(Buffer.from([0, 0, 4, 1])), []);
    assert.match(String(d2.error?.message), /1025/);
    d2.reset();
    assert.equal(d2.error, null);
    assert.equal(d2.push(good).length, 1);
  });
});

describe("FrameDecoder: large frames", () => {
  // Small frames, a large one (above LARGE_FRAME_BYTES, assembled in its own buffer),
  // small ones again: what every way of delivering the bytes must give back.
  function mixed(): { bytes: Buffer; payloads: Buffer[] } {
    const payloads = [Buffer.from("small-1"), Buffer.alloc(LARGE_FRAME_BYTES * 3 + 17), Buffer.from("small-2")];
    for (let i = 0; i < (payloads[1] as Buffer).byteLength; i++) (payloads[1] as Buffer)[i] = (i * 31 + 7) & 0xff;
    payloads.push(Buffer.alloc(LARGE_FRAME_BYTES, 0xab), Buffer.from("small-3"));
    return { bytes: Buffer.concat(payloads.map((p) => frame(p))), payloads };
  }

  it("pushes a large frame split into uneven chunks, with small frames around it", () => {
    const { bytes, payloads } = mixed();
    for (const step of [1 << 10, 65_536 + 3, 300_001, bytes.byteLength]) {
      const d = new FrameDecoder();
      const out: Uint8Array[] = [];
      for (let at = 0; at < bytes.byteLength; at += step) out.push(...d.push(bytes.subarray(at, at + step)));
      assert.equal(out.length, payloads.length, `step ${step}`);
      out.forEach((p, i) => assert.ok(Buffer.from(p).equals(payloads[i] as Buffer), `step ${step} frame ${i}`));
      assert.equal(d.bufferedBytes, 0);
    }
  });

  it("lets a socket read straight into the large frame (readTarget/filled), a reused buffer elsewhere", () => {
    const { bytes, payloads } = mixed();
    const d = new FrameDecoder();
    const scratch = Buffer.alloc(70_000);
    const out: Uint8Array[] = [];
    let at = 0;
    let direct = 0;
    while (at < bytes.byteLength) {
      // a read of at most 100 KB into whatever buffer the decoder names, else the scratch
      const target = d.readTarget() ?? scratch;
      const n = Math.min(target.byteLength, 100_000, bytes.byteLength - at);
      target.set(bytes.subarray(at, at + n));
      if (target !== scratch) direct += n;
      at += n;
      out.push(...d.filled(n, target));
      scratch.fill(0xee); // the reused buffer is overwritten: nothing may still point into it
    }
    assert.ok(direct > LARGE_FRAME_BYTES * 3, `${direct} bytes read in place`);
    assert.equal(out.length, payloads.length);
    out.forEach((p, i) => assert.ok(Buffer.from(p).equals(payloads[i] as Buffer), `frame ${i}`));
    assert.equal(d.bufferedBytes, 0);
  });

  it("counts a partly received large frame as buffered, and reset forgets it", () => {
    const d = new FrameDecoder();
    const f = frame(Buffer.alloc(LARGE_FRAME_BYTES * 2));
    assert.deepEqual(d.push(f.subarray(0, 1000)), []);
    assert.equal(d.bufferedBytes, 1000);
    assert.ok(d.readTarget() !== null);
    d.reset();
    assert.equal(d.bufferedBytes, 0);
    assert.equal(d.readTarget(), null);
    assert.equal(d.push(frame(Buffer.from("x"))).length, 1);
  });
});
