import { InteractionSettings } from "@manifold/contracts";
import { exposeUri, exposedNameFor, parseExposedUri, promptKey, resourceKey, templateMatcher } from "@manifold/domain";
import { isDeepStrictEqual } from "node:util";
import { adminCall, type AdminTarget } from "../adminClient.js";
import type { ManifoldFile } from "./file.js";
import type { Promotion } from "./promotions.js";

type ToolRef = ManifoldFile["virtualServers"][number]["tools"][number];
/** What a virtual server's audit settings are when never configured: values are not recorded. */
const DEFAULT_AUDIT = { recordValues: false, redactFields: [] };

export interface Action {
  /** e.g. `create upstream github`, `update virtual-server app: select github/search`. */
  describe: string;
  run(): Promise<unknown>;
}

type Current = {
  upstreams: any[];
  environments: any[];
  consumers: any[];
  identityProviders: any[];
  virtualServers: any[];
};

/** Virtual servers whose whole view an apply or export reads at once. */
const DETAIL_READERS = 4;

/**
 * Everything the registry holds, as a plan or an export compares it. Lists come a page at a time
 * and show summaries, so each virtual server's whole view (selections, grants, each environment's
 * pins) is read on its own, a few at a time.
 */
export async function readCurrent(target: AdminTarget): Promise<Current> {
  const [upstreams, environments, consumers, identityProviders, summaries] = await Promise.all([
    listAll(target, "upstreams"),
    listAll(target, "environments"),
    listAll(target, "consumers"),
    listAll(target, "identity-providers"),
    listAll(target, "virtual-servers"),
  ]);
  const servers = new Map<string, any>();
  const unread = summaries.map((s) => s.name as string);
  const reader = async () => {
    for (let name = unread.shift(); name !== undefined; name = unread.shift()) servers.set(name, await readVirtualServer(target, name));
  };
  await Promise.all(Array.from({ length: DETAIL_READERS }, reader));
  const virtualServers = summaries.map((s) => servers.get(s.name));
  return { upstreams, environments: environments.filter((e) => e.name !== "default"), consumers, identityProviders, virtualServers };
}

/** Every item of a list, following its pages (`next`); a list that is not paged answers in one. */
export const listAll = (target: AdminTarget, kind: string): Promise<any[]> => pagesOf(target, `/v1/${kind}`, "limit=500");

/** Every item of a paged route (`query` before the cursor), following `next`; `onPage` sees each page. */
export async function pagesOf(target: AdminTarget, path: string, query: string, onPage: (page: any) => void = () => {}): Promise<any[]> {
  const items: any[] = [];
  for (let after: string | undefined; ; ) {
    const page = await adminCall(target, "GET", `${path}?${query}${after === undefined ? "" : `&after=${encodeURIComponent(after)}`}`);
    onPage(page);
    items.push(...(page.items as any[]));
    if (typeof page.next !== "string" || page.next === after) return items;
    after = page.next;
  }
}

const PIN_KINDS = ["tools", "prompts", "resources", "resourceTemplates"] as const;
/** What a virtual server holds, each on its own paged route under it (its view counts them). */
const SELECTION_LISTS = ["tools", "prompts", "resources", "resource-templates", "grants", "aliases"] as const;

/**
 * A virtual server's whole view as a plan and `readPromotions` use it: its view (summary and
 * counts) with its selection, grants and deprecated aliases read from their own routes, and each
 * environment's pins into `environments` (tools) and `environmentItems` (prompts, resources,
 * templates; none for an environment that serves the selection's).
 */
export async function readVirtualServer(target: AdminTarget, name: string): Promise<any> {
  const path = `/v1/virtual-servers/${encodeURIComponent(name)}`;
  const vs = await adminCall(target, "GET", path);
  const [tools, prompts, resources, resourceTemplates, grants, aliases] = await Promise.all(SELECTION_LISTS.map((list) => pagesOf(target, `${path}/${list}`, "limit=500")));
  const environments: Record<string, unknown[]> = {};
  const environmentItems: Record<string, Record<string, unknown[]>> = {};
  for (const env of Object.keys(vs.environments ?? {})) {
    const pins: Record<string, unknown[]> = {};
    let fromSelection = false;
    for (const kind of PIN_KINDS) {
      pins[kind] = await pagesOf(target, `${path}/environments/${encodeURIComponent(env)}`, `kind=${kind}&limit=5000`, (page) => (fromSelection = page.itemsFromSelection === true));
    }
    environments[env] = pins.tools!;
    if (!fromSelection) environmentItems[env] = { prompts: pins.prompts!, resources: pins.resources!, resourceTemplates: pins.resourceTemplates! };
  }
  const deprecatedAliases = Object.fromEntries(aliases!.map((a: { alias: string; current: string }) => [a.alias, a.current]));
  return { ...vs, tools, prompts, resources, resourceTemplates, grants, deprecatedAliases, environments, environmentItems };
}

