import { CommandType, EventType, ManifoldError, type NewEvent, type RegistryCommand, type RegistryEvent } from "@manifold/contracts";
import { describe, expect, test } from "vitest";
import { decide } from "./decide.js";
import { definitionHash, pinDefinition } from "./hashing.js";
import { exposedToolName, toolSuffix } from "./naming.js";
import { CatalogProjection } from "./projection.js";

// Given/When/Then over the pure decider: events in, a command, events (or an error) out.
const meta = { commandId: "c", at: "2026-01-01T00:00:00.000Z" };
const SUFFIX = { policy: "suffix" as const, prefixes: {} };
const given = (...events: NewEvent[]) => {
  const projection = new CatalogProjection();
  events.forEach((e, i) => projection.apply({ ...e, meta } as RegistryEvent, i + 1));
  return projection;
};
const when = (catalog: CatalogProjection, command: RegistryCommand) => () => decide(command, catalog);
const failure = (run: () => unknown): ManifoldError => {
  try {
    run();
  } catch (error) {
    if (error instanceof ManifoldError) return error;
    throw error;
  }
  throw new Error("expected the command to be rejected");
};

const http = { type: "streamable-http" as const, url: "http://a.example/mcp", headers: {}, secretHeaders: {} };
const echo = { name: "echo", description: "Echoes", inputSchema: { type: "object" as const } };
const add = { name: "add", inputSchema: { type: "object" as const, properties: { a: { type: "number" } } } };
const pinned = (tool: typeof echo | typeof add) => ({ hash: definitionHash(pinDefinition(tool)), definition: pinDefinition(tool) });
const serverInfo = { name: "srv", version: "1.0.0" };

const registered = (name: string): NewEvent => ({ type: EventType.upstreamRegistered, version: 1, data: { name, transport: http, options: {} } });
const discovered = (name: string, ...tools: (typeof echo | typeof add)[]): NewEvent => ({
  type: EventType.upstreamToolsDiscovered,
  version: 1,
  data: { name, serverInfo, tools: tools.map(pinned), changes: [] },
});
const selection = (upstream: string, tool: typeof echo | typeof add) => ({
  exposedName: exposedToolName(upstream, tool.name),
  upstream,
  tool: tool.name,
  ...pinned(tool),
});
const vsCreated = (name: string, ...tools: ReturnType<typeof selection>[]): NewEvent => ({
  type: EventType.virtualServerCreated,
  version: 1,
  data: { name, tools, driftPolicy: "pinned", naming: SUFFIX },
});

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
    expect(catalog.virtualServersUsing("a")).toEqual(["vs"]);
    catalog.apply({ type: EventType.virtualServerDeleted, version: 1, data: { name: "vs" }, meta }, 4);
    expect(catalog.virtualServer("vs")).toBeUndefined();
    expect(catalog.virtualServersUsing("a")).toEqual([]);
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

describe("configure-audit", () => {
  const catalog = () => given(registered("a"), discovered("a", echo), vsCreated("vs", selection("a", echo)));
  test("records whether values are kept and which fields are redacted", () => {
    const audit = { recordValues: true, redactFields: ["password"] };
    expect(when(catalog(), { type: CommandType.configureAudit, name: "vs", audit })()).toEqual([
      { type: EventType.virtualServerAuditConfigured, version: 1, data: { name: "vs", audit } },
    ]);
  });
  test("the default (no values) again is a no-op", () => {
    expect(when(catalog(), { type: CommandType.configureAudit, name: "vs", audit: { recordValues: false, redactFields: [] } })()).toEqual([]);
  });
});

