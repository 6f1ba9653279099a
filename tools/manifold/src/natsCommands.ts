import { BUS_ROLES } from "@manifold/contracts";
import { deployedUsers, ensureCredentials, renderAuthorization } from "@manifold/nats-server";

/**
 * `manifold nats auth-conf`: the `authorization` block deployments include (deploy/nats/auth.conf),
 * rendered from the permissions in code; public nkeys come from `$MANIFOLD_<ROLE>_NKEY`.
 * `manifold nats keys <dir>`: one seed file per service in `<dir>` (0600, kept if present), and the
 * public keys to give nats-server, as `.env` lines. Seeds are never printed.
 */
export async function nats(args: string[]): Promise<void> {
  const [sub, dir] = args;
  if (sub === "auth-conf") {
    process.stdout.write(renderAuthorization(deployedUsers()));
  } else if (sub === "keys" && dir) {
    const credentials = await ensureCredentials(dir, BUS_ROLES);
    // Public keys on stdout (an env file for nats-server), where the seeds are on stderr.
    for (const role of BUS_ROLES) {
      console.log(`MANIFOLD_${role.toUpperCase()}_NKEY=${credentials[role].publicKey}`);
      console.error(`${role}: seed in ${credentials[role].seedFile}`);
    }
  } else {
    throw new Error("usage: manifold nats auth-conf | manifold nats keys <dir>");
  }
}
