import { CommandType, EventType, type NewEvent, type RegistryEvent } from "@manifold/contracts";
import { describe, expect, test } from "vitest";
import { accessOf } from "./access.js";
import { add, consumer, discovered, echo, failure, given, meta, registered, selection, vsCreated, when } from "./decideFixtures.spec.js";
import { exposedToolName } from "./naming.js";
import type { CatalogProjection } from "./projection.js";
import { resolveToolRef, toolKey } from "./toolIdentity.js";

const apply = (state: CatalogProjection, ...events: NewEvent[]) => events.forEach((e) => state.apply({ ...e, meta } as RegistryEvent, state.sequence + 1));
const ECHO = exposedToolName("a", "echo");
const ADD = exposedToolName("a", "add");
const renamed = (from: string, to: string, deprecatedAlias = true): NewEvent => ({
  type: EventType.virtualServerToolRenamed,
  version: 1,
  data: { name: "vs", from, to, deprecatedAlias },
});
const granted = (deniedTools: (string | { upstream: string; tool: string })[], grantId = "g"): NewEvent => ({
  type: EventType.virtualServerAccessGranted,
  version: 1,
  data: { name: "vs", grant: { grantId, subject: { consumer: "bot" }, deniedTools } },
});
const catalog = () => given(registered("a"), discovered("a", echo, add), vsCreated("vs", selection("a", echo), selection("a", add)), consumer("bot"));
const bot = { consumer: "bot", groups: [], id: "consumer:bot" };
const deniedFor = (state: CatalogProjection) => accessOf(state.virtualServer("vs")!, bot)!.denied;