describe("drift review", () => {
  const changedEcho = { ...echo, description: "Echoes, and more" };
  const drifted = () =>
    given(
      registered("a"),
      discovered("a", echo),
      vsCreated("vs", selection("a", echo)),
      discovered("a", changedEcho),
    );
  const exposed = exposedToolName("a", "echo");

  test("a re-discovery records which tools changed, from what to what", () => {
    const catalog = given(registered("a"), discovered("a", echo));
    const [event] = when(catalog, { type: CommandType.recordDiscovery, name: "a", serverInfo: { ...serverInfo, version: "2.0.0" }, tools: [changedEcho, add] })();
    expect(event?.data).toMatchObject({
      changes: [
        {
          tool: "echo",
          before: pinned(echo).hash,
          after: pinned(changedEcho).hash,
          classification: "description-changed",
          diff: [{ op: "replace", path: "/description", value: "Echoes, and more" }],
        },
        { tool: "add", before: null, after: pinned(add).hash, classification: "compatible" },
      ],
      previousServerVersion: "1.0.0",
    });
  });
  test("accept re-pins the tool to the upstream's current definition", () => {
    expect(when(drifted(), { type: CommandType.acceptDrift, name: "vs", exposedName: exposed })()).toEqual([
      { type: EventType.virtualServerToolRepinned, version: 1, data: { name: "vs", exposedName: exposed, ...pinned(changedEcho) } },
    ]);
  });
  test("reject marks the drift reviewed; the same change is then no longer pending", () => {
    const catalog = drifted();
    const [event] = when(catalog, { type: CommandType.rejectDrift, name: "vs", exposedName: exposed })();
    expect(event).toEqual({ type: EventType.virtualServerDriftRejected, version: 1, data: { name: "vs", exposedName: exposed, hash: pinned(changedEcho).hash } });
    catalog.apply({ ...event!, meta } as RegistryEvent, 99);
    expect(failure(when(catalog, { type: CommandType.acceptDrift, name: "vs", exposedName: exposed })).code).toBe("not_found");
  });
  test("without drift, accept and reject are rejected naming the tool", () => {
    const catalog = given(registered("a"), discovered("a", echo), vsCreated("vs", selection("a", echo)));
    const error = failure(when(catalog, { type: CommandType.acceptDrift, name: "vs", exposedName: exposed }));
    expect(error.code).toBe("not_found");
    expect(error.message).toContain(exposed);
  });
  test("the drift policy is set once; setting it again is a no-op", () => {
    const catalog = drifted();
    expect(when(catalog, { type: CommandType.setDriftPolicy, name: "vs", policy: "auto-compatible" })()).toHaveLength(1);
    expect(when(catalog, { type: CommandType.setDriftPolicy, name: "vs", policy: "pinned" })()).toEqual([]);
  });
});

describe("naming policies, aliases and renames", () => {
  const catalog = () => given(registered("a"), discovered("a", echo, add), registered("b"), discovered("b", echo));
  const create = (naming: { policy: "suffix" | "bare" | "prefix"; prefixes: Record<string, string> }, tools: { upstream: string; tool: string; alias?: string; description?: string }[]) =>
    when(catalog(), { type: CommandType.createVirtualServer, name: "vs", driftPolicy: "pinned", naming, tools });
  const names = (events: NewEvent[]) => (events[0]!.data as { tools: { exposedName: string }[] }).tools.map((t) => t.exposedName);

  test("bare exposes original names", () => {
    expect(names(create({ policy: "bare", prefixes: {} }, [{ upstream: "a", tool: "echo" }, { upstream: "a", tool: "add" }])())).toEqual(["echo", "add"]);
  });
  test("bare refuses a collision, naming both upstreams and the tool", () => {
    const error = failure(create({ policy: "bare", prefixes: {} }, [{ upstream: "a", tool: "echo" }, { upstream: "b", tool: "echo" }]));
    expect(error.code).toBe("name_collision");
    expect(error.message).toContain("'a'");
    expect(error.message).toContain("'b'");
    expect(error.message).toContain("'echo'");
  });
  test("prefix puts the upstream's alias first", () => {
    expect(names(create({ policy: "prefix", prefixes: { a: "gh" } }, [{ upstream: "a", tool: "echo" }, { upstream: "b", tool: "echo" }])())).toEqual([
      "gh_echo",
      "b_echo",
    ]);
  });
  test("prefix clips long names to 64 characters with a deterministic suffix", () => {
    const long = { name: "x".repeat(80), inputSchema: { type: "object" as const } };
    const events = when(given(registered("a"), discovered("a", long as typeof echo)), {
      type: CommandType.createVirtualServer,
      name: "vs",
      driftPolicy: "pinned",
      naming: { policy: "prefix", prefixes: {} },
      tools: [{ upstream: "a", tool: long.name }],
    })();
    const [name] = names(events);
    expect(name).toHaveLength(64);
    expect(name).toBe(`a_${"x".repeat(55)}_${toolSuffix("a", long.name)}`);
  });
  test("an alias and a replacement description override the policy", () => {
    const [event] = create(SUFFIX, [{ upstream: "a", tool: "echo", alias: "say", description: "Says it back" }])();
    expect((event!.data as { tools: unknown[] }).tools[0]).toMatchObject({ exposedName: "say", descriptionOverride: "Says it back", definition: pinDefinition(echo) });
  });
  test("an alias must be unique in the virtual server", () => {
    expect(failure(create(SUFFIX, [{ upstream: "a", tool: "echo", alias: "same" }, { upstream: "a", tool: "add", alias: "same" }])).code).toBe("name_collision");
  });
  test("published names never change when other tools come and go", () => {
    const existing = given(registered("a"), discovered("a", echo, add), registered("b"), discovered("b", echo), vsCreated("vs", selection("a", echo)));
    const before = exposedToolName("a", "echo");
    const [selected] = when(existing, { type: CommandType.selectTools, name: "vs", tools: [{ upstream: "b", tool: "echo" }, { upstream: "a", tool: "add" }] })();
    existing.apply({ ...selected!, meta } as RegistryEvent, 10);
    const [removed] = when(existing, { type: CommandType.deselectTools, name: "vs", exposedNames: [exposedToolName("a", "add")] })();
    existing.apply({ ...removed!, meta } as RegistryEvent, 11);
    expect(existing.virtualServer("vs")!.tools.has(before)).toBe(true);
    expect(existing.virtualServer("vs")!.tools.has(exposedToolName("b", "echo"))).toBe(true);
  });
  test("rename is explicit and can keep the old name as a deprecated alias", () => {
    const existing = given(registered("a"), discovered("a", echo), vsCreated("vs", selection("a", echo)));
    const old = exposedToolName("a", "echo");
    const [renamed] = when(existing, { type: CommandType.renameTool, name: "vs", exposedName: old, newName: "echo_v2", keepDeprecatedAlias: true })();
    existing.apply({ ...renamed!, meta } as RegistryEvent, 10);
    const vs = existing.virtualServer("vs")!;
    expect([...vs.tools.keys()]).toEqual(["echo_v2"]);
    expect(vs.deprecatedAliases.get(old)).toBe("echo_v2");
    expect(failure(when(existing, { type: CommandType.renameTool, name: "vs", exposedName: "echo_v2", newName: old, keepDeprecatedAlias: false })).code).toBe(
      "name_collision",
    );
  });
});

