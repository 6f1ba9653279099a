import type { NatsServer } from "@manifold/nats-server";
import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, expect, test } from "vitest";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { createVirtualServer, registerUpstreams, rpcError } from "../helpers/catalog.js";
import { connectClient, connectHttp } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";
import { listening } from "../helpers/listening.js";
import { recordSpans } from "../helpers/spans.js";

// Tracing on: an upstream whose error page echoes the request's headers (a debug page, a proxy)
// answers a resource read, a prompt and a completion with it. The agent's error and the health
// reason name the status only; the connector's span for the request must too: spans go to a
// collector that more people read than the upstream's operator.

const SECRET = "sk-live-SPANATTACK-static-upstream-key-0123456789";
/**
 * A caller's pass-through credentials under names the registry calls credential-like
 * (`CREDENTIAL_NAME`: signature, passphrase) or in a credential's shape (a JWT, as Google IAP and
 * WSO2 send one in `X-Jwt-Assertion`).
 */
const PASSED = {
  "X-Jwt-Assertion": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzcGFuLWF0dGFjayJ9.c3Bhbi1hdHRhY2stc2lnbmF0dXJl",
  "X-Hub-Signature": "sha256=5b9e1f0c7a5b9e1f0c7a5b9e1f0c7a",
  "X-Passphrase": "span-attack-passphrase-0123456789",
};

/**
 * A 2025 Streamable HTTP upstream (no sessions) serving one prompt and one resource, each answered
 * with an HTTP 500 page echoing the request's headers, and one tool answered with a JSON-RPC error
 * that quotes them.
 */
async function startEchoingItems(): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer(async (req, res) => {
    if (req.method !== "POST") return void res.writeHead(405).end();
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const message = JSON.parse(Buffer.concat(chunks).toString()) as { id?: number; method: string };
    if (message.id === undefined) return void res.writeHead(202).end();
    const answer = (result: unknown) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ jsonrpc: "2.0", id: message.id, result }));
    };
    switch (message.method) {
      case "initialize":
        return answer({ protocolVersion: "2025-06-18", capabilities: { tools: {}, prompts: {}, resources: {}, completions: {} }, serverInfo: { name: "echoing", version: "1" } });
      case "tools/list":
        return answer({ tools: [{ name: "debug", inputSchema: { type: "object" } }] });
      case "tools/call":
        // A debug build's error: the request's headers, the caller's pass-through credentials among them.
        res.writeHead(200, { "content-type": "application/json" });
        return void res.end(JSON.stringify({ jsonrpc: "2.0", id: message.id, error: { code: -32000, message: `failed: ${JSON.stringify(req.headers)}` } }));
      case "prompts/list":
        return answer({ prompts: [{ name: "draft", arguments: [{ name: "topic" }] }] });
      case "resources/list":
        return answer({ resources: [{ uri: "doc://guide", name: "guide" }] });
      case "resources/templates/list":
        return answer({ resourceTemplates: [] });
      case "resources/read":
      case "prompts/get":
      case "completion/complete":
        res.writeHead(500, { "content-type": "text/plain" });
        return void res.end(`Internal error. Request headers: ${JSON.stringify(req.headers)}`);
      default:
        res.writeHead(200, { "content-type": "application/json" });
        return void res.end(JSON.stringify({ jsonrpc: "2.0", id: message.id, error: { code: -32601, message: "method not found" } }));
    }
  });
  return listening(server);
}

let nats: NatsServer;
let stack: Stack;
let upstream: Awaited<ReturnType<typeof startEchoingItems>>;
const logs: string[] = [];
const spans = recordSpans();

beforeAll(async () => {
  spans.register();
  nats = await startNats();
  [stack, upstream] = await Promise.all([startStack(nats.url, {}, { logs, secretsEnv: { MANIFOLD_SECRET_ITEMS_KEY: SECRET } }), startEchoingItems()]);
  await registerUpstreams(stack, {
    name: "echoing",
    transport: { type: "streamable-http", url: upstream.url, secretHeaders: { "X-Api-Key": "env:MANIFOLD_SECRET_ITEMS_KEY" }, protocol: "2025" },
    options: { passthroughHeaders: Object.keys(PASSED) },
  });
  const created = await stack.admin.post("/v1/virtual-servers", { name: "items", naming: { policy: "bare" }, prompts: [{ upstream: "echoing", prompt: "draft" }], resources: [{ upstream: "echoing", uri: "doc://guide" }] });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  await createVirtualServer(stack, "calls", [{ upstream: "echoing", tool: "debug" }]);
});

afterAll(async () => {
  await stack?.close();
  await upstream?.close();
  await nats?.stop();
  await spans[Symbol.asyncDispose]();
});

test("attack: an error page echoing the upstream's credential, answered to a read, a prompt or a completion, is in no span", async () => {
  await using agent = await connectHttp(stack.mcpUrl("items"));
  const resource = (await agent.listResources()).resources[0]!;
  const answers = await Promise.all([
    agent.readResource({ uri: resource.uri }).then(() => "answered", (e: Error) => e.message),
    agent.getPrompt({ name: "draft", arguments: { topic: "x" } }).then(() => "answered", (e: Error) => e.message),
    agent.complete({ ref: { type: "ref/prompt", name: "draft" }, argument: { name: "topic", value: "x" } }).then(() => "answered", (e: Error) => e.message),
  ]);
  // The agent hears the status, not the page.
  expect(answers.filter((a) => a.includes("500"))).toHaveLength(3);
  expect(answers.filter((a) => a.includes(SECRET))).toEqual([]);
  expect(spans.exporter.getFinishedSpans().filter((s) => s.status.code === 2).length).toBeGreaterThan(0);
  const leaking = spans.holding([SECRET]);
  expect(leaking.names, `${leaking.names.length} of ${leaking.searched} spans hold the credential`).toEqual([]);
  expect(logs.filter((l) => l.includes(SECRET))).toEqual([]);
});

test("attack: a caller's pass-through credential quoted in the upstream's JSON-RPC error is in no span", async () => {
  spans.exporter.reset();
  await using agent = await connectClient(
    new StreamableHTTPClientTransport(new URL(stack.mcpUrl("calls")), { requestInit: { headers: { "x-manifold-upstream-headers": JSON.stringify({ echoing: PASSED }) } } }),
  );
  const error = await rpcError(agent.callTool({ name: (await agent.listTools()).tools[0]!.name, arguments: {} }));
  // The credentials went upstream (the error quotes the headers it got), and come back withheld.
  expect(error.message).toContain("x-passphrase");
  const values = Object.values(PASSED);
  const leaking = spans.holding(values);
  expect(leaking.names, `${leaking.names.length} of ${leaking.searched} spans hold a pass-through credential`).toEqual([]);
  expect(values.filter((v) => `${error.message} ${JSON.stringify(error.data)}`.includes(v))).toEqual([]);
  expect(logs.filter((l) => values.some((v) => l.includes(v)))).toEqual([]);
});