describe("grants bind to tool identities, never to names", () => {
  test("every name a tool answers to resolves to its identity: exposed name, deprecated alias, identity", () => {
    const state = catalog();
    apply(state, renamed(ECHO, "sec-renamed-echo"));
    const vs = state.virtualServer("vs")!;
    const identity = { upstream: "a", tool: "echo" };
    expect(resolveToolRef(vs, "sec-renamed-echo")).toEqual([identity]);
    expect(resolveToolRef(vs, ECHO)).toEqual([identity]);
    expect(resolveToolRef(vs, identity)).toEqual([identity]);
    expect(resolveToolRef(vs, "nope")).toEqual([]);
    expect(resolveToolRef(vs, { upstream: "a", tool: "nope" })).toEqual([]);
  });

  test("attack: a name that means another tool in an environment denies both, in every environment, the grant scoped to one or not", () => {
    // prod serves `add` under the name the selection gives `echo` (promoted, then the selection changed).
    const state = catalog();
    apply(state, { type: EventType.environmentBindingsSet, version: 1, data: { name: "prod", bindings: {} } });
    apply(state, { type: EventType.virtualServerPromoted, version: 1, data: { name: "vs", from: "default", to: "prod", pins: [{ ...selection("a", add), exposedName: ECHO }], forced: false } });
    expect(resolveToolRef(state.virtualServer("vs")!, ECHO)).toEqual([
      { upstream: "a", tool: "echo" },
      { upstream: "a", tool: "add" },
    ]);
    for (const environment of ["prod", undefined]) {
      const events = when(state, { type: CommandType.grantAccess, name: "vs", grant: { grantId: "g", subject: { consumer: "bot" }, deniedTools: [ECHO], ...(environment ? { environment } : {}) } })();
      // Before: only the selection's meaning was recorded, and prod's ECHO (`add`) stayed callable.
      expect((events[0]!.data as { grant: { deniedTools: unknown[] } }).grant.deniedTools).toEqual([
        { upstream: "a", tool: "add" },
        { upstream: "a", tool: "echo" },
      ]);
    }
  });

  // (denied via) × (renamed before / after the grant): the identity is recorded, whatever name was used.
  test.each([
    ["the original name, before a rename", ECHO, false],
    ["the original name, now a deprecated alias", ECHO, true],
    ["the new name", "sec-renamed-echo", true],
    ["the identity", { upstream: "a", tool: "echo" }, false],
    ["the identity, after a rename", { upstream: "a", tool: "echo" }, true],
  ] as const)("denied via %s: recorded as the identity, and still denied after renames", (_what, ref, renameFirst) => {
    const state = catalog();
    if (renameFirst) apply(state, renamed(ECHO, "sec-renamed-echo"));
    const events = when(state, { type: CommandType.grantAccess, name: "vs", grant: { grantId: "g", subject: { consumer: "bot" }, deniedTools: [ref] } })();
    expect(events).toEqual([granted([{ upstream: "a", tool: "echo" }])]);
    apply(state, ...events);
    if (!renameFirst) apply(state, renamed(ECHO, "sec-renamed-echo"));
    apply(state, renamed("sec-renamed-echo", "again-renamed", false));
    expect(deniedFor(state)).toEqual(new Set([toolKey("a", "echo")]));
  });

  test("the same grant by another name of the same tool is a no-op; unknown names are refused, naming them", () => {
    const state = catalog();
    apply(state, renamed(ECHO, "sec-renamed-echo"));
    apply(state, ...when(state, { type: CommandType.grantAccess, name: "vs", grant: { grantId: "g", subject: { consumer: "bot" }, deniedTools: ["sec-renamed-echo"] } })());
    expect(when(state, { type: CommandType.grantAccess, name: "vs", grant: { grantId: "g", subject: { consumer: "bot" }, deniedTools: [ECHO] } })()).toEqual([]);
    const refused = failure(when(state, { type: CommandType.grantAccess, name: "vs", grant: { grantId: "h", subject: { consumer: "bot" }, deniedTools: ["ghost", { upstream: "a", tool: "gone" }] } }));
    expect(refused.code).toBe("not_found");
    expect(refused.message).toBe("virtual server 'vs' has no tool named 'ghost', 'gone' of upstream 'a'");
  });

  test("grants recorded before identities (exposed names) mean the tools those names had then, on replay", () => {
    const state = catalog();
    apply(state, granted([ECHO, ADD]), renamed(ECHO, "sec-renamed-echo"));
    expect(deniedFor(state)).toEqual(new Set([toolKey("a", "echo"), toolKey("a", "add")]));
    expect(state.virtualServer("vs")!.grants.get("g")!.deniedTools).toEqual([
      { upstream: "a", tool: "add" },
      { upstream: "a", tool: "echo" },
    ]);
  });

  // `manifold apply` records a grant before selecting the tools it denies, so the new tool is never
  // callable by the grant's subject in between (gitops.e2e): a grant may name one its upstream offers.
  test("a grant may deny a tool the upstream offers and the virtual server does not select yet; it is denied once selected", () => {
    const state = given(registered("a"), discovered("a", echo, add), vsCreated("vs", selection("a", echo)), consumer("bot"));
    const events = when(state, { type: CommandType.grantAccess, name: "vs", grant: { grantId: "g", subject: { consumer: "bot" }, deniedTools: [{ upstream: "a", tool: "add" }] } })();
    expect(events).toEqual([granted([{ upstream: "a", tool: "add" }])]);
    apply(state, ...events);
    expect(deniedFor(state)).toEqual(new Set([toolKey("a", "add")]));
    apply(state, { type: EventType.virtualServerToolsSelected, version: 1, data: { name: "vs", tools: [selection("a", add)] } });
    expect(deniedFor(state)).toEqual(new Set([toolKey("a", "add")]));
    // A tool its upstream does not offer is still a typo, refused; and an exposed name must be served.
    const refused = failure(when(state, { type: CommandType.grantAccess, name: "vs", grant: { grantId: "h", subject: { consumer: "bot" }, deniedTools: [{ upstream: "a", tool: "ad" }, { upstream: "b", tool: "add" }, "fresh"] } }));
    expect(refused.message).toBe("virtual server 'vs' has no tool named 'ad' of upstream 'a', 'add' of upstream 'b', 'fresh'");
  });

  test("a tool deselected and selected again under another alias is still the tool the grant denies", () => {
    const state = catalog();
    apply(state, granted([{ upstream: "a", tool: "echo" }]));
    apply(state, { type: EventType.virtualServerToolsDeselected, version: 1, data: { name: "vs", exposedNames: [ECHO] } });
    apply(state, { type: EventType.virtualServerToolsSelected, version: 1, data: { name: "vs", tools: [{ ...selection("a", echo), exposedName: "fresh" }] } });
    expect(deniedFor(state)).toEqual(new Set([toolKey("a", "echo")]));
  });
});

