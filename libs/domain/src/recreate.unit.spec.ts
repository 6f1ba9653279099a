import { CommandType, type NewEvent, type RegistryCommand, type RegistryEvent } from "@manifold/contracts";
import { describe, expect, test } from "vitest";
import { aggregateOf, decide } from "./decide.js";
import { consumer, discovered, echo, given, http, meta, registered, SUFFIX } from "./decideFixtures.spec.js";
import type { CatalogProjection } from "./projection.js";

const apply = (state: CatalogProjection, events: NewEvent[]) => events.forEach((e) => state.apply({ ...e, meta } as RegistryEvent, state.sequence + 1));
/** Decides and folds a command, as the registry does: the events must be appendable at the version the handler reads. */
const run = (state: CatalogProjection, command: RegistryCommand) => {
  const events = decide(command, state);
  apply(state, events);
  return events;
};

const provider = { name: "idp", issuer: "https://idp.example", audience: "manifold", jwksUrl: "https://idp.example/jwks", consumerClaim: "sub", groupsClaim: "groups", groups: [] };
const kinds: { kind: string; create: RegistryCommand; remove: RegistryCommand; exists: (s: CatalogProjection) => boolean }[] = [
  {
    kind: "upstream",
    create: { type: CommandType.registerUpstream, name: "x", transport: http, options: {} },
    remove: { type: CommandType.removeUpstream, name: "x" },
    exists: (s) => s.upstream("x") !== undefined,
  },
  {
    kind: "virtual-server",
    create: { type: CommandType.createVirtualServer, name: "x", driftPolicy: "pinned", naming: SUFFIX, tools: [{ upstream: "u", tool: "echo" }] },
    remove: { type: CommandType.deleteVirtualServer, name: "x" },
    exists: (s) => s.virtualServer("x") !== undefined,
  },
  {
    kind: "consumer",
    create: { type: CommandType.createConsumer, name: "x", groups: ["ops"], identityProviders: [] },
    remove: { type: CommandType.deleteConsumer, name: "x" },
    exists: (s) => s.consumer("x") !== undefined,
  },
  {
    kind: "identity-provider",
    create: { type: CommandType.registerIdentityProvider, ...provider, name: "x" },
    remove: { type: CommandType.removeIdentityProvider, name: "x" },
    exists: (s) => s.identityProvider("x") !== undefined,
  },
  {
    kind: "environment",
    create: { type: CommandType.setEnvironment, name: "x", bindings: { u: "u" } },
    remove: { type: CommandType.deleteEnvironment, name: "x" },
    exists: (s) => s.environment("x") !== undefined,
  },
];

describe("a deleted object can be created again under its name", () => {
  test.each(kinds)("$kind: create, delete, create; the version stays the subject's last sequence", ({ kind, create, remove, exists }) => {
    const state = given(registered("u"), discovered("u", echo));
    const aggregate = aggregateOf(create);
    expect(aggregate).toEqual({ kind, name: "x" });
    expect(state.versionOf(aggregate)).toBe(0);

    expect(run(state, create)).toHaveLength(1);
    const created = state.sequence;
    expect(state.versionOf(aggregate)).toBe(created);
    expect(run(state, remove)).toHaveLength(1);
    expect(exists(state)).toBe(false);
    // The deleted object's version is the delete event's sequence: what an append to its subject must expect.
    expect(state.versionOf(aggregate)).toBe(created + 1);

    expect(run(state, create)).toHaveLength(1);
    expect(exists(state)).toBe(true);
    expect(state.versionOf(aggregate)).toBe(created + 2);
    // Other objects keep their own versions.
    expect(state.versionOf({ kind: "upstream", name: "u" })).toBe(2);
  });

  test("a re-created virtual server is another one: what binds to it (2025 sessions) tells them apart by `created`", () => {
    const state = given(registered("u"), discovered("u", echo), consumer("bot"));
    const create: RegistryCommand = { type: CommandType.createVirtualServer, name: "desk", driftPolicy: "pinned", naming: SUFFIX, tools: [{ upstream: "u", tool: "echo" }] };
    run(state, create);
    const first = state.virtualServer("desk")!.created;
    expect(first).toBe(state.sequence);
    run(state, { type: CommandType.deleteVirtualServer, name: "desk" });
    run(state, create);
    expect(state.virtualServer("desk")!.created).toBe(first + 2);
    // Later changes keep it: only a creation makes another virtual server.
    run(state, { type: CommandType.grantAccess, name: "desk", grant: { grantId: "g", subject: { consumer: "bot" }, deniedTools: [] } });
    expect(state.virtualServer("desk")!.created).toBe(first + 2);
  });

  test("a re-created consumer starts without the keys of its previous life", () => {
    const state = given();
    run(state, { type: CommandType.createConsumer, name: "bot", groups: [], identityProviders: [] });
    run(state, { type: CommandType.issueKey, name: "bot", key: { keyId: "abcdefghijkl", salt: "salt-salt-salt-salt", digest: "d".repeat(43) } });
    run(state, { type: CommandType.deleteConsumer, name: "bot" });
    run(state, { type: CommandType.createConsumer, name: "bot", groups: [], identityProviders: [] });
    expect(state.consumer("bot")).toEqual({ name: "bot", groups: [], identityProviders: [], version: 4, created: 4, keys: new Map() });
  });
});

