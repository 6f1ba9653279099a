import { setTimeout as sleep } from "node:timers/promises";

const MODERN = { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": { name: "t", version: "1" }, "io.modelcontextprotocol/clientCapabilities": {} };

export interface CallOutcome {
  ok: boolean;
  /** The error's code, with its `data.reason` after a slash when it has one: `upstream_unavailable/connector_lost`. */
  code?: string;
  message?: string;
  ms: number;
}

/** One 2026-07-28 tools/call of the recording upstream's `big` tool, answered with `bytes` of text, read at once. */
export async function callBig(url: string, key: string, tool: string, bytes: number): Promise<CallOutcome> {
  const started = performance.now();
  try {
    const res = await fetch(url, {
      method: "POST",
      headers: {
        authorization: `Bearer ${key}`,
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        "mcp-protocol-version": "2026-07-28",
        "mcp-method": "tools/call",
        "mcp-name": tool,
      },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: tool, arguments: { bytes }, _meta: MODERN } }),
    });
    const text = await res.text();
    const ms = Math.round(performance.now() - started);
    if (res.status === 200 && text.includes('"result"') && text.length >= bytes) return { ok: true, ms };
    const body = JSON.parse(text.slice(text.indexOf("{"))) as { error?: { message?: string; data?: { code?: string; reason?: string } } };
    const data = body.error?.data;
    return { ok: false, code: data?.code ? `${data.code}${data.reason ? `/${data.reason}` : ""}` : `http ${res.status}`, message: body.error?.message, ms };
  } catch (error) {
    return { ok: false, code: "client_error", message: String(error), ms: Math.round(performance.now() - started) };
  }
}

/** How many outcomes had each code (`ok` for answered ones). */
export const tally = (outcomes: CallOutcome[]) =>
  outcomes.reduce<Record<string, number>>((t, o) => ((t[o.ok ? "ok" : o.code!] = (t[o.ok ? "ok" : o.code!] ?? 0) + 1), t), {});

/**
 * A process's event-loop lag seen from outside: `GET url` (a health route answered without I/O)
 * one at a time, 20 ms apart, until stopped; the slowest answer approximates its longest stall.
 */
export function lagProbe(url: string): { stop(): Promise<{ maxMs: number; p99Ms: number }> } {
  const samples: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const started = performance.now();
      await fetch(url).then((r) => r.arrayBuffer(), () => undefined);
      samples.push(performance.now() - started);
      await sleep(20);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      const sorted = samples.sort((a, b) => a - b);
      return { maxMs: Math.round(sorted.at(-1) ?? 0), p99Ms: Math.round(sorted[Math.floor(sorted.length * 0.99)] ?? 0) };
    },
  };
}
