import { CommandType, EventType, type NewEvent, type RegistryCommand, type RegistryEvent } from "@manifold/contracts";
import { describe, expect, test } from "vitest";
import { SUFFIX, add, echo, given, meta, pinned, registered, selection, serverInfo, when } from "./decideFixtures.spec.js";
import { itemFields } from "./decideItems.js";
import { discoverPrompt, discoverResource, discoverResourceTemplate } from "./itemPins.js";
import { exposedToolName } from "./naming.js";
import type { CatalogProjection } from "./projection.js";
import { planPromotion } from "./promotion.js";

// A promotion's event names what it copies (the source environment's pins, with their digest)
// instead of carrying every definition: folding either form of one promotion gives one state.

type Command = Extract<RegistryCommand, { type: typeof CommandType.promote }>;
const apply = (state: CatalogProjection, ...events: NewEvent[]) => events.forEach((e) => state.apply({ ...e, meta } as RegistryEvent, state.sequence + 1));
const draft = { name: "draft", arguments: [{ name: "topic", required: true }] };
const readme = { uri: "file:///README.md", name: "README" };
const texts = { uriTemplate: "demo://text/{id}", name: "text" };
const ECHO = exposedToolName("a", "echo");
const ADD = exposedToolName("a", "add");
const LONG = { ...echo, description: "Echoes. ".repeat(200) };

const discoveredAll = (name: string, tool = echo): NewEvent => ({
  type: EventType.upstreamToolsDiscovered,
  version: 1,
  data: { name, serverInfo, tools: [pinned(tool), pinned(add)], prompts: [discoverPrompt(draft)], resources: [discoverResource(readme)], resourceTemplates: [discoverResourceTemplate(texts)], changes: [] },
});
const items = () => {
  const p = discoverPrompt(draft);
  const r = discoverResource(readme);
  const t = discoverResourceTemplate(texts);
  return {
    prompts: [{ exposedName: exposedToolName("a", "draft"), upstream: "a", prompt: "draft", hash: p.hash, definition: p.definition }],
    resources: [{ upstream: "a", uri: readme.uri, hash: r.hash, definition: r.definition }],
    resourceTemplates: [{ upstream: "a", uriTemplate: texts.uriTemplate, hash: t.hash, definition: t.definition }],
  };
};
/** `a` selected whole; staging binds `a` to itself, prod to `a-prod`, whose echo says otherwise. */
const catalog = (withItems = true) =>
  given(
    registered("a"),
    registered("a-prod"),
    discoveredAll("a"),
    discoveredAll("a-prod", { ...echo, description: "Echoes (prod build)" }),
    {
      type: EventType.virtualServerCreated,
      version: 1,
      data: { name: "vs", tools: [{ ...selection("a", echo), descriptionOverride: "Says it back" }, selection("a", add)], driftPolicy: "pinned", naming: SUFFIX, ...(withItems ? items() : {}) },
    },
    { type: EventType.environmentBindingsSet, version: 1, data: { name: "staging", bindings: {} } },
    { type: EventType.environmentBindingsSet, version: 1, data: { name: "prod", bindings: { a: "a-prod" } } },
  );

/** The event as promotion recorded it until it named its pins: every pin, with its definition. */
function carried(state: CatalogProjection, command: Command): NewEvent {
  const { source, differences } = planPromotion(state.virtualServer(command.name)!, command.from, command.to, state, command.tools);
  const { prompts, resources, resourceTemplates } = source.items;
  const items = itemFields({ prompts: [...prompts.values()], resources: [...resources.values()], resourceTemplates: [...resourceTemplates.values()] });
  return { type: EventType.virtualServerPromoted, version: 1, data: { name: command.name, from: command.from, to: command.to, pins: [...source.tools.values()], items, forced: differences.length > 0 } };
}

/** Folds `before` into two catalogs, then the promotion in each form, and returns both virtual servers and the new event. */
function bothForms(before: NewEvent[], command: Omit<Command, "type" | "name" | "force"> & { force?: boolean }, withItems = true) {
  const promote: Command = { type: CommandType.promote, name: "vs", force: false, ...command };
  const [oldForm, newForm] = [catalog(withItems), catalog(withItems)];
  apply(oldForm, ...before);
  apply(newForm, ...before);
  const [named] = when(newForm, promote)();
  apply(oldForm, carried(oldForm, promote));
  apply(newForm, named!);
  return { old: oldForm.virtualServer("vs")!, now: newForm.virtualServer("vs")!, event: named! };
}

