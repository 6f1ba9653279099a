import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { declaring, modernRequest } from "../helpers/modernRequests.js";
import { rawPost, SlowReaders, unreadOutcome, writesHeld } from "../helpers/slowReaders.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// helper-195: a 2026-07-28 call resumed by its retry (`inputResponses` and `requestState`) was checked
// against its caller's unread answer bytes only when the retry was admitted. Calls paused on a round
// and retried together all answer together: one caller's 8 resumed calls answering 4 MB, read
// slowly, were all written.
const KEY_ENV = { GATEWAY_REQUEST_STATE_KEY: "env:MANIFOLD_SECRET_STATE_KEY", MANIFOLD_SECRET_STATE_KEY: "r".repeat(48) };
const ASKS = { elicitation: { form: {} } };
const ANSWER_BYTES = 4_000_000;
const CALLS = 8;

describe("large answers of calls resumed together, read slowly", () => {
  let nats: NatsServer;
  let stack: Stack;
  let recording: RecordingUpstream;
  let key: string;
  let tool: string;
  const readers = new SlowReaders();
  let heldBytes: () => number;

  beforeAll(async () => {
    nats = await startNats({ extraConfig: ["max_payload: 8MB"] });
    [stack, recording] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", ...KEY_ENV }), startRecordingUpstream()]);
    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: recording.url } });
    const created = await stack.admin.post("/v1/virtual-servers", { name: "rounds", tools: [{ upstream: "rec", tool: "ask-then-wait" }], interactions: { elicitation: true } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    tool = created.body.tools[0].exposedName;
    key = (await grantedConsumers(stack, "rounds", ["hoarder"])).hoarder!;
    heldBytes = writesHeld(stack.gateway.app.server);
  }, 120_000);

  afterAll(async () => {
    readers.close();
    await stack?.close();
    await recording?.close();
    await nats?.stop();
  });

  test("attack: one consumer's resumed calls that answer together are bounded in unread bytes, as first calls are", async () => {
    const url = new URL(stack.mcpUrl("rounds"));
    const retries: string[] = [];
    for (let i = 0; i < CALLS; i++) {
      const args = { ms: 3_000, tag: `t${i}`, bytes: ANSWER_BYTES };
      const round = await modernRequest(url.href, key, "tools/call", { name: tool, arguments: args }, declaring(ASKS, false));
      expect(round.result?.resultType, JSON.stringify(round)).toBe("input_required");
      const inputResponses = Object.fromEntries(Object.keys(round.result!.inputRequests).map((k) => [k, { action: "accept", content: {} }]));
      const meta = { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": { name: "t", version: "1" }, "io.modelcontextprotocol/clientCapabilities": ASKS };
      retries.push(JSON.stringify({ jsonrpc: "2.0", id: i, method: "tools/call", params: { name: tool, arguments: args, inputResponses, requestState: round.result!.requestState, _meta: meta } }));
    }
    const headers = { authorization: `Bearer ${key}`, "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": tool };
    const before = heldBytes();
    const firsts = await readers.open(url, (i) => rawPost(url, headers, retries[i]!), CALLS, 20, true);
    const { answered, refused, holding } = await unreadOutcome(firsts, CALLS, heldBytes, before);

    console.log(`[measure] ${CALLS} resumed calls answering ${ANSWER_BYTES / 1e6} MB together, read 4 KB/100 ms by one consumer: ${answered} answered, ${refused} refused answers_unread; the gateway holds ${(holding / 2 ** 20).toFixed(0)} MiB to write`);
    expect(answered + refused).toBe(CALLS);
    expect(refused).toBeGreaterThan(0);
    expect(holding).toBeLessThan(16 * 2 ** 20 + 2 * ANSWER_BYTES);
  }, 120_000);
});
