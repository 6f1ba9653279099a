import { CommandType, EventType, type Naming, type NewEvent, type RegistryCommand } from "@manifold/contracts";
import { describe, expect, test } from "vitest";
import { echo, failure, given, registered, selection, serverInfo, SUFFIX, vsCreated, when, pinned } from "./decideFixtures.spec.js";
import { discoverPrompt, discoverResource, discoverResourceTemplate } from "./itemPins.js";
import { exposedToolName } from "./naming.js";

const prompt = (name: string, args: { name: string; required?: boolean }[] = []) => ({ name, arguments: args });
const readme = { uri: "file:///README.md", name: "README" };
const template = { uriTemplate: "demo://text/{id}", name: "text" };
const discoveredAll = (name: string, prompts: ReturnType<typeof prompt>[], tools = [echo]): NewEvent => ({
  type: EventType.upstreamToolsDiscovered,
  version: 1,
  data: { name, serverInfo, tools: tools.map(pinned), prompts: prompts.map(discoverPrompt), resources: [discoverResource(readme)], resourceTemplates: [discoverResourceTemplate(template)], changes: [] },
});
const create = (
  prompts: { upstream: string; prompt: string; alias?: string }[],
  resources: ({ upstream: string; uri: string } | { upstream: string; uriTemplate: string })[] = [],
  naming: Naming = SUFFIX,
): RegistryCommand => ({ type: CommandType.createVirtualServer, name: "vs", driftPolicy: "pinned", naming, tools: [], prompts, resources });

