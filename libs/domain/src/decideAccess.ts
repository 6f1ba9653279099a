import {
  CommandType,
  DEFAULT_ENVIRONMENT,
  EventType,
  ManifoldError,
  RegistryLimits,
  type DeniedPrompt,
  type DeniedResource,
  type DeniedTool,
  type NewEvent,
  type RegistryCommand,
} from "@manifold/contracts";
import { isDeepStrictEqual } from "node:util";
import type { CatalogView, ConsumerState } from "./state.js";
import { resolveToolRefs } from "./toolIdentity.js";
import { mustHaveRoom } from "./limits.js";
import { resolvePromptRefs, resolveResourceRefs } from "./itemIdentity.js";
import { newEvent as event } from "./newEvent.js";

type AccessCommand = Extract<
  RegistryCommand,
  {
    type:
      | typeof CommandType.grantAccess
      | typeof CommandType.configureAudit
      | typeof CommandType.revokeAccess
      | typeof CommandType.createConsumer
      | typeof CommandType.updateConsumer
      | typeof CommandType.issueKey
      | typeof CommandType.revokeKey
      | typeof CommandType.revokeConnection
      | typeof CommandType.deleteConsumer
      | typeof CommandType.registerIdentityProvider
      | typeof CommandType.removeIdentityProvider;
  }
>;

export const isAccessCommand = (command: RegistryCommand): command is AccessCommand =>
  (
    [
      CommandType.grantAccess,
      CommandType.configureAudit,
      CommandType.revokeAccess,
      CommandType.createConsumer,
      CommandType.updateConsumer,
      CommandType.issueKey,
      CommandType.revokeKey,
      CommandType.revokeConnection,
      CommandType.deleteConsumer,
      CommandType.registerIdentityProvider,
      CommandType.removeIdentityProvider,
    ] as string[]
  ).includes(command.type);