describe("environments and promotion", () => {
  const envEvent = (name: string, bindings: Record<string, string>): NewEvent => ({ type: EventType.environmentBindingsSet, version: 1, data: { name, bindings } });
  const catalog = () =>
    given(
      registered("dev"),
      discovered("dev", echo),
      registered("stg"),
      discovered("stg", echo),
      registered("prd"),
      discovered("prd", { ...echo, description: "Echoes (prod build)" }),
      vsCreated("vs", selection("dev", echo)),
      envEvent("staging", { dev: "stg" }),
      envEvent("prod", { dev: "prd" }),
    );
  const exposed = exposedToolName("dev", "echo");

  test("an environment binds logical names to existing upstreams only", () => {
    expect(when(given(registered("a")), { type: CommandType.setEnvironment, name: "staging", bindings: { a: "a" } })()).toHaveLength(1);
    expect(failure(when(given(), { type: CommandType.setEnvironment, name: "staging", bindings: { a: "nope" } })).code).toBe("not_found");
    expect(failure(when(given(), { type: CommandType.setEnvironment, name: "default", bindings: {} })).code).toBe("invalid_request");
  });
  test("promotion copies the pins when the target's upstreams report the same definitions", () => {
    const [event] = when(catalog(), { type: CommandType.promote, name: "vs", from: "default", to: "staging", force: false })();
    expect(event).toMatchObject({ type: EventType.virtualServerPromoted, data: { from: "default", to: "staging", forced: false, pins: [{ exposedName: exposed, upstream: "dev", tool: "echo" }] } });
  });
  test("promotion refuses, with the differences, when the target's definitions differ from the pins", () => {
    const state = catalog();
    const [staged] = when(state, { type: CommandType.promote, name: "vs", from: "default", to: "staging", force: false })();
    state.apply({ ...staged!, meta } as RegistryEvent, 50);
    const error = failure(when(state, { type: CommandType.promote, name: "vs", from: "staging", to: "prod", force: false }));
    expect(error.code).toBe("definitions_differ");
    expect(error.message).toContain(exposed);
    expect(error.data).toMatchObject({ differences: [{ exposedName: exposed, upstream: "prd", classification: "description-changed" }] });
    const [forced] = when(state, { type: CommandType.promote, name: "vs", from: "staging", to: "prod", force: true })();
    expect(forced).toMatchObject({ data: { forced: true, to: "prod" } });
  });
  test("promotion from an environment never promoted to is refused", () => {
    expect(failure(when(catalog(), { type: CommandType.promote, name: "vs", from: "staging", to: "prod", force: false })).code).toBe("not_found");
  });
});

