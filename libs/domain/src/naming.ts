import { createHash } from "node:crypto";
import { EXPOSED_NAME_MAX, ManifoldError, type Naming } from "@manifold/contracts";

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

const VALID = /^[A-Za-z0-9_-]{1,64}$/;

/** The exposed name a naming policy gives a tool (an alias given at selection overrides it). */
export function exposedNameFor(upstream: string, tool: string, naming: Naming): string {
  switch (naming.policy) {
    case "suffix":
      return exposedToolName(upstream, tool);
    case "bare":
      if (!VALID.test(tool)) {
        throw new ManifoldError("invalid_request", `tool '${tool}' on upstream '${upstream}' cannot be exposed under its bare name: give it an alias`);
      }
      return tool;
    case "prefix": {
      // An own key only: an upstream named `constructor` is not prefixed by Object's constructor.
      const prefix = Object.hasOwn(naming.prefixes, upstream) ? naming.prefixes[upstream] : upstream;
      const prefixed = `${prefix}_${tool.replace(/[^A-Za-z0-9_-]/g, "_")}`;
      if (prefixed.length <= EXPOSED_NAME_MAX) return prefixed;
      // Clipped names keep a deterministic suffix, so two long names stay apart.
      return `${prefixed.slice(0, EXPOSED_NAME_MAX - 7)}_${toolSuffix(upstream, tool)}`;
    }
  }
}
