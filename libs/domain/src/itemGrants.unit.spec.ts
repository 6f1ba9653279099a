import { CommandType, EventType, type Grant, type NewEvent, type RegistryEvent } from "@manifold/contracts";
import { describe, expect, test } from "vitest";
import { accessOf } from "./access.js";
import { SUFFIX, consumer, echo, failure, given, meta, pinned, registered, serverInfo, when } from "./decideFixtures.spec.js";
import { resolvePromptRef, resolveResourceRef } from "./itemIdentity.js";
import { discoverPrompt, discoverResource, discoverResourceTemplate } from "./itemPins.js";
import { exposedToolName } from "./naming.js";
import type { CatalogProjection } from "./projection.js";

const apply = (state: CatalogProjection, ...events: NewEvent[]) => events.forEach((e) => state.apply({ ...e, meta } as RegistryEvent, state.sequence + 1));
const draft = discoverPrompt({ name: "draft" });
const review = discoverPrompt({ name: "review" });
const readme = discoverResource({ uri: "file:///README.md", name: "README" });
const secret = discoverResource({ uri: "file:///secret.txt", name: "secret" });
const texts = discoverResourceTemplate({ uriTemplate: "demo://text/{id}", name: "text" });
const DRAFT = exposedToolName("a", "draft");
const REVIEW = exposedToolName("a", "review");

const selectedPrompt = (p: typeof draft, exposedName = exposedToolName("a", p.definition.name)) => ({ exposedName, upstream: "a", prompt: p.definition.name, hash: p.hash, definition: p.definition });
const catalog = () =>
  given(
    consumer("bot"),
    registered("a"),
    { type: EventType.upstreamToolsDiscovered, version: 1, data: { name: "a", serverInfo, tools: [pinned(echo)], prompts: [draft, review], resources: [readme, secret], resourceTemplates: [texts], changes: [] } },
    {
      type: EventType.virtualServerCreated,
      version: 1,
      data: {
        name: "vs",
        tools: [],
        driftPolicy: "pinned",
        naming: SUFFIX,
        prompts: [selectedPrompt(draft), selectedPrompt(review)],
        resources: [readme, secret].map((r) => ({ upstream: "a", uri: r.definition.uri, hash: r.hash, definition: r.definition })),
        resourceTemplates: [{ upstream: "a", uriTemplate: texts.definition.uriTemplate, hash: texts.hash, definition: texts.definition }],
      },
    },
  );
const bot = { consumer: "bot", groups: ["ops"], id: "consumer:bot" };
const grant = (denied: Partial<Pick<Grant, "deniedPrompts" | "deniedResources">>, grantId = "g", subject: Grant["subject"] = { consumer: "bot" }): Grant => ({ grantId, subject, deniedTools: [], ...denied });
const grantCommand = (g: Grant) => ({ type: CommandType.grantAccess, name: "vs", grant: g }) as const;
const deniedItemsFor = (state: CatalogProjection) => accessOf(state.virtualServer("vs")!, bot)!.deniedItems;

