import { ManifoldError } from "@manifold/contracts";
import { describe, expect, test } from "vitest";
import { bearerChallenge } from "./challenge.js";
import { checkLifetime } from "./tokenRules.js";

const now = 1_800_000_000;
const refused = (run: () => void) => {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ManifoldError);
    return (error as ManifoldError).code;
  }
  return "accepted";
};

describe("JWT lifetime", () => {
  test.each([
    ["no exp", {}, "unauthorized"],
    ["one hour from iat", { iat: now, exp: now + 3600 }, "accepted"],
    ["the maximum exactly", { iat: now - 100, exp: now - 100 + 7200 }, "accepted"],
    ["longer than the maximum from iat", { iat: now - 100, exp: now + 7200 }, "unauthorized"],
    ["without iat, expiring within the maximum", { exp: now + 7000 }, "accepted"],
    ["without iat, expiring after the maximum", { exp: now + 7200 + 31 }, "unauthorized"],
    ["a far-future exp with an old iat", { iat: now - 10 * 365 * 86400, exp: now + 60 }, "unauthorized"],
    ["iat a little ahead (clock skew)", { iat: now + 20, exp: now + 600 }, "accepted"],
    ["iat in the future", { iat: now + 120, exp: now + 600 }, "unauthorized"],
  ])("%s: %s", (_what, claims, outcome) => {
    expect(refused(() => checkLifetime(claims, now, 7200))).toBe(outcome);
  });
});

describe("WWW-Authenticate", () => {
  test("without a presented token: the bare challenge", () => {
    expect(bearerChallenge(undefined)).toBe('Bearer realm="manifold"');
  });
  test.each([["€ issuer"], ["line\r\nSet-Cookie: x=1"], ['quote " and \\ backslash'], ["nul\u0000"], ["x".repeat(5000)]])(
    "any description stays a valid header value: %#",
    (description) => {
      const value = bearerChallenge(description);
      expect(value).toMatch(/^Bearer realm="manifold", error="invalid_token", error_description="[\x20-\x21\x23-\x5b\x5d-\x7e]{0,200}"$/);
    },
  );
  test("with OAuth sign-in offered: resource_metadata (RFC 9728 §5.1) and the scopes to ask for", () => {
    const metadata = "https://gw.example/.well-known/oauth-protected-resource/mcp/tools";
    expect(bearerChallenge(undefined, metadata, ["mcp"])).toBe(`Bearer realm="manifold", resource_metadata="${metadata}", scope="mcp"`);
    expect(bearerChallenge("the token has expired", metadata)).toBe(
      `Bearer realm="manifold", resource_metadata="${metadata}", error="invalid_token", error_description="the token has expired"`,
    );
    expect(bearerChallenge(undefined, 'https://h/x"\r\n, evil="1')).toBe('Bearer realm="manifold", resource_metadata="https://h/x,evil=1"');
  });
});
