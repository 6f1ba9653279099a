import { CommandType, EventType, type RegistryEvent } from "@manifold/contracts";
import { describe, expect, test } from "vitest";
import { registrationHash } from "./hashing.js";
import { exposedToolName } from "./naming.js";
import { add, discovered, echo, failure, given, http, meta, registered, selection, serverInfo, SUFFIX, vsCreated, when } from "./decideFixtures.spec.js";

describe("register-upstream", () => {
  test("given nothing, registers the upstream", () => {
    expect(when(given(), { type: CommandType.registerUpstream, name: "a", transport: http, options: {} })()).toEqual([registered("a")]);
  });
  test("given the same registration, is a no-op (seeding twice changes nothing)", () => {
    expect(when(given(registered("a")), { type: CommandType.registerUpstream, name: "a", transport: http, options: {} })()).toEqual([]);
  });
  test("given a different registration under the name, is rejected as already existing", () => {
    const other = { ...http, url: "http://b.example/mcp" };
    const error = failure(when(given(registered("a")), { type: CommandType.registerUpstream, name: "a", transport: other, options: {} }));
    expect(error.code).toBe("already_exists");
    expect(error.message).toContain("'a'");
  });
});

describe("register-upstream options", () => {
  test("per-request headers are refused for a stdio upstream", () => {
    const stdio = { type: "stdio" as const, command: "x", args: [], env: {}, secretEnv: {} };
    const error = failure(
      when(given(), { type: CommandType.registerUpstream, name: "a", transport: stdio, options: { passthroughHeaders: ["authorization"] } }),
    );
    expect(error.code).toBe("invalid_request");
    expect(error.message).toContain("stdio");
  });
  test("changed options under the same name are rejected as already existing", () => {
    const error = failure(when(given(registered("a")), { type: CommandType.registerUpstream, name: "a", transport: http, options: { callTimeoutMs: 5 } }));
    expect(error.code).toBe("already_exists");
  });
});