const clean = (value: unknown) => JSON.parse(JSON.stringify(value ?? null));
const same = (a: unknown, b: unknown) => isDeepStrictEqual(clean(a), clean(b));
const byName = <T extends { name: string }>(items: T[]) => new Map(items.map((i) => [i.name, i]));

/**
 * The actions that make the registry match the file, in dependency order: upstreams and
 * environments, identity providers and the consumers that trust them, then virtual servers (selections, names,
 * grants, policies); with `prune`, deletions of what the file does not mention, in reverse.
 * An empty plan means the registry already matches: applying twice is a no-op.
 */
export function plan(target: AdminTarget, file: ManifoldFile, current: Current, prune: boolean): Action[] {
  const actions: Action[] = [];
  const call = (method: string, path: string, body?: unknown) => () => adminCall(target, method, path, body);
  const add = (describe: string, run: () => Promise<unknown>) => actions.push({ describe, run });

  const upstreams = byName(current.upstreams);
  for (const u of file.upstreams) {
    const existing = upstreams.get(u.name);
    const desired = { description: u.description, transport: u.transport, options: u.options };
    if (!existing) add(`create upstream ${u.name}`, call("POST", "/v1/upstreams", u));
    else if (!same(desired, { description: existing.description, transport: existing.transport, options: existing.options })) {
      add(`update upstream ${u.name}`, call("PUT", `/v1/upstreams/${u.name}`, desired));
    }
  }
  const environments = byName(current.environments);
  for (const e of file.environments) {
    if (!same(environments.get(e.name)?.bindings, e.bindings)) {
      add(`${environments.has(e.name) ? "update" : "create"} environment ${e.name}`, call("PUT", `/v1/environments/${e.name}`, { bindings: e.bindings }));
    }
  }
  const providers = byName(current.identityProviders);
  for (const p of file.identityProviders) {
    const existing = providers.get(p.name);
    if (!existing) add(`create identity-provider ${p.name}`, call("POST", "/v1/identity-providers", p));
    else if (!same(p, { ...existing, version: undefined })) {
      add(`replace identity-provider ${p.name}`, async () => {
        // A provider trusted by consumers cannot be removed under them: they let go of it while it is replaced.
        const trusting = (await listAll(target, "consumers")).filter((c) => c.identityProviders?.includes(p.name));
        const trust = (c: any, identityProviders: string[]) => adminCall(target, "PUT", `/v1/consumers/${c.name}`, { description: c.description, groups: c.groups, identityProviders });
        for (const c of trusting) await trust(c, c.identityProviders.filter((n: string) => n !== p.name));
        await adminCall(target, "DELETE", `/v1/identity-providers/${p.name}`);
        try {
          return await adminCall(target, "POST", "/v1/identity-providers", p);
        } catch (error) {
          // Refused (another provider has the issuer, say): the provider as it was comes back.
          const { version: _version, ...previous } = existing;
          await adminCall(target, "POST", "/v1/identity-providers", previous);
          throw error;
        } finally {
          for (const c of trusting) await trust(c, c.identityProviders);
        }
      });
    }
  }

  const consumers = byName(current.consumers);
  for (const c of file.consumers) {
    const existing = consumers.get(c.name);
    const providersOf = (list: string[] | undefined) => [...new Set(list ?? [])].sort();
    if (!existing) add(`create consumer ${c.name}`, call("POST", "/v1/consumers", c));
    else if (
      !same({ d: c.description, g: c.groups, p: providersOf(c.identityProviders) }, { d: existing.description, g: existing.groups, p: providersOf(existing.identityProviders) })
    ) {
      add(`update consumer ${c.name}`, call("PUT", `/v1/consumers/${c.name}`, { description: c.description, groups: c.groups, identityProviders: c.identityProviders }));
    }
  }
  const servers = byName(current.virtualServers);
  for (const vs of file.virtualServers) {
    const existing = servers.get(vs.name);
    const { grants, audit = DEFAULT_AUDIT, deprecatedAliases, promotions, ...definition } = vs;
    const path = `/v1/virtual-servers/${vs.name}`;
    const update = (what: string, run: () => Promise<unknown>) => add(`update virtual-server ${vs.name}: ${what}`, run);
    const rename = (from: string, to: string, keepDeprecatedAlias: boolean) =>
      update(`rename ${from} to ${to}`, call("POST", `${path}/tools/${from}/rename`, { newName: to, keepDeprecatedAlias }));
    // A tool with deprecated aliases is selected under the oldest and renamed along them, so each keeps working.
    const chain = (t: ToolRef) => {
      const name = t.alias ?? policyName(t.upstream, t.tool, vs.naming);
      const olds = name === undefined ? [] : Object.entries(deprecatedAliases).flatMap(([old, now]) => (now === name ? [old] : []));
      const names = [...olds, name];
      return { ref: olds.length > 0 ? { ...t, alias: olds[0] } : t, renames: () => names.slice(1).forEach((to, i) => rename(names[i]!, to!, true)) };
    };
    const promote = (p: (typeof promotions)[number]) => update(`promote ${p.from} to ${p.to}`, call("POST", `${path}/promote`, p));
    if (!existing) {
      const chains = vs.tools.map(chain);
      add(`create virtual-server ${vs.name}`, call("POST", "/v1/virtual-servers", { ...definition, tools: chains.map((c) => c.ref) }));
      chains.forEach((c) => c.renames());
      for (const g of grants) update(`grant ${g.grantId}`, call("POST", `${path}/grants`, g));
      if (!same(audit, DEFAULT_AUDIT)) update("audit", call("PUT", `${path}/audit`, audit));
      promotions.forEach(promote);
      continue;
    }
    if (!same(existing.naming, vs.naming)) throw new Error(`virtual server '${vs.name}': its naming cannot change (published names never change)`);
    if (existing.description !== vs.description) update("description", call("PUT", path, { description: vs.description }));
    if (existing.driftPolicy !== vs.driftPolicy) update(`drift policy ${vs.driftPolicy}`, call("PUT", `${path}/drift-policy`, { policy: vs.driftPolicy }));
    // Absent from the file: the defaults (as the registry shows a virtual server that never set them).
    const interactions = InteractionSettings.parse(vs.interactions ?? {});
    if (!same(existing.interactions, interactions)) update("interactions", call("PUT", `${path}/interactions`, interactions));

    // Grants first, by identity: a tool (prompt, resource) the file newly selects and a grant denies
    // is denied before it is selected, so its subject can never call it in between (gitops.e2e).
    const currentGrants = new Map((existing.grants as any[]).map((g) => [g.grantId, g]));
    for (const g of grants) {
      const have = currentGrants.get(g.grantId);
      const recorded = {
        ...g,
        deniedTools: deniedIdentities(g.deniedTools, vs, existing),
        deniedPrompts: deniedPromptIdentities(g.deniedPrompts ?? [], vs, existing),
        deniedResources: deniedResourceIdentities(g.deniedResources ?? [], vs, existing),
      };
      if (have && same(have, recorded)) continue;
      update(`${have ? "replace" : "grant"} ${g.grantId}`, async () => {
        if (!have) return adminCall(target, "POST", `${path}/grants`, recorded);
        // The registry refuses another grant under a live id: the old one goes first, and comes back
        // when the new one is refused (a denied name the server does not serve, say), rather than
        // leaving its subject with no access at all.
        await adminCall(target, "DELETE", `${path}/grants/${g.grantId}`);
        try {
          return await adminCall(target, "POST", `${path}/grants`, recorded);
        } catch (error) {
          await adminCall(target, "POST", `${path}/grants`, have);
          throw error;
        }
      });
    }
    for (const grantId of currentGrants.keys()) {
      if (!grants.some((g) => g.grantId === grantId)) update(`revoke ${grantId}`, call("DELETE", `${path}/grants/${grantId}`));
    }
    const selected = new Map((existing.tools as any[]).map((t) => [`${t.upstream}/${t.tool}`, t]));
    const wanted = new Map(vs.tools.map((t) => [`${t.upstream}/${t.tool}`, t]));
    for (const [key, t] of wanted) {
      const have = selected.get(key);
      if (!have) {
        const c = chain(t);
        update(`select ${key}`, call("POST", `${path}/tools`, { tools: [c.ref] }));
        c.renames();
        continue;
      }
      // Without an alias the file means the naming policy's name (as export writes it): an alias taken
      // out of the file is a rename back, not nothing.
      const want = t.alias ?? policyName(t.upstream, t.tool, vs.naming);
      if (want !== undefined && want !== have.exposedName) rename(have.exposedName, want, deprecatedAliases[have.exposedName] === want);
      if ((t.description ?? null) !== (have.descriptionOverride ?? null)) {
        // Under the name it has once the rename above is applied.
        const name = want ?? have.exposedName;
        update(`describe ${key}`, () => adminCall(target, "PATCH", `${path}/tools/${name}`, t.description === undefined ? {} : { description: t.description }));
      }
    }
    for (const [key, t] of selected) {
      if (!wanted.has(key)) update(`deselect ${key}`, call("DELETE", `${path}/tools/${t.exposedName}`));
    }
    // Prompts by upstream and name, resources by upstream and URI (template): selected or removed, as in the file.
    const havePrompts = new Map(((existing.prompts ?? []) as any[]).map((p) => [`${p.upstream}/${p.prompt}`, p]));
    const wantPrompts = new Map(vs.prompts.map((p) => [`${p.upstream}/${p.prompt}`, p]));
    for (const [key, p] of wantPrompts) {
      const have = havePrompts.get(key);
      if (!have) update(`select prompt ${key}`, call("POST", `${path}/prompts`, { prompts: [p] }));
      // No route renames a prompt: an alias changed (or taken out) in the file is refused, not skipped as if applied.
      else if ((p.alias ?? policyName(p.upstream, p.prompt, vs.naming) ?? have.exposedName) !== have.exposedName) {
        throw new Error(`virtual server '${vs.name}': prompt ${key} is exposed as '${have.exposedName}', and a prompt's alias cannot change in place: remove it from the file and apply, then add it with its new alias`);
      }
    }
    const extraPrompts = [...havePrompts].filter(([key]) => !wantPrompts.has(key)).map(([, p]) => p.exposedName as string);
    if (extraPrompts.length > 0) update(`remove prompts ${extraPrompts.join(", ")}`, call("POST", `${path}/prompts/remove`, { exposedNames: extraPrompts }));
    const resourceKey = (r: { upstream: string; uri?: string; uriTemplate?: string }) => `${r.upstream} ${r.uri ?? `template ${r.uriTemplate}`}`;
    const haveResources = new Map<string, string>([
      ...((existing.resources ?? []) as any[]).map((r): [string, string] => [resourceKey(r), r.exposedUri]),
      ...((existing.resourceTemplates ?? []) as any[]).map((t): [string, string] => [resourceKey(t), t.exposedUriTemplate]),
    ]);
    const wantResources = new Map(vs.resources.map((r) => [resourceKey(r), r]));
    for (const [key, r] of wantResources) if (!haveResources.has(key)) update(`select resource ${key}`, call("POST", `${path}/resources`, { resources: [r] }));
    const extraResources = [...haveResources].filter(([key]) => !wantResources.has(key)).map(([, uri]) => uri);
    if (extraResources.length > 0) update(`remove resources ${extraResources.join(", ")}`, call("POST", `${path}/resources/remove`, { uris: extraResources }));
    if (!same(existing.audit ?? DEFAULT_AUDIT, audit)) update("audit", call("PUT", `${path}/audit`, audit));
    // An environment it is served in already keeps its pins: promoting again is a release, not a reconciliation.
    for (const p of promotions) if (!Object.hasOwn(existing.environments ?? {}, p.to)) promote(p);
  }

  if (prune) {
    const named = <T extends { name: string }>(items: T[]) => new Set(items.map((i) => i.name));
    const keep = { vs: named(file.virtualServers), c: named(file.consumers), p: named(file.identityProviders), e: named(file.environments), u: named(file.upstreams) };
    for (const vs of current.virtualServers) if (!keep.vs.has(vs.name)) add(`delete virtual-server ${vs.name}`, call("DELETE", `/v1/virtual-servers/${vs.name}`));
    for (const c of current.consumers) if (!keep.c.has(c.name)) add(`delete consumer ${c.name}`, call("DELETE", `/v1/consumers/${c.name}`));
    for (const p of current.identityProviders) if (!keep.p.has(p.name)) add(`delete identity-provider ${p.name}`, call("DELETE", `/v1/identity-providers/${p.name}`));
    for (const e of current.environments) if (!keep.e.has(e.name)) add(`delete environment ${e.name}`, call("DELETE", `/v1/environments/${e.name}`));
    for (const u of current.upstreams) if (!keep.u.has(u.name)) add(`delete upstream ${u.name}`, call("DELETE", `/v1/upstreams/${u.name}`));
  }
  return actions;
}

