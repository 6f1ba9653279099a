import type { ScopedSecrets } from "@manifold/contracts";
import { createLogger } from "@manifold/telemetry";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { requestStateKey } from "./requestStateKey.js";

// An in-memory file system: `escape` is a link from the secrets directory to a file outside it.
const dir = "/run/secrets";
const outside = "/var/lib/manifold";
const files: Record<string, string> = { [join(dir, "key")]: "k".repeat(40), [join(outside, "admin-token")]: "a".repeat(40) };
const links: Record<string, string> = { [join(dir, "escape")]: join(outside, "admin-token") };
const env = { MANIFOLD_SECRET_STATE: "s".repeat(40), MANIFOLD_SECRET_SHORT: "short", MANIFOLD_ADMIN_TOKEN: "t".repeat(40) };
const secrets: ScopedSecrets = {
  env,
  realpath: async (path) => links[path] ?? path,
  readFile: async (path) => files[path] ?? Promise.reject(Object.assign(new Error("no such file"), { code: "ENOENT" })),
  policy: { envPrefix: "MANIFOLD_SECRET_", envNames: [], secretsDir: dir },
};
const logger = createLogger({ component: "test", level: "silent" });

describe("the requestState key comes from a secret reference under the operator's policy", () => {
  test("an allowed env: or file: reference gives the key", async () => {
    expect(Buffer.from(await requestStateKey("env:MANIFOLD_SECRET_STATE", secrets, logger)).toString()).toBe(env.MANIFOLD_SECRET_STATE);
    expect(Buffer.from(await requestStateKey(`file:${join(dir, "key")}`, secrets, logger)).toString()).toBe("k".repeat(40));
  });
  test("a reference outside the policy, a link out of the secrets directory or a short key stops the start, naming the reference and never the value", async () => {
    for (const [ref, withheld] of [
      ["env:MANIFOLD_ADMIN_TOKEN", env.MANIFOLD_ADMIN_TOKEN],
      [`file:${join(dir, "escape")}`, "a".repeat(40)],
      [`file:${join(outside, "admin-token")}`, "a".repeat(40)],
      ["env:MANIFOLD_SECRET_SHORT", "short"],
    ] as const) {
      const error = (await requestStateKey(ref, secrets, logger).then(() => undefined, (e: Error) => e))!;
      expect(error?.message, ref).toContain(ref);
      expect(error.message).not.toContain(withheld);
    }
  });
  test("unset: a key of this replica only", async () => {
    expect((await requestStateKey(undefined, secrets, logger)).length).toBe(32);
  });
});
