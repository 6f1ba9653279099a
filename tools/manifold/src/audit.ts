import { parseArgs } from "node:util";
import { adminCall, adminTarget } from "./adminClient.js";
import { shown } from "./terminalText.js";

interface AuditItem {
  sequence: number;
  at: string;
  consumer: string;
  virtualServer: string;
  exposedTool: string;
  tool: string;
  upstream: string;
  durationMs: number;
  outcome: string;
  errorCode?: string;
  traceId?: string;
}

const FILTERS = {
  "virtual-server": { type: "string" },
  consumer: { type: "string" },
  tool: { type: "string" },
  upstream: { type: "string" },
  outcome: { type: "string" },
  since: { type: "string" },
  until: { type: "string" },
  limit: { type: "string" },
  json: { type: "boolean" },
} as const;

function queryString(values: Record<string, string | boolean | undefined>, extra: Record<string, string> = {}): string {
  const params = new URLSearchParams();
  const names: Record<string, string> = { "virtual-server": "virtualServer" };
  for (const [key, value] of Object.entries(values)) if (typeof value === "string") params.set(names[key] ?? key, value);
  for (const [key, value] of Object.entries(extra)) params.set(key, value);
  return params.toString();
}

/** One record as a terminal line: its texts are an upstream's (the original tool name) and a token's (its subject), shown escaped. */
const line = (r: AuditItem) =>
  shown([r.at, r.consumer, r.virtualServer, `${r.exposedTool} → ${r.upstream}/${r.tool}`, r.errorCode ?? r.outcome, `${r.durationMs.toFixed(1)} ms`, r.traceId ?? "-"].join("  "));

async function fetchPage(target: { url: string; token: string }, query: string): Promise<{ items: AuditItem[]; next?: number }> {
  // Through `adminCall`: a page read refused 429 (`too_many_reads`) or 503 is read again after its Retry-After.
  return (await adminCall(target, "GET", `/v1/audit?${query}`)) as { items: AuditItem[]; next?: number };
}

/** `manifold audit query|tail [filters]`: the audit trail through the registry's admin API. */
export async function audit(argv: string[], env: Record<string, string | undefined>): Promise<void> {
  const [mode, ...rest] = argv;
  const { values } = parseArgs({ args: rest, options: FILTERS, strict: true });
  const target = await adminTarget(env);
  const print = (items: AuditItem[]) => {
    for (const item of items) console.log(values.json ? JSON.stringify(item) : line(item));
  };

  if (mode === "query") {
    // Pages until --limit records (100 by default) are printed or the trail ends: the registry
    // cuts a page short (at its limit, at 4 MiB of records, or after 2 s of reading past records the filter skips).
    const wanted = values.limit === undefined ? 100 : Number(values.limit);
    if (!Number.isInteger(wanted) || wanted < 1) throw new Error("--limit must be a positive whole number");
    let printed = 0;
    let after: number | undefined;
    for (;;) {
      const page = await fetchPage(target, queryString({ ...values, limit: String(Math.min(wanted - printed, 1_000)) }, after === undefined ? {} : { after: String(after) }));
      print(page.items);
      printed += page.items.length;
      if (page.next === undefined) return;
      if (printed >= wanted) {
        process.stderr.write(`… more after #${page.next}: raise --limit, or narrow the query\n`);
        return;
      }
      after = page.next;
    }
  }
  if (mode !== "tail") throw new Error("usage: manifold audit query|tail [--virtual-server n] [--consumer n] [--tool n] [--upstream n] [--outcome ok|error|input_required] [--since iso] [--until iso] [--limit n] [--json]");

  // Live follow: start now (or at --since), then ask for what came after the last record seen.
  let after: number | undefined;
  const since = values.since ?? new Date().toISOString();
  let stopped = false;
  process.once("SIGINT", () => (stopped = true));
  let announced = false;
  while (!stopped) {
    const page = await fetchPage(target, queryString({ ...values, since: after === undefined ? since : undefined }, after === undefined ? {} : { after: String(after) }));
    if (!announced) {
      announced = true;
      process.stderr.write(`following the audit trail from ${since} (Ctrl-C stops)\n`);
    }
    print(page.items);
    const last = page.items.at(-1)?.sequence ?? page.next;
    if (last !== undefined) after = Math.max(after ?? 0, last);
    if (page.next === undefined) await new Promise((r) => setTimeout(r, 1_000));
  }
}
