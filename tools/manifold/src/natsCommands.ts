import { BUS_ROLES } from "@manifold/contracts";
import { deployedUsers, ensureCredentials, groupIdentity, nkeyVariable, parseConnectorGroup, renderAuthorization, type ConnectorGroup, type Identity } from "@manifold/nats-server";

const USAGE = "usage: manifold nats auth-conf [--connector-group <group>=<upstream>,…]… | manifold nats keys <dir> [--connector-group <group>=<upstream>,…]…";

/** The `--connector-group` options, each once: two groups of one name would share an identity. */
function connectorGroups(args: readonly string[]): ConnectorGroup[] {
  const groups: ConnectorGroup[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] !== "--connector-group" || args[i + 1] === undefined) throw new Error(USAGE);
    const group = parseConnectorGroup(args[++i]!);
    if (groups.some((g) => g.name === group.name)) throw new Error(`--connector-group '${group.name}' is given twice`);
    groups.push(group);
  }
  return groups;
}

/**
 * `manifold nats auth-conf`: the `authorization` block deployments include (deploy/nats/auth.conf),
 * rendered from the permissions in code; public nkeys come from `$MANIFOLD_<ROLE>_NKEY`.
 * `manifold nats keys <dir>`: one seed file per service in `<dir>` (0600, kept if present), and the
 * public keys to give nats-server, as `.env` lines. Seeds are never printed. With
 * `--connector-group`, each group's connectors get an identity of their own, reaching only its
 * upstreams (`connector-<group>.nk`, `MANIFOLD_CONNECTOR_<GROUP>_NKEY`).
 */
export async function nats(args: string[]): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === "auth-conf") {
    process.stdout.write(renderAuthorization(deployedUsers(connectorGroups(rest))));
  } else if (sub === "keys" && rest[0] !== undefined && !rest[0].startsWith("--")) {
    const [dir, ...options] = rest as [string, ...string[]];
    const identities: Identity[] = [...BUS_ROLES, ...connectorGroups(options).map((g) => groupIdentity(g.name))];
    const credentials = await ensureCredentials(dir, identities);
    // Public keys on stdout (an env file for nats-server), where the seeds are on stderr.
    for (const identity of identities) {
      const { publicKey, seedFile } = credentials[identity]!;
      console.log(`${nkeyVariable(identity)}=${publicKey}`);
      console.error(`${identity}: seed in ${seedFile}`);
    }
  } else {
    throw new Error(USAGE);
  }
}