type DeniedTool = ManifoldFile["virtualServers"][number]["grants"][number]["deniedTools"][number];

/**
 * A grant's denied tools as the registry records them (identities, in its order), so a file
 * that names them by exposed name or alias compares equal to what is stored. A name neither
 * the file nor the registry knows stays as it is: the grant is sent, and the registry says why not.
 */
function deniedIdentities(refs: DeniedTool[], vs: ManifoldFile["virtualServers"][number], existing: any): DeniedTool[] {
  const byName = new Map<string, { upstream: string; tool: string }>();
  for (const t of existing.tools as any[]) byName.set(t.exposedName, { upstream: t.upstream, tool: t.tool });
  for (const [old, current] of Object.entries(existing.deprecatedAliases ?? {})) if (byName.has(current as string)) byName.set(old, byName.get(current as string)!);
  for (const t of vs.tools) byName.set(t.alias ?? policyName(t.upstream, t.tool, vs.naming) ?? "", { upstream: t.upstream, tool: t.tool });
  // A name an environment serves another tool under denies that one too, as the registry records it.
  const inEnvironments = Object.values(existing.environments ?? {}).flat() as { exposedName: string; upstream?: string; tool?: string }[];
  const meanings = (name: string) => [byName.get(name), ...inEnvironments.filter((p) => p.exposedName === name && p.upstream && p.tool).map((p) => ({ upstream: p.upstream!, tool: p.tool! }))];
  const resolved = new Map<string, DeniedTool>();
  for (const r of refs) {
    const meant = typeof r === "string" ? meanings(r).filter((m) => m !== undefined) : [r];
    // Refused before anything is applied: the registry would refuse the grant after the file's new
    // tools were selected, and the old grant, restored, would leave them open to its subject.
    if (meant.length === 0) throw new Error(`virtual server '${vs.name}': a grant denies '${String(r)}', a tool it does not serve (nor will, once the file is applied)`);
    for (const m of meant) resolved.set(typeof m === "string" ? m : `${m.upstream}/${m.tool}`, m);
  }
  return [...resolved.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, r]) => r);
}

