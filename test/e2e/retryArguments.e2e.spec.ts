import type { NatsServer } from "@manifold/nats-server";
import { createMcpHandler, inputRequired, Server } from "@modelcontextprotocol/server";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { listen } from "../fixtures/modern-upstream.mjs";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { eventually } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

const MODERN = "2026-07-28";
const KEY_ENV = { GATEWAY_REQUEST_STATE_KEY: "env:MANIFOLD_SECRET_STATE_KEY", MANIFOLD_SECRET_STATE_KEY: "s".repeat(48) };

/** A 2026-07-28 upstream whose `transfer` asks for confirmation, then reports the arguments it actually ran with. */
async function serveTransfer() {
  const ran: unknown[] = [];
  const handler = createMcpHandler(() => {
    const server = new Server({ name: "bank", version: "1" }, { capabilities: { tools: {} } });
    server.setRequestHandler("tools/list", () => ({
      tools: [{ name: "transfer", description: "Moves money", inputSchema: { type: "object", properties: { amount: { type: "integer" }, to: { type: "string" } }, required: ["amount", "to"] } }],
    }));
    server.setRequestHandler("tools/call", async ({ params }, ctx) => {
      if (!ctx.mcpReq.inputResponses?.confirm) {
        return inputRequired({
          inputRequests: { confirm: { method: "elicitation/create", params: { mode: "form", message: "Confirm?", requestedSchema: { type: "object", properties: { ok: { type: "boolean" } }, required: ["ok"] } } } },
          requestState: "bank-state",
        });
      }
      ran.push(params.arguments);
      return { content: [{ type: "text", text: `transferred ${JSON.stringify(params.arguments)}` }] };
    });
    return server;
  }, { legacy: "reject" });
  return { ...(await listen(handler, 0)), ran };
}

describe("a 2026-07-28 retry repeats its call's arguments, so the audit record of the call that ran names them", () => {
  let nats: NatsServer;
  let stack: Stack;
  let bank: Awaited<ReturnType<typeof serveTransfer>>;
  let transfer: string;
  let key: string;

  const call = async (params: Record<string, unknown>) => {
    const res = await fetch(stack.mcpUrl("bankvs"), {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        authorization: `Bearer ${key}`,
        "mcp-protocol-version": MODERN,
        "mcp-method": "tools/call",
        "mcp-name": transfer,
      },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "tools/call",
        params: {
          name: transfer,
          ...params,
          _meta: {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientInfo": { name: "mallory", version: "1" },
            "io.modelcontextprotocol/clientCapabilities": { elicitation: { form: {} } },
          },
        },
      }),
    });
    const body = await res.text();
    return JSON.parse(body.startsWith("{") ? body : body.split("\n").find((l) => l.startsWith("data:"))!.slice(5));
  };

  beforeAll(async () => {
    nats = await startNats();
    [stack, bank] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", ...KEY_ENV }), serveTransfer()]);
    await registerUpstreams(stack, { name: "bank", transport: { type: "streamable-http", url: bank.url } });
    transfer = (await createVirtualServer(stack, "bankvs", [{ upstream: "bank", tool: "transfer" }]))["bank/transfer"]!;
    expect((await stack.admin.request("PUT", "/v1/virtual-servers/bankvs/audit", { recordValues: true, redactFields: [] })).status).toBe(200);
    await stack.admin.post("/v1/consumers", { name: "mallory" });
    key = (await stack.admin.post(`/v1/consumers/mallory/keys`, {})).body.key;
    await stack.admin.post("/v1/virtual-servers/bankvs/grants", { grantId: "mallory", subject: { consumer: "mallory" } });
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    await bank?.close();
    await nats?.stop();
  });

  test("attack: a retry with other arguments is refused; the honest retry completes, and its record names the arguments the upstream ran with", async () => {
    const started = await call({ arguments: { amount: 1_000_000, to: "mallory-offshore" } });
    expect(started.result?.resultType, JSON.stringify(started)).toBe("input_required");
    const answers = { requestState: started.result.requestState, inputResponses: { confirm: { action: "accept", content: { ok: true } } } };
    // Before: accepted; the upstream moved 1,000,000 to mallory-offshore and the call's "ok" record said {amount: 1, to: "alice"}.
    const forged = await call({ arguments: { amount: 1, to: "alice" }, ...answers });
    expect(forged.error?.code, JSON.stringify(forged)).toBe(-32602);
    expect(forged.error?.message).toContain("arguments");
    expect(bank.ran).toEqual([]);
    // The same arguments in another key order are the call's.
    const answered = await call({ arguments: { to: "mallory-offshore", amount: 1_000_000 }, ...answers });
    expect(answered.result?.resultType, JSON.stringify(answered)).toBe("complete");
    expect(bank.ran).toEqual([{ amount: 1_000_000, to: "mallory-offshore" }]);
    const records = await eventually(async () => {
      const { body } = await stack.admin.get("/v1/audit?tool=transfer&limit=100");
      return body.items.some((r: { outcome: string }) => r.outcome === "ok") ? body.items : undefined;
    });
    const completed = records.find((r: { outcome: string }) => r.outcome === "ok");
    expect(completed.arguments).toEqual({ amount: 1_000_000, to: "mallory-offshore" });
  });
});
