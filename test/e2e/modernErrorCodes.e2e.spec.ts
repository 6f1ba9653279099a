import type { NatsServer } from "@manifold/nats-server";
import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from "@modelcontextprotocol/client";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { serveSessions, type SessionServer } from "../fixtures/sessionServer.js";
import { createVirtualServer, grantedConsumers, registerUpstreams, rpcError } from "../helpers/catalog.js";
import { MODERN } from "../helpers/modernRequests.js";
import { startNats, type Stack } from "../helpers/stack.js";
import { startVaultStack } from "../helpers/vaultStack.js";

/** The codes MCP 2026-07-28 lets a server send (basic/index.mdx, "Error Codes"): JSON-RPC's own, the three the revision defines, and anything outside JSON-RPC's reserved range. */
const allowed = (code: number) => [-32700, -32600, -32601, -32602, -32603, -32020, -32021, -32022].includes(code) || code < -32768 || code > -32000;

/** Every JSON-RPC error an agent's `fetch` read, with the HTTP status it came with (JSON answers and SSE events alike). */
interface Seen {
  status: number;
  error: { code: number; message: string; data?: Record<string, unknown> };
}

/** A `fetch` that reads every answer the agent gets before the SDK does, and keeps its errors. */
const recordingFetch =
  (seen: Seen[]): typeof fetch =>
  async (input, init) => {
    const response = await fetch(input, init);
    const type = response.headers.get("content-type") ?? "";
    if (type.includes("application/json")) {
      const body = (await response.clone().json()) as { error?: Seen["error"] } | { error?: Seen["error"] }[];
      for (const message of Array.isArray(body) ? body : [body]) if (message.error) seen.push({ status: response.status, error: message.error });
    } else if (type.includes("text/event-stream")) {
      // A stream is read on its own copy, as it arrives: a listen stream stays open.
      void (async () => {
        let text = "";
        for await (const chunk of response.clone().body! as unknown as AsyncIterable<Uint8Array>) {
          text += Buffer.from(chunk).toString();
          const events = text.split("\n\n");
          text = events.pop()!;
          for (const event of events) {
            const data = event.split("\n").find((line) => line.startsWith("data:"));
            const message = data ? (JSON.parse(data.slice(5)) as { error?: Seen["error"] }) : undefined;
            if (message?.error) seen.push({ status: response.status, error: message.error });
          }
        }
      })().catch(() => undefined);
    }
    return response;
  };

/**
 * MCP 2026-07-28 ("Error Codes"): -32020..-32099 is the specification's own (only -32020, -32021 and
 * -32022 are defined), -32000..-32019 is legacy (new implementations SHOULD NOT use it), -32042 MUST
 * NOT be emitted, and new codes SHOULD be outside -32768..-32000. A 2.4 client pinned to 2026-07-28
 * meets each of Manifold's refusals a caller can cause (an upstream down, a rate limit, a listen past
 * its bound, an unknown virtual server, an upstream needing the user's consent), on the fast path and
 * on the SDK lane: every code on its wire must be one the revision allows. Before, Manifold sent its
 * 2025 numbers to both eras (-32010, -32029, -32031, -32044, -32042).
 */
