import { isRecord } from "@manifold/contracts";
import { RELATED_TASK_META_KEY } from "@modelcontextprotocol/sdk/types.js";

/** The members a 2025 JSON-RPC request may have: the 1.x SDK's `JSONRPCRequestSchema` is strict. */
const REQUEST_MEMBERS = new Set(["jsonrpc", "id", "method", "params"]);

/** A string, or a number zod's `.int()` accepts (a safe integer). */
const isIdLike = (v: unknown): boolean => typeof v === "string" || Number.isSafeInteger(v);

/**
 * The 1.x SDK's `isJSONRPCRequest`, written out: the same verdict as its zod schema
 * (`JSONRPCRequestSchema.safeParse(v).success`, held to it case by case in the spec) at a fraction
 * of the cost. The schema's parse was ~5,600 instructions of each 2025 fast-path call (callgrind,
 * docs/performance.md); this is a few hundred. Where in doubt it says no: the fast path then
 * leaves the message to the SDK lane, which parses it with the schema itself.
 */
export function isLegacyRequest(v: unknown): boolean {
  if (!isRecord(v)) return false;
  // `for…in`, as zod's strict object walks the keys (inherited enumerable ones too).
  for (const key in v) if (!REQUEST_MEMBERS.has(key)) return false;
  if (v.jsonrpc !== "2.0" || !isIdLike(v.id) || typeof v.method !== "string") return false;
  const params = v.params;
  if (params === undefined) return true;
  if (!isRecord(params)) return false;
  const meta = params._meta;
  if (meta === undefined) return true;
  if (!isRecord(meta)) return false;
  if (meta.progressToken !== undefined && !isIdLike(meta.progressToken)) return false;
  const related = meta[RELATED_TASK_META_KEY];
  return related === undefined || (isRecord(related) && typeof related.taskId === "string");
}
