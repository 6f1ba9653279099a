import { DEFAULT_ENVIRONMENT, EventType, InteractionSettings, shownIdentityProvider, shownTransport, unpublishedParamHeaders, type RegistryEvent } from "@manifold/contracts";
import { listChangesOf, type UpstreamHealth, type UpstreamState, type VirtualServerState } from "@manifold/domain";

/**
 * What the admin API shows of an upstream. Credentials appear only as references
 * (`env:NAME`, `file:/path`): plain headers and variables are validated to be non-secret, and a
 * literal secret a registration recorded before those checks holds is withheld, its field named
 * in `literalSecrets` (`shownTransport`).
 */
export function upstreamView(u: UpstreamState, health?: UpstreamHealth, withItems = true) {
  const { transport, literalSecrets } = shownTransport(u.transport);
  const items = withItems
    ? {
        tools: [...u.tools.values()].map((t) => ({ name: t.definition.name, hash: t.hash, definition: t.definition, ...unpublished(t.definition) })),
        prompts: [...u.prompts.values()],
        resources: [...u.resources.values()],
        resourceTemplates: [...u.resourceTemplates.values()],
      }
    : {};
  return {
    name: u.name,
    description: u.description,
    version: u.version,
    transport,
    ...(literalSecrets.length > 0 ? { literalSecrets } : {}),
    options: u.options,
    serverInfo: u.serverInfo,
    /** The MCP revision connectors speak with it (its era), as their live health reports say. */
    protocolVersion: health?.replicas.find((r) => r.protocolVersion)?.protocolVersion,
    health,
    ...items,
    listChanges: listChangesView(u),
  };
}

/** By recorded definition: walking 1,000 tools' schemas took 6–16 ms, on every read of the upstream. */
const unpublishedOf = new WeakMap<object, ReturnType<typeof unpublishedParamHeaders>>();

/**
 * A tool's `x-mcp-header` annotations agents are not shown (`publishedInputSchema`): a conforming
 * 2026-07-28 client leaves out a tool that carries one, so the gateway publishes it without them,
 * and this is where the operator learns of it. Absent when there are none.
 */
function unpublished(definition: { inputSchema?: unknown }) {
  let left = unpublishedOf.get(definition);
  if (!left) unpublishedOf.set(definition, (left = unpublishedParamHeaders(definition.inputSchema)));
  return left.length > 0 ? { unpublishedParamHeaders: left } : {};
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
    counts: {
      tools: vs.tools.size,
      prompts: vs.prompts.size,
      resources: vs.resources.size,
      resourceTemplates: vs.resourceTemplates.size,
      grants: vs.grants.size,
      deprecatedAliases: vs.deprecatedAliases.size,
    },
    /** Each environment it is served in, with how many pins of each kind. */
    environments: environmentsOf(vs),
  };
}

/**
 * A virtual server's view (`GET /v1/virtual-servers/:name`, and what its commands answer with what
 * they decided): its summary, relays and audit settings, a few KiB whatever it holds. Its selected
 * tools, prompts, resources, templates, grants and deprecated aliases come a page at a time on
 * their own routes (`selectionRoutes.ts`): the whole view of 5,000 selected tools with long
 * definitions was 8 MiB, held the event loop 2.6 s, and every command on it answered it again.
 */
export function virtualServerView(vs: VirtualServerState) {
  return {
    ...virtualServerSummary(vs),
    /** Which server-to-client requests it relays (docs/protocol.md); the defaults when never set. */
    interactions: vs.interactions ?? InteractionSettings.parse({}),
    audit: vs.audit ?? { recordValues: false, redactFields: [] },
  };
}

/** One event of an object's history: what changed, when and by whom. A key's salt and digest stay in the registry. */
export function historyView(event: RegistryEvent, sequence: number) {
  const data =
    event.type === EventType.consumerKeyIssued ? { name: event.data.name, key: { keyId: event.data.key.keyId } }
    : event.type === EventType.upstreamRegistered || event.type === EventType.upstreamUpdated ? shownUpstreamData(event.data)
    : event.type === EventType.identityProviderRegistered ? shownIdentityProvider(event.data)
    : event.data;
  return { sequence, type: event.type, at: event.meta.at, actor: event.meta.actor, commandId: event.meta.commandId, data };
}

/** An upstream's registration as its history shows it: the transport as `upstreamView` shows it. */
function shownUpstreamData<D extends { transport: Parameters<typeof shownTransport>[0] }>(data: D) {
  const { transport, literalSecrets } = shownTransport(data.transport);
  return literalSecrets.length > 0 ? { ...data, transport, literalSecrets } : data;
}
