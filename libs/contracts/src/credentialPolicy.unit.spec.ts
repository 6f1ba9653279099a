import { describe, expect, test } from "vitest";
import { z } from "zod";
import { CredentialPolicyEnv, credentialPolicy, credentialRefIssues, credentialRefProblem } from "./credentialPolicy.js";
import { UpstreamTransport } from "./upstream.js";

const policyOf = (env: Record<string, string>) => credentialPolicy(z.object(CredentialPolicyEnv).parse(env));

describe("credential reference policy", () => {
  const policy = policyOf({ MANIFOLD_SECRET_ENV_NAMES: "TRACKER_TOKEN, OTHER", MANIFOLD_SECRETS_DIR: "/run/secrets/" });

  test.each([
    ["env:MANIFOLD_SECRET_GITHUB", true],
    ["env:TRACKER_TOKEN", true],
    ["env:OTHER", true],
    ["env:MANIFOLD_ADMIN_TOKEN", false],
    ["env:MANIFOLD_ADMIN_TOKENS", false],
    ["env:NATS_TOKEN", false],
    ["env:HOME", false],
    ["env:MANIFOLD_SECRET", false],
    ["file:/run/secrets/github", true],
    ["file:/run/secrets/team/github", true],
    ["file:/run/secrets/../admin-token", false],
    ["file:/run/secrets/./github", false],
    ["file:/run/secrets//github", false],
    ["file:/run/secrets", false],
    ["file:/run/secretsX/github", false],
    ["file:/etc/passwd", false],
    ["file:/work/.manifold/admin-token", false],
  ])("%s allowed: %s", (ref, allowed) => {
    expect(credentialRefProblem(ref, policy) === undefined).toBe(allowed);
  });

  test("the admin token stays unreachable even when an operator lists it", () => {
    const listed = policyOf({ MANIFOLD_SECRET_ENV_NAMES: "MANIFOLD_ADMIN_TOKEN", MANIFOLD_SECRET_ENV_PREFIX: "MANIFOLD_" });
    expect(credentialRefProblem("env:MANIFOLD_ADMIN_TOKEN", listed)).toContain("not a variable the connector may read");
  });

  test("without a secrets directory file: is refused, and the message says how to allow it", () => {
    expect(credentialRefProblem("file:/run/secrets/x", policyOf({}))).toContain("MANIFOLD_SECRETS_DIR");
  });

  test("issues name the field that holds the reference", () => {
    const transport = UpstreamTransport.parse({ type: "streamable-http", url: "https://x.example/mcp", secretHeaders: { "X-Exfil": "env:MANIFOLD_ADMIN_TOKEN" } });
    expect(credentialRefIssues(transport, policy)).toEqual([
      { field: "transport.secretHeaders.X-Exfil", message: expect.stringContaining("transport.secretHeaders.X-Exfil: env:MANIFOLD_ADMIN_TOKEN is not a variable") },
    ]);
  });

  test("a bad policy variable is refused", () => {
    expect(z.object(CredentialPolicyEnv).safeParse({ MANIFOLD_SECRETS_DIR: "secrets" }).success).toBe(false);
    expect(z.object(CredentialPolicyEnv).safeParse({ MANIFOLD_SECRET_ENV_NAMES: "A-B" }).success).toBe(false);
  });
});
