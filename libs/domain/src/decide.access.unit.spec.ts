import { CommandType, EventType, type NewEvent, type RegistryEvent } from "@manifold/contracts";
import { describe, expect, test } from "vitest";
import { CatalogProjection } from "./projection.js";
import { consumer, discovered, echo, failure, given, meta, registered, selection, vsCreated, when } from "./decideFixtures.spec.js";

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

describe("access commands", () => {
  const catalog = () => given(registered("a"), discovered("a", echo), vsCreated("vs", selection("a", echo)), consumer("bot"));
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
    // A grant for a name no consumer holds (never created, or deleted) would go to whoever is given the name next.
    const ghost = failure(when(state, { type: CommandType.grantAccess, name: "vs", grant: { ...grant, grantId: "g3", subject: { consumer: "ghost" } } }));
    expect([ghost.code, ghost.message]).toEqual(["not_found", "consumer 'ghost' does not exist"]);
    apply(state, when(state, { type: CommandType.deleteConsumer, name: "bot" })());
    expect(failure(when(state, { type: CommandType.grantAccess, name: "vs", grant: { ...grant, grantId: "g4" } })).message).toBe("consumer 'bot' does not exist");
  });
  test("revoke-access removes a grant, and names a missing one", () => {
    const state = catalog();
    apply(state, when(state, { type: CommandType.grantAccess, name: "vs", grant: { grantId: "g1", subject: { group: "ops" }, deniedTools: [] } })());
    expect(when(state, { type: CommandType.revokeAccess, name: "vs", grantId: "g1" })()).toHaveLength(1);
    expect(failure(when(state, { type: CommandType.revokeAccess, name: "vs", grantId: "zz" })).message).toContain("'zz'");
  });
  test("consumers: create (idempotent), issue and revoke keys, delete", () => {
    const state = given();
    const created = when(state, { type: CommandType.createConsumer, name: "bot", groups: ["ops"], identityProviders: [] })();
    expect(created).toEqual([{ type: EventType.consumerCreated, version: 1, data: { name: "bot", groups: ["ops"] } }]);
    apply(state, created);
    expect(when(state, { type: CommandType.createConsumer, name: "bot", groups: ["ops"], identityProviders: [] })()).toEqual([]);
    expect(failure(when(state, { type: CommandType.createConsumer, name: "bot", groups: [], identityProviders: [] })).code).toBe("already_exists");
    const issued = when(state, { type: CommandType.issueKey, name: "bot", key })();
    expect(issued).toEqual([{ type: EventType.consumerKeyIssued, version: 1, data: { name: "bot", key } }]);
    apply(state, issued);
    expect(when(state, { type: CommandType.revokeKey, name: "bot", keyId: key.keyId })()).toHaveLength(1);
    expect(failure(when(state, { type: CommandType.revokeKey, name: "bot", keyId: "zzzzzzzzzzzz" })).code).toBe("not_found");
    expect(when(state, { type: CommandType.deleteConsumer, name: "bot" })()).toEqual([{ type: EventType.consumerDeleted, version: 1, data: { name: "bot" } }]);
    expect(failure(when(given(), { type: CommandType.issueKey, name: "ghost", key })).code).toBe("not_found");
  });
  test("update-consumer replaces description and groups, keeps the keys, and is a no-op when nothing changes", () => {
    const state = given();
    apply(state, when(state, { type: CommandType.createConsumer, name: "bot", description: "old", groups: ["ops"], identityProviders: [] })());
    apply(state, when(state, { type: CommandType.issueKey, name: "bot", key })());
    const updated = when(state, { type: CommandType.updateConsumer, name: "bot", groups: ["billing", "ops"], identityProviders: [] })();
    expect(updated).toEqual([{ type: EventType.consumerUpdated, version: 1, data: { name: "bot", groups: ["billing", "ops"] } }]);
    apply(state, updated);
    const consumer = state.consumer("bot")!;
    expect(consumer.groups).toEqual(["billing", "ops"]);
    expect(consumer.description).toBeUndefined();
    expect([...consumer.keys.keys()]).toEqual([key.keyId]);
    expect(consumer.version).toBe(state.sequence);
    expect(when(state, { type: CommandType.updateConsumer, name: "bot", groups: ["billing", "ops"], identityProviders: [] })()).toEqual([]);
    expect(failure(when(state, { type: CommandType.updateConsumer, name: "ghost", groups: [], identityProviders: [] })).message).toBe("consumer 'ghost' does not exist");
  });
  test("identity providers: register (idempotent, conflicting), remove", () => {
    const state = given();
    const provider = { name: "corp", issuer: "https://id.example/", audience: "manifold", jwksUrl: "https://id.example/jwks", consumerClaim: "sub", groupsClaim: "groups", groups: [] };
    const registered = when(state, { type: CommandType.registerIdentityProvider, ...provider })();
    expect(registered).toEqual([{ type: EventType.identityProviderRegistered, version: 1, data: provider }]);
    apply(state, registered);
    expect(when(state, { type: CommandType.registerIdentityProvider, ...provider })()).toEqual([]);
    expect(failure(when(state, { type: CommandType.registerIdentityProvider, ...provider, audience: "other" })).code).toBe("already_exists");
    expect(when(state, { type: CommandType.removeIdentityProvider, name: "corp" })()).toHaveLength(1);
    expect(failure(when(given(), { type: CommandType.removeIdentityProvider, name: "corp" })).code).toBe("not_found");
  });
});
