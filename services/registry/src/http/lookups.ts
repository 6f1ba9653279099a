import { ExposedToolName, ManifoldError, ResourceName } from "@manifold/contracts";
import type { CatalogProjection } from "@manifold/domain";
import { z } from "zod";

/** Path parameters shared by the admin routes. */
export const NameParams = z.object({ name: ResourceName });
export const ToolParams = z.object({ name: ResourceName, exposedName: ExposedToolName });

/** Reads an object from the projection, or fails with `not_found` naming it. */
export function lookups(projection: CatalogProjection) {
  const found = <T>(value: T | undefined, what: string, name: string): T => {
    if (value === undefined) throw new ManifoldError("not_found", `${what} '${name}' does not exist`);
    return value;
  };
  return {
    upstream: (name: string) => found(projection.upstream(name), "upstream", name),
    virtualServer: (name: string) => found(projection.virtualServer(name), "virtual server", name),
    consumer: (name: string) => found(projection.consumer(name), "consumer", name),
    environment: (name: string) => found(projection.environment(name), "environment", name),
    identityProvider: (name: string) => found(projection.identityProvider(name), "identity provider", name),
  };
}