type DeniedPrompt = NonNullable<ManifoldFile["virtualServers"][number]["grants"][number]["deniedPrompts"]>[number];
type DeniedResource = NonNullable<ManifoldFile["virtualServers"][number]["grants"][number]["deniedResources"]>[number];
const sortedBy = <T>(items: T[], key: (item: T) => string) => [...new Map(items.map((i) => [key(i), i])).entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, i]) => i);
const keyOf = <T extends object>(ref: string | T, identityKey: (identity: T) => string) => (typeof ref === "string" ? `name:${ref}` : identityKey(ref));

/** A grant's denied prompts as the registry records them (identities, by key), from exposed names in the registry or the file. */
function deniedPromptIdentities(refs: DeniedPrompt[], vs: ManifoldFile["virtualServers"][number], existing: any): DeniedPrompt[] {
  const byName = new Map<string, { upstream: string; prompt: string }>();
  for (const p of (existing.prompts ?? []) as any[]) byName.set(p.exposedName, { upstream: p.upstream, prompt: p.prompt });
  for (const p of vs.prompts) byName.set(p.alias ?? policyName(p.upstream, p.prompt, vs.naming) ?? "", { upstream: p.upstream, prompt: p.prompt });
  // As for tools: each prompt a name means in an environment is denied too.
  const inEnvironments = Object.values(existing.environmentItems ?? {}).flatMap((items: any) => (items.prompts ?? []) as { exposedName: string; upstream: string; prompt: string }[]);
  const meanings = (r: DeniedPrompt): DeniedPrompt[] => {
    if (typeof r !== "string") return [r];
    const meant = [byName.get(r), ...inEnvironments.filter((p) => p.exposedName === r).map((p) => ({ upstream: p.upstream, prompt: p.prompt }))].filter((m) => m !== undefined);
    return meant.length > 0 ? meant : [r];
  };
  return sortedBy(refs.flatMap(meanings), (r) => keyOf(r, promptKey));
}

