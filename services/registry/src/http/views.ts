import { DEFAULT_ENVIRONMENT, EventType, InteractionSettings, type RegistryEvent } from "@manifold/contracts";
import { listChangesOf, type UpstreamHealth, type UpstreamState, type VirtualServerState } from "@manifold/domain";

/**
 * What the admin API shows of an upstream. Credentials appear only as references
 * (`env:NAME`, `file:/path`): plain headers and variables are validated to be non-secret.
 */
export function upstreamView(u: UpstreamState, health?: UpstreamHealth, withItems = true) {
  const items = withItems
    ? {
        tools: [...u.tools.values()].map((t) => ({ name: t.definition.name, hash: t.hash, definition: t.definition })),
        prompts: [...u.prompts.values()],
        resources: [...u.resources.values()],
        resourceTemplates: [...u.resourceTemplates.values()],
      }
    : {};
  return {
    name: u.name,
    description: u.description,
    version: u.version,
    transport: u.transport,
    options: u.options,
    serverInfo: u.serverInfo,
    /** The MCP revision connectors speak with it (its era), as their live health reports say. */
    protocolVersion: health?.replicas.find((r) => r.protocolVersion)?.protocolVersion,
    health,
    ...items,
    listChanges: listChangesView(u),
  };
}

/**
 * An upstream as a list shows it: what the catalog table needs (health, transport, server, how
 * many of each item) without its discovered definitions, which `GET /v1/upstreams/:name` shows.
 */
export function upstreamSummary(u: UpstreamState, health?: UpstreamHealth) {
  const { tools: _tools, prompts: _prompts, resources: _resources, resourceTemplates: _templates, ...rest } = upstreamView(u, health, false);
  return { ...rest, counts: { tools: u.tools.size, prompts: u.prompts.size, resources: u.resources.size, resourceTemplates: u.resourceTemplates.size } };
}

/** Its recorded list changes in the last hour, and while its connectors' reports are held (`LIST_CHANGE_BUDGET`), until when. */
function listChangesView(u: UpstreamState) {
  const { lastHour, heldUntil } = listChangesOf(u, Date.now());
  return { lastHour, ...(heldUntil !== undefined ? { heldUntil: new Date(heldUntil).toISOString() } : {}) };
}
/**
 * How many pins of each kind a virtual server serves in an environment (its own route lists them):
 * the default one serves the selection, and one promoted before promotion covered prompts and
 * resources serves the selection's.
 */
export function environmentCounts(vs: VirtualServerState, env: string) {
  const items = env === DEFAULT_ENVIRONMENT ? vs : (vs.environmentItems.get(env) ?? vs);
  return {
    tools: (env === DEFAULT_ENVIRONMENT ? vs.tools : vs.environments.get(env))?.size ?? 0,
    prompts: items.prompts.size,
    resources: items.resources.size,
    resourceTemplates: items.resourceTemplates.size,
  };
}

/** Each environment a virtual server is served in, with its counts. */
const environmentsOf = (vs: VirtualServerState) =>
  Object.fromEntries([...new Set([...vs.environments.keys(), ...vs.environmentItems.keys()])].map((env) => [env, environmentCounts(vs, env)]));

/**
 * A virtual server as a list shows it: names, policies and how many of each thing it holds, never
 * its pinned definitions, grants or environments' pins (200 servers of 500 tools in two
 * environments listed 104 MiB in 5.4 s).
 */
export function virtualServerSummary(vs: VirtualServerState) {
  return {
    name: vs.name,
    description: vs.description,
    version: vs.version,
    driftPolicy: vs.driftPolicy,
    naming: vs.naming,
    counts: { tools: vs.tools.size, prompts: vs.prompts.size, resources: vs.resources.size, resourceTemplates: vs.resourceTemplates.size, grants: vs.grants.size },
    /** Each environment it is served in, with how many pins of each kind. */
    environments: environmentsOf(vs),
  };
}

export function virtualServerView(vs: VirtualServerState) {
  return {
    name: vs.name,
    description: vs.description,
    version: vs.version,
    tools: [...vs.tools.values()],
    prompts: [...vs.prompts.values()],
    /** Keyed by the URI agents see (`<upstream>+<original>`). */
    resources: [...vs.resources].map(([exposedUri, r]) => ({ exposedUri, ...r })),
    resourceTemplates: [...vs.resourceTemplates].map(([exposedUriTemplate, t]) => ({ exposedUriTemplate, ...t })),
    driftPolicy: vs.driftPolicy,
    naming: vs.naming,
    /** Which server-to-client requests it relays (docs/protocol.md); the defaults when never set. */
    interactions: vs.interactions ?? InteractionSettings.parse({}),
    deprecatedAliases: Object.fromEntries(vs.deprecatedAliases),
    /**
     * Each environment it is served in, with how many pins of each kind; the pins are on
     * `GET /v1/virtual-servers/:name/environments/:environment` (`?kind=`), a page at a time.
     */
    environments: environmentsOf(vs),
    grants: [...vs.grants.values()],
    audit: vs.audit ?? { recordValues: false, redactFields: [] },
  };
}

/** One event of an object's history: what changed, when and by whom. A key's salt and digest stay in the registry. */
export function historyView(event: RegistryEvent, sequence: number) {
  const data = event.type === EventType.consumerKeyIssued ? { name: event.data.name, key: { keyId: event.data.key.keyId } } : event.data;
  return { sequence, type: event.type, at: event.meta.at, actor: event.meta.actor, commandId: event.meta.commandId, data };
}
