import { BUS_ROLES } from "@manifold/contracts";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { renderAuthorization, type CredentialRole } from "./authorization.js";
import { ensureCredentials, type Credential } from "./credentials.js";

export type Credentials = Partial<Record<CredentialRole, Credential>>;

/**
 * Each role's nkey (created in `credentialsDir` once, reused after) and, next to the server's
 * configuration in `configDir`, the `auth.conf` it includes, rendered for those keys. Shared by a
 * single server and every node of a cluster, so both enforce the same permissions.
 */
export async function writeAuthConf(configDir: string, credentialsDir: string, operator: boolean): Promise<Credentials> {
  const roles: CredentialRole[] = [...BUS_ROLES, ...(operator ? (["operator"] as const) : [])];
  const credentials: Credentials = await ensureCredentials(credentialsDir, roles);
  await writeFile(join(configDir, "auth.conf"), renderAuthorization(roles.map((role) => ({ role, nkey: credentials[role]!.publicKey }))));
  return credentials;
}

/** What a service of `role` connects with: `NATS_URL`, its seed file (with auth), the TLS CA (with TLS). */
export function roleEnv(url: string, credentials: Credentials, role: CredentialRole, tlsCaFile?: string): Record<string, string> {
  const seedFile = credentials[role]?.seedFile;
  return { NATS_URL: url, ...(seedFile ? { NATS_NKEY_SEED_FILE: seedFile } : {}), ...(tlsCaFile ? { NATS_TLS_CA_FILE: tlsCaFile } : {}) };
}
