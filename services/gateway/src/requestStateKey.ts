import { resolveSecrets, type ScopedSecrets } from "@manifold/contracts";
import type { Logger } from "@manifold/telemetry";
import { randomBytes } from "node:crypto";

/** The SDK's HMAC codec wants at least 256 bits. */
const MIN_KEY_BYTES = 32;

/**
 * The key that signs 2026-07-28 `requestState`, resolved once at start from its secret reference
 * by the resolver and credential policy upstream credentials use. A start with a bad reference
 * fails, naming the reference, never the value.
 */
export async function requestStateKey(ref: string | undefined, secrets: ScopedSecrets, logger: Logger): Promise<Uint8Array> {
  if (!ref) {
    logger.warn("GATEWAY_REQUEST_STATE_KEY is not set: requestState is signed with a key of this replica only, so a 2026-07-28 retry must reach it");
    return randomBytes(MIN_KEY_BYTES);
  }
  const { key: value } = await resolveSecrets({ key: ref }, secrets, "env");
  const key = Buffer.from(value!, "utf8");
  if (key.length < MIN_KEY_BYTES) throw new Error(`GATEWAY_REQUEST_STATE_KEY: ${ref} must hold at least ${MIN_KEY_BYTES} bytes`);
  return key;
}
