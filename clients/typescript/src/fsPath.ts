/**
 * Paths on the wire (docs/protocol.md, "File names"): a file name that is not valid UTF-8 travels
 * as msgpack bin, so path fields of results and notifications are `string | Uint8Array`
 * (`FsPath`), and path parameters accept either. These helpers read them.
 */
import type { FsPath } from "./results.js";

const decoder = new TextDecoder("utf-8", { fatal: false });

/** `p` as text: itself, or its bytes decoded as UTF-8 with U+FFFD for invalid sequences (lossy: for display, not to pass back). */
export function pathText(p: FsPath): string {
  return typeof p === "string" ? p : decoder.decode(p);
}

/** Is `p` the raw-bytes form (a name that is not valid UTF-8)? */
export function isBinaryPath(p: FsPath): p is Uint8Array {
  return typeof p !== "string";
}
