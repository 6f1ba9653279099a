import { CommandType, EventType, type NewEvent, type RegistryEvent } from "@manifold/contracts";
import { describe, expect, test } from "vitest";
import { pinDefinition } from "./hashing.js";
import { pendingDrift } from "./pendingDrift.js";
import { exposedToolName, toolSuffix } from "./naming.js";
import { add, discovered, echo, failure, given, meta, pinned, registered, selection, serverInfo, SUFFIX, vsCreated, when } from "./decideFixtures.spec.js";

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
  test("an accept names the definition reviewed: after the upstream reported another change it is refused, and nothing is re-pinned", () => {
    const catalog = drifted();
    const reviewed = pinned(changedEcho).hash;
    // A compatible change reviewed, then a breaking one reported before the accept was decided.
    const breaking = { ...echo, inputSchema: { type: "object" as const, properties: { n: { type: "number" } }, required: ["n"] } };
    for (const event of when(catalog, { type: CommandType.recordDiscovery, name: "a", serverInfo, tools: [breaking as typeof echo] })()) catalog.apply({ ...event, meta } as RegistryEvent, 98);
    const current = pendingDrift(catalog.virtualServer("vs")!, catalog)[0]!.currentHash;
    expect(current).not.toBe(reviewed);
    for (const type of [CommandType.acceptDrift, CommandType.rejectDrift] as const) {
      const error = failure(when(catalog, { type, name: "vs", exposedName: exposed, hash: reviewed }));
      expect(error.code).toBe("version_conflict");
      expect(error.data).toEqual({ reviewedHash: reviewed, currentHash: current });
    }
    // Reviewed as it is now, it is decided.
    expect(when(catalog, { type: CommandType.acceptDrift, name: "vs", exposedName: exposed, hash: current! })()[0]?.data).toMatchObject({ hash: current });
  });
  test("a decision on a tool reviewed as gone is refused once the upstream lists it again", () => {
    const catalog = given(registered("a"), discovered("a", echo), vsCreated("vs", selection("a", echo)), discovered("a"));
    expect(pendingDrift(catalog.virtualServer("vs")!, catalog)[0]?.currentHash).toBeNull();
    expect(when(catalog, { type: CommandType.rejectDrift, name: "vs", exposedName: exposed, hash: null })()).toHaveLength(1);
    for (const event of when(catalog, { type: CommandType.recordDiscovery, name: "a", serverInfo, tools: [changedEcho] })()) catalog.apply({ ...event, meta } as RegistryEvent, 97);
    for (const type of [CommandType.acceptDrift, CommandType.rejectDrift] as const) {
      expect(failure(when(catalog, { type, name: "vs", exposedName: exposed, hash: null })).data).toEqual({ reviewedHash: null, currentHash: pinned(changedEcho).hash });
    }
  });
  test("the auto-compatible policy adopts only while it is set, and only compatible changes", () => {
    const catalog = given(registered("a"), discovered("a", echo), vsCreated("vs", selection("a", echo)), discovered("a", { ...echo, inputSchema: { type: "object" as const, properties: { extra: { type: "string" } } } } as typeof echo));
    const adopt = () => when(catalog, { type: CommandType.adoptCompatible, name: "vs", upstream: "a" })();
    expect(pendingDrift(catalog.virtualServer("vs")!, catalog)[0]?.classification).toBe("compatible");
    // The policy is `pinned` (set on another replica, say, after the adopter read it as auto-compatible).
    expect(adopt()).toEqual([]);
    for (const event of when(catalog, { type: CommandType.setDriftPolicy, name: "vs", policy: "auto-compatible" })()) catalog.apply({ ...event, meta } as RegistryEvent, 98);
    expect(adopt()).toMatchObject([{ type: EventType.virtualServerToolsRepinned, data: { name: "vs", tools: [{ exposedName: exposed }] } }]);
    expect(when(catalog, { type: CommandType.adoptCompatible, name: "vs", upstream: "elsewhere" })()).toEqual([]);
    expect(when(catalog, { type: CommandType.adoptCompatible, name: "gone", upstream: "a" })()).toEqual([]);
    // A breaking change is never the policy's to adopt.
    for (const event of when(catalog, { type: CommandType.recordDiscovery, name: "a", serverInfo, tools: [{ ...echo, inputSchema: { type: "object" as const, properties: { n: { type: "number" } }, required: ["n"] } } as typeof echo] })()) catalog.apply({ ...event, meta } as RegistryEvent, 99);
    expect(pendingDrift(catalog.virtualServer("vs")!, catalog)[0]?.classification).toBe("breaking");
    expect(adopt()).toEqual([]);
  });
  // attack (review): one event a re-pin made a compatible change of a 1,000-tool upstream that ten
  // auto-compatible virtual servers select 10,000 events, each copying its virtual server's pins on every node.
  test("everything one change made adoptable is one event, split only where it would outgrow a bus message", () => {
    const tools = Array.from({ length: 200 }, (_, i) => ({ name: `t${i}`, description: `tool ${i}`, inputSchema: { type: "object" as const } }));
    const widened = tools.map((t) => ({ ...t, inputSchema: { type: "object" as const, properties: { more: { type: "string" } } } }));
    const adoptable = () =>
      given(
        registered("a"),
        discovered("a", ...tools),
        { type: EventType.virtualServerCreated, version: 1, data: { name: "vs", tools: tools.map((t) => selection("a", t)), driftPolicy: "auto-compatible", naming: SUFFIX } },
        discovered("a", ...(widened as (typeof echo)[])),
      );
    const catalog = adoptable();
    const [event, ...more] = when(catalog, { type: CommandType.adoptCompatible, name: "vs", upstream: "a" })();
    expect(more).toEqual([]);
    expect(event).toMatchObject({ type: EventType.virtualServerToolsRepinned });
    expect((event!.data as { tools: unknown[] }).tools).toHaveLength(200);
    catalog.apply({ ...event!, meta } as RegistryEvent, 100);
    expect(pendingDrift(catalog.virtualServer("vs")!, catalog)).toEqual([]);
    expect(catalog.virtualServer("vs")!.tools.get(exposedToolName("a", "t7"))?.definition.inputSchema).toEqual(widened[7]!.inputSchema);

    const bounded = when(adoptable(), { type: CommandType.adoptCompatible, name: "vs", upstream: "a", maxEventBytes: 4_096 })();
    expect(bounded.length).toBeGreaterThan(5);
    for (const e of bounded) expect(Buffer.byteLength(JSON.stringify(e.data))).toBeLessThan(4_096 + 256);
    expect(bounded.flatMap((e) => (e.data as { tools: { exposedName: string }[] }).tools.map((t) => t.exposedName))).toEqual(tools.map((t) => exposedToolName("a", t.name)));
  });
  // attack (review): each re-pin copied its definition, so a compatible change was recorded again in
  // every auto-compatible virtual server (and environment) selecting the upstream: a hostile
  // upstream's dozen changes an hour under its list-change budget, multiplied by them.
  test("a batch of re-pins names each definition by hash and upstream; the fold takes it from the upstream, or leaves the pin", () => {
    const extra = { ...echo, inputSchema: { type: "object" as const, properties: { extra: { type: "string" } } } } as typeof echo;
    const adoptable = () =>
      given(
        registered("a"),
        discovered("a", echo),
        { type: EventType.virtualServerCreated, version: 1, data: { name: "vs", tools: [selection("a", echo)], driftPolicy: "auto-compatible", naming: SUFFIX } },
        discovered("a", extra),
      );
    const catalog = adoptable();
    const [event] = when(catalog, { type: CommandType.adoptCompatible, name: "vs", upstream: "a" })();
    expect(event!.data).toEqual({ name: "vs", tools: [{ exposedName: exposed, hash: pinned(extra).hash, upstream: "a" }] });
    catalog.apply({ ...event!, meta } as RegistryEvent, 100);
    expect(catalog.virtualServer("vs")!.tools.get(exposed)).toMatchObject({ hash: pinned(extra).hash, definition: pinned(extra).definition });

    // The form first released, each definition in the event, still folds as it did.
    const released = adoptable();
    released.apply({ type: EventType.virtualServerToolsRepinned, version: 1, data: { name: "vs", tools: [{ exposedName: exposed, ...pinned(extra) }] }, meta } as RegistryEvent, 100);
    expect(released.virtualServer("vs")!.tools.get(exposed)).toMatchObject({ hash: pinned(extra).hash, definition: pinned(extra).definition });

    // A hash its upstream does not report at that point moves nothing (the version moves: it is the ETag).
    const stale = adoptable();
    stale.apply({ type: EventType.virtualServerToolsRepinned, version: 1, data: { name: "vs", tools: [{ exposedName: exposed, hash: pinned(changedEcho).hash, upstream: "a" }] }, meta } as RegistryEvent, 100);
    expect(stale.virtualServer("vs")!.tools.get(exposed)).toMatchObject({ hash: pinned(echo).hash });
    expect(stale.virtualServer("vs")!.version).toBe(100);
  });
  // attack (helper-94): each change of any upstream classified every pending drift of every upstream (1.2–2.1 s with 16 environments).
  test("the drift of one upstream is found without classifying another's", () => {
    const catalog = drifted();
    expect(pendingDrift(catalog.virtualServer("vs")!, catalog, undefined, { upstream: "a" })).toHaveLength(1);
    expect(pendingDrift(catalog.virtualServer("vs")!, catalog, undefined, { upstream: "elsewhere" })).toEqual([]);
    // A decision on one tool classifies that tool alone (1,000 adoptions classified 1,000 tools each: 22 s).
    expect(pendingDrift(catalog.virtualServer("vs")!, catalog, undefined, { exposedName: exposed })).toHaveLength(1);
    expect(pendingDrift(catalog.virtualServer("vs")!, catalog, undefined, { exposedName: "nothing" })).toEqual([]);
  });
  test("the drift policy is set once; setting it again is a no-op", () => {
    const catalog = drifted();
    expect(when(catalog, { type: CommandType.setDriftPolicy, name: "vs", policy: "auto-compatible" })()).toHaveLength(1);
    expect(when(catalog, { type: CommandType.setDriftPolicy, name: "vs", policy: "pinned" })()).toEqual([]);
  });
});