describe("record-discovery", () => {
  test("given a registered upstream, records its tools with hashes", () => {
    const events = when(given(registered("a")), { type: CommandType.recordDiscovery, name: "a", serverInfo, tools: [echo, add] })();
    expect(events).toEqual([discovered("a", echo, add)]);
  });
  // attack (registry review, helper-103): a list naming a tool twice never equalled the one recorded (the
  // projection keys tools by name), so every rediscovery appended the whole list again, ambiguous about the pin.
  test("a list that names a tool, prompt or resource twice is refused, naming it", () => {
    const catalog = given(registered("a"));
    const twice = failure(when(catalog, { type: CommandType.recordDiscovery, name: "a", serverInfo, tools: [echo, add, { ...echo, description: "another" }] }));
    expect({ code: twice.code, message: twice.message }).toEqual({ code: "upstream_error", message: "upstream 'a' lists tool 'echo' more than once: its lists are not recorded" });
    const prompt = { name: "p" };
    expect(failure(when(catalog, { type: CommandType.recordDiscovery, name: "a", serverInfo, tools: [echo], prompts: [prompt, prompt] })).message).toContain("prompt 'p'");
    expect(when(catalog, { type: CommandType.recordDiscovery, name: "a", serverInfo, tools: [echo, add] })()).toEqual([discovered("a", echo, add)]);
  });
  test("lists read under an earlier registration are not recorded once the upstream was registered again", () => {
    const catalog = given(registered("a"));
    const earlier = registrationHash(catalog.upstream("a")!);
    expect(when(catalog, { type: CommandType.recordDiscovery, name: "a", registration: earlier, serverInfo, tools: [echo] })()).toEqual([discovered("a", echo)]);
    const again = { type: EventType.upstreamRegistered, version: 1, data: { name: "a", transport: { ...http, url: "http://b.example/mcp" }, options: {} } };
    catalog.apply({ ...again, meta } as RegistryEvent, 50);
    const error = failure(when(catalog, { type: CommandType.recordDiscovery, name: "a", registration: earlier, serverInfo, tools: [echo, add] }));
    expect(error.code).toBe("upstream_unavailable");
    expect(error.data).toEqual({ reason: "reconfiguring" });
  });
  test("an upstream removed and registered again with the same settings is another registration: lists read before are not recorded", () => {
    const catalog = given(registered("a"));
    const before = registrationHash(catalog.upstream("a")!);
    catalog.apply({ type: EventType.upstreamRemoved, version: 1, data: { name: "a" }, meta } as RegistryEvent, 60);
    catalog.apply({ ...registered("a"), meta } as RegistryEvent, 61);
    expect(registrationHash(catalog.upstream("a")!)).not.toBe(before);
    expect(failure(when(catalog, { type: CommandType.recordDiscovery, name: "a", registration: before, serverInfo, tools: [echo] })).data).toEqual({ reason: "reconfiguring" });
    // Its own reads are recorded, and a list recorded keeps the registration as it was.
    const now = registrationHash(catalog.upstream("a")!);
    for (const event of when(catalog, { type: CommandType.recordDiscovery, name: "a", registration: now, serverInfo, tools: [echo] })()) catalog.apply({ ...event, meta } as RegistryEvent, 62);
    expect(registrationHash(catalog.upstream("a")!)).toBe(now);
  });
  test("a change's event fits one bus message: the diffs give way first, then the changes (counted), never the lists", () => {
    const catalog = given(registered("a"), discovered("a", echo, add));
    const long = (tool: typeof echo | typeof add) => ({ ...tool, description: "x".repeat(2_000) });
    const record = (maxEventBytes?: number) => when(catalog, { type: CommandType.recordDiscovery, name: "a", serverInfo, tools: [long(echo), long(add)], maxEventBytes })()[0]!;
    const size = (event: unknown) => Buffer.byteLength(JSON.stringify(event));
    const full = record();
    const data = (e: typeof full) => e.data as { tools: unknown[]; changes: { diff: unknown[]; diffOmitted?: true }[]; changesOmitted?: number };
    expect(data(full).changes.map((c) => c.diff.length > 0)).toEqual([true, true]);
    expect(record(size(full))).toEqual(full);
    const lean = record(size(full) - 1);
    expect(data(lean).changes).toHaveLength(2);
    expect(data(lean).changes.every((c) => c.diff.length === 0 && c.diffOmitted === true)).toBe(true);
    expect(data(lean).tools).toEqual(data(full).tools);
    const bare = record(size(lean) - 1);
    expect(data(bare).changes).toEqual([]);
    expect(data(bare).changesOmitted).toBe(2);
    expect(data(bare).tools).toEqual(data(full).tools);
  });
  test("given the same tools already recorded, records nothing", () => {
    const catalog = given(registered("a"), discovered("a", echo, add));
    expect(when(catalog, { type: CommandType.recordDiscovery, name: "a", serverInfo, tools: [add, echo] })()).toEqual([]);
  });
  test("given a changed definition, records the new list", () => {
    const catalog = given(registered("a"), discovered("a", echo));
    const changed = { ...echo, description: "Echoes loudly" };
    const [event] = when(catalog, { type: CommandType.recordDiscovery, name: "a", serverInfo, tools: [changed] })();
    expect(event?.type).toBe(EventType.upstreamToolsDiscovered);
  });
  test("given a changed server version, records it", () => {
    const catalog = given(registered("a"), discovered("a", echo));
    const events = when(catalog, { type: CommandType.recordDiscovery, name: "a", serverInfo: { ...serverInfo, version: "2" }, tools: [echo] })();
    expect(events).toHaveLength(1);
  });
  test("given an unknown upstream, is rejected", () => {
    expect(failure(when(given(), { type: CommandType.recordDiscovery, name: "a", serverInfo, tools: [] })).code).toBe("not_found");
  });
});

describe("remove-upstream", () => {
  test("given an unused upstream, removes it", () => {
    expect(when(given(registered("a")), { type: CommandType.removeUpstream, name: "a" })()).toEqual([
      { type: EventType.upstreamRemoved, version: 1, data: { name: "a" } },
    ]);
  });
  test("given an upstream a virtual server uses, is rejected naming the virtual server", () => {
    const catalog = given(registered("a"), discovered("a", echo), vsCreated("vs", selection("a", echo)));
    const error = failure(when(catalog, { type: CommandType.removeUpstream, name: "a" }));
    expect(error.code).toBe("in_use");
    expect(error.message).toContain("vs");
  });
  test("attack: given an upstream only an environment still uses (promoted pins, or a binding), is rejected naming it", () => {
    // Before: removed, and the next upstream registered under the name got prod's calls and their pass-through headers.
    const promoted = given(registered("a"), registered("b"), discovered("a", echo), discovered("b", echo), vsCreated("vs", selection("b", echo)), {
      type: EventType.virtualServerPromoted,
      version: 1,
      data: { name: "vs", from: "default", to: "prod", pins: [selection("a", echo)], forced: false },
    });
    const byPins = failure(when(promoted, { type: CommandType.removeUpstream, name: "a" }));
    expect(byPins.code).toBe("in_use");
    expect(byPins.data).toEqual({ virtualServers: ["vs"], environments: [] });
    const bound = given(registered("x"), { type: EventType.environmentBindingsSet, version: 1, data: { name: "prod", bindings: { a: "x" } } });
    const byBinding = failure(when(bound, { type: CommandType.removeUpstream, name: "x" }));
    expect(byBinding.code).toBe("in_use");
    expect(byBinding.message).toBe("upstream 'x' is used by environment bindings: prod");
  });
  test("given nothing, is rejected as not found", () => {
    expect(failure(when(given(), { type: CommandType.removeUpstream, name: "a" })).code).toBe("not_found");
  });
});