describe("selecting prompts and resources", () => {
  test("prompts are named by the naming policy; resources keyed by <upstream>+<uri>", () => {
    const catalog = given(registered("a"), discoveredAll("a", [prompt("draft")]));
    const [event] = when(catalog, create([{ upstream: "a", prompt: "draft" }], [{ upstream: "a", uri: readme.uri }, { upstream: "a", uriTemplate: template.uriTemplate }]))();
    expect(event!.type).toBe(EventType.virtualServerCreated);
    const data = event!.data as { prompts: { exposedName: string }[]; resources: unknown[]; resourceTemplates: unknown[] };
    expect(data.prompts[0]!.exposedName).toBe(exposedToolName("a", "draft"));
    expect(data.resources).toHaveLength(1);
    expect(data.resourceTemplates).toHaveLength(1);
    const state = given(registered("a"), discoveredAll("a", [prompt("draft")]), { ...event! }).virtualServer("vs")!;
    expect([...state.resources.keys()]).toEqual(["a+file:///README.md"]);
    expect([...state.resourceTemplates.keys()]).toEqual(["a+demo://text/{id}"]);
  });

  test("the same prompt name on two upstreams gets two names under suffix, and collides under bare", () => {
    const catalog = given(registered("a"), registered("b"), discoveredAll("a", [prompt("draft")]), discoveredAll("b", [prompt("draft")]));
    const refs = [{ upstream: "a", prompt: "draft" }, { upstream: "b", prompt: "draft" }];
    const [event] = when(catalog, create(refs))();
    const names = (event!.data as { prompts: { exposedName: string }[] }).prompts.map((p) => p.exposedName);
    expect(new Set(names).size).toBe(2);
    const error = failure(when(catalog, create(refs, [], { policy: "bare", prefixes: {} })));
    expect(error.code).toBe("name_collision");
    expect(error.message).toContain("prompt 'draft' on upstream 'a'");
  });

  test("under bare naming URIs are exposed unchanged, and two upstreams' same URI is a collision", () => {
    const catalog = given(registered("a"), registered("b"), discoveredAll("a", []), discoveredAll("b", []));
    const bare = { policy: "bare" as const, prefixes: {} };
    const [one] = when(catalog, create([], [{ upstream: "a", uri: readme.uri }], bare))();
    const state = given(registered("a"), discoveredAll("a", []), one!).virtualServer("vs")!;
    expect([...state.resources.keys()]).toEqual(["file:///README.md"]);
    const error = failure(when(catalog, create([], [{ upstream: "a", uri: readme.uri }, { upstream: "b", uri: readme.uri }], bare)));
    expect(error.code).toBe("name_collision");
    expect(error.message).toContain("upstream 'a'");
  });

  test("a prompt and a tool share the virtual server's namespace: a collision is refused, naming both", () => {
    const catalog = given(registered("a"), discoveredAll("a", [prompt("echo")]), vsCreated("vs", { ...selection("a", echo), exposedName: "echo" }));
    const error = failure(when(catalog, { type: CommandType.selectItems, name: "vs", prompts: [{ upstream: "a", prompt: "echo", alias: "echo" }], resources: [] }));
    expect(error.code).toBe("name_collision");
    expect(error.message).toContain("tool 'echo' on upstream 'a'");
  });

  test("undiscovered prompts and resources are refused as not discovered", () => {
    const catalog = given(registered("a"), discoveredAll("a", []));
    expect(failure(when(catalog, create([{ upstream: "a", prompt: "nope" }]))).code).toBe("tool_not_discovered");
    expect(failure(when(catalog, create([], [{ upstream: "a", uri: "file:///nope" }]))).code).toBe("tool_not_discovered");
  });

  test("a prompt whose argument became required is breaking drift, accepted by exposed name", () => {
    const before = given(registered("a"), discoveredAll("a", [prompt("draft", [{ name: "tone" }])]));
    const [created] = when(before, create([{ upstream: "a", prompt: "draft" }], [], { policy: "bare", prefixes: {} }))();
    const catalog = given(registered("a"), discoveredAll("a", [prompt("draft", [{ name: "tone" }])]), created!, discoveredAll("a", [prompt("draft", [{ name: "tone", required: true }])]));
    const [decision] = when(catalog, { type: CommandType.acceptDrift, name: "vs", exposedName: "draft" })();
    expect(decision).toMatchObject({ type: EventType.virtualServerItemRepinned, data: { kind: "prompt", key: "draft", definition: { arguments: [{ name: "tone", required: true }] } } });
    const [rejection] = when(catalog, { type: CommandType.rejectDrift, name: "vs", exposedName: "draft" })();
    expect(rejection).toMatchObject({ type: EventType.virtualServerItemDriftRejected, data: { kind: "prompt", key: "draft" } });
  });

  test("a resource whose MIME type changed is breaking drift, accepted by exposed URI", () => {
    const moved = { ...readme, mimeType: "application/pdf" };
    const rediscovered: NewEvent = { type: EventType.upstreamToolsDiscovered, version: 1, data: { name: "a", serverInfo, tools: [], resources: [discoverResource(moved)], changes: [] } };
    const [created] = when(given(registered("a"), discoveredAll("a", [])), create([], [{ upstream: "a", uri: readme.uri }]))();
    const catalog = given(registered("a"), discoveredAll("a", []), created!, rediscovered);
    const [decision] = when(catalog, { type: CommandType.acceptDrift, name: "vs", exposedName: "a+file:///README.md" })();
    expect(decision).toMatchObject({ type: EventType.virtualServerItemRepinned, data: { kind: "resource", key: "a+file:///README.md", definition: { mimeType: "application/pdf" } } });
    expect(failure(when(catalog, { type: CommandType.acceptDrift, name: "vs", exposedName: "b+file:///README.md" })).code).toBe("not_found");
  });

  test("deselecting unknown prompts or resources names them", () => {
    const catalog = given(registered("a"), discoveredAll("a", []), vsCreated("vs"));
    const error = failure(when(catalog, { type: CommandType.deselectItems, name: "vs", prompts: ["x"], resources: ["a+file:///y"] }));
    expect(error.code).toBe("not_found");
    expect(error.message).toContain("prompt 'x'");
    expect(error.message).toContain("resource 'a+file:///y'");
  });
});
