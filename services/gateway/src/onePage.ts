import { ManifoldError, isRecord } from "@manifold/contracts";

/**
 * Lists of tools, prompts, resources and templates are answered in one page and never carry a
 * `nextCursor`, so any cursor is one this server did not give: "Invalid cursors SHOULD result in an
 * error with code -32602 (Invalid params)" (server/utilities/pagination, 2025-11-25 and 2026-07-28).
 * Before (helper-182), the whole list came back, to a 2026-07-28 agent with cache hints for a page
 * that does not exist (listCursors.e2e). The fast path leaves a request with a cursor to the SDK lane.
 */
export function mustNotPage(params: unknown): void {
  if (isRecord(params) && params.cursor !== undefined) throw new ManifoldError("invalid_arguments", "invalid params: not a cursor this server gave");
}
