import { DEFAULT_ENVIRONMENT } from "@manifold/contracts";
import type { VirtualServerState } from "./state.js";

/** Prompts by exposed name, resources and templates by exposed URI (template): what one environment serves besides tools. */
export type ItemPins = Pick<VirtualServerState, "prompts" | "resources" | "resourceTemplates">;

/**
 * A virtual server's prompts, resources and templates in an environment: the selection itself in
 * the default one; what was promoted elsewhere. An environment promoted before promotion covered
 * them (its promotion event holds none) serves the selection's, as it did then.
 */
export function itemPinsIn(vs: VirtualServerState, environment: string): ItemPins {
  return environment === DEFAULT_ENVIRONMENT ? vs : (vs.environmentItems.get(environment) ?? vs);
}

/** Every set of item pins of a virtual server: its selection and what was promoted into environments. */
export function* allItemPins(vs: VirtualServerState): Iterable<ItemPins> {
  yield vs;
  yield* vs.environmentItems.values();
}
