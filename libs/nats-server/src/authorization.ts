import { BUS_ROLES, ResourceName, busPermissions, type BusPermissions, type BusRole } from "@manifold/contracts";

/** An identity nats-server knows: a Manifold role, or `operator` (everything; tests and maintenance only). */
export type CredentialRole = BusRole | "operator";

/**
 * Connectors deployed for some upstreams only (`CONNECTOR_UPSTREAMS`), with an identity of their
 * own that reaches just those: with the one connector identity, every connector deployment could
 * take any upstream's calls and the pass-through credentials in them.
 */
export interface ConnectorGroup {
  name: string;
  upstreams: readonly string[];
}

/** A connector group's identity: its seed file is `<identity>.nk`, its public key `$MANIFOLD_CONNECTOR_<GROUP>_NKEY`. */
export type GroupIdentity = `connector-${string}`;
/** Whom a credential is for: a role, or a connector group. */
export type Identity = CredentialRole | GroupIdentity;

export const groupIdentity = (group: string): GroupIdentity => `connector-${group}`;
/** The server-side variable holding an identity's public nkey (nats-server reads it from its environment). */
export const nkeyVariable = (identity: Identity) => `MANIFOLD_${identity.toUpperCase().replaceAll("-", "_")}_NKEY`;

/** `<group>=<upstream>[,<upstream>…]`, as `manifold nats … --connector-group` takes it. */
export function parseConnectorGroup(text: string): ConnectorGroup {
  const at = text.indexOf("=");
  const name = at < 0 ? "" : text.slice(0, at);
  // Everything after the first `=` is the list: `a=b=c` is refused, not read as `a=b`.
  const upstreams = text.slice(at + 1).split(",").map((u) => u.trim()).filter(Boolean);
  const group = ResourceName.safeParse(name);
  if (!group.success || upstreams.length === 0 || !upstreams.every((u) => ResourceName.safeParse(u).success)) {
    throw new Error(`--connector-group '${text}': expected <group>=<upstream>[,<upstream>…], each a name of lowercase letters, digits and '-'`);
  }
  return { name: group.data, upstreams };
}

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

/**
 * The identities of a deployment whose public nkeys come from the server's environment
 * (`MANIFOLD_<ROLE>_NKEY`, and `MANIFOLD_CONNECTOR_<GROUP>_NKEY` for each connector group).
 */
export const deployedUsers = (groups: readonly ConnectorGroup[] = []): AuthUser[] => [
  ...BUS_ROLES.map((role) => ({ role, nkey: `$${nkeyVariable(role)}` })),
  ...groupUsers(groups, (identity) => `$${nkeyVariable(identity)}`),
];

/** Each connector group's identity as nats-server knows it: a connector reaching only the group's upstreams. */
export const groupUsers = (groups: readonly ConnectorGroup[], nkeyOf: (identity: GroupIdentity) => string): AuthUser[] =>
  groups.map((group) => ({ role: "connector", upstreams: group.upstreams, nkey: nkeyOf(groupIdentity(group.name)) }));
