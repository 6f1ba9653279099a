import type { NatsServer } from "@manifold/nats-server";
import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from "@modelcontextprotocol/client";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { LoggingMessageNotificationSchema, type LoggingLevel } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { serveModernHttp } from "../fixtures/modern-upstream.mjs";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";
import { everythingStdio } from "../helpers/upstreams.js";

const MODERN = "2026-07-28";
type Logged = { level: string; data: unknown };

/** A 1.32.2 agent that keeps every log message it receives. */
async function legacyAgent(url: string): Promise<{ client: Client; logs: Logged[] }> {
  const client = new Client({ name: "legacy-agent", version: "1.0.0" });
  const logs: Logged[] = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void logs.push({ level: n.params.level, data: n.params.data }));
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  return { client, logs };
}

describe("log messages reach the caller whose call logged them, at the level it asked for", () => {
  let nats: NatsServer;
  let stack: Stack;
  let modern: Awaited<ReturnType<typeof serveModernHttp>>;
  let names: Record<string, string>;

  beforeAll(async () => {
    nats = await startNats();
    [stack, modern] = await Promise.all([startStack(nats.url), serveModernHttp()]);
    await registerUpstreams(
      stack,
      { name: "modern", transport: { type: "streamable-http", url: modern.url } },
      { name: "everything", transport: everythingStdio() },
    );
    names = await createVirtualServer(stack, "logs", [
      { upstream: "modern", tool: "logs" },
      { upstream: "everything", tool: "toggle-simulated-logging" },
    ]);
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    await modern?.close();
    await nats?.stop();
  });

  describe("a 1.32.2 client (2025-11-25): logging/setLevel per session", () => {
    test("the virtual server declares logging; nothing is relayed before setLevel, then only the levels asked for, and never to another session", async () => {
      const [agent, bystander] = await Promise.all([legacyAgent(stack.mcpUrl("logs")), legacyAgent(stack.mcpUrl("logs"))]);
      try {
        expect(agent.client.getServerCapabilities()?.logging).toEqual({});
        expect((await agent.client.callTool({ name: names["modern/logs"]!, arguments: {} })).content).toEqual([{ type: "text", text: "logged" }]);
        expect(agent.logs).toEqual([]);

        await agent.client.setLoggingLevel("warning" satisfies LoggingLevel);
        await Promise.all([
          agent.client.callTool({ name: names["modern/logs"]!, arguments: {} }),
          bystander.client.callTool({ name: names["modern/logs"]!, arguments: {} }),
        ]);
        expect(agent.logs).toEqual([
          { level: "warning", data: "warning from the fixture" },
          { level: "error", data: "error from the fixture" },
        ]);
        expect(bystander.logs).toEqual([]);
      } finally {
        await Promise.all([agent.client.close(), bystander.client.close()]);
      }
    });

    test("a stdio upstream's log message during the only call on its session (server-everything)", async () => {
      const agent = await legacyAgent(stack.mcpUrl("logs"));
      try {
        await agent.client.setLoggingLevel("debug");
        const started = await agent.client.callTool({ name: names["everything/toggle-simulated-logging"]!, arguments: {} });
        expect(JSON.stringify(started)).toContain("Started simulated");
        // server-everything logs once at once (a random level), then every 5 s outside any call: those are not relayed.
        expect(agent.logs.length).toBe(1);
        expect(String(agent.logs[0]!.data)).toMatch(/-level message|level-message/);
        await agent.client.callTool({ name: names["everything/toggle-simulated-logging"]!, arguments: {} });
      } finally {
        await agent.client.close();
      }
    });
  });

  describe("a 2.4.0 client pinned to 2026-07-28: io.modelcontextprotocol/logLevel per request", () => {
    test("only a request naming a level gets log messages, at that level and above", async () => {
      const client = new ModernClient({ name: "modern-agent", version: "1.0.0" }, { versionNegotiation: { mode: { pin: MODERN } } });
      const logs: Logged[] = [];
      client.setNotificationHandler("notifications/message", (n) => void logs.push({ level: n.params.level, data: n.params.data }));
      await client.connect(new ModernTransport(new URL(stack.mcpUrl("logs"))));
      try {
        expect(client.getServerCapabilities()?.logging).toEqual({});
        await client.callTool({ name: names["modern/logs"]!, arguments: {} });
        expect(logs).toEqual([]);
        await client.callTool({ name: names["modern/logs"]!, arguments: {}, _meta: { "io.modelcontextprotocol/logLevel": "info" } });
        expect(logs).toEqual([
          { level: "info", data: "info from the fixture" },
          { level: "warning", data: "warning from the fixture" },
          { level: "error", data: "error from the fixture" },
        ]);
      } finally {
        await client.close();
      }
    });
  });
});
