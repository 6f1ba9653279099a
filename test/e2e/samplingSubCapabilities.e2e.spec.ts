import type { NatsServer } from "@manifold/nats-server";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CreateMessageRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { declaring, modernRequest } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

const KEY_ENV = { GATEWAY_REQUEST_STATE_KEY: "env:MANIFOLD_SECRET_STATE_KEY", MANIFOLD_SECRET_STATE_KEY: "s".repeat(48) };
const textOf = (result: unknown) => ((result as { content?: { text?: string }[] }).content ?? []).map((c) => c.text ?? "").join("\n");

/**
 * Attack (helper-187): client/sampling (2025-11-25): "Servers MUST NOT send tool-enabled sampling
 * requests to Clients that have not declared support for tool use via the `sampling.tools`
 * capability", and `includeContext` other than "none" SHOULD NOT be used unless the client declares
 * `sampling.context`. Manifold is the agent's server; an upstream asked sampling with `tools` or
 * `includeContext: "allServers"` and the request reached an agent that declared only `sampling: {}`.
 */
describe("sampling with tools or context reaches only an agent that declared it", () => {
  let nats: NatsServer;
  let rec: RecordingUpstream;
  let stack: Stack;
  /** The exposed `sample-with`, ann's key, the virtual server's URL. */
  let tool: string, key: string, url: string;

  beforeAll(async () => {
    [nats, rec] = await Promise.all([startNats(), startRecordingUpstream("rec")]);
    stack = await startStack(nats.url, { GATEWAY_AUTH: "required", ...KEY_ENV });
    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: rec.url } });
    tool = (await createVirtualServer(stack, "sample", [{ upstream: "rec", tool: "sample-with" }]))["rec/sample-with"]!;
    url = stack.mcpUrl("sample");
    const res = await stack.admin.request("PUT", "/v1/virtual-servers/sample/interactions", { sampling: true });
    expect(res.status, JSON.stringify(res.body)).toBeLessThan(300);
    key = (await grantedConsumers(stack, "sample", ["ann"])).ann!;
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    await rec?.close();
    await nats?.stop();
  });

  /** A 1.x agent declaring `sampling`; what it was asked, and each call's result text. */
  async function ask(sampling: Record<string, unknown>, kinds: ("tools" | "context")[]): Promise<{ asked: unknown[]; texts: string[] }> {
    const agent = new Client({ name: "ann", version: "1" }, { capabilities: { sampling } });
    const asked: unknown[] = [];
    agent.setRequestHandler(CreateMessageRequestSchema, async (request) => {
      asked.push(request.params);
      return { role: "assistant", content: { type: "text", text: "sunny" }, model: "agent-model", stopReason: "endTurn" };
    });
    await agent.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${key}` } } }));
    try {
      const texts: string[] = [];
      for (const kind of kinds) texts.push(textOf(await agent.callTool({ name: tool, arguments: { with: kind } })));
      return { asked, texts };
    } finally {
      await agent.close();
    }
  }

  test("attack: an agent that declared only sampling: {} is not sent tools or includeContext; the upstream is refused", async () => {
    const { asked, texts } = await ask({}, ["tools", "context"]);
    // Before: 2 requests reached the agent (tools, includeContext "allServers"); both upstream calls "sampled: agent-model".
    expect(asked).toEqual([]);
    for (const text of texts) expect(text).toMatch(/^refused: /);
  }, 60_000);

  test("an agent that declared sampling.tools and sampling.context is still sent them", async () => {
    const { asked, texts } = await ask({ tools: {}, context: {} }, ["tools", "context"]);
    expect(asked).toHaveLength(2);
    expect(asked[0]).toMatchObject({ tools: [{ name: "weather" }], toolChoice: { mode: "auto" } });
    expect(asked[1]).toMatchObject({ includeContext: "allServers" });
    expect(texts).toEqual(["sampled: agent-model", "sampled: agent-model"]);
  }, 60_000);

  test("2026-07-28: the inputRequests of an agent declaring sampling: {} hold no tool or context sampling", async () => {
    for (const kind of ["tools", "context"] as const) {
      const answer = await modernRequest(url, key, "tools/call", { name: tool, arguments: { with: kind } }, declaring({ sampling: {} }, false));
      // Before: input_required with the sampling/createMessage carrying tools / includeContext.
      expect(JSON.stringify(answer.result?.inputRequests ?? {})).not.toMatch(/sampling\/createMessage/);
    }
    const declared = await modernRequest(url, key, "tools/call", { name: tool, arguments: { with: "tools" } }, declaring({ sampling: { tools: {} } }, false));
    expect(declared.result?.resultType).toBe("input_required");
    expect(Object.values(declared.result?.inputRequests ?? {})).toMatchObject([{ method: "sampling/createMessage", params: { tools: [{ name: "weather" }] } }]);
  }, 60_000);
});
