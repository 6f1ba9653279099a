import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { serveModernHttp } from "../fixtures/modern-upstream.mjs";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

const MODERN = "2026-07-28";
const KEY_ENV = { GATEWAY_REQUEST_STATE_KEY: "env:MANIFOLD_SECRET_STATE_KEY", MANIFOLD_SECRET_STATE_KEY: "s".repeat(48) };
type Answer = { result?: { resultType?: string; requestState?: string; content?: { text?: string }[] }; error?: { code: number; message: string; data?: { reason?: string } } };

/**
 * What one caller holds (a round's requestState) is worth nothing to another: two consumers with
 * API keys on the same virtual server, authentication required.
 */
describe("a round belongs to the caller that started it", () => {
  let nats: NatsServer;
  let stack: Stack;
  let modern: Awaited<ReturnType<typeof serveModernHttp>>;
  let ask: string;
  const keys: Record<string, string> = {};

  /** One raw 2026-07-28 tools/call of `ask`, as `consumer`. */
  const call = async (consumer: string, params: Record<string, unknown> = {}): Promise<Answer> => {
    const res = await fetch(stack.mcpUrl("shared"), {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        authorization: `Bearer ${keys[consumer]}`,
        "mcp-protocol-version": MODERN,
        "mcp-method": "tools/call",
        "mcp-name": ask,
      },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "tools/call",
        params: {
          name: ask,
          arguments: {},
          ...params,
          _meta: {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientInfo": { name: consumer, version: "1" },
            "io.modelcontextprotocol/clientCapabilities": { elicitation: { form: {} } },
          },
        },
      }),
    });
    const body = await res.text();
    return JSON.parse(body.startsWith("{") ? body : body.split("\n").find((l) => l.startsWith("data:"))!.slice(5)) as Answer;
  };

  beforeAll(async () => {
    nats = await startNats();
    [stack, modern] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", ...KEY_ENV }), serveModernHttp()]);
    await registerUpstreams(stack, { name: "modern", transport: { type: "streamable-http", url: modern.url } });
    ask = (await createVirtualServer(stack, "shared", [{ upstream: "modern", tool: "ask" }]))["modern/ask"]!;
    for (const name of ["alice", "mallory"]) {
      await stack.admin.post("/v1/consumers", { name });
      keys[name] = (await stack.admin.post(`/v1/consumers/${name}/keys`, {})).body.key;
      await stack.admin.post("/v1/virtual-servers/shared/grants", { grantId: name, subject: { consumer: name } });
    }
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    await modern?.close();
    await nats?.stop();
  });

  test("another caller's valid requestState is refused; its owner's retry completes", async () => {
    const started = await call("alice");
    expect(started.result?.resultType, JSON.stringify(started)).toBe("input_required");
    const requestState = started.result!.requestState!;
    const stolen = await call("mallory", { requestState, inputResponses: { who: { action: "accept", content: { name: "Mallory" } } } });
    expect(stolen.error?.code, JSON.stringify(stolen)).toBe(-32602);
    expect(stolen.error?.data?.reason).toBe("invalid_request_state");
    expect(JSON.stringify(stolen)).not.toContain("Mallory");
    const answered = await call("alice", { requestState, inputResponses: { who: { action: "accept", content: { name: "Alice" } } } });
    expect(answered.result?.resultType, JSON.stringify(answered)).toBe("complete");
    expect(answered.result?.content?.[0]?.text).toBe('answered: {"action":"accept","content":{"name":"Alice"}}');
    // The round is over: the same state again is refused as spent, not reported as an upstream outage.
    const replayed = await call("alice", { requestState, inputResponses: { who: { action: "accept", content: { name: "Again" } } } });
    expect(replayed.error?.code, JSON.stringify(replayed)).toBe(-32602);
    // Named as the SDK's own refusal names it (data.reason), whichever part of Manifold refused it.
    expect(replayed.error?.data?.reason, JSON.stringify(replayed)).toBe("invalid_request_state");
    // The state tells its holder nothing of what is behind the gateway: no upstream, no connector replica.
    expect(Buffer.from(requestState.split(".")[0]!, "base64url").toString("latin1")).not.toContain("modern");
    expect(requestState).not.toContain("modern");
  });
  test("attack: two retries of one round at once: one completes, the other is refused as spent at once, not reported as a lost connector", async () => {
    const started = await call("alice");
    const requestState = started.result!.requestState!;
    const retry = (name: string) => call("alice", { requestState, inputResponses: { who: { action: "accept", content: { name } } } });
    const begun = performance.now();
    const answers = await Promise.all([retry("First"), retry("Second")]);
    const completed = answers.filter((a) => a.result?.resultType === "complete");
    const refused = answers.filter((a) => a.error);
    expect(completed, JSON.stringify(answers)).toHaveLength(1);
    expect(refused, JSON.stringify(answers)).toHaveLength(1);
    // Before: the second waited for heartbeats that never came (~2.4 s), then -32010 "connector_lost".
    expect(refused[0]!.error!.code, JSON.stringify(refused[0])).toBe(-32602);
    expect(refused[0]!.error!.data?.reason, JSON.stringify(refused[0])).toBe("invalid_request_state");
    expect(performance.now() - begun).toBeLessThan(1_500);
  });
});