describe.each(["on", "off"])("error codes a 2026-07-28 agent is sent (fast path %s)", (fastPath) => {
  let nats: NatsServer;
  let stack: Stack;
  let docs: SessionServer<McpServer>;
  let flaky: SessionServer<McpServer>;
  let keys: Record<string, string>;
  let tools: Record<string, string>;

  const agent = async (key: string, seen: Seen[], capabilities: Record<string, unknown> = {}, virtualServer = "vs") => {
    const client = new ModernClient({ name: "modern-agent", version: "1.0.0" }, { capabilities, versionNegotiation: { mode: { pin: MODERN } } });
    await client.connect(new ModernTransport(new URL(stack.mcpUrl(virtualServer)), { requestInit: { headers: { authorization: `Bearer ${key}` } }, fetch: recordingFetch(seen) }));
    return client;
  };
  const serverOf = (name: string) => () => {
    const server = new McpServer({ name, version: "1.0.0" });
    server.registerTool("whoami", { description: "Says whose account it acts for" }, async () => ({ content: [{ type: "text", text: "someone" }] }));
    return server;
  };

  beforeAll(async () => {
    nats = await startNats();
    [docs, flaky] = await Promise.all([serveSessions(serverOf("docs")), serveSessions(serverOf("flaky"))]);
    stack = await startVaultStack(nats.url, { secretsEnv: { MANIFOLD_SECRET_SERVICE: "svc-key-modern-codes" }, env: { GATEWAY_FAST_PATH: fastPath, GATEWAY_MAX_LISTENS_PER_PRINCIPAL: "1" } });
    await registerUpstreams(
      stack,
      // A per-user upstream (the consent case); its service credential lets the connector list it.
      { name: "docs", transport: { type: "streamable-http", url: docs.url, secretHeaders: { "X-Api-Key": "env:MANIFOLD_SECRET_SERVICE" }, auth: { type: "oauth", clientId: "manifold", issuer: "http://127.0.0.1:9/" } } },
      { name: "flaky", transport: { type: "streamable-http", url: flaky.url } },
    );
    tools = await createVirtualServer(stack, "vs", [{ upstream: "docs", tool: "whoami" }, { upstream: "flaky", tool: "whoami" }]);
    keys = await grantedConsumers(stack, "vs", ["alice", "lister"]);
    // One call a minute: the second is refused.
    await stack.admin.post("/v1/consumers", { name: "rita" });
    keys.rita = (await stack.admin.post("/v1/consumers/rita/keys", {})).body.key;
    expect((await stack.admin.post("/v1/virtual-servers/vs/grants", { grantId: "rita", subject: { consumer: "rita" }, rateLimitPerMinute: 1 })).status).toBe(201);
  });

  afterAll(async () => {
    await stack?.close();
    await Promise.all([docs?.close(), flaky?.close()]);
    await nats?.stop();
  });

  test("an upstream that needs the user's consent, to an agent without elicitation.url: 400 -32021 naming the capability, nothing of 2025's", async () => {
    // `{}` is served by the fast path (nothing to ask the agent), `elicitation.form` by the SDK lane.
    const seen: Seen[] = [];
    const thrown: number[] = [];
    for (const capabilities of [{}, { elicitation: { form: {} } }]) {
      const client = await agent(keys.alice!, seen, capabilities);
      thrown.push((await rpcError(client.callTool({ name: tools["docs/whoami"]!, arguments: {} }))).code);
      await client.close();
    }
    const wire = seen.map((s) => `${s.status} ${s.error.code} ${JSON.stringify(s.error.data)}`);
    expect(thrown, JSON.stringify(wire)).toEqual([-32021, -32021]);
    expect(seen, JSON.stringify(wire)).toHaveLength(2);
    for (const { status, error } of seen) {
      expect(status).toBe(400);
      expect(error.code).toBe(-32021);
      expect(error.data).toMatchObject({ code: "upstream_authorization_required", upstream: "docs", requiredCapabilities: { elicitation: { url: {} } } });
      expect(JSON.stringify(error.data)).not.toContain("elicitationId");
      expect(error.data).not.toHaveProperty("elicitations");
    }
  });

  test("a rate limit, a listen past its bound, an unknown virtual server and an upstream down: codes outside JSON-RPC's reserved range, data.code as before", async () => {
    const seen: Seen[] = [];
    const rita = await agent(keys.rita!, seen);
    await rita.callTool({ name: tools["flaky/whoami"]!, arguments: {} });
    await rpcError(rita.callTool({ name: tools["flaky/whoami"]!, arguments: {} }));
    await rita.close();

    const lister = await agent(keys.lister!, seen);
    const first = await lister.listen({ toolsListChanged: true });
    await rpcError(lister.listen({ toolsListChanged: true }));
    await first.close();
    await lister.close();

    // Its connect is its first request (`server/discover`), refused.
    await expect(agent(keys.alice!, seen, {}, "nope")).rejects.toThrow();

    await flaky.close();
    const alice = await agent(keys.alice!, seen);
    await rpcError(alice.callTool({ name: tools["flaky/whoami"]!, arguments: {} }));
    await alice.close();

    const codes = seen.map((s) => `${s.status} ${s.error.code} ${String(s.error.data?.code)}`);
    expect(new Set(seen.map((s) => s.error.data?.code)), JSON.stringify(codes)).toEqual(new Set(["rate_limited", "too_many_streams", "unknown_virtual_server", "upstream_unavailable"]));
    const refused = seen.filter((s) => !allowed(s.error.code));
    expect(refused.map((s) => `${s.error.code} ${String(s.error.data?.code)}`), JSON.stringify(codes)).toEqual([]);
  });
});
