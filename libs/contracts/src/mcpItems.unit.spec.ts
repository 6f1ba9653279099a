import { describe, expect, test } from "vitest";
import { DiscoveryReport, MAX_SERVER_INFO_BYTES } from "./bus.js";
import { MAX_TEMPLATE_EXPRESSIONS, UpstreamResourceTemplate } from "./mcpItems.js";

describe("an upstream's resource templates", () => {
  const template = (expressions: number) => ({ name: "t", uriTemplate: `s:${"{a}".repeat(expressions)}Z` });

  // attack (helper-94): templates of ~1,350 parts made each match of a URI cost 40–90 ms, in grants and replays.
  test(`hold at most ${MAX_TEMPLATE_EXPRESSIONS} expressions`, () => {
    expect(UpstreamResourceTemplate.safeParse(template(MAX_TEMPLATE_EXPRESSIONS)).success).toBe(true);
    const refused = UpstreamResourceTemplate.safeParse(template(MAX_TEMPLATE_EXPRESSIONS + 1));
    expect(refused.error?.issues[0]?.message).toBe(`a URI template may hold at most ${MAX_TEMPLATE_EXPRESSIONS} expressions`);
  });

  test("a report listing one past the bound is refused whole", () => {
    const report = { upstream: "u", serverInfo: { name: "u", version: "1" }, tools: [], resourceTemplates: [template(1), template(1_350)] };
    expect(DiscoveryReport.safeParse(report).error?.issues[0]?.path).toEqual(["resourceTemplates", 1, "uriTemplate"]);
  });
});

// attack (helper-94): twelve list changes an hour, each a 900 KB server info, all kept in the registry's log.
test("a report's server info is bounded", () => {
  const report = (pad: number) => ({ upstream: "u", serverInfo: { name: "u", version: "1", pad: "x".repeat(pad) }, tools: [] });
  expect(DiscoveryReport.safeParse(report(1_000)).success).toBe(true);
  expect(DiscoveryReport.safeParse(report(MAX_SERVER_INFO_BYTES)).error?.issues[0]?.path).toEqual(["serverInfo"]);
});
