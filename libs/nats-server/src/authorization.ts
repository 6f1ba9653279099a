import { busPermissions, type BusPermissions, type BusRole } from "@manifold/contracts";

/** An identity nats-server knows: a Manifold role, or `operator` (everything; tests and maintenance only). */
export type CredentialRole = BusRole | "operator";

export interface AuthUser {
  role: CredentialRole;
  /** The public nkey (`U…`), or a config variable such as `$MANIFOLD_GATEWAY_NKEY` (nats-server reads it from its environment). */
  nkey: string;
  /** A connector's upstreams, `*` for all. */
  upstreams?: "*" | readonly string[];
}

const AUTH_TIMEOUT_SECONDS = 10;
const OPERATOR: BusPermissions = { publish: [">"], subscribe: [">"] };

const list = (subjects: readonly string[], indent: string) => `[\n${subjects.map((s) => `${indent}  ${JSON.stringify(s)}`).join("\n")}\n${indent}]`;
const nkeyValue = (nkey: string) => (nkey.startsWith("$") ? nkey : JSON.stringify(nkey));

function renderUser(user: AuthUser): string {
  const p = user.role === "operator" ? OPERATOR : busPermissions(user.role, user.upstreams ? { upstreams: user.upstreams } : {});
  const lines = [
    `    # ${user.role}${user.upstreams && user.upstreams !== "*" ? ` (upstreams ${user.upstreams.join(", ")})` : ""}`,
    `    {`,
    `      nkey: ${nkeyValue(user.nkey)}`,
    `      permissions: {`,
    `        publish: { allow: ${list(p.publish, "        ")} }`,
    `        subscribe: { allow: ${list(p.subscribe, "        ")} }`,
    ...(p.responses ? [`        allow_responses: { max: ${p.responses.max}, expires: ${JSON.stringify(p.responses.expires)} }`] : []),
    `      }`,
    `    }`,
  ];
  return lines.join("\n");
}

/**
 * nats-server's `authorization` block for these identities, rendered from the permissions
 * defined once in `@manifold/contracts` (`busPermissions`). Any server config can `include`
 * the result, e.g. deploy/nats/auth.conf.
 */
export function renderAuthorization(users: readonly AuthUser[]): string {
  return [
    "# Generated from libs/contracts/src/busPermissions.ts (`manifold nats auth-conf`); do not edit by hand.",
    "authorization {",
    "  # Seconds a client has to authenticate after connecting (default 2): a cold process signing",
    "  # its first nonce on a busy machine can take longer, and would be cut off.",
    `  timeout: ${AUTH_TIMEOUT_SECONDS}`,
    "  users = [",
    users.map(renderUser).join("\n"),
    "  ]",
    "}",
    "",
  ].join("\n");
}

/** The identities of a deployment whose public nkeys come from the server's environment (`MANIFOLD_<ROLE>_NKEY`). */
export const deployedUsers = (): AuthUser[] =>
  (["registry", "connector", "gateway"] as const).map((role) => ({ role, nkey: `$MANIFOLD_${role.toUpperCase()}_NKEY` }));