describe("create-virtual-server", () => {
  const catalog = () => given(registered("a"), discovered("a", echo, add), registered("b"), discovered("b", echo));

  test("pins the selected tools under their exposed names", () => {
    const events = when(catalog(), {
      type: CommandType.createVirtualServer,
      name: "vs",
      driftPolicy: "pinned",
      naming: SUFFIX,
      tools: [{ upstream: "a", tool: "echo" }, { upstream: "b", tool: "echo" }],
    })();
    expect(events).toEqual([vsCreated("vs", selection("a", echo), selection("b", echo))]);
  });
  test("gives the same tool name from two upstreams two exposed names", () => {
    const [event] = when(catalog(), {
      type: CommandType.createVirtualServer,
      name: "vs",
      driftPolicy: "pinned",
      naming: SUFFIX,
      tools: [{ upstream: "a", tool: "echo" }, { upstream: "b", tool: "echo" }],
    })();
    const names = (event?.data as { tools: { exposedName: string }[] }).tools.map((t) => t.exposedName);
    expect(new Set(names).size).toBe(2);
  });
  test("selecting one tool twice pins it once", () => {
    const [event] = when(catalog(), {
      type: CommandType.createVirtualServer,
      name: "vs",
      driftPolicy: "pinned",
      naming: SUFFIX,
      tools: [{ upstream: "a", tool: "echo" }, { upstream: "a", tool: "echo" }],
    })();
    expect((event?.data as { tools: unknown[] }).tools).toHaveLength(1);
  });
  test("a tool the upstream does not have is rejected naming upstream and tool", () => {
    const error = failure(when(catalog(), { type: CommandType.createVirtualServer, name: "vs", driftPolicy: "pinned", naming: SUFFIX, tools: [{ upstream: "a", tool: "nope" }] }));
    expect(error.code).toBe("tool_not_discovered");
    expect(error.message).toContain("'a'");
    expect(error.message).toContain("'nope'");
  });
  test("an unknown upstream is rejected", () => {
    expect(failure(when(catalog(), { type: CommandType.createVirtualServer, name: "vs", driftPolicy: "pinned", naming: SUFFIX, tools: [{ upstream: "zz", tool: "echo" }] })).code).toBe(
      "not_found",
    );
  });
  test("creating the same virtual server again is a no-op; a different one under the name is rejected", () => {
    const existing = given(registered("a"), discovered("a", echo, add), vsCreated("vs", selection("a", echo)));
    expect(when(existing, { type: CommandType.createVirtualServer, name: "vs", driftPolicy: "pinned", naming: SUFFIX, tools: [{ upstream: "a", tool: "echo" }] })()).toEqual([]);
    const error = failure(when(existing, { type: CommandType.createVirtualServer, name: "vs", driftPolicy: "pinned", naming: SUFFIX, tools: [{ upstream: "a", tool: "add" }] }));
    expect(error.code).toBe("already_exists");
  });
});

describe("select-tools", () => {
  const catalog = () => given(registered("a"), discovered("a", echo, add), vsCreated("vs", selection("a", echo)));

  test("adds a tool and leaves the existing exposed names as they are", () => {
    const events = when(catalog(), { type: CommandType.selectTools, name: "vs", tools: [{ upstream: "a", tool: "add" }] })();
    expect(events).toEqual([{ type: EventType.virtualServerToolsSelected, version: 1, data: { name: "vs", tools: [selection("a", add)] } }]);
  });
  test("selecting an already selected tool is a no-op", () => {
    expect(when(catalog(), { type: CommandType.selectTools, name: "vs", tools: [{ upstream: "a", tool: "echo" }] })()).toEqual([]);
  });
  test("an unknown virtual server is rejected", () => {
    expect(failure(when(catalog(), { type: CommandType.selectTools, name: "zz", tools: [{ upstream: "a", tool: "add" }] })).code).toBe("not_found");
  });
});

