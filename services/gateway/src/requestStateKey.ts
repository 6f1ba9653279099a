import { credentialPolicy, credentialRefProblem } from "@manifold/contracts";
import type { Logger } from "@manifold/telemetry";
import { randomBytes } from "node:crypto";
import { readFileSync, realpathSync } from "node:fs";
import { sep } from "node:path";
import type { GatewayConfig } from "./config.js";

/** The SDK's HMAC codec wants at least 256 bits. */
const MIN_KEY_BYTES = 32;

/**
 * The key that signs 2026-07-28 `requestState`, resolved once at start from its secret reference
 * under the operator's credential policy (the rules upstream credentials follow). A start with a
 * bad reference fails, naming the reference, never the value.
 */
export function requestStateKey(config: GatewayConfig, env: Readonly<Record<string, string | undefined>>, logger: Logger): Uint8Array {
  const ref = config.GATEWAY_REQUEST_STATE_KEY;
  if (!ref) {
    logger.warn("GATEWAY_REQUEST_STATE_KEY is not set: requestState is signed with a key of this replica only, so a 2026-07-28 retry must reach it");
    return randomBytes(MIN_KEY_BYTES);
  }
  const policy = credentialPolicy(config);
  const refused = credentialRefProblem(ref, policy);
  if (refused) throw new Error(`GATEWAY_REQUEST_STATE_KEY: ${refused}`);
  let value: string | undefined;
  if (ref.startsWith("env:")) value = env[ref.slice(4)];
  else {
    const file = realpathSync(ref.slice(5));
    const dir = realpathSync(policy.secretsDir!);
    if (!file.startsWith(dir.endsWith(sep) ? dir : `${dir}${sep}`)) throw new Error(`GATEWAY_REQUEST_STATE_KEY: ${ref} leads outside the secrets directory`);
    value = readFileSync(file, "utf8").trim();
  }
  const key = Buffer.from(value ?? "", "utf8");
  if (key.length < MIN_KEY_BYTES) throw new Error(`GATEWAY_REQUEST_STATE_KEY: ${ref} must hold at least ${MIN_KEY_BYTES} bytes`);
  return key;
}
