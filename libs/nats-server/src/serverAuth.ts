import { BUS_ROLES } from "@manifold/contracts";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { groupIdentity, groupUsers, renderAuthorization, type AuthUser, type ConnectorGroup, type CredentialRole, type Identity } from "./authorization.js";
import { ensureCredentials, type Credential } from "./credentials.js";

export type Credentials = Partial<Record<Identity, Credential>>;

/**
 * Each role's nkey (created in `credentialsDir` once, reused after) and, next to the server's
 * configuration in `configDir`, the `auth.conf` it includes, rendered for those keys. Shared by a
 * single server and every node of a cluster, so both enforce the same permissions.
 */
export async function writeAuthConf(configDir: string, credentialsDir: string, operator: boolean, groups: readonly ConnectorGroup[] = []): Promise<Credentials> {
  const roles: CredentialRole[] = [...BUS_ROLES, ...(operator ? (["operator"] as const) : [])];
  const credentials: Credentials = await ensureCredentials<Identity>(credentialsDir, [...roles, ...groups.map((g) => groupIdentity(g.name))]);
  const users: AuthUser[] = [
    ...roles.map((role) => ({ role, nkey: credentials[role]!.publicKey })),
    ...groupUsers(groups, (identity) => credentials[identity]!.publicKey),
  ];
  await writeFile(join(configDir, "auth.conf"), renderAuthorization(users));
  return credentials;
}

/** What a service of `role` (or a connector group's identity) connects with: `NATS_URL`, its seed file (with auth), the TLS CA (with TLS). */
export function roleEnv(url: string, credentials: Credentials, role: Identity, tlsCaFile?: string): Record<string, string> {
  const seedFile = credentials[role]?.seedFile;
  return { NATS_URL: url, ...(seedFile ? { NATS_NKEY_SEED_FILE: seedFile } : {}), ...(tlsCaFile ? { NATS_TLS_CA_FILE: tlsCaFile } : {}) };
}
