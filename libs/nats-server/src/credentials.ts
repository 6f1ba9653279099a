import { createUser, fromSeed } from "@nats-io/nkeys";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Identity } from "./authorization.js";

export interface Credential {
  /** The public nkey (`U…`) nats-server knows the identity by. */
  readonly publicKey: string;
  /** File (mode 0600) holding the seed: what `NATS_NKEY_SEED_FILE` names. */
  readonly seedFile: string;
}

/**
 * One nkey per identity in `dir` (`<identity>.nk`, mode 0600): created on first use, reused after,
 * so a restarted server and its clients keep agreeing.
 */
export async function ensureCredentials<R extends Identity>(dir: string, roles: readonly R[]): Promise<Record<R, Credential>> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const entries = await Promise.all(
    roles.map(async (role): Promise<[R, Credential]> => {
      const seedFile = join(dir, `${role}.nk`);
      let seed = await readFile(seedFile, "utf8").then((s) => s.trim(), () => undefined);
      if (!seed) {
        seed = new TextDecoder().decode(createUser().getSeed());
        await writeFile(seedFile, `${seed}\n`, { mode: 0o600 });
      }
      await chmod(seedFile, 0o600);
      return [role, { publicKey: fromSeed(new TextEncoder().encode(seed)).getPublicKey(), seedFile }];
    }),
  );
  return Object.fromEntries(entries) as Record<R, Credential>;
}
