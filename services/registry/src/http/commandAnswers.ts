import type { PromptRef, ResourceRef, ToolRef } from "@manifold/contracts";
import type { VirtualServerState } from "@manifold/domain";
import { promptPin, resourcePin, templatePin, toolPin } from "./environmentPins.js";
import { MAX_PAGE_BYTES } from "./listPage.js";
import { virtualServerView } from "./views.js";

/**
 * What a command on a virtual server answers: its view (summary and counts) and what the command
 * decided. Selections list the pins they made (exposed name, source, hash: never the definition),
 * at most `MAX_PAGE_BYTES` of them in all, `truncated` past it (the rest are on the selection's
 * own routes). Before, each command answered the whole view: 8 MiB for 5,000 selected tools.
 */
export function commandAnswer(vs: VirtualServerState, decided: Record<string, unknown> = {}) {
  return { ...virtualServerView(vs), ...decided };
}

/** Lists of pins within `MAX_PAGE_BYTES` together, in the order given. */
function pinLists(lists: Record<string, Iterable<unknown>>) {
  let bytes = 0;
  let truncated = false;
  const shown: Record<string, unknown[]> = {};
  for (const [kind, pins] of Object.entries(lists)) {
    shown[kind] = [];
    if (truncated) continue;
    for (const pin of pins) {
      bytes += JSON.stringify(pin).length + 1;
      if (bytes > MAX_PAGE_BYTES) {
        truncated = true;
        break;
      }
      shown[kind].push(pin);
    }
  }
  return truncated ? { ...shown, truncated: true } : shown;
}

function* mapped<T, V>(items: Iterable<T>, keep: (item: T) => boolean, view: (item: T) => V): Iterable<V> {
  for (const item of items) if (keep(item)) yield view(item);
}
const all = () => true;
const refKey = (upstream: string, name: string) => `${upstream}\n${name}`;

/** A virtual server as created: every pin it holds. */
export const createdAnswer = (vs: VirtualServerState) =>
  commandAnswer(
    vs,
    pinLists({
      tools: mapped(vs.tools.values(), all, toolPin),
      prompts: mapped(vs.prompts.values(), all, promptPin),
      resources: mapped(vs.resources.entries(), all, resourcePin),
      resourceTemplates: mapped(vs.resourceTemplates.entries(), all, templatePin),
    }),
  );

/** The pins of the tools a selection named (by upstream and tool). */
export function toolsSelectedAnswer(vs: VirtualServerState, refs: readonly ToolRef[]) {
  const named = new Set(refs.map((r) => refKey(r.upstream, r.tool)));
  return commandAnswer(vs, pinLists({ tools: mapped(vs.tools.values(), (t) => named.has(refKey(t.upstream, t.tool)), toolPin) }));
}

/** The pins of the prompts, or the resources and templates, a selection named. */
export function itemsSelectedAnswer(vs: VirtualServerState, prompts: readonly PromptRef[], resources: readonly ResourceRef[]) {
  const namedPrompts = new Set(prompts.map((p) => refKey(p.upstream, p.prompt)));
  const namedUris = new Set(resources.map((r) => refKey(r.upstream, "uri" in r ? r.uri : r.uriTemplate)));
  const lists: Record<string, Iterable<unknown>> =
    prompts.length > 0
      ? { prompts: mapped(vs.prompts.values(), (p) => namedPrompts.has(refKey(p.upstream, p.prompt)), promptPin) }
      : {
          resources: mapped(vs.resources.entries(), ([, r]) => namedUris.has(refKey(r.upstream, r.uri)), resourcePin),
          resourceTemplates: mapped(vs.resourceTemplates.entries(), ([, t]) => namedUris.has(refKey(t.upstream, t.uriTemplate)), templatePin),
        };
  return commandAnswer(vs, pinLists(lists));
}

/** A selected tool's pin and the description agents see instead of its own (absent: its own). */
export function toolAnswer(vs: VirtualServerState, exposedName: string) {
  const tool = vs.tools.get(exposedName);
  return commandAnswer(vs, { tool: tool ? { ...toolPin(tool), ...(tool.descriptionOverride !== undefined ? { descriptionOverride: tool.descriptionOverride } : {}) } : null });
}
