import { describe, expect, test } from "vitest";
import { toTokenSet } from "./upstreamAuthorization.js";

const YEAR_MS = 365 * 24 * 3600 * 1000;
const token = (expires_in: number) => toTokenSet({ access_token: "t", token_type: "bearer", expires_in });

describe("a token response as the vault keeps it", () => {
  test("an authorization server's expires_in is clamped to [0, a year]: every expiry is a date", () => {
    const now = Date.now();
    for (const expiresIn of [1e300, Number.MAX_VALUE, 10 * 365 * 24 * 3600]) {
      const { expiresAt } = token(expiresIn);
      expect(expiresAt! - now).toBeGreaterThanOrEqual(YEAR_MS - 1_000);
      expect(expiresAt! - now).toBeLessThanOrEqual(YEAR_MS + 1_000);
      expect(() => new Date(expiresAt!).toISOString()).not.toThrow();
    }
    expect(token(-3600).expiresAt! - now).toBeLessThan(1_000);
    expect(token(3600).expiresAt! - now).toBeGreaterThan(3_599_000);
  });
});