describe("an environment deleted and created again under its name is another one", () => {
  test("it serves no promotion, grant, pin or rejection of its previous life", () => {
    const state = given(registered("u"), discovered("u", echo), registered("v"), discovered("v", echo), consumer("bot"), consumer("ops"));
    run(state, { type: CommandType.createVirtualServer, name: "desk", driftPolicy: "pinned", naming: SUFFIX, tools: [{ upstream: "u", tool: "echo" }] });
    run(state, { type: CommandType.setEnvironment, name: "prod", bindings: { u: "u" } });
    run(state, { type: CommandType.promote, name: "desk", from: "default", to: "prod", force: false });
    run(state, { type: CommandType.grantAccess, name: "desk", grant: { grantId: "prod-only", subject: { consumer: "bot" }, deniedTools: [], environment: "prod" } });
    run(state, { type: CommandType.grantAccess, name: "desk", grant: { grantId: "everywhere", subject: { consumer: "ops" }, deniedTools: [] } });
    expect(state.virtualServer("desk")!.environments.has("prod")).toBe(true);
    const version = state.virtualServer("desk")!.version;

    run(state, { type: CommandType.deleteEnvironment, name: "prod" });
    // Another team makes `prod` again, bound elsewhere: before, desk's old pins were served there (to `v`),
    // under the old prod-only grant.
    run(state, { type: CommandType.setEnvironment, name: "prod", bindings: { u: "v" } });
    const desk = state.virtualServer("desk")!;
    expect(desk.environments.has("prod")).toBe(false);
    expect(desk.environmentItems.has("prod")).toBe(false);
    expect(desk.rejected.has("prod")).toBe(false);
    expect([...desk.grants.keys()]).toEqual(["everywhere"]);
    // Nothing was appended to desk: its version (what If-Match and the next append expect) is unchanged.
    expect(desk.version).toBe(version);
    expect(state.versionOf({ kind: "virtual-server", name: "desk" })).toBe(version);
    // What binds to an environment (2025 sessions) tells the two apart; changing its bindings keeps it.
    const created = state.environment("prod")!.created;
    expect(created).toBe(state.sequence);
    run(state, { type: CommandType.setEnvironment, name: "prod", bindings: { u: "u" } });
    expect(state.environment("prod")!.created).toBe(created);
    // Promoting into the new prod starts from nothing, as into any new environment.
    expect(run(state, { type: CommandType.promote, name: "desk", from: "default", to: "prod", force: true })).toHaveLength(1);
  });
});

// attack (registry review, helper-103): a grant scoped to an environment nobody had made (or one just deleted)
// was accepted, and applied once the environment was created: a CI job's grant for `prod-eu` let a group call
// every tool there, reviewed for no environment that existed.
describe("a grant names an environment that exists", () => {
  test("one for a name no environment holds is refused", () => {
    const state = given(registered("u"), discovered("u", echo), consumer("bot"));
    run(state, { type: CommandType.createVirtualServer, name: "desk", driftPolicy: "pinned", naming: SUFFIX, tools: [{ upstream: "u", tool: "echo" }] });
    const grant: RegistryCommand = { type: CommandType.grantAccess, name: "desk", grant: { grantId: "eu", subject: { consumer: "bot" }, deniedTools: [], environment: "prod-eu" } };
    expect(() => decide(grant, state)).toThrow("environment 'prod-eu' does not exist");
    run(state, { type: CommandType.setEnvironment, name: "prod-eu", bindings: {} });
    expect(run(state, grant)).toHaveLength(1);
  });

  test("one a log recorded before that check is not the environment's once it is created", () => {
    const state = given(registered("u"), discovered("u", echo), consumer("bot"));
    run(state, { type: CommandType.createVirtualServer, name: "desk", driftPolicy: "pinned", naming: SUFFIX, tools: [{ upstream: "u", tool: "echo" }] });
    // As such a log holds it: the event as the registry appended it before.
    apply(state, [{ ...decide({ type: CommandType.grantAccess, name: "desk", grant: { grantId: "open", subject: { consumer: "bot" }, deniedTools: [] } }, state)[0]!, data: { name: "desk", grant: { grantId: "eu", subject: { consumer: "bot" }, deniedTools: [], environment: "prod-eu" } } } as NewEvent]);
    expect([...state.virtualServer("desk")!.grants.keys()]).toEqual(["eu"]);
    run(state, { type: CommandType.setEnvironment, name: "prod-eu", bindings: {} });
    expect([...state.virtualServer("desk")!.grants.keys()]).toEqual([]);
    // Changing an environment that exists leaves its grants alone.
    run(state, { type: CommandType.grantAccess, name: "desk", grant: { grantId: "eu", subject: { consumer: "bot" }, deniedTools: [], environment: "prod-eu" } });
    run(state, { type: CommandType.setEnvironment, name: "prod-eu", bindings: { u: "u" } });
    expect([...state.virtualServer("desk")!.grants.keys()]).toEqual(["eu"]);
  });
});
