import { z } from "zod";
import type { UpstreamTransport } from "./upstream.js";

/**
 * Which credential references an operator allows: `env:NAME` only for variables with the
 * prefix or in the list, `file:/path` only inside the secrets directory. The registry refuses
 * other references at registration and the connector refuses to resolve them, from the same
 * variables (spread these fields into each service's environment schema).
 */
export const CredentialPolicyEnv = {
  /** `env:` references may name variables starting with this ("" allows none by prefix). */
  MANIFOLD_SECRET_ENV_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_]*$/, { message: "must be a prefix of environment variable names" })
    .default("MANIFOLD_SECRET_"),
  /** More variables `env:` references may name, comma-separated. */
  MANIFOLD_SECRET_ENV_NAMES: z
    .string()
    .default("")
    .transform((list) => list.split(",").map((s) => s.trim()).filter(Boolean))
    .pipe(z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: "must be environment variable names" }))),
  /** `file:` references must lie inside this directory (absent: `file:` is refused). */
  MANIFOLD_SECRETS_DIR: z
    .string()
    .regex(/^\//, { message: "must be an absolute path" })
    .transform((dir) => dir.replace(/\/+$/, "") || "/")
    .optional(),
};

export interface CredentialPolicy {
  readonly envPrefix: string;
  readonly envNames: readonly string[];
  readonly secretsDir: string | undefined;
}

export const credentialPolicy = (config: {
  MANIFOLD_SECRET_ENV_PREFIX: string;
  MANIFOLD_SECRET_ENV_NAMES: readonly string[];
  MANIFOLD_SECRETS_DIR?: string | undefined;
}): CredentialPolicy =>
  Object.freeze({ envPrefix: config.MANIFOLD_SECRET_ENV_PREFIX, envNames: config.MANIFOLD_SECRET_ENV_NAMES, secretsDir: config.MANIFOLD_SECRETS_DIR });

/** Never resolvable, whatever the policy says: the services' own credentials. */
const RESERVED_ENV = /^(MANIFOLD_ADMIN_TOKENS?$|NATS_)/;

/** Whether an `env:` reference may name this variable. */
export const envAllowed = (name: string, policy: CredentialPolicy): boolean =>
  !RESERVED_ENV.test(name) && ((policy.envPrefix !== "" && name.startsWith(policy.envPrefix)) || policy.envNames.includes(name));

/** Whether a `file:` path lies inside the secrets directory, read as written (no `.`, `..` or empty segments). */
export function fileAllowed(path: string, policy: CredentialPolicy): boolean {
  const dir = policy.secretsDir;
  if (!dir) return false;
  const base = dir === "/" ? "/" : `${dir}/`;
  if (!path.startsWith(base)) return false;
  return path
    .slice(base.length)
    .split("/")
    .every((segment) => segment !== "" && segment !== "." && segment !== "..");
}

/** Why a reference is outside the policy (naming the reference and what is allowed), or undefined. */
export function credentialRefProblem(ref: string, policy: CredentialPolicy): string | undefined {
  if (ref.startsWith("env:")) {
    if (envAllowed(ref.slice(4), policy)) return undefined;
    const allowed = [policy.envPrefix ? `names starting with ${policy.envPrefix}` : "", ...policy.envNames].filter(Boolean).join(", ") || "none";
    return `${ref} is not a variable the connector may read (allowed: ${allowed}; MANIFOLD_SECRET_ENV_PREFIX, MANIFOLD_SECRET_ENV_NAMES)`;
  }
  if (fileAllowed(ref.slice(5), policy)) return undefined;
  return policy.secretsDir
    ? `${ref} is not inside the secrets directory ${policy.secretsDir} (MANIFOLD_SECRETS_DIR)`
    : `${ref} is refused: file: references need MANIFOLD_SECRETS_DIR`;
}

/** Every reference of a transport outside the policy, with the field that holds it. */
export function credentialRefIssues(transport: UpstreamTransport, policy: CredentialPolicy): { field: string; message: string }[] {
  const [field, refs] = transport.type === "stdio" ? ["secretEnv", transport.secretEnv] : ["secretHeaders", transport.secretHeaders];
  const issues: { field: string; message: string }[] = [];
  for (const [name, ref] of Object.entries(refs)) {
    const problem = credentialRefProblem(ref, policy);
    if (problem) issues.push({ field: `transport.${field}.${name}`, message: `transport.${field}.${name}: ${problem}` });
  }
  // The OAuth client secret is resolved by the gateways, under the same policy.
  const clientSecret = transport.type === "stdio" ? undefined : transport.auth?.clientSecret;
  const problem = clientSecret === undefined ? undefined : credentialRefProblem(clientSecret, policy);
  if (problem) issues.push({ field: "transport.auth.clientSecret", message: `transport.auth.clientSecret: ${problem}` });
  return issues;
}