describe("a rename never repoints a name an environment serves", () => {
  test("a tool renamed onto a name only a promoted environment still serves is refused: that environment would run the other tool under it", () => {
    const state = given(registered("a"), discovered("a", echo, add));
    const apply = (events: NewEvent[]) => events.forEach((e) => state.apply({ ...e, meta } as RegistryEvent, state.sequence + 1));
    apply(when(state, { type: CommandType.createVirtualServer, name: "ops", driftPolicy: "pinned", naming: SUFFIX, tools: [{ upstream: "a", tool: "echo", alias: "echo" }, { upstream: "a", tool: "add", alias: "wipe" }] })());
    apply(when(state, { type: CommandType.setEnvironment, name: "prod", bindings: { a: "a" } })());
    apply(when(state, { type: CommandType.promote, name: "ops", from: "default", to: "prod", force: false })());
    apply(when(state, { type: CommandType.deselectTools, name: "ops", exposedNames: ["echo"] })());
    const refused = failure(when(state, { type: CommandType.renameTool, name: "ops", exposedName: "wipe", newName: "echo", keepDeprecatedAlias: true }));
    expect([refused.code, refused.data]).toEqual(["name_collision", { exposedName: "echo", environment: "prod" }]);
    const prod = state.virtualServer("ops")!.environments.get("prod")!;
    expect([...prod].map(([name, pin]) => `${name}=${pin.tool}`).sort()).toEqual(["echo=echo", "wipe=add"]);
    // A name no environment serves is free.
    expect(when(state, { type: CommandType.renameTool, name: "ops", exposedName: "wipe", newName: "wipe-all", keepDeprecatedAlias: true })()).toHaveLength(1);
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
    expect(event).toMatchObject({ type: EventType.virtualServerPromoted, data: { from: "default", to: "staging", forced: false, copied: { tools: 1, prompts: 0 } } });
    const state = catalog();
    state.apply({ ...event!, meta } as RegistryEvent, 50);
    expect([...state.virtualServer("vs")!.environments.get("staging")!.values()]).toMatchObject([{ exposedName: exposed, upstream: "dev", tool: "echo" }]);
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
  test("drift is reviewed per environment, against the upstream bound there, and a decision touches that environment only", () => {
    const state = catalog();
    const apply = (event: NewEvent | undefined) => state.apply({ ...event!, meta } as RegistryEvent, state.sequence + 1);
    apply(when(state, { type: CommandType.promote, name: "vs", from: "default", to: "prod", force: true })()[0]);
    const vs = () => state.virtualServer("vs")!;
    expect(pendingDrift(vs(), state)).toEqual([]);
    expect(pendingDrift(vs(), state, "prod")).toMatchObject([{ exposedName: exposed, upstream: "prd", classification: "description-changed" }]);
    expect(pendingDrift(vs(), state, "staging")).toEqual([]);

    const [rejected] = when(state, { type: CommandType.rejectDrift, name: "vs", exposedName: exposed, environment: "prod" })();
    expect(rejected).toMatchObject({ type: EventType.virtualServerDriftRejected, data: { environment: "prod", hash: pinned({ ...echo, description: "Echoes (prod build)" }).hash } });
    apply(rejected);
    expect(pendingDrift(vs(), state, "prod")).toEqual([]);
    // Promoting again replaces the pins, and with them what was rejected against the old ones.
    apply(when(state, { type: CommandType.promote, name: "vs", from: "default", to: "prod", force: true })()[0]);
    expect(pendingDrift(vs(), state, "prod")).toHaveLength(1);

    const [repinned] = when(state, { type: CommandType.acceptDrift, name: "vs", exposedName: exposed, environment: "prod" })();
    expect(repinned).toEqual({
      type: EventType.virtualServerToolRepinned,
      version: 1,
      data: { name: "vs", exposedName: exposed, environment: "prod", ...pinned({ ...echo, description: "Echoes (prod build)" }) },
    });
    apply(repinned);
    expect(vs().environments.get("prod")!.get(exposed)!.definition.description).toBe("Echoes (prod build)");
    expect(vs().tools.get(exposed)!.definition.description).toBe("Echoes");
    expect(pendingDrift(vs(), state, "prod")).toEqual([]);
  });
  test("drift review in an environment that does not exist, or was never promoted to, is refused naming it", () => {
    const review = (environment: string) => failure(when(catalog(), { type: CommandType.acceptDrift, name: "vs", exposedName: exposed, environment }));
    expect(review("qa").message).toBe("environment 'qa' does not exist");
    expect(review("staging").message).toBe("virtual server 'vs' has never been promoted to 'staging'");
  });
  test("promotion of some tools copies only their pins, and names a tool the source does not have", () => {
    const state = given(registered("dev"), discovered("dev", echo, add), vsCreated("vs", selection("dev", echo), selection("dev", add)), envEvent("staging", {}));
    const [event] = when(state, { type: CommandType.promote, name: "vs", from: "default", to: "staging", force: false, tools: [exposed] })();
    expect(event).toMatchObject({ data: { tools: [exposed], copied: { tools: 1 } } });
    state.apply({ ...event!, meta } as RegistryEvent, 50);
    expect([...state.virtualServer("vs")!.environments.get("staging")!.keys()]).toEqual([exposed]);
    const error = failure(when(state, { type: CommandType.promote, name: "vs", from: "default", to: "staging", force: false, tools: ["nope"] }));
    expect(error.code).toBe("not_found");
    expect(error.message).toContain("'nope'");
  });
  test("promotion from an environment never promoted to is refused", () => {
    expect(failure(when(catalog(), { type: CommandType.promote, name: "vs", from: "staging", to: "prod", force: false })).code).toBe("not_found");
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