/**
 * A grant's denied resources as the registry records them: exposed URIs (templates) of the
 * registry's or the file's selection, or URIs a selected template expands to, become identities.
 */
function deniedResourceIdentities(refs: DeniedResource[], vs: ManifoldFile["virtualServers"][number], existing: any): DeniedResource[] {
  const byUri = new Map<string, DeniedResource>();
  const templates: { upstream: string; uriTemplate: string }[] = [];
  for (const r of (existing.resources ?? []) as any[]) byUri.set(r.exposedUri, { upstream: r.upstream, uri: r.uri });
  for (const t of (existing.resourceTemplates ?? []) as any[]) {
    byUri.set(t.exposedUriTemplate, { upstream: t.upstream, uriTemplate: t.uriTemplate });
    templates.push({ upstream: t.upstream, uriTemplate: t.uriTemplate });
  }
  for (const r of vs.resources) {
    const original = "uri" in r ? r.uri : r.uriTemplate;
    const exposed = exposeUri(r.upstream, original, vs.naming);
    if (exposed) byUri.set(exposed, r);
    if ("uriTemplate" in r) templates.push(r);
  }
  const expansion = (uri: string): DeniedResource | undefined => {
    const parsed = vs.naming.policy === "bare" ? { upstream: undefined, uri } : parseExposedUri(uri);
    const t = parsed && templates.find((x) => (parsed.upstream === undefined || x.upstream === parsed.upstream) && templateMatcher(x.uriTemplate)?.(parsed.uri));
    return t && parsed ? { upstream: t.upstream, uri: parsed.uri } : undefined;
  };
  return sortedBy(refs.map((r) => (typeof r === "string" ? (byUri.get(r) ?? expansion(r) ?? r) : r)), (r) => keyOf(r, resourceKey));
}

