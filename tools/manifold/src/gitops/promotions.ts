import { DEFAULT_ENVIRONMENT, EventType } from "@manifold/contracts";
import { adminCall, type AdminTarget } from "../adminClient.js";

export interface Promotion {
  from: string;
  to: string;
  force: boolean;
  /** Only these of the source's tools, when the environment serves fewer than the source has now. */
  tools?: string[];
}

type Pins = { exposedName: string }[];
type Items = { prompts?: { exposedName: string }[]; resources?: { exposedUri: string }[]; resourceTemplates?: { exposedUriTemplate: string }[] };
type VirtualServerView = { name: string; tools: Pins; environments?: Record<string, Pins>; environmentItems?: Record<string, Items> } & Items;

/** The exposed names and URIs of an environment's prompts, resources and templates (one without its own serves the selection's). */
const itemNames = (vs: VirtualServerView, environment: string) => {
  const items = environment === DEFAULT_ENVIRONMENT ? vs : (vs.environmentItems?.[environment] ?? vs);
  return [...(items.prompts ?? []).map((p) => p.exposedName), ...(items.resources ?? []).map((r) => r.exposedUri), ...(items.resourceTemplates ?? []).map((t) => t.exposedUriTemplate)];
};

type HistoryItem = { sequence: number; type: string; data: { from?: string; to?: string; forced?: boolean } };

/**
 * How a virtual server came to be served in each environment it is served in: the last promotion
 * into each (since it was last created), read from its history, sources before the environments
 * promoted from them, so applying them in order rebuilds them.
 */
export async function readPromotions(target: AdminTarget, vs: VirtualServerView, warn: (line: string) => void): Promise<Promotion[]> {
  const virtualServer = vs.name;
  const servedIn = Object.keys(vs.environments ?? {});
  const items: HistoryItem[] = [];
  let after: number | undefined;
  do {
    const page = await adminCall(target, "GET", `/v1/virtual-servers/${virtualServer}/history?limit=1000${after === undefined ? "" : `&after=${after}`}`);
    items.push(...(page.items as HistoryItem[]));
    after = page.next;
  } while (after !== undefined);
  const lastCreated = items.findLastIndex((e) => e.type === EventType.virtualServerCreated);
  const last = new Map<string, Promotion & { sequence: number }>();
  for (const e of items.slice(lastCreated + 1)) {
    if (e.type === EventType.virtualServerPromoted) last.set(e.data.to!, { from: e.data.from!, to: e.data.to!, force: e.data.forced ?? false, sequence: e.sequence });
  }
  const wanted = new Set(servedIn);
  const pending = [...last.values()].filter((p) => wanted.has(p.to)).sort((a, b) => a.sequence - b.sequence);
  const ordered: Promotion[] = [];
  const done = new Set([DEFAULT_ENVIRONMENT]);
  while (pending.length > 0) {
    // The earliest whose source is already there; with none (a cycle), the earliest.
    const index = Math.max(0, pending.findIndex((p) => done.has(p.from)));
    const { from, to, force } = pending.splice(index, 1)[0]!;
    done.add(to);
    // The tools the environment serves, as far as its source still has them.
    const names = (environment: string) => (environment === DEFAULT_ENVIRONMENT ? vs.tools : (vs.environments?.[environment] ?? [])).map((p) => p.exposedName);
    const source = new Set(names(from));
    const served = names(to);
    const gone = served.filter((name) => !source.has(name));
    if (gone.length > 0) warn(`virtual server '${virtualServer}' in '${to}': ${gone.join(", ")} no longer in '${from}'; an apply of this file will not serve them there`);
    // Prompts, resources and templates are promoted whole: the environment gets its source's.
    const sourceItems = new Set(itemNames(vs, from));
    const goneItems = itemNames(vs, to).filter((name) => !sourceItems.has(name));
    if (goneItems.length > 0) warn(`virtual server '${virtualServer}' in '${to}': ${goneItems.join(", ")} no longer in '${from}'; an apply of this file will not serve them there`);
    // An empty list says "none of the source's tools": left out, the environment was not rebuilt at all.
    const tools = served.filter((name) => source.has(name));
    ordered.push({ from, to, force, ...(tools.length < source.size ? { tools } : {}) });
  }
  return ordered;
}
