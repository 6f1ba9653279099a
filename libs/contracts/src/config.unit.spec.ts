import { describe, expect, test } from "vitest";
import { z } from "zod";
import { parseEnv, Port } from "./config.js";

// A mistyped port is a new user's common first error: the refusal must say what a port may be,
// not that zod "received NaN".
describe("a port variable that is not a port", () => {
  const Env = z.object({ MANIFOLD_GATEWAY_PORT: Port.default(8080) });
  for (const value of ["abc", "80.5", "70000", "-1"]) {
    test(`${JSON.stringify(value)} is refused naming the variable and what it takes`, () => {
      expect(() => parseEnv(Env, { MANIFOLD_GATEWAY_PORT: value })).toThrow(
        "invalid configuration: MANIFOLD_GATEWAY_PORT: must be a port number, an integer from 0 to 65535",
      );
    });
  }
  test("a port number and the default still parse", () => {
    expect(parseEnv(Env, { MANIFOLD_GATEWAY_PORT: "18080" }).MANIFOLD_GATEWAY_PORT).toBe(18080);
    expect(parseEnv(Env, {}).MANIFOLD_GATEWAY_PORT).toBe(8080);
  });
});
