import type { NatsServer } from "@manifold/nats-server";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { afterAll, beforeAll, expect, test } from "vitest";
import { z } from "zod";
import { serveSessions, type SessionServer } from "../fixtures/sessionServer.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { connectWithKey, eventually } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// Where a virtual server records values, the fields it names are redacted: also where the same
// fields travel as JSON text. A tool with structured output SHOULD also return it serialized in a
// text block (MCP, tools: "Structured Content"), and many tools answer JSON only as text; an
// agent's argument may be a JSON document in a string. The field was blanked in one place and
// recorded in the other.

const PASSWORD = "pw-4f9a1c7e2b";
const TOKEN = "tok-8d3e6b0a51";
const NESTED = "nested-c2a7f9e114";

let nats: NatsServer;
let stack: Stack;
let upstream: SessionServer<McpServer>;
let names: Record<string, string>;
let keys: Record<string, string>;

beforeAll(async () => {
  nats = await startNats();
  upstream = await serveSessions(() => {
    const server = new McpServer({ name: "login-upstream", version: "1.0.0" });
    server.registerTool(
      "login",
      { description: "Signs in", inputSchema: { user: z.string(), password: z.string(), profile: z.string().optional() }, outputSchema: { user: z.string(), token: z.string() } },
      async ({ user }) => {
        const structured = { user, token: TOKEN };
        // As the specification asks: the structured result serialized in a text block too.
        return { content: [{ type: "text", text: JSON.stringify(structured) }], structuredContent: structured };
      },
    );
    return server;
  });
  stack = await startStack(nats.url, { GATEWAY_AUTH: "required" });
  await registerUpstreams(stack, { name: "auth", transport: { type: "streamable-http", url: upstream.url } });
  names = await createVirtualServer(stack, "signin", [{ upstream: "auth", tool: "login" }]);
  const setting = await stack.admin.request("PUT", "/v1/virtual-servers/signin/audit", { recordValues: true, redactFields: ["password", "token"] });
  expect(setting.status).toBe(200);
  keys = await grantedConsumers(stack, "signin", ["alice"]);
});

afterAll(async () => {
  await stack?.close();
  await upstream?.close();
  await nats?.stop();
});

test("attack: a redacted field is not recorded through the JSON text that repeats it", async () => {
  await using client = await connectWithKey(stack.mcpUrl("signin"), keys.alice!);
  const profile = JSON.stringify({ theme: "dark", nested: { password: NESTED } });
  const result = await client.callTool({ name: names["auth/login"]!, arguments: { user: "alice", password: PASSWORD, profile } });
  // The agent gets its answer unchanged: redaction is the record's only.
  expect((result.content as { text: string }[])[0]!.text).toContain(TOKEN);
  const record = await eventually(async () => (await stack.admin.get("/v1/audit?consumer=alice")).body.items[0] as Record<string, any> | undefined);
  expect(record.outcome).toBe("ok");
  expect(record.arguments.password).toBe("[redacted]");
  expect(record.result.structuredContent.token).toBe("[redacted]");
  const text = JSON.stringify(record);
  // Before: the token in the result's text block, and the password inside the `profile` argument's JSON.
  expect(text).not.toContain(TOKEN);
  expect(text).not.toContain(NESTED);
  expect(text).not.toContain(PASSWORD);
  // What is not named stays readable, in the text as in the structure.
  expect(JSON.parse(record.result.content[0].text)).toEqual({ user: "alice", token: "[redacted]" });
  expect(JSON.parse(record.arguments.profile)).toEqual({ theme: "dark", nested: { password: "[redacted]" } });
});
