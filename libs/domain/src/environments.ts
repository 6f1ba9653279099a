import { DEFAULT_ENVIRONMENT, type EnvironmentPin } from "@manifold/contracts";
import type { EnvironmentState, VirtualServerState } from "./state.js";

/** The concrete upstream a logical name means in an environment (the default binds every name to itself). */
export const boundUpstream = (environment: EnvironmentState | undefined, logical: string) => environment?.bindings.get(logical) ?? logical;

/** A virtual server's pins in an environment: the selection itself in the default one; promoted pins elsewhere. */
export function pinsIn(vs: VirtualServerState, environment: string): ReadonlyMap<string, EnvironmentPin> | undefined {
  return environment === DEFAULT_ENVIRONMENT ? vs.tools : vs.environments.get(environment);
}