const keysIn = (vs: ReturnType<typeof bothForms>["now"], environment: string) => ({
  tools: [...(vs.environments.get(environment)?.keys() ?? [])],
  prompts: [...(vs.environmentItems.get(environment)?.prompts.keys() ?? [])],
  resources: [...(vs.environmentItems.get(environment)?.resources.keys() ?? [])],
  resourceTemplates: [...(vs.environmentItems.get(environment)?.resourceTemplates.keys() ?? [])],
});

describe("a promotion names what it copies; either form folds to one state", () => {
  test("every tool, prompt, resource and template of the default environment, description overrides kept", () => {
    const { old, now, event } = bothForms([], { from: "default", to: "staging" });
    expect(event).toMatchObject({ data: { from: "default", to: "staging", forced: false, copied: { tools: 2, prompts: 1, resources: 1, resourceTemplates: 1 } } });
    expect(event.data).not.toHaveProperty("pins");
    expect(now).toEqual(old);
    expect(keysIn(now, "staging")).toEqual(keysIn(old, "staging"));
    expect(now.environments.get("staging")!.get(ECHO)).toEqual({ ...selection("a", echo), descriptionOverride: "Says it back" });
    expect(keysIn(now, "staging").resources).toEqual(["a+file:///README.md"]);
  });

  test("a subset of the tools, in the order named (the prompts and resources whole)", () => {
    const { old, now, event } = bothForms([], { from: "default", to: "staging", tools: [ADD] });
    expect(event).toMatchObject({ data: { tools: [ADD], copied: { tools: 1, prompts: 1 } } });
    expect(now).toEqual(old);
    expect(keysIn(now, "staging").tools).toEqual([ADD]);
    const none = bothForms([], { from: "default", to: "staging", tools: [] });
    expect(none.now).toEqual(none.old);
    expect(none.now.environments.get("staging")!.size).toBe(0);
  });

  test("forced, into an environment whose upstream reports another definition, replacing its pins and rejections", () => {
    const before: NewEvent[] = [
      ...when(catalog(), { type: CommandType.promote, name: "vs", from: "default", to: "prod", force: true, tools: [ECHO] })(),
      { type: EventType.virtualServerDriftRejected, version: 1, data: { name: "vs", exposedName: ECHO, hash: pinned({ ...echo, description: "Echoes (prod build)" }).hash, environment: "prod" } },
    ];
    const { old, now, event } = bothForms(before, { from: "default", to: "prod", force: true });
    expect(event).toMatchObject({ data: { forced: true } });
    expect(now).toEqual(old);
    expect(now.rejected.has("prod")).toBe(false);
    expect(keysIn(now, "prod").tools).toEqual([ECHO, ADD]);
  });

  test("from an environment promoted before promotion covered items (its event has none): the selection's are copied", () => {
    const before: NewEvent[] = [{ type: EventType.virtualServerPromoted, version: 1, data: { name: "vs", from: "default", to: "staging", pins: [selection("a", echo)], forced: false } }];
    const { old, now } = bothForms(before, { from: "staging", to: "prod", force: true });
    expect(now.environmentItems.has("staging")).toBe(false);
    expect(now).toEqual(old);
    expect(keysIn(now, "prod")).toEqual({ tools: [ECHO], prompts: [exposedToolName("a", "draft")], resources: ["a+file:///README.md"], resourceTemplates: ["a+demo://text/{id}"] });
  });

  test("a virtual server with no prompts or resources: the target gets none either way", () => {
    const { old, now } = bothForms([], { from: "default", to: "staging" }, false);
    expect(now).toEqual(old);
    expect(now.environmentItems.get("staging")!.prompts.size).toBe(0);
  });

  test("a fold that finds other pins than the event names copies nothing (the version moves)", () => {
    const state = catalog();
    const [named] = when(state, { type: CommandType.promote, name: "vs", from: "default", to: "staging", force: false })();
    apply(state, { type: EventType.virtualServerToolsDeselected, version: 1, data: { name: "vs", exposedNames: [ADD] } });
    apply(state, named!);
    expect(state.virtualServer("vs")!.environments.has("staging")).toBe(false);
    expect(state.virtualServer("vs")!.version).toBe(state.sequence);
  });

  test("the event does not grow with the definitions it copies", () => {
    const size = (tool: typeof echo) => {
      const state = given(registered("a"), discoveredAll("a", tool), { type: EventType.virtualServerCreated, version: 1, data: { name: "vs", tools: [selection("a", tool)], driftPolicy: "pinned", naming: SUFFIX } }, { type: EventType.environmentBindingsSet, version: 1, data: { name: "staging", bindings: {} } });
      return JSON.stringify(when(state, { type: CommandType.promote, name: "vs", from: "default", to: "staging", force: false })()).length;
    };
    expect(size(LONG)).toBe(size(echo));
  });
});
