import { createLogger } from "@manifold/telemetry";
import { describe, expect, test } from "vitest";
import type { ManifoldError } from "@manifold/contracts";
import { ArgumentValidator } from "./argumentValidator.js";
import type { ToolRoute } from "./catalog.js";
import { mustFollowOutputSchema } from "./outputSchemaCheck.js";

const logger = createLogger({ component: "test", level: "silent" });
const routeOf = (outputSchema: Record<string, unknown> | undefined, hash = JSON.stringify(outputSchema)) => ({ upstream: "u", tool: "t", hash, outputSchema }) as unknown as ToolRoute;
/** "ok", or the refusal's code, reason and message. */
const outcome = (validator: ArgumentValidator, route: ToolRoute, result: unknown, era: "legacy" | "modern" = "legacy") => {
  try {
    mustFollowOutputSchema(validator, route, JSON.stringify(result), era);
    return "ok";
  } catch (error) {
    const refusal = error as ManifoldError;
    return `${refusal.code} ${String(refusal.data?.reason)}: ${refusal.message}`;
  }
};
const SCHEMA = { type: "object", properties: { n: { type: "number" }, s: { type: "string", pattern: "^(a+)+$" } }, required: ["n"] };

describe("a result held to its tool's pinned output schema", () => {
  test("structuredContent required and valid unless isError; the path is named, the value never", () => {
    const validator = new ArgumentValidator(logger);
    const route = routeOf(SCHEMA);
    expect(outcome(validator, route, { content: [], structuredContent: { n: 1 } })).toBe("ok");
    expect(outcome(validator, route, { content: [], isError: true })).toBe("ok");
    expect(outcome(validator, route, { content: [], structuredContent: { n: "secret-value" } })).toBe("upstream_error invalid_result: upstream 'u' answered 't' with a result its pinned outputSchema refuses: structuredContent/n must be number");
    expect(outcome(validator, route, { content: [] })).toMatch(/invalid_result: .* it has no structuredContent$/);
    expect(outcome(validator, route, { content: [], structuredContent: { m: 1 } })).toMatch(/structuredContent must have required property 'n'$/);
    // A backtracking pattern answers at once (RE2, the argument validator's engine).
    expect(outcome(validator, route, { content: [], structuredContent: { n: 1, s: `${"a".repeat(40)}!` } })).toMatch(/structuredContent\/s must match pattern/);
  });

  test("a tool without an output schema is not parsed unless its text names structuredContent", () => {
    expect(() => mustFollowOutputSchema(new ArgumentValidator(logger), routeOf(undefined), "not JSON", "legacy")).not.toThrow();
    expect(() => mustFollowOutputSchema(new ArgumentValidator(logger), routeOf(undefined), 'not JSON "structuredContent"', "modern")).not.toThrow();
  });

  test("structuredContent that is not an object: refused to a 2025 agent (its revisions type it an object), passed to a 2026-07-28 agent (any JSON value)", () => {
    const validator = new ArgumentValidator(logger);
    const route = routeOf(undefined);
    for (const value of [[1], "s", 3, null, true]) {
      expect(outcome(validator, route, { content: [], structuredContent: value }, "legacy")).toMatch(/^upstream_error invalid_result: .*structuredContent that is not an object/);
      expect(outcome(validator, route, { content: [], structuredContent: value }, "modern")).toBe("ok");
    }
    expect(outcome(validator, route, { content: [], structuredContent: { a: 1 } }, "legacy")).toBe("ok");
    // The name inside a string value only costs the parse.
    expect(outcome(validator, route, { content: [{ type: "text", text: '"structuredContent"' }] }, "legacy")).toBe("ok");
  });

  // The schema is an upstream's: a `$ref` that loops without consuming the value recurses until the
  // stack runs out, when a result is checked (it refuses the result: the upstream's own schema cannot
  // take it) or when the schema is compiled (logged and not enforced, as an input schema that does not
  // compile): either way at once, and nothing crashes.
  test("a hostile output schema: a looping $ref refuses the result or is not enforced, at once", { timeout: 5_000 }, () => {
    const validator = new ArgumentValidator(logger);
    expect(outcome(validator, routeOf({ type: "object", $ref: "#" }), { content: [], structuredContent: { n: 1 } })).toMatch(/invalid_result: .*structuredContent could not be checked against it$/);
    expect(outcome(validator, routeOf({ $defs: { a: { $ref: "#/$defs/b" }, b: { $ref: "#/$defs/a" } }, type: "object", $ref: "#/$defs/a" }), { content: [], structuredContent: { n: 1 } })).toBe("ok");
  });
});