describe("access commands", () => {
  const catalog = () => given(registered("a"), discovered("a", echo), vsCreated("vs", selection("a", echo)));
  const key = { keyId: "abcdefghijkl", salt: "salt-salt-salt-salt", digest: "d".repeat(43) };
  const apply = (state: CatalogProjection, events: NewEvent[]) => events.forEach((e) => state.apply({ ...e, meta } as RegistryEvent, state.sequence + 1));

  test("grant-access records a grant; denied tools must exist; the same grant again is a no-op", () => {
    const state = catalog();
    const grant = { grantId: "g1", subject: { consumer: "bot" }, deniedTools: [] };
    const events = when(state, { type: CommandType.grantAccess, name: "vs", grant })();
    expect(events).toEqual([{ type: EventType.virtualServerAccessGranted, version: 1, data: { name: "vs", grant } }]);
    apply(state, events);
    expect(when(state, { type: CommandType.grantAccess, name: "vs", grant })()).toEqual([]);
    expect(failure(when(state, { type: CommandType.grantAccess, name: "vs", grant: { ...grant, grantId: "g2", deniedTools: ["nope"] } })).code).toBe("not_found");
  });
  test("revoke-access removes a grant, and names a missing one", () => {
    const state = catalog();
    apply(state, when(state, { type: CommandType.grantAccess, name: "vs", grant: { grantId: "g1", subject: { group: "ops" }, deniedTools: [] } })());
    expect(when(state, { type: CommandType.revokeAccess, name: "vs", grantId: "g1" })()).toHaveLength(1);
    expect(failure(when(state, { type: CommandType.revokeAccess, name: "vs", grantId: "zz" })).message).toContain("'zz'");
  });
  test("consumers: create (idempotent), issue and revoke keys, delete", () => {
    const state = given();
    const created = when(state, { type: CommandType.createConsumer, name: "bot", groups: ["ops"] })();
    expect(created).toEqual([{ type: EventType.consumerCreated, version: 1, data: { name: "bot", groups: ["ops"] } }]);
    apply(state, created);
    expect(when(state, { type: CommandType.createConsumer, name: "bot", groups: ["ops"] })()).toEqual([]);
    expect(failure(when(state, { type: CommandType.createConsumer, name: "bot", groups: [] })).code).toBe("already_exists");
    const issued = when(state, { type: CommandType.issueKey, name: "bot", key })();
    expect(issued).toEqual([{ type: EventType.consumerKeyIssued, version: 1, data: { name: "bot", key } }]);
    apply(state, issued);
    expect(when(state, { type: CommandType.revokeKey, name: "bot", keyId: key.keyId })()).toHaveLength(1);
    expect(failure(when(state, { type: CommandType.revokeKey, name: "bot", keyId: "zzzzzzzzzzzz" })).code).toBe("not_found");
    expect(when(state, { type: CommandType.deleteConsumer, name: "bot" })()).toEqual([{ type: EventType.consumerDeleted, version: 1, data: { name: "bot" } }]);
    expect(failure(when(given(), { type: CommandType.issueKey, name: "ghost", key })).code).toBe("not_found");
  });
  test("identity providers: register (idempotent, conflicting), remove", () => {
    const state = given();
    const provider = { name: "corp", issuer: "https://id.example/", audience: "manifold", jwksUrl: "https://id.example/jwks", consumerClaim: "sub", groupsClaim: "groups" };
    const registered = when(state, { type: CommandType.registerIdentityProvider, ...provider })();
    expect(registered).toEqual([{ type: EventType.identityProviderRegistered, version: 1, data: provider }]);
    apply(state, registered);
    expect(when(state, { type: CommandType.registerIdentityProvider, ...provider })()).toEqual([]);
    expect(failure(when(state, { type: CommandType.registerIdentityProvider, ...provider, audience: "other" })).code).toBe("already_exists");
    expect(when(state, { type: CommandType.removeIdentityProvider, name: "corp" })()).toHaveLength(1);
    expect(failure(when(given(), { type: CommandType.removeIdentityProvider, name: "corp" })).code).toBe("not_found");
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

describe("describe-tool", () => {
  const catalog = () => given(registered("a"), discovered("a", echo), vsCreated("vs", selection("a", echo)));
  const exposed = exposedToolName("a", "echo");
  test("sets a replacement description, and removes it again", () => {
    const state = catalog();
    const [set] = when(state, { type: CommandType.describeTool, name: "vs", exposedName: exposed, description: "Says it back" })();
    expect(set).toEqual({ type: EventType.virtualServerToolDescribed, version: 1, data: { name: "vs", exposedName: exposed, description: "Says it back" } });
    state.apply({ ...set!, meta } as RegistryEvent, state.sequence + 1);
    expect(state.virtualServer("vs")!.tools.get(exposed)!.descriptionOverride).toBe("Says it back");
    const [removed] = when(state, { type: CommandType.describeTool, name: "vs", exposedName: exposed })();
    state.apply({ ...removed!, meta } as RegistryEvent, state.sequence + 1);
    expect(state.virtualServer("vs")!.tools.get(exposed)!.descriptionOverride).toBeUndefined();
    expect(when(state, { type: CommandType.describeTool, name: "vs", exposedName: exposed })()).toEqual([]);
  });
  test("an unknown tool is refused naming it", () => {
    expect(failure(when(catalog(), { type: CommandType.describeTool, name: "vs", exposedName: "ghost_aaaaaa" })).message).toContain("ghost_aaaaaa");
  });
});
