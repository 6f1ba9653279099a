import { DEFAULT_ENVIRONMENT, type GrantSubject, type ResolvedGrant } from "@manifold/contracts";
import type { VirtualServerState } from "./state.js";
import { toolKey } from "./toolIdentity.js";
import { promptKey, resourceKey } from "./itemIdentity.js";

/** Who is calling, once authenticated: a registered consumer and/or the groups a token carries. */
export interface Principal {
  readonly consumer?: string;
  /**
   * The groups the credential itself claims (a JWT's groups claim). A consumer's own groups
   * are registry state, read when access is decided, so a change reaches open sessions too.
   */
  readonly groups: readonly string[];
  /**
   * What sessions, tasks, rounds and budgets are bound to: `consumer:<name>#<created>` (a consumer
   * deleted and created again under its name is another one), `sub:<issuer>#<subject>`, or
   * `anonymous:<network>` for a caller without credentials (`anonymousPrincipal`).
   */
  readonly id: string;
  /** A caller that presented no credentials, admitted only by anonymous grants (and only where the gateway allows it). */
  readonly anonymous?: true;
}

/** What a consumer's callers are bound to: its name and the sequence of its creation. */
export const consumerId = (consumer: { name: string; created: number }): string => `consumer:${consumer.name}#${consumer.created}`;

/**
 * What a token's bare subject is bound to: `sub:<issuer>#<subject>`, with `%` and `#` in the issuer
 * escaped. A URL may carry a fragment, so unescaped, issuer `https://a/#1` with subject `2` and
 * issuer `https://a/` with subject `1#2` were one principal, sharing sessions, tasks and budgets.
 * (Unchanged for an issuer without either, as OpenID Connect's are.)
 */
export const subjectPrincipalId = (issuer: string, subject: string): string => `sub:${issuer.replaceAll("%", "%25").replaceAll("#", "%23")}#${subject}`;

/** A registered consumer as a principal, with the groups its credential claims (none for an API key). */
export const consumerPrincipal = (consumer: { name: string; created: number }, groups: readonly string[] = []): Principal => ({
  consumer: consumer.name,
  groups,
  id: consumerId(consumer),
});

/**
 * How records, spans and metrics name a caller: `consumer:<name>` (without its creation), `anonymous`
 * (never its address), else its id.
 */
export const principalName = (principal: Principal): string =>
  principal.consumer !== undefined ? `consumer:${principal.consumer}` : principal.anonymous ? "anonymous" : principal.id;

const NO_GROUPS: readonly string[] = Object.freeze([]);

/**
 * A caller without credentials, told apart from other such callers by its client network (the
 * gateway's `clientNetwork`: an IPv4 address, an IPv6 /64): its own sessions, calls in flight,
 * request budget and circuits, so one anonymous client cannot get every other one refused. As one
 * principal, one client's slow calls opened the tool's circuit for all of them. Its id cannot be a
 * consumer's (`consumer:…`) or a token subject's (`sub:…`).
 */
export const anonymousPrincipal = (network: string): Principal => Object.freeze({ id: `anonymous:${network}`, groups: NO_GROUPS, anonymous: true });

export interface Access {
  /** Tools this principal may neither see nor call, as identity keys (`toolKey`), whatever name they are called by. */
  readonly denied: ReadonlySet<string>;
  /** Prompts, resources and templates this principal may neither list nor reach, as identity keys (`promptKey`, `resourceKey`). */
  readonly deniedItems: ReadonlySet<string>;
  /** Calls per minute; undefined when any matching grant is unlimited. */
  readonly rateLimitPerMinute: number | undefined;
}

/** An anonymous grant covers anonymous callers only, and only it covers them. */
function covers(subject: GrantSubject, principal: Principal, consumerGroups: readonly string[]): boolean {
  if ("anonymous" in subject) return principal.anonymous === true;
  if (principal.anonymous) return false;
  if ("consumer" in subject) return subject.consumer === principal.consumer;
  return principal.groups.includes(subject.group) || consumerGroups.includes(subject.group);
}

const matches = (grant: ResolvedGrant, principal: Principal, environment: string, consumerGroups: readonly string[]) =>
  (grant.environment === undefined || grant.environment === environment) && covers(grant.subject, principal, consumerGroups);

/**
 * Deny unless granted: undefined when no grant of the virtual server matches (for this
 * environment: a grant without one applies to all). With several
 * matching grants the most generous wins: a tool, prompt or resource is denied only if every one denies it.
 */
export function accessOf(
  vs: VirtualServerState,
  principal: Principal,
  environment = DEFAULT_ENVIRONMENT,
  consumerGroups: readonly string[] = [],
): Access | undefined {
  let denied: Set<string> | undefined;
  let deniedItems: Set<string> | undefined;
  let limit: number | undefined = 0;
  for (const grant of vs.grants.values()) {
    if (!matches(grant, principal, environment, consumerGroups)) continue;
    const keys = grant.deniedTools.map((t) => toolKey(t.upstream, t.tool));
    denied = denied ? new Set(keys.filter((k) => denied!.has(k))) : new Set(keys);
    const itemKeys = [...grant.deniedPrompts.map(promptKey), ...grant.deniedResources.map(resourceKey)];
    deniedItems = deniedItems ? new Set(itemKeys.filter((k) => deniedItems!.has(k))) : new Set(itemKeys);
    limit = limit === undefined || grant.rateLimitPerMinute === undefined ? undefined : Math.max(limit, grant.rateLimitPerMinute);
  }
  return denied && deniedItems ? { denied, deniedItems, rateLimitPerMinute: limit } : undefined;
}