/** Who may use what: consumers and their keys, identity providers, grants on virtual servers. */
export function decideAccess(command: AccessCommand, catalog: CatalogView): NewEvent[] {
  switch (command.type) {
    case CommandType.grantAccess: {
      const vs = catalog.virtualServer(command.name);
      if (!vs) throw new ManifoldError("not_found", `virtual server '${command.name}' does not exist`);
      // Stored by identity: a later rename, alias or promotion cannot move a tool, prompt or resource out of the denial.
      const { deniedPrompts: promptRefs = [], deniedResources: resourceRefs = [], ...rest } = command.grant;
      // An identity not selected yet may be denied if its upstream offers it (still no typo passes):
      // `manifold apply` records a grant before the tools it denies are selected, never after.
      const offered = (upstream: string) => catalog.upstream(upstream);
      const tools = resolveToolRefs(vs, rest.deniedTools, (t) => offered(t.upstream)?.tools.has(t.tool) === true);
      const prompts = resolvePromptRefs(vs, promptRefs, (p) => offered(p.upstream)?.prompts.has(p.prompt) === true);
      const resources = resolveResourceRefs(vs, resourceRefs, (r) =>
        "uri" in r ? offered(r.upstream)?.resources.has(r.uri) === true : offered(r.upstream)?.resourceTemplates.has(r.uriTemplate) === true,
      );
      const unresolved = [...named("tool named", tools.unresolved), ...named("prompt", prompts.unresolved), ...named("resource", resources.unresolved)];
      if (unresolved.length) throw new ManifoldError("not_found", `virtual server '${vs.name}' has no ${unresolved.join("; ")}`);
      // A grant names a consumer that exists: one recorded for a name nobody holds would go to whoever is given it next.
      if ("consumer" in rest.subject && !catalog.consumer(rest.subject.consumer)) throw new ManifoldError("not_found", `consumer '${rest.subject.consumer}' does not exist`);
      // And an environment that exists: one recorded for a name no environment holds applied to the
      // environment created under it next, which starts with no grant (found by an attacker run).
      if (rest.environment !== undefined && rest.environment !== DEFAULT_ENVIRONMENT && !catalog.environment(rest.environment)) {
        throw new ManifoldError("not_found", `environment '${rest.environment}' does not exist`);
      }
      const resolved = { ...rest, deniedTools: tools.identities, deniedPrompts: prompts.identities, deniedResources: resources.identities };
      const existing = vs.grants.get(resolved.grantId);
      if (existing) {
        if (isDeepStrictEqual(existing, resolved)) return [];
        throw new ManifoldError("already_exists", `grant '${resolved.grantId}' on virtual server '${vs.name}' already exists`);
      }
      mustHaveRoom(`virtual server '${vs.name}'`, vs.grants.size, 1, RegistryLimits.grantsPerVirtualServer, "grants", "revoke one before granting another (a grant to a group covers any number of consumers)");
      // Empty lists are left out, as in events recorded before prompts and resources could be denied.
      const grant = {
        ...rest,
        deniedTools: tools.identities,
        ...(prompts.identities.length ? { deniedPrompts: prompts.identities } : {}),
        ...(resources.identities.length ? { deniedResources: resources.identities } : {}),
      };
      return [event(EventType.virtualServerAccessGranted, { name: vs.name, grant })];
    }
    case CommandType.configureAudit: {
      const vs = catalog.virtualServer(command.name);
      if (!vs) throw new ManifoldError("not_found", `virtual server '${command.name}' does not exist`);
      const current = vs.audit ?? { recordValues: false, redactFields: [] };
      if (isDeepStrictEqual(current, command.audit)) return [];
      return [event(EventType.virtualServerAuditConfigured, { name: vs.name, audit: command.audit })];
    }
    case CommandType.revokeAccess: {
      const vs = catalog.virtualServer(command.name);
      if (!vs?.grants.has(command.grantId)) throw new ManifoldError("not_found", `virtual server '${command.name}' has no grant '${command.grantId}'`);
      return [event(EventType.virtualServerAccessRevoked, { name: vs.name, grantId: command.grantId })];
    }
    case CommandType.createConsumer: {
      const { name, description, groups } = command;
      const identityProviders = trustedProviders(command.identityProviders, catalog);
      const existing = catalog.consumer(name);
      if (existing) {
        if (sameConsumer(existing, description, groups, identityProviders)) return [];
        throw new ManifoldError("already_exists", `consumer '${name}' already exists`, { version: existing.version });
      }
      // Grants left naming a consumer of this name from before (a log older than the checks, a lost
      // race with its deletion) would go to the new one: they go first.
      const left = grantsNaming(catalog, name).map(({ virtualServer, grantId }) => `${virtualServer}/${grantId}`);
      if (left.length > 0) throw new ManifoldError("in_use", `grants still name a consumer '${name}' from before: ${left.join(", ")}; revoke them first`, { grants: left });
      mustHaveRoom("the registry", catalog.count("consumer"), 1, RegistryLimits.consumers, "consumers", "delete one before creating another");
      return [event(EventType.consumerCreated, consumerData(name, description, groups, identityProviders))];
    }
    case CommandType.updateConsumer: {
      const { name, description, groups } = command;
      const identityProviders = trustedProviders(command.identityProviders, catalog);
      const existing = catalog.consumer(name);
      if (!existing) throw new ManifoldError("not_found", `consumer '${name}' does not exist`);
      if (sameConsumer(existing, description, groups, identityProviders)) return [];
      return [event(EventType.consumerUpdated, consumerData(name, description, groups, identityProviders))];
    }
    case CommandType.issueKey: {
      const consumer = catalog.consumer(command.name);
      if (!consumer) throw new ManifoldError("not_found", `consumer '${command.name}' does not exist`);
      mustHaveRoom(`consumer '${consumer.name}'`, consumer.keys.size, 1, RegistryLimits.keysPerConsumer, "keys", "revoke one before issuing another");
      return [event(EventType.consumerKeyIssued, { name: command.name, key: command.key })];
    }
    case CommandType.revokeKey: {
      const consumer = catalog.consumer(command.name);
      if (!consumer?.keys.has(command.keyId)) throw new ManifoldError("not_found", `consumer '${command.name}' has no key '${command.keyId}'`);
      return [event(EventType.consumerKeyRevoked, { name: command.name, keyId: command.keyId })];
    }
    case CommandType.revokeConnection: {
      // Always recorded, even when no gateway holds a token: the vault is not registry state.
      if (!catalog.consumer(command.name)) throw new ManifoldError("not_found", `consumer '${command.name}' does not exist`);
      return [event(EventType.consumerConnectionRevoked, { name: command.name, upstream: command.upstream })];
    }
    case CommandType.deleteConsumer: {
      if (!catalog.consumer(command.name)) throw new ManifoldError("not_found", `consumer '${command.name}' does not exist`);
      return [event(EventType.consumerDeleted, { name: command.name })];
    }
    case CommandType.registerIdentityProvider: {
      const { type: _type, ...provider } = command;
      const existing = catalog.identityProvider(provider.name);
      if (existing) {
        const { version: _version, ...current } = existing;
        if (isDeepStrictEqual(current, provider)) return [];
        throw new ManifoldError("already_exists", `identity provider '${provider.name}' already exists`, { version: existing.version });
      }
      // Consumers still trusting the name from before (a log older than the checks, a lost race with
      // the removal) would be signed into by this provider, whoever registers it.
      const trusting = consumersTrusting(catalog, provider.name);
      if (trusting.length > 0) throw new ManifoldError("in_use", `consumers still trust an identity provider named '${provider.name}' from before: ${trusting.join(", ")}; take it off them first`, { consumers: trusting });
      // The gateway knows a token's provider by its issuer: two with one issuer would leave which keys, groups and consumers apply to registration order.
      const issuer = sameIssuer(provider.issuer);
      for (const other of catalog.identityProviders()) {
        if (sameIssuer(other.issuer) === issuer) throw new ManifoldError("already_exists", `identity provider '${other.name}' already has that issuer`, { identityProvider: other.name });
      }
      mustHaveRoom("the registry", catalog.count("identity-provider"), 1, RegistryLimits.identityProviders, "identity providers", "remove one before registering another");
      return [event(EventType.identityProviderRegistered, provider)];
    }
    case CommandType.removeIdentityProvider: {
      if (!catalog.identityProvider(command.name)) throw new ManifoldError("not_found", `identity provider '${command.name}' does not exist`);
      // Consumers trust a provider by name: were it removed under them, whoever registered the name next would sign in as them.
      const trusting = consumersTrusting(catalog, command.name);
      if (trusting.length > 0) {
        throw new ManifoldError("in_use", `identity provider '${command.name}' is trusted by consumers: ${trusting.join(", ")}; remove it from them first`, { consumers: trusting });
      }
      return [event(EventType.identityProviderRemoved, { name: command.name })];
    }
  }
}

