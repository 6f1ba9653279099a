import { ManifoldError, isRecord } from "@manifold/contracts";

/**
 * The maps in a request's params that an SDK reads entry by entry, and how many entries each may
 * hold: a prompt takes at most 256 arguments (`UpstreamPrompt`), and a round's answers at most 16
 * (`modernTasks.ts`). Counted before any SDK reads them: a `prompts/get` or `completion/complete`
 * of 70,000 non-string arguments (1 MB) held the event loop 0.35–0.6 s for every tenant while the
 * SDK listed 70,000 issues; two callers sending them kept another's median call at 1.2 s.
 */
const RECORDS: Record<string, readonly { path: readonly string[]; max: number; strings: boolean }[]> = {
  "prompts/get": [{ path: ["arguments"], max: 256, strings: true }],
  "completion/complete": [{ path: ["context", "arguments"], max: 256, strings: true }],
  "tasks/update": [{ path: ["inputResponses"], max: 16, strings: false }],
  "tools/call": [{ path: ["inputResponses"], max: 16, strings: false }],
};

/** Refuses (-32602, the first problem) a message (or a 2025-03-26 batch's) whose maps hold more entries than they may, or a value of the wrong type. */
export function mustBeBoundedParams(body: unknown): void {
  if (Array.isArray(body)) for (const message of body) mustBeBounded(message);
  else mustBeBounded(body);
}

function mustBeBounded(message: unknown): void {
  const records = isRecord(message) && typeof message.method === "string" ? RECORDS[message.method] : undefined;
  if (!records) return;
  const params = (message as { params?: unknown }).params;
  for (const { path, max, strings } of records) {
    let value: unknown = params;
    for (const key of path) value = isRecord(value) ? value[key] : undefined;
    if (!isRecord(value)) continue;
    const where = `params.${path.join(".")}`;
    let count = 0;
    // Entry by entry, stopping at the first problem: no list of 70,000 keys is made to count them.
    for (const key in value) {
      if (++count > max) throw new ManifoldError("invalid_arguments", `invalid params: ${where} holds more than ${max} entries`, { maxItems: max });
      if (strings && typeof value[key] !== "string") throw new ManifoldError("invalid_arguments", `invalid params: ${where}.${key.slice(0, 64)} must be a string`);
    }
  }
}