const policyName = (upstream: string, tool: string, naming: Parameters<typeof exposedNameFor>[2]) => {
  try {
    return exposedNameFor(upstream, tool, naming);
  } catch {
    return undefined;
  }
};

/** The registry as a manifold file: what `apply` would need to recreate it (API keys excepted: they are shown once). */
export function exportFile(current: Current, promotions: ReadonlyMap<string, Promotion[]> = new Map()): ManifoldFile {
  const unlessEmpty = <T extends object>(value: T) => (Object.keys(value).length > 0 ? value : undefined);
  const nonEmpty = <T>(items: T[]) => (items.length > 0 ? items : undefined);
  return {
    upstreams: current.upstreams.map((u) => clean({ name: u.name, description: u.description, transport: u.transport, options: u.options })),
    environments: current.environments.map((e) => ({ name: e.name, bindings: e.bindings })),
    consumers: current.consumers.map((c) =>
      clean({ name: c.name, description: c.description, groups: c.groups, identityProviders: c.identityProviders?.length ? c.identityProviders : undefined }),
    ),
    identityProviders: current.identityProviders.map(({ version: _version, ...p }) => p),
    virtualServers: current.virtualServers.map((vs) =>
      clean({
        name: vs.name,
        description: vs.description,
        naming: vs.naming,
        driftPolicy: vs.driftPolicy,
        // Only settings other than the defaults are written out.
        interactions: vs.interactions === undefined || same(vs.interactions, InteractionSettings.parse({})) ? undefined : vs.interactions,
        tools: (vs.tools as any[]).map((t) => ({
          upstream: t.upstream,
          tool: t.tool,
          // Only names that the naming policy would not give by itself are written out.
          alias: t.exposedName === policyName(t.upstream, t.tool, vs.naming) ? undefined : t.exposedName,
          description: t.descriptionOverride,
        })),
        prompts: nonEmpty(((vs.prompts ?? []) as any[]).map((p) => clean({ upstream: p.upstream, prompt: p.prompt, alias: p.exposedName === policyName(p.upstream, p.prompt, vs.naming) ? undefined : p.exposedName }))),
        resources: nonEmpty([
          ...((vs.resources ?? []) as any[]).map((r) => ({ upstream: r.upstream, uri: r.uri })),
          ...((vs.resourceTemplates ?? []) as any[]).map((t) => ({ upstream: t.upstream, uriTemplate: t.uriTemplate })),
        ]),
        // Lists of denied prompts and resources only when there are any (as a file would say it).
        grants: (vs.grants as any[]).map(({ deniedPrompts, deniedResources, ...g }) => ({
          ...g,
          ...(deniedPrompts?.length ? { deniedPrompts } : {}),
          ...(deniedResources?.length ? { deniedResources } : {}),
        })),
        audit: same(vs.audit, DEFAULT_AUDIT) ? undefined : vs.audit,
        deprecatedAliases: unlessEmpty(vs.deprecatedAliases ?? {}),
        promotions: unlessEmpty(promotions.get(vs.name) ?? []),
      }),
    ),
  };
}