describe("consumers name the identity providers that may act as them", () => {
  test("none by default; set on create and update, recorded sorted and once; the same again is a no-op", () => {
    const state = given();
    for (const name of ["azure", "corp"]) apply(state, ...when(state, { type: CommandType.registerIdentityProvider, name, issuer: `https://${name}.example`, audience: "manifold", jwksUrl: `https://${name}.example/jwks`, consumerClaim: "sub", groupsClaim: "groups", groups: [] })());
    expect(when(state, { type: CommandType.createConsumer, name: "bot", groups: [], identityProviders: [] })()).toEqual([
      { type: EventType.consumerCreated, version: 1, data: { name: "bot", groups: [] } },
    ]);
    apply(state, ...when(state, { type: CommandType.createConsumer, name: "bot", groups: [], identityProviders: [] })());
    expect(state.consumer("bot")!.identityProviders).toEqual([]);
    const updated = when(state, { type: CommandType.updateConsumer, name: "bot", groups: [], identityProviders: ["corp", "azure", "corp"] })();
    expect(updated).toEqual([{ type: EventType.consumerUpdated, version: 1, data: { name: "bot", groups: [], identityProviders: ["azure", "corp"] } }]);
    apply(state, ...updated);
    expect(state.consumer("bot")!.identityProviders).toEqual(["azure", "corp"]);
    expect(when(state, { type: CommandType.updateConsumer, name: "bot", groups: [], identityProviders: ["corp", "azure"] })()).toEqual([]);
    apply(state, ...when(state, { type: CommandType.updateConsumer, name: "bot", groups: [], identityProviders: [] })());
    expect(state.consumer("bot")!.identityProviders).toEqual([]);
  });

  test("trust is by name, so a name must hold a provider while a consumer trusts it", () => {
    const state = given();
    const corp = { type: CommandType.registerIdentityProvider, name: "corp", issuer: "https://corp.example", audience: "manifold", jwksUrl: "https://corp.example/jwks", consumerClaim: "sub", groupsClaim: "groups", groups: [] as string[] } as const;
    // Trusting a provider not registered (yet): whoever registers the name later would act as the consumer.
    const unknown = failure(when(state, { type: CommandType.createConsumer, name: "alice", groups: [], identityProviders: ["corp", "later"] }));
    expect([unknown.code, unknown.message]).toEqual(["not_found", "identity providers 'corp', 'later' do not exist"]);
    apply(state, ...when(state, corp)());
    expect(failure(when(state, { type: CommandType.createConsumer, name: "alice", groups: [], identityProviders: ["corp", "later"] })).message).toBe("identity provider 'later' does not exist");
    apply(state, ...when(state, { type: CommandType.createConsumer, name: "alice", groups: [], identityProviders: ["corp"] })());
    expect(failure(when(state, { type: CommandType.updateConsumer, name: "alice", groups: [], identityProviders: ["corp", "later"] })).code).toBe("not_found");
    // Removed under a consumer that trusts it, the name would pass that trust to the next provider given it.
    const inUse = failure(when(state, { type: CommandType.removeIdentityProvider, name: "corp" }));
    expect([inUse.code, inUse.data]).toEqual(["in_use", { consumers: ["alice"] }]);
    apply(state, ...when(state, { type: CommandType.updateConsumer, name: "alice", groups: [], identityProviders: [] })());
    expect(when(state, { type: CommandType.removeIdentityProvider, name: "corp" })()).toHaveLength(1);
  });

  test("state left by a log older than these checks (or a lost race) is caught when the name is given again", () => {
    // A consumer trusting a provider removed under it, and a grant naming a consumer that is gone.
    const state = catalog();
    apply(state, { type: EventType.consumerCreated, version: 1, data: { name: "alice", groups: [], identityProviders: ["corp"] } }, granted([], "to-bob"));
    apply(state, { type: EventType.virtualServerAccessGranted, version: 1, data: { name: "vs", grant: { grantId: "old-bob", subject: { consumer: "bob" }, deniedTools: [] } } });
    const provider = failure(when(state, { type: CommandType.registerIdentityProvider, name: "corp", issuer: "https://partner.example", audience: "manifold", jwksUrl: "https://partner.example/jwks", consumerClaim: "sub", groupsClaim: "groups", groups: [] }));
    expect([provider.code, provider.data]).toEqual(["in_use", { consumers: ["alice"] }]);
    const bob = failure(when(state, { type: CommandType.createConsumer, name: "bob", groups: [], identityProviders: [] }));
    expect([bob.code, bob.data]).toEqual(["in_use", { grants: ["vs/old-bob"] }]);
  });

  test("one provider per issuer, compared as URLs: which one a token is from never depends on registration order", () => {
    const state = given();
    const provider = (name: string, issuer: string) => ({ type: CommandType.registerIdentityProvider, name, issuer, audience: "manifold", jwksUrl: "https://evil.example/jwks", consumerClaim: "sub", groupsClaim: "groups", groups: [] as string[] }) as const;
    apply(state, ...when(state, provider("one", "https://same.example/tenant"))());
    for (const issuer of ["https://same.example/tenant", "https://SAME.example/tenant/", "HTTPS://same.example/tenant"]) {
      const refused = failure(when(state, provider("two", issuer)));
      expect([refused.code, refused.data]).toEqual(["already_exists", { identityProvider: "one" }]);
    }
    expect(when(state, provider("two", "https://same.example/other"))()).toHaveLength(1);
  });
});
