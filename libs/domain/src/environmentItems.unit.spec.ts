import { CommandType, EventType, type NewEvent, type RegistryEvent } from "@manifold/contracts";
import { describe, expect, test } from "vitest";
import { SUFFIX, consumer, echo, failure, given, meta, pinned, registered, selection, serverInfo, when } from "./decideFixtures.spec.js";
import { itemPinsIn } from "./environmentItems.js";
import { discoverPrompt, discoverResource, discoverResourceTemplate } from "./itemPins.js";
import { exposedToolName } from "./naming.js";
import { pendingItemDrift } from "./pendingItemDrift.js";
import type { CatalogProjection } from "./projection.js";

const apply = (state: CatalogProjection, ...events: NewEvent[]) => events.forEach((e) => state.apply({ ...e, meta } as RegistryEvent, state.sequence + 1));
type Prompt = { name: string; arguments: { name: string; required?: boolean }[] };
const draft: Prompt = { name: "draft", arguments: [{ name: "topic", required: true }] };
const draftV2: Prompt = { name: "draft", arguments: [{ name: "topic", required: true }, { name: "tone" }] };
const readme: { uri: string; name: string; mimeType?: string } = { uri: "file:///README.md", name: "README" };
const texts = { uriTemplate: "demo://text/{id}", name: "text" };
const DRAFT = exposedToolName("a", "draft");
const README = "a+file:///README.md";

/** An upstream's discovery: echo, one prompt, one resource, one template. */
const discoveredItems = (name: string, prompt = draft, resource = readme): NewEvent => ({
  type: EventType.upstreamToolsDiscovered,
  version: 1,
  data: { name, serverInfo, tools: [pinned(echo)], prompts: [discoverPrompt(prompt)], resources: [discoverResource(resource)], resourceTemplates: [discoverResourceTemplate(texts)], changes: [] },
});
const selectedItems = () => {
  const p = discoverPrompt(draft);
  const r = discoverResource(readme);
  const t = discoverResourceTemplate(texts);
  return {
    prompts: [{ exposedName: DRAFT, upstream: "a", prompt: "draft", hash: p.hash, definition: p.definition }],
    resources: [{ upstream: "a", uri: readme.uri, hash: r.hash, definition: r.definition }],
    resourceTemplates: [{ upstream: "a", uriTemplate: texts.uriTemplate, hash: t.hash, definition: t.definition }],
  };
};
/** `a` in default, `a-staging` bound in for `a` in staging; both report the same definitions at first. */
const catalog = () =>
  given(
    registered("a"),
    registered("a-staging"),
    discoveredItems("a"),
    discoveredItems("a-staging"),
    { type: EventType.virtualServerCreated, version: 1, data: { name: "vs", tools: [selection("a", echo)], driftPolicy: "pinned", naming: SUFFIX, ...selectedItems() } },
    { type: EventType.environmentBindingsSet, version: 1, data: { name: "staging", bindings: { a: "a-staging" } } },
    consumer("bot"),
  );
const promote = (state: CatalogProjection, force = false) => when(state, { type: CommandType.promote, name: "vs", from: "default", to: "staging", force })();
const keys = (state: CatalogProjection, environment: string) => {
  const pins = itemPinsIn(state.virtualServer("vs")!, environment);
  return { prompts: [...pins.prompts.keys()], resources: [...pins.resources.keys()], resourceTemplates: [...pins.resourceTemplates.keys()] };
};

