import { expect, test } from "vitest";
import { iterationSteps } from "../../../test/helpers/iterationSteps.js";
import { buildItemView, exposedUris } from "./itemCatalog.js";

const HASH = `sha256:${"0".repeat(64)}`;

test("the URIs a resource update reaches are found without reading the view's every resource: the work does not grow with the catalog", () => {
  const resources = new Map(
    Array.from({ length: 2_000 }, (_, i) => {
      const upstream = i % 2 === 0 ? "docs" : "wiki";
      const uri = `file:///r/${i}`;
      return [`${upstream}+${uri}`, { upstream, uri, hash: HASH, definition: { uri, name: `r${i}` } }] as const;
    }),
  );
  const items = buildItemView({ prompts: new Map(), resources, resourceTemplates: new Map() }, { policy: "prefix", prefixes: {} }, undefined, () => 1_000);
  let exposed: string[] = [];
  const steps = iterationSteps(() => (exposed = exposedUris(items, "docs", "file:///r/4")));
  expect(exposed).toEqual(["docs+file:///r/4"]);
  expect(exposedUris(items, "wiki", "file:///r/4")).toEqual([]);
  expect(exposedUris(items, "other", "file:///r/4")).toEqual([]);
  expect([...items.resourceUpstreams]).toEqual(["docs", "wiki"]);
  // Before, every resource and template of the view was read on each update, for each view served (2,000 here).
  expect(steps).toBeLessThanOrEqual(4);
});

test("the upstreams a caller may pass headers through to by its items are those of the prompts, resources and templates it is not denied", () => {
  const prompts = new Map([["draft", { exposedName: "draft", upstream: "wiki", prompt: "draft", hash: HASH, definition: { name: "draft" } }]]);
  const resources = new Map([["docs+file:///a", { upstream: "docs", uri: "file:///a", hash: HASH, definition: { uri: "file:///a", name: "a" } }]]);
  const pins = { prompts, resources, resourceTemplates: new Map() };
  const naming = { policy: "prefix", prefixes: {} } as const;
  expect([...buildItemView(pins, naming, undefined, () => 1_000).upstreams].sort()).toEqual(["docs", "wiki"]);
  // Before, only a visible tool's upstream took pass-through headers: a prompt's or resource's upstream had none.
  expect([...buildItemView(pins, naming, undefined, () => 1_000, new Set(["prompt:wiki/draft"])).upstreams]).toEqual(["docs"]);
});
