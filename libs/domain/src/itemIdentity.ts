import type { DeniedPrompt, DeniedResource, ItemKind, PromptIdentity, ResourceIdentity } from "@manifold/contracts";
import { allItemPins, type ItemPins } from "./environmentItems.js";
import { exposeUri, parseExposedUri, templateMatcher } from "./resourceUris.js";
import type { VirtualServerState } from "./state.js";
import { resolveAll } from "./toolIdentity.js";

/**
 * The key of a prompt, resource or template identity in sets: its kind, the (logical) upstream and
 * the original name, URI or URI template. Upstream names never contain `/`, so the key is
 * unambiguous whatever the original holds; the kind keeps a resource and a template of the same
 * text apart.
 */
export const itemKey = (kind: ItemKind, upstream: string, original: string): string => `${kind}:${upstream}/${original}`;
/** An `itemKey` split back into its parts; undefined for a key of no item kind. */
export function parseItemKey(key: string): { kind: ItemKind; upstream: string; original: string } | undefined {
  const colon = key.indexOf(":");
  const slash = colon < 0 ? -1 : key.indexOf("/", colon + 1);
  const kind = key.slice(0, colon);
  if (slash < 0 || (kind !== "prompt" && kind !== "resource" && kind !== "resource-template")) return undefined;
  return { kind, upstream: key.slice(colon + 1, slash), original: key.slice(slash + 1) };
}
export const promptKey = (p: PromptIdentity): string => itemKey("prompt", p.upstream, p.prompt);
export const resourceKey = (r: ResourceIdentity): string => ("uri" in r ? itemKey("resource", r.upstream, r.uri) : itemKey("resource-template", r.upstream, r.uriTemplate));

type Matcher = { upstream: string; matches: (uri: string) => boolean };
/** Compiled once per set of templates (state maps are never changed in place), so a grant of many URIs compiles each template once. */
const matchersOf = new WeakMap<ItemPins["resourceTemplates"], Matcher[]>();

/** The selected template of `upstream` (any, under `bare` naming) that `uri` expands, if any; tried in the gateway's order (by exposed URI template). */
function expandedBy(pins: ItemPins, upstream: string | undefined, uri: string): ResourceIdentity | undefined {
  let matchers = matchersOf.get(pins.resourceTemplates);
  if (!matchers) {
    const sorted = [...pins.resourceTemplates].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    matchers = sorted.flatMap(([, t]) => {
      const matches = templateMatcher(t.uriTemplate);
      return matches ? [{ upstream: t.upstream, matches }] : [];
    });
    matchersOf.set(pins.resourceTemplates, matchers);
  }
  for (const m of matchers) if ((upstream === undefined || m.upstream === upstream) && m.matches(uri)) return { upstream: m.upstream, uri };
  return undefined;
}

/**
 * The identities a denied-prompt reference means in a virtual server: each prompt an exposed name
 * names in its selection or an environment (which may serve another prompt under it: each is
 * denied), or an identity selected somewhere. Empty when it names nothing there.
 */
export function resolvePromptRef(vs: VirtualServerState, ref: DeniedPrompt, selected?: ReadonlySet<string>): PromptIdentity[] {
  if (typeof ref !== "string") return (selected ?? selectedPromptKeys(vs)).has(promptKey(ref)) ? [{ upstream: ref.upstream, prompt: ref.prompt }] : [];
  const meant: PromptIdentity[] = [];
  for (const pins of allItemPins(vs)) {
    const p = pins.prompts.get(ref);
    if (p) meant.push({ upstream: p.upstream, prompt: p.prompt });
  }
  return meant;
}

/**
 * Every prompt identity selected somewhere (`promptKey`), gathered once per decision: an identity
 * each scanned every prompt of every environment (1,000 denied over 10,000 prompts promoted to
 * 1,000 environments held the registry 65 s).
 */
function selectedPromptKeys(vs: VirtualServerState): Set<string> {
  const keys = new Set<string>();
  for (const pins of allItemPins(vs)) for (const p of pins.prompts.values()) keys.add(promptKey(p));
  return keys;
}

/**
 * The identities a denied-resource reference means, in the selection and each environment: an
 * exposed URI or URI template served there, an exposed URI a template there expands to (that one
 * resource), or an identity selected there (a resource identity may name a URI a selected template
 * of its upstream expands to). Empty when it names nothing anywhere.
 */
export function resolveResourceRef(vs: VirtualServerState, ref: DeniedResource, selected?: ReadonlySet<string>): ResourceIdentity[] {
  // Selected as such somewhere: looked up, as prompts are (`selectedPromptKeys`).
  if (typeof ref !== "string" && (selected ?? selectedResourceKeys(vs)).has(resourceKey(ref))) {
    return ["uri" in ref ? { upstream: ref.upstream, uri: ref.uri } : { upstream: ref.upstream, uriTemplate: ref.uriTemplate }];
  }
  const meant: ResourceIdentity[] = [];
  for (const pins of allItemPins(vs)) {
    const identity = resourceIn(pins, ref, vs.naming.policy === "bare");
    if (identity) meant.push(identity);
  }
  return meant;
}

/** What a denied-resource reference means among one set of pins (the selection's or an environment's). */
function resourceIn(pins: ItemPins, ref: DeniedResource, bare: boolean): ResourceIdentity | undefined {
  if (typeof ref === "string") {
    const r = pins.resources.get(ref);
    if (r) return { upstream: r.upstream, uri: r.uri };
    const t = pins.resourceTemplates.get(ref);
    if (t) return { upstream: t.upstream, uriTemplate: t.uriTemplate };
    if (bare) return expandedBy(pins, undefined, ref);
    const parsed = parseExposedUri(ref);
    return parsed && exposeUri(parsed.upstream, parsed.uri) === ref ? expandedBy(pins, parsed.upstream, parsed.uri) : undefined;
  }
  // An identity selected as such was found before (`resolveResourceRef`); a URI may still be one a template here expands to.
  return "uri" in ref ? expandedBy(pins, ref.upstream, ref.uri) : undefined;
}

/** Every resource and template identity selected somewhere (`resourceKey`), gathered once per decision. */
function selectedResourceKeys(vs: VirtualServerState): Set<string> {
  const keys = new Set<string>();
  for (const pins of allItemPins(vs)) {
    for (const r of pins.resources.values()) keys.add(resourceKey(r));
    for (const t of pins.resourceTemplates.values()) keys.add(resourceKey(t));
  }
  return keys;
}

const none = () => false;
export const resolvePromptRefs = (vs: VirtualServerState, refs: readonly DeniedPrompt[], unselected: (identity: PromptIdentity) => boolean = none) => {
  let selected: Set<string> | undefined;
  return resolveAll(refs, (ref) => resolvePromptRef(vs, ref, typeof ref === "string" ? undefined : (selected ??= selectedPromptKeys(vs))), promptKey, unselected);
};
export const resolveResourceRefs = (vs: VirtualServerState, refs: readonly DeniedResource[], unselected: (identity: ResourceIdentity) => boolean = none) => {
  let selected: Set<string> | undefined;
  return resolveAll(refs, (ref) => resolveResourceRef(vs, ref, typeof ref === "string" ? undefined : (selected ??= selectedResourceKeys(vs))), resourceKey, unselected);
};