describe("deselect-tools", () => {
  const catalog = () => given(registered("a"), discovered("a", echo, add), vsCreated("vs", selection("a", echo), selection("a", add)));

  test("removes the named tools", () => {
    const name = exposedToolName("a", "echo");
    expect(when(catalog(), { type: CommandType.deselectTools, name: "vs", exposedNames: [name] })()).toEqual([
      { type: EventType.virtualServerToolsDeselected, version: 1, data: { name: "vs", exposedNames: [name] } },
    ]);
  });
  test("a name the virtual server does not have is rejected naming it", () => {
    const error = failure(when(catalog(), { type: CommandType.deselectTools, name: "vs", exposedNames: ["ghost_aaaaaa"] }));
    expect(error.code).toBe("not_found");
    expect(error.message).toContain("ghost_aaaaaa");
  });
});

describe("delete-virtual-server", () => {
  test("deletes an existing virtual server", () => {
    const catalog = given(registered("a"), discovered("a", echo), vsCreated("vs", selection("a", echo)));
    expect(when(catalog, { type: CommandType.deleteVirtualServer, name: "vs" })()).toEqual([
      { type: EventType.virtualServerDeleted, version: 1, data: { name: "vs" } },
    ]);
  });
  test("an unknown virtual server is rejected", () => {
    expect(failure(when(given(), { type: CommandType.deleteVirtualServer, name: "vs" })).code).toBe("not_found");
  });
});

describe("evolve, through the projection", () => {
  test("folds events into versions, selections and removals", () => {
    const catalog = given(registered("a"), discovered("a", echo, add), vsCreated("vs", selection("a", echo)));
    expect(catalog.upstream("a")?.version).toBe(2);
    expect(catalog.virtualServer("vs")?.version).toBe(3);
    expect([...catalog.virtualServer("vs")!.tools.keys()]).toEqual([exposedToolName("a", "echo")]);
    expect(catalog.usersOf("a")).toEqual({ virtualServers: ["vs"], environments: [] });
    catalog.apply({ type: EventType.virtualServerDeleted, version: 1, data: { name: "vs" }, meta }, 4);
    expect(catalog.virtualServer("vs")).toBeUndefined();
    expect(catalog.usersOf("a")).toEqual({ virtualServers: [], environments: [] });
  });
  test("ignores an event it has already applied (replay after a reconnect)", () => {
    const catalog = given(registered("a"));
    catalog.apply({ ...registered("b"), meta } as RegistryEvent, 1);
    expect(catalog.upstream("b")).toBeUndefined();
  });
  test("keeps pinned definitions when the upstream later reports a different one", () => {
    const catalog = given(registered("a"), discovered("a", echo), vsCreated("vs", selection("a", echo)));
    catalog.apply({ ...discovered("a", { ...echo, description: "poisoned" }), meta } as RegistryEvent, 4);
    expect(catalog.virtualServer("vs")!.tools.get(exposedToolName("a", "echo"))!.definition.description).toBe("Echoes");
  });
});

describe("updates and environment deletion", () => {
  test("update-upstream records a new transport; the same one is a no-op; an unknown upstream is refused", () => {
    const state = given(registered("a"));
    const other = { ...http, url: "http://b.example/mcp" };
    expect(when(state, { type: CommandType.updateUpstream, name: "a", transport: other, options: {} })()).toEqual([
      { type: EventType.upstreamUpdated, version: 1, data: { name: "a", transport: other, options: {} } },
    ]);
    expect(when(state, { type: CommandType.updateUpstream, name: "a", transport: http, options: {} })()).toEqual([]);
    expect(failure(when(given(), { type: CommandType.updateUpstream, name: "a", transport: http, options: {} })).code).toBe("not_found");
  });
  test("update-virtual-server changes the description only when it differs", () => {
    const state = given(registered("a"), discovered("a", echo), vsCreated("vs", selection("a", echo)));
    expect(when(state, { type: CommandType.updateVirtualServer, name: "vs", description: "new" })()).toEqual([
      { type: EventType.virtualServerUpdated, version: 1, data: { name: "vs", description: "new" } },
    ]);
    expect(when(state, { type: CommandType.updateVirtualServer, name: "vs" })()).toEqual([]);
  });
  test("delete-environment removes an existing environment", () => {
    const state = given(registered("a"), { type: EventType.environmentBindingsSet, version: 1, data: { name: "staging", bindings: { a: "a" } } });
    expect(when(state, { type: CommandType.deleteEnvironment, name: "staging" })()).toEqual([
      { type: EventType.environmentDeleted, version: 1, data: { name: "staging" } },
    ]);
    expect(failure(when(state, { type: CommandType.deleteEnvironment, name: "prod" })).code).toBe("not_found");
  });
});
