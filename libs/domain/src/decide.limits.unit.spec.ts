import { CommandType, EventType, RegistryLimits, type NewEvent, type RegistryCommand } from "@manifold/contracts";
import { describe, expect, test } from "vitest";
import { echo, failure, given, http, pinned, registered, serverInfo, SUFFIX, when } from "./decideFixtures.spec.js";

const provider = (i: number) => ({ name: `idp-${i}`, issuer: `https://id${i}.example/`, audience: "manifold", jwksUrl: `https://id${i}.example/jwks`, consumerClaim: "sub", groupsClaim: "groups", groups: [] });

/**
 * Each kind the registry holds, filled to its limit by events (as a log would hold them), then one
 * more asked for: refused with `limit_reached` naming the limit, while the same command for a thing
 * that exists stays the no-op it was.
 */
const kinds: { kind: string; limit: number; nth: (i: number) => NewEvent; more: RegistryCommand; again: RegistryCommand }[] = [
  {
    kind: "upstreams",
    limit: RegistryLimits.upstreams,
    nth: (i) => registered(`u${i}`),
    more: { type: CommandType.registerUpstream, name: "one-more", transport: http, options: {} },
    again: { type: CommandType.registerUpstream, name: "u0", transport: http, options: {} },
  },
  {
    kind: "virtual servers",
    limit: RegistryLimits.virtualServers,
    nth: (i) => ({ type: EventType.virtualServerCreated, version: 1, data: { name: `vs${i}`, tools: [], driftPolicy: "pinned", naming: SUFFIX } }),
    more: { type: CommandType.createVirtualServer, name: "one-more", tools: [], driftPolicy: "pinned", naming: SUFFIX },
    again: { type: CommandType.createVirtualServer, name: "vs0", tools: [], driftPolicy: "pinned", naming: SUFFIX },
  },
  {
    kind: "consumers",
    limit: RegistryLimits.consumers,
    nth: (i) => ({ type: EventType.consumerCreated, version: 1, data: { name: `c${i}`, groups: [] } }),
    more: { type: CommandType.createConsumer, name: "one-more", groups: [], identityProviders: [] },
    again: { type: CommandType.createConsumer, name: "c0", groups: [], identityProviders: [] },
  },
  {
    kind: "identity providers",
    limit: RegistryLimits.identityProviders,
    nth: (i) => ({ type: EventType.identityProviderRegistered, version: 1, data: provider(i) }),
    more: { type: CommandType.registerIdentityProvider, ...provider(RegistryLimits.identityProviders) },
    again: { type: CommandType.registerIdentityProvider, ...provider(0) },
  },
  {
    kind: "environments",
    limit: RegistryLimits.environments,
    nth: (i) => (i === 0 ? registered("a") : { type: EventType.environmentBindingsSet, version: 1, data: { name: `env${i}`, bindings: { a: "a" } } }),
    more: { type: CommandType.setEnvironment, name: "one-more", bindings: { a: "a" } },
    again: { type: CommandType.setEnvironment, name: "env1", bindings: { a: "a" } },
  },
];

describe("the registry holds at most RegistryLimits of each kind", () => {
  for (const { kind, limit, nth, more, again } of kinds) {
    test(`${kind}: ${limit}`, () => {
      // Environments: the first event registers the upstream they bind, so one more fills the limit.
      const count = kind === "environments" ? limit + 1 : limit;
      const state = given(...Array.from({ length: count }, (_, i) => nth(i)));
      const refused = failure(when(state, more));
      expect([refused.code, refused.data]).toEqual(["limit_reached", { limit }]);
      expect(refused.message).toContain(`the registry holds ${limit} ${kind}`);
      expect(when(state, again)()).toEqual([]);
    });
  }

  test(`a virtual server holds at most ${RegistryLimits.itemsPerVirtualServer} tools`, () => {
    const tools = Array.from({ length: RegistryLimits.itemsPerVirtualServer + 1 }, (_, i) => ({ ...echo, name: `t${i}` }));
    const selected = tools.slice(0, -1).map((tool) => ({ exposedName: tool.name, upstream: "a", tool: tool.name, ...pinned(tool) }));
    const state = given(
      registered("a"),
      { type: EventType.upstreamToolsDiscovered, version: 1, data: { name: "a", serverInfo, tools: tools.map(pinned), changes: [] } },
      { type: EventType.virtualServerCreated, version: 1, data: { name: "big", tools: selected, driftPolicy: "pinned", naming: SUFFIX } },
    );
    const refused = failure(when(state, { type: CommandType.selectTools, name: "big", tools: [{ upstream: "a", tool: `t${RegistryLimits.itemsPerVirtualServer}` }] }));
    expect([refused.code, refused.data, refused.message]).toEqual([
      "limit_reached",
      { limit: RegistryLimits.itemsPerVirtualServer },
      `virtual server 'big' holds ${RegistryLimits.itemsPerVirtualServer} tools; the most is ${RegistryLimits.itemsPerVirtualServer}: deselect some before selecting more`,
    ]);
    // Selecting what it holds adds nothing, and is still allowed.
    expect(when(state, { type: CommandType.selectTools, name: "big", tools: [{ upstream: "a", tool: "t0" }] })()).toEqual([]);
  });

  // Each drift decision, rename and read of the virtual server lists or copies them all: 1,000
  // environments of 200 tools made each drift decision's answer 28 MB.
  test(`a virtual server's environments hold at most ${RegistryLimits.environmentPinsPerVirtualServer} pins together`, () => {
    const perEnvironment = 1_000;
    const environments = RegistryLimits.environmentPinsPerVirtualServer / perEnvironment;
    const tools = Array.from({ length: perEnvironment }, (_, i) => ({ ...echo, name: `t${i}` }));
    const selected = tools.map((tool) => ({ exposedName: tool.name, upstream: "a", tool: tool.name, ...pinned(tool) }));
    const state = given(
      registered("a"),
      { type: EventType.upstreamToolsDiscovered, version: 1, data: { name: "a", serverInfo, tools: tools.map(pinned), changes: [] } },
      { type: EventType.virtualServerCreated, version: 1, data: { name: "big", tools: selected, driftPolicy: "pinned", naming: SUFFIX } },
      ...Array.from({ length: environments + 1 }, (_, i): NewEvent => ({ type: EventType.environmentBindingsSet, version: 1, data: { name: `env${i}`, bindings: {} } })),
      ...Array.from({ length: environments }, (_, i): NewEvent => ({ type: EventType.virtualServerPromoted, version: 1, data: { name: "big", from: "default", to: `env${i}`, pins: selected, forced: false } })),
    );
    const promote = (to: string): RegistryCommand => ({ type: CommandType.promote, name: "big", from: "default", to, force: false });
    const refused = failure(when(state, promote(`env${environments}`)));
    expect([refused.code, refused.data]).toEqual(["limit_reached", { limit: RegistryLimits.environmentPinsPerVirtualServer }]);
    expect(refused.message).toContain("delete an environment");
    // Promoting again into an environment replaces its pins: still allowed at the limit.
    expect(when(state, promote("env0"))()).toHaveLength(1);
  });
});
