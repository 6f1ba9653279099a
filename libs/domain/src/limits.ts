import { ManifoldError } from "@manifold/contracts";

/**
 * Refuses a command that would take `holder` past `limit` things of a kind (`RegistryLimits`):
 * `limit_reached`, naming the limit and what makes room. Adding nothing is always allowed, so
 * a repeated command stays the no-op it was.
 */
export function mustHaveRoom(holder: string, held: number, adding: number, limit: number, what: string, remedy: string): void {
  if (adding > 0 && held + adding > limit) {
    throw new ManifoldError("limit_reached", `${holder} holds ${held} ${what}${adding > 1 ? ` and ${adding} more were asked for` : ""}; the most is ${limit}: ${remedy}`, { limit });
  }
}
