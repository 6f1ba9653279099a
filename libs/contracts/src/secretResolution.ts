import { credentialRefProblem, type CredentialPolicy } from "./credentialPolicy.js";
import { ManifoldError } from "./errors.js";
import { CredentialRef } from "./upstream.js";
import type { StdioPolicy } from "./stdioPolicy.js";
import { readFile, realpath } from "node:fs/promises";
import { sep } from "node:path";

/** Where references are looked up: the service's environment and files it can read (connector: upstream credentials; gateway: vault keys, OAuth client secrets). */
export interface SecretSource {
  env: Readonly<Record<string, string | undefined>>;
  readFile(path: string): Promise<string>;
  /** The path with every symbolic link resolved. */
  realpath(path: string): Promise<string>;
}

export const processSecrets = (env: Readonly<Record<string, string | undefined>>): SecretSource => ({
  env,
  readFile: (path) => readFile(path, "utf8"),
  realpath: (path) => realpath(path),
});

/** A secret source with the operator's policy of which references it may resolve. */
export interface ScopedSecrets extends SecretSource {
  readonly policy: CredentialPolicy;
  /** The connector's: which commands a stdio upstream may run (absent: none), checked before the secrets it would be given are resolved. */
  readonly stdio?: StdioPolicy;
}

/** What a resolved value becomes: an HTTP header value, or an environment variable of a stdio upstream. */
export type SecretUse = "header" | "env";

/** Characters a header value may not hold (undici and fetch refuse them, quoting the value). */
const NOT_HEADER_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

/**
 * Resolves `env:NAME` and `file:/path` references. Resolution happens at every (re)connect,
 * so a rotated file is picked up by the next session. A reference outside the operator's
 * policy is refused here too (the registry refuses it at registration; a registration recorded
 * before the policy changed must not read more), a file must really lie inside the secrets
 * directory (symbolic links resolved), and a value its use cannot carry is refused before a
 * library can quote it in an error. Errors name the reference, never a value.
 */
export async function resolveSecrets(
  refs: Readonly<Record<string, string>>,
  source: ScopedSecrets,
  use: SecretUse,
): Promise<Record<string, string>> {
  const { policy } = source;
  const resolved: Record<string, string> = {};
  for (const [name, ref] of Object.entries(refs)) {
    // Not a reference at all: the secret itself, given where its reference belongs (the gateway's
    // vault keys and request-state key come from its environment, unchecked by any schema). It was
    // quoted whole in the refusal, and so in the start-up error and its log.
    if (!CredentialRef.safeParse(ref).success) throw new ManifoldError("upstream_unavailable", `credential reference for ${name} is not env:NAME or file:/absolute/path (value withheld)`);
    const refused = credentialRefProblem(ref, policy);
    if (refused) throw new ManifoldError("upstream_unavailable", `credential reference for ${name} is refused: ${refused}`);
    const value = ref.startsWith("env:") ? envValue(ref, name, source) : await fileValue(ref, name, source, policy.secretsDir!);
    if (use === "header" ? NOT_HEADER_VALUE.test(value) : value.includes("\0")) {
      throw new ManifoldError(
        "upstream_unavailable",
        `credential reference ${ref} (for ${name}) holds characters ${use === "header" ? "a header value cannot carry (control characters, line breaks or beyond Latin-1)" : "an environment variable cannot carry (NUL)"}; value withheld`,
      );
    }
    resolved[name] = value;
  }
  return resolved;
}

function envValue(ref: string, name: string, source: SecretSource): string {
  const value = source.env[ref.slice(4)];
  if (value === undefined || value === "") {
    throw new ManifoldError("upstream_unavailable", `credential reference ${ref} (for ${name}) is not set in the connector's environment`);
  }
  return value;
}

async function fileValue(ref: string, name: string, source: SecretSource, secretsDir: string): Promise<string> {
  try {
    const [dir, file] = await Promise.all([source.realpath(secretsDir), source.realpath(ref.slice(5))]);
    if (!file.startsWith(dir.endsWith(sep) ? dir : `${dir}${sep}`)) {
      throw new ManifoldError("upstream_unavailable", `credential reference ${ref} (for ${name}) leads outside the secrets directory`);
    }
    return (await source.readFile(file)).trim();
  } catch (error) {
    if (error instanceof ManifoldError) throw error;
    const reason = (error as NodeJS.ErrnoException).code ?? "unreadable";
    throw new ManifoldError("upstream_unavailable", `credential reference ${ref} (for ${name}) cannot be read: ${reason}`);
  }
}