type Ref = DeniedTool | DeniedPrompt | DeniedResource;
const originalOf = (ref: Exclude<Ref, string>) => ("tool" in ref ? ref.tool : "prompt" in ref ? ref.prompt : "uri" in ref ? ref.uri : ref.uriTemplate);
/** `tool named 'a', 'b' of upstream 'u'`: references that named nothing, as an admin wrote them; none: nothing. */
const named = (what: string, refs: Ref[]) =>
  refs.length ? [`${what} ${refs.map((r) => (typeof r === "string" ? `'${r}'` : `'${originalOf(r)}' of upstream '${r.upstream}'`)).join(", ")}`] : [];

/** Every grant that names the consumer `name` (by name: whoever holds it), with its virtual server. */
export const grantsNaming = (catalog: Pick<CatalogView, "virtualServers">, name: string): { virtualServer: string; grantId: string }[] =>
  [...catalog.virtualServers()].flatMap((vs) =>
    [...vs.grants.values()].filter((g) => "consumer" in g.subject && g.subject.consumer === name).map((g) => ({ virtualServer: vs.name, grantId: g.grantId })),
  );

/** The consumers that trust the identity provider named `provider`. */
const consumersTrusting = (catalog: CatalogView, provider: string): string[] =>
  [...catalog.consumers()].filter((c) => c.identityProviders.includes(provider)).map((c) => c.name);

/** A consumer's identity providers, each one that exists (a name registered later would be trusted unseen), sorted and once each. */
function trustedProviders(names: readonly string[] | undefined, catalog: CatalogView): string[] {
  const unique = [...new Set(names ?? [])].sort();
  const unknown = unique.filter((name) => !catalog.identityProvider(name));
  if (unknown.length > 0) throw new ManifoldError("not_found", `identity provider${unknown.length > 1 ? "s" : ""} ${unknown.map((n) => `'${n}'`).join(", ")} do${unknown.length > 1 ? "" : "es"} not exist`);
  return unique;
}

/** An issuer compared as a URL names it: scheme and host in any case, with or without a trailing slash. */
function sameIssuer(issuer: string): string {
  try {
    return new URL(issuer).href.replace(/\/+$/, "");
  } catch {
    return issuer.replace(/\/+$/, "");
  }
}

const sameConsumer = (existing: ConsumerState, description: string | undefined, groups: string[], identityProviders: string[]) =>
  existing.description === description && isDeepStrictEqual([...existing.groups], groups) && isDeepStrictEqual([...existing.identityProviders], identityProviders);

/** Empty lists of identity providers are left out, as in events recorded before the field existed. */
const consumerData = (name: string, description: string | undefined, groups: string[], identityProviders: string[]) => ({
  name,
  groups,
  ...(description ? { description } : {}),
  ...(identityProviders.length ? { identityProviders } : {}),
});
