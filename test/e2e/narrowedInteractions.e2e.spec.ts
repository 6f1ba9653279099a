import type { NatsServer } from "@manifold/nats-server";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { declaring, modernRequest } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

const KEY_ENV = { GATEWAY_REQUEST_STATE_KEY: "env:MANIFOLD_SECRET_STATE_KEY", MANIFOLD_SECRET_STATE_KEY: "n".repeat(48) };
const FORM = { elicitation: { form: {} } };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Attack (helper-104): a 2025 call asks its agent in rounds (`ask-twice`: two questions, relayed
 * one round at a time). While the agent answers the first, the admin turns the virtual server's
 * elicitation off (`PUT …/interactions`). The call's later rounds were put to the agent with what
 * was allowed when the call began: the second question reached the agent after the setting said
 * no upstream may ask it anything.
 */
describe("a 2025 call's later rounds follow the virtual server's interactions as they are now", () => {
  let nats: NatsServer;
  let stack: Stack;
  let rec: RecordingUpstream;
  let names: Record<string, string>;
  let keys: Record<string, string>;
  let url: string;

  beforeAll(async () => {
    nats = await startNats();
    [stack, rec] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", ...KEY_ENV }), startRecordingUpstream("rec")]);
    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: rec.url } });
    names = await createVirtualServer(stack, "ask", [
      { upstream: "rec", tool: "ask-twice" },
      { upstream: "rec", tool: "ask-then-wait" },
    ]);
    url = stack.mcpUrl("ask");
    keys = await grantedConsumers(stack, "ask", ["dave"]);
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    await rec?.close();
    await nats?.stop();
  });

  test("attack: the question asked after elicitation was turned off does not reach the agent", async () => {
    const dave = new Client({ name: "dave", version: "1" }, { capabilities: FORM });
    await dave.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${keys.dave}` } } }));
    const asked: string[] = [];
    dave.setRequestHandler(ElicitRequestSchema, async (request) => {
      asked.push(request.params.message);
      if (asked.length === 1) {
        const res = await stack.admin.request("PUT", "/v1/virtual-servers/ask/interactions", { elicitation: false });
        expect(res.status, JSON.stringify(res.body)).toBeLessThan(300);
        // Until a new call's agent is no longer asked (the gateway has the setting).
        for (let i = 0; i < 200; i++) {
          const probe = await modernRequest(url, keys.dave!, "tools/call", { name: names["rec/ask-then-wait"], arguments: { ms: 1, tag: "probe" } }, declaring(FORM, false));
          if (probe.result?.resultType !== "input_required") break;
          await sleep(10);
        }
      }
      return { action: "accept", content: {} };
    });
    try {
      await dave.callTool({ name: names["rec/ask-twice"]!, arguments: {} }).catch(() => undefined);
      // Before: ["First", "Second"].
      expect(asked).toEqual(["First"]);
    } finally {
      await dave.close();
    }
  }, 60_000);
});
