import { ManifoldError } from "@manifold/contracts";
import { readFile } from "node:fs/promises";

/** Where references are looked up: the connector's environment and files it can read. */
export interface SecretSource {
  env: Readonly<Record<string, string | undefined>>;
  readFile(path: string): Promise<string>;
}

export const processSecrets = (env: Readonly<Record<string, string | undefined>>): SecretSource => ({
  env,
  readFile: (path) => readFile(path, "utf8"),
});

/**
 * Resolves `env:NAME` and `file:/path` references. Resolution happens at every (re)connect,
 * so a rotated file is picked up by the next session. Errors name the reference, never a value.
 */
export async function resolveSecrets(refs: Readonly<Record<string, string>>, source: SecretSource): Promise<Record<string, string>> {
  const resolved: Record<string, string> = {};
  for (const [name, ref] of Object.entries(refs)) {
    if (ref.startsWith("env:")) {
      const value = source.env[ref.slice(4)];
      if (value === undefined || value === "") {
        throw new ManifoldError("upstream_unavailable", `credential reference ${ref} (for ${name}) is not set in the connector's environment`);
      }
      resolved[name] = value;
    } else {
      const path = ref.slice(5);
      try {
        resolved[name] = (await source.readFile(path)).trim();
      } catch (error) {
        const reason = (error as NodeJS.ErrnoException).code ?? "unreadable";
        throw new ManifoldError("upstream_unavailable", `credential reference ${ref} (for ${name}) cannot be read: ${reason}`);
      }
    }
  }
  return resolved;
}
