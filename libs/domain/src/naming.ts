import { createHash } from "node:crypto";
import { EXPOSED_NAME_MAX } from "@manifold/contracts";

const SUFFIX_LENGTH = 6;
const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

/** Six base32 characters (30 bits) of SHA-256 over (upstream, tool): stable on every node and restart. */
export function toolSuffix(upstream: string, tool: string): string {
  const digest = createHash("sha256").update(upstream).update("\u0000").update(tool).digest();
  let bits = 0;
  let value = 0;
  let out = "";
  for (const byte of digest) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < SUFFIX_LENGTH) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    if (out.length === SUFFIX_LENGTH) break;
  }
  return out;
}

/**
 * `<original>_<suffix>`: characters outside [A-Za-z0-9_-] become `_`, and the original
 * part is shortened (never the suffix) so the whole fits in 64 characters.
 */
export function exposedToolName(upstream: string, tool: string): string {
  const room = EXPOSED_NAME_MAX - SUFFIX_LENGTH - 1;
  const base = tool.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, room);
  return `${base}_${toolSuffix(upstream, tool)}`;
}