describe("grants deny prompts and resources by identity", () => {
  test("every reference resolves to an identity: exposed name or URI, exposed template, a URI a template expands to, identities", () => {
    const vs = catalog().virtualServer("vs")!;
    expect(resolvePromptRef(vs, DRAFT)).toEqual([{ upstream: "a", prompt: "draft" }]);
    expect(resolvePromptRef(vs, { upstream: "a", prompt: "draft" })).toEqual([{ upstream: "a", prompt: "draft" }]);
    expect(resolvePromptRef(vs, "nope")).toEqual([]);
    expect(resolvePromptRef(vs, { upstream: "a", prompt: "nope" })).toEqual([]);
    expect(resolveResourceRef(vs, "a+file:///README.md")).toEqual([{ upstream: "a", uri: "file:///README.md" }]);
    expect(resolveResourceRef(vs, "a+demo://text/{id}")).toEqual([{ upstream: "a", uriTemplate: "demo://text/{id}" }]);
    expect(resolveResourceRef(vs, "a+demo://text/7")).toEqual([{ upstream: "a", uri: "demo://text/7" }]);
    expect(resolveResourceRef(vs, { upstream: "a", uri: "demo://text/7" })).toEqual([{ upstream: "a", uri: "demo://text/7" }]);
    expect(resolveResourceRef(vs, { upstream: "a", uriTemplate: "demo://text/{id}" })).toEqual([{ upstream: "a", uriTemplate: "demo://text/{id}" }]);
    // What the virtual server does not serve names nothing: another upstream's prefix, an unselected URI, the original URI unprefixed.
    expect(resolveResourceRef(vs, "b+demo://text/7")).toEqual([]);
    expect(resolveResourceRef(vs, "a+file:///other.md")).toEqual([]);
    expect(resolveResourceRef(vs, "file:///README.md")).toEqual([]);
    expect(resolveResourceRef(vs, { upstream: "a", uriTemplate: "demo://other/{id}" })).toEqual([]);
  });

  test("names are recorded as identities (sorted, once); a grant without any records no empty lists", () => {
    const state = catalog();
    const events = when(state, grantCommand(grant({ deniedPrompts: [REVIEW, DRAFT, { upstream: "a", prompt: "draft" }], deniedResources: ["a+file:///secret.txt", "a+demo://text/{id}"] })))();
    expect(events).toEqual([
      {
        type: EventType.virtualServerAccessGranted,
        version: 1,
        data: {
          name: "vs",
          grant: {
            grantId: "g",
            subject: { consumer: "bot" },
            deniedTools: [],
            deniedPrompts: [{ upstream: "a", prompt: "draft" }, { upstream: "a", prompt: "review" }],
            // By key: a template's kind sorts before a resource's.
            deniedResources: [{ upstream: "a", uriTemplate: "demo://text/{id}" }, { upstream: "a", uri: "file:///secret.txt" }],
          },
        },
      },
    ]);
    expect(when(state, grantCommand(grant({}, "h")))()).toEqual([
      { type: EventType.virtualServerAccessGranted, version: 1, data: { name: "vs", grant: { grantId: "h", subject: { consumer: "bot" }, deniedTools: [] } } },
    ]);
    apply(state, ...events);
    expect(deniedItemsFor(state)).toEqual(new Set(["prompt:a/draft", "prompt:a/review", "resource:a/file:///secret.txt", "resource-template:a/demo://text/{id}"]));
  });

  test("the same grant by identities is a no-op; unknown references are refused, naming each", () => {
    const state = catalog();
    apply(state, ...when(state, grantCommand(grant({ deniedPrompts: [DRAFT], deniedResources: ["a+file:///secret.txt"] })))());
    expect(when(state, grantCommand(grant({ deniedPrompts: [{ upstream: "a", prompt: "draft" }], deniedResources: [{ upstream: "a", uri: "file:///secret.txt" }] })))()).toEqual([]);
    const refused = failure(when(state, grantCommand(grant({ deniedPrompts: ["ghost", { upstream: "a", prompt: "gone" }], deniedResources: ["a+file:///gone", { upstream: "a", uriTemplate: "x://{y}" }] }, "h"))));
    expect(refused.code).toBe("not_found");
    expect(refused.message).toBe("virtual server 'vs' has no prompt 'ghost', 'gone' of upstream 'a'; resource 'a+file:///gone', 'x://{y}' of upstream 'a'");
  });

  test("a prompt deselected and selected again under another alias is still the prompt the grant denies", () => {
    const state = catalog();
    apply(state, ...when(state, grantCommand(grant({ deniedPrompts: [DRAFT] })))());
    apply(state, { type: EventType.virtualServerItemsDeselected, version: 1, data: { name: "vs", prompts: [DRAFT] } });
    apply(state, { type: EventType.virtualServerItemsSelected, version: 1, data: { name: "vs", prompts: [selectedPrompt(draft, "fresh-name")] } });
    expect(deniedItemsFor(state)).toEqual(new Set(["prompt:a/draft"]));
  });

  test("grants recorded before prompts and resources could be denied replay to none denied; names in a grant event resolve on replay", () => {
    const state = catalog();
    apply(state, { type: EventType.virtualServerAccessGranted, version: 1, data: { name: "vs", grant: { grantId: "old", subject: { consumer: "bot" }, deniedTools: [] } } });
    expect(state.virtualServer("vs")!.grants.get("old")).toEqual({ grantId: "old", subject: { consumer: "bot" }, deniedTools: [], deniedPrompts: [], deniedResources: [] });
    expect(deniedItemsFor(state)).toEqual(new Set());
    const replayed = catalog();
    apply(replayed, { type: EventType.virtualServerAccessGranted, version: 1, data: { name: "vs", grant: { ...grant({ deniedPrompts: [DRAFT], deniedResources: ["a+demo://text/7"] }) } } });
    expect(replayed.virtualServer("vs")!.grants.get("g")!.deniedPrompts).toEqual([{ upstream: "a", prompt: "draft" }]);
    expect(replayed.virtualServer("vs")!.grants.get("g")!.deniedResources).toEqual([{ upstream: "a", uri: "demo://text/7" }]);
  });

  test("with several matching grants an item is denied only when every one denies it", () => {
    const state = catalog();
    apply(state, ...when(state, grantCommand(grant({ deniedPrompts: [DRAFT, REVIEW], deniedResources: ["a+file:///secret.txt"] })))());
    apply(state, ...when(state, grantCommand(grant({ deniedPrompts: [REVIEW] }, "ops", { group: "ops" })))());
    expect(deniedItemsFor(state)).toEqual(new Set(["prompt:a/review"]));
  });

  test("a grant may deny a prompt or resource its upstream offers before the virtual server selects it; refused if the upstream does not offer it", () => {
    const state = catalog();
    apply(state, ...when(state, { type: CommandType.deselectItems, name: "vs", prompts: [REVIEW], resources: ["a+file:///secret.txt", "a+demo://text/{id}"] })());
    const denied = { deniedPrompts: [{ upstream: "a", prompt: "review" }], deniedResources: [{ upstream: "a", uri: "file:///secret.txt" }, { upstream: "a", uriTemplate: "demo://text/{id}" }] };
    const events = when(state, grantCommand(grant(denied)))();
    expect(events).toHaveLength(1);
    apply(state, ...events);
    apply(state, ...when(state, { type: CommandType.selectItems, name: "vs", prompts: [{ upstream: "a", prompt: "review" }], resources: [{ upstream: "a", uri: "file:///secret.txt" }] })());
    expect(deniedItemsFor(state)).toEqual(new Set(["prompt:a/review", "resource:a/file:///secret.txt", "resource-template:a/demo://text/{id}"]));
    const refused = failure(when(state, grantCommand(grant({ deniedPrompts: [{ upstream: "a", prompt: "reviw" }], deniedResources: [{ upstream: "a", uri: "file:///nope" }] }, "h"))));
    expect(refused.code).toBe("not_found");
  });
});
