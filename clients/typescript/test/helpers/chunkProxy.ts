/**
 * A Unix-socket proxy between a client and a real daemon that re-chunks the byte stream:
 * `bytewise` delivers every byte as its own chunk (both directions), `coalesce` holds the
 * daemon's output and delivers it in one chunk per `holdMs`, so many frames arrive at once.
 */
import { mkdtempSync, rmSync } from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";

export type ProxyMode = "bytewise" | "coalesce";

function writeBytewise(target: net.Socket): (chunk: Buffer) => void {
  let queue: Promise<void> = Promise.resolve();
  return (chunk: Buffer) => {
    queue = queue.then(async () => {
      for (const b of chunk) {
        if (target.destroyed) return;
        await new Promise<void>((resolve) => target.write(Buffer.of(b), () => resolve()));
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    });
  };
}

export class ChunkProxy {
  readonly dir: string;
  readonly socketPath: string;
  /** Largest chunk written to the client, and how many chunks. */
  chunksToClient = 0;
  largestChunkToClient = 0;
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();

  constructor(
    private readonly target: string,
    private readonly mode: ProxyMode,
    private readonly holdMs = 20,
  ) {
    this.dir = mkdtempSync(path.join(os.tmpdir(), "xsys-px-"));
    this.socketPath = path.join(this.dir, "proxy.sock");
  }

  async start(): Promise<this> {
    this.server = net.createServer((client) => this.accept(client));
    await new Promise<void>((resolve) => this.server?.listen(this.socketPath, () => resolve()));
    return this;
  }

  private accept(client: net.Socket): void {
    const upstream = net.createConnection({ path: this.target });
    this.sockets.add(client).add(upstream);
    const toClient = (chunk: Buffer): void => {
      this.chunksToClient += 1;
      this.largestChunkToClient = Math.max(this.largestChunkToClient, chunk.length);
    };
    if (this.mode === "bytewise") {
      const up = writeBytewise(upstream);
      const down = writeBytewise(client);
      client.on("data", up);
      upstream.on("data", (chunk: Buffer) => {
        for (let i = 0; i < chunk.length; i++) toClient(chunk.subarray(i, i + 1));
        down(chunk);
      });
    } else {
      client.on("data", (chunk: Buffer) => upstream.write(chunk));
      let held: Buffer[] = [];
      let timer: NodeJS.Timeout | null = null;
      upstream.on("data", (chunk: Buffer) => {
        held.push(chunk);
        timer ??= setTimeout(() => {
          timer = null;
          const all = Buffer.concat(held);
          held = [];
          toClient(all);
          client.write(all);
        }, this.holdMs);
      });
    }
    const end = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on("close", end).on("error", end);
    upstream.on("close", end).on("error", end);
  }

  async dispose(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
