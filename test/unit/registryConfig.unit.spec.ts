import { adminTokens, loadRegistryConfig } from "@manifold/registry";
import { describe, expect, test } from "vitest";

const secret = (c: string) => c.repeat(20);

describe("registry admin tokens", () => {
  test("MANIFOLD_ADMIN_TOKEN is the token named admin; MANIFOLD_ADMIN_TOKENS adds named ones", () => {
    const config = loadRegistryConfig({ MANIFOLD_ADMIN_TOKEN: secret("a"), MANIFOLD_ADMIN_TOKENS: ` ci=${secret("c")}, alice=${secret("l")},` });
    expect(adminTokens(config)).toEqual([
      { name: "admin", token: secret("a"), role: "admin" },
      { name: "ci", token: secret("c"), role: "admin" },
      { name: "alice", token: secret("l"), role: "admin" },
    ]);
    expect(adminTokens(loadRegistryConfig({ MANIFOLD_ADMIN_TOKENS: `ci=${secret("c")}` }))).toEqual([{ name: "ci", token: secret("c"), role: "admin" }]);
    // MANIFOLD_READER_TOKENS: named tokens that read only.
    expect(adminTokens(loadRegistryConfig({ MANIFOLD_ADMIN_TOKEN: secret("a"), MANIFOLD_READER_TOKENS: `sre=${secret("r")}` }))).toEqual([
      { name: "admin", token: secret("a"), role: "admin" },
      { name: "sre", token: secret("r"), role: "reader" },
    ]);
  });

  test.each([
    ["neither variable", {}, "MANIFOLD_ADMIN_TOKEN: set MANIFOLD_ADMIN_TOKEN"],
    ["a short token", { MANIFOLD_ADMIN_TOKEN: "short" }, "MANIFOLD_ADMIN_TOKEN: must be a secret of at least 16 characters"],
    ["an entry without a name", { MANIFOLD_ADMIN_TOKENS: secret("s") }, "MANIFOLD_ADMIN_TOKENS.0.name"],
    ["a short named token", { MANIFOLD_ADMIN_TOKENS: "ci=tooshort-secret" }, "MANIFOLD_ADMIN_TOKENS.0.token: must be a secret of at least 16 characters"],
  ])("%s is refused naming the variable, never echoing a secret", (_what, env, message) => {
    const error = (() => {
      try {
        loadRegistryConfig(env);
      } catch (e) {
        return e as Error;
      }
    })();
    expect(error?.message).toContain(message);
    expect(error?.message).not.toContain("tooshort-secret");
    expect(error?.message).not.toContain(secret("s"));
  });
});

describe("registry connection bounds", () => {
  test("REGISTRY_MAX_CONNECTIONS and REGISTRY_KEEP_ALIVE_TIMEOUT_MS default below a common `ulimit -n` (1,024) and to 5 s", () => {
    const config = loadRegistryConfig({ MANIFOLD_ADMIN_TOKEN: secret("a") });
    expect(config.REGISTRY_MAX_CONNECTIONS).toBe(512);
    expect(config.REGISTRY_KEEP_ALIVE_TIMEOUT_MS).toBe(5_000);
    expect(loadRegistryConfig({ MANIFOLD_ADMIN_TOKEN: secret("a"), REGISTRY_MAX_CONNECTIONS: "64", REGISTRY_KEEP_ALIVE_TIMEOUT_MS: "1000" })).toMatchObject({
      REGISTRY_MAX_CONNECTIONS: 64,
      REGISTRY_KEEP_ALIVE_TIMEOUT_MS: 1_000,
    });
  });

  test.each(["0", "-1", "many", "1.5"])("REGISTRY_MAX_CONNECTIONS=%s is refused naming the variable", (value) => {
    expect(() => loadRegistryConfig({ MANIFOLD_ADMIN_TOKEN: secret("a"), REGISTRY_MAX_CONNECTIONS: value })).toThrow(/REGISTRY_MAX_CONNECTIONS/);
  });
});