describe("promotion covers prompts, resources and templates", () => {
  test("promoting pins the source's prompts, resources and templates in the target, under the same exposed names and URIs", () => {
    const state = catalog();
    const [event] = promote(state);
    expect(event).toMatchObject({ type: EventType.virtualServerPromoted, data: { from: "default", to: "staging", copied: { tools: 1, prompts: 1, resources: 1, resourceTemplates: 1 }, forced: false } });
    apply(state, event!);
    expect(keys(state, "staging")).toEqual({ prompts: [DRAFT], resources: [README], resourceTemplates: ["a+demo://text/{id}"] });
    expect(state.virtualServer("vs")!.environmentItems.get("staging")!.prompts.get(DRAFT)).toEqual(selectedItems().prompts[0]);
  });

  test("the target's upstream reporting another definition refuses the promotion, naming the item and its class; force pins the source's anyway", () => {
    const state = catalog();
    apply(state, discoveredItems("a-staging", draftV2, { ...readme, mimeType: "text/markdown" }));
    const error = failure(() => promote(state));
    expect(error.code).toBe("definitions_differ");
    expect(error.message).toContain(`prompt '${DRAFT}' (compatible)`);
    expect(error.message).toContain(`resource '${README}' (breaking)`);
    expect((error.data as { differences: unknown[] }).differences).toEqual(
      expect.arrayContaining([expect.objectContaining({ kind: "prompt", exposedName: DRAFT, upstream: "a-staging", tool: "draft", classification: "compatible" })]),
    );
    const [forced] = promote(state, true);
    expect(forced).toMatchObject({ data: { forced: true, copied: { prompts: 1, resources: 1, resourceTemplates: 1 } } });
    apply(state, forced!);
    expect(state.virtualServer("vs")!.environmentItems.get("staging")!.prompts.get(DRAFT)).toEqual(selectedItems().prompts[0]);
  });

  test("each environment serves its own pins: selecting in default changes default only; staging drifts and is reviewed on its own", () => {
    const state = catalog();
    apply(state, ...promote(state));
    apply(state, { type: EventType.virtualServerItemsDeselected, version: 1, data: { name: "vs", resources: [README] } });
    expect(keys(state, "default").resources).toEqual([]);
    expect(keys(state, "staging").resources).toEqual([README]);

    // Staging's upstream changes its prompt: drift there, measured against the bound upstream; default is untouched.
    apply(state, discoveredItems("a-staging", draftV2));
    expect(pendingItemDrift(state.virtualServer("vs")!, state)).toEqual([]);
    const [pending] = pendingItemDrift(state.virtualServer("vs")!, state, "staging");
    expect(pending).toMatchObject({ kind: "prompt", key: DRAFT, upstream: "a-staging", original: "draft", classification: "compatible" });
    // Accepting without naming the environment finds nothing in default.
    expect(failure(when(state, { type: CommandType.acceptDrift, name: "vs", exposedName: DRAFT })).code).toBe("not_found");
    const accepted = when(state, { type: CommandType.acceptDrift, name: "vs", exposedName: DRAFT, environment: "staging" })();
    expect(accepted).toEqual([{ type: EventType.virtualServerItemRepinned, version: 1, data: { name: "vs", kind: "prompt", key: DRAFT, ...discoverPrompt(draftV2), environment: "staging" } }]);
    apply(state, ...accepted);
    expect(itemPinsIn(state.virtualServer("vs")!, "staging").prompts.get(DRAFT)!.hash).toBe(discoverPrompt(draftV2).hash);
    expect(itemPinsIn(state.virtualServer("vs")!, "default").prompts.get(DRAFT)!.hash).toBe(discoverPrompt(draft).hash);
    expect(pendingItemDrift(state.virtualServer("vs")!, state, "staging")).toEqual([]);
  });

  test("rejecting in an environment records the rejection there only", () => {
    const state = catalog();
    apply(state, ...promote(state));
    apply(state, discoveredItems("a-staging", draftV2));
    const rejected = when(state, { type: CommandType.rejectDrift, name: "vs", exposedName: DRAFT, environment: "staging" })();
    expect(rejected).toEqual([{ type: EventType.virtualServerItemDriftRejected, version: 1, data: { name: "vs", kind: "prompt", key: DRAFT, hash: discoverPrompt(draftV2).hash, environment: "staging" } }]);
    apply(state, ...rejected);
    expect(pendingItemDrift(state.virtualServer("vs")!, state, "staging")).toEqual([]);
    expect(state.virtualServer("vs")!.rejected.get("staging")!.get(DRAFT)).toBe(discoverPrompt(draftV2).hash);
    expect(state.virtualServer("vs")!.rejected.get("default")?.has(DRAFT) ?? false).toBe(false);
  });

  test("an environment promoted before promotion covered items (old event) replays to serving the selection's, live, with no drift of its own", () => {
    const state = catalog();
    apply(state, { type: EventType.virtualServerPromoted, version: 1, data: { name: "vs", from: "default", to: "staging", pins: [selection("a", echo)], forced: false } });
    expect(state.virtualServer("vs")!.environmentItems.has("staging")).toBe(false);
    expect(keys(state, "staging")).toEqual(keys(state, "default"));
    apply(state, { type: EventType.virtualServerItemsDeselected, version: 1, data: { name: "vs", resources: [README] } });
    expect(keys(state, "staging").resources).toEqual([]);
    apply(state, discoveredItems("a-staging", draftV2));
    expect(pendingItemDrift(state.virtualServer("vs")!, state, "staging")).toEqual([]);
    expect(failure(when(state, { type: CommandType.acceptDrift, name: "vs", exposedName: DRAFT, environment: "staging" })).code).toBe("not_found");
    // Promoting again gives it pins of its own.
    apply(state, ...promote(state, true));
    expect(state.virtualServer("vs")!.environmentItems.has("staging")).toBe(true);
  });

  test("a grant denies a prompt promoted into an environment by the name it has there", () => {
    const state = catalog();
    apply(state, ...promote(state));
    apply(state, { type: EventType.virtualServerItemsDeselected, version: 1, data: { name: "vs", prompts: [DRAFT] } });
    const [granted] = when(state, { type: CommandType.grantAccess, name: "vs", grant: { grantId: "g", subject: { consumer: "bot" }, deniedTools: [], deniedPrompts: [DRAFT] } })();
    expect(granted).toMatchObject({ data: { grant: { deniedPrompts: [{ upstream: "a", prompt: "draft" }] } } });
  });
});
