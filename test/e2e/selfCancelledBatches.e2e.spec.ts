import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { postAlone } from "../helpers/itemStreams.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// attack (helper-150): a 2025-03-26 batch that cancels one of its own requests
// (`[{id: 6, method: "ping"}, {method: "notifications/cancelled", params: {requestId: 6}}]`). The
// 1.x SDK aborts the request's handler and sends nothing for it, so the batch's POST is never
// answered: not even its headers go out. The gateway answers a cancelled request itself
// (`answerCancelled`, cancelledStreams.e2e), but it tried before the SDK had taken the batch, when
// the request had no stream yet, and the attempt was dropped. A ping is no call, so no bound held
// these POSTs, and at the replica's connection bound a connection whose answer is under way is
// never the one to give way: one consumer's hung batches held every connection, and another
// tenant's new connection was refused (measured below with GATEWAY_MAX_CONNECTIONS=32).

const MAX_CONNECTIONS = 32;
let nats: NatsServer;
let stack: Stack;
let recording: RecordingUpstream;
let tool: string;
let keys: Record<string, string>;

beforeAll(async () => {
  nats = await startNats();
  [stack, recording] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", GATEWAY_MAX_CONNECTIONS: String(MAX_CONNECTIONS) }), startRecordingUpstream()]);
  await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: recording.url } });
  tool = (await createVirtualServer(stack, "shared", [{ upstream: "rec", tool: "echo" }]))["rec/echo"]!;
  keys = await grantedConsumers(stack, "shared", ["mallory", "eve"]);
}, 60_000);

afterAll(async () => {
  await stack?.close();
  await recording?.close();
  await nats?.stop();
});

const headers = (key: string, session?: string) => ({
  authorization: `Bearer ${key}`,
  "content-type": "application/json",
  accept: "application/json, text/event-stream",
  "mcp-protocol-version": "2025-03-26",
  ...(session ? { "mcp-session-id": session } : {}),
});

const post = (key: string, session: string | undefined, body: unknown, timeoutMs: number) => postAlone(stack.mcpUrl("shared"), headers(key, session), body, timeoutMs);

async function openSession(key: string): Promise<string> {
  const init = await fetch(stack.mcpUrl("shared"), { method: "POST", headers: headers(key), body: JSON.stringify({ jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-03-26", capabilities: {}, clientInfo: { name: "a", version: "1" } } }) });
  await init.text();
  const session = init.headers.get("mcp-session-id")!;
  await (await fetch(stack.mcpUrl("shared"), { method: "POST", headers: headers(key, session), body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }) })).text();
  return session;
}

test(`attack: ${MAX_CONNECTIONS} batches each cancelling its own ping are answered, and another tenant's new connection is served`, async () => {
  const session = await openSession(keys.mallory!);
  const batches = Array.from({ length: MAX_CONNECTIONS }, (_, i) =>
    post(keys.mallory!, session, [{ jsonrpc: "2.0", id: 100 + i, method: "ping" }, { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 100 + i } }], 3_000),
  );
  await new Promise((r) => setTimeout(r, 500));
  const victim = await post(keys.eve!, undefined, { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-03-26", capabilities: {}, clientInfo: { name: "v", version: "1" } } }, 2_000);
  const answers = await Promise.all(batches);
  const answered = answers.filter((a) => a.status === 200).length;
  const cancelled = answers.filter((a) => /"cancelled":true/.test(a.text)).length;
  const figures = `${MAX_CONNECTIONS} batches [ping, cancel that ping]: ${answered} answered (${cancelled} with the cancellation); another tenant's initialize on a new connection: HTTP ${victim.status} ${victim.text.slice(0, 80)}`;
  // Measured before the fix: 0 answered (each open until its client gave up), the other tenant's connection reset (status 0, ECONNRESET).
  expect(answered, figures).toBe(MAX_CONNECTIONS);
  expect(cancelled, figures).toBe(MAX_CONNECTIONS);
  expect(victim.status, figures).toBe(200);
}, 60_000);

test("a batch cancelling one of its own calls answers the others, and that one as cancelled", async () => {
  const session = await openSession(keys.mallory!);
  const answer = await post(
    keys.mallory!,
    session,
    [
      { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: tool, arguments: { message: "kept" } } },
      { jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: tool, arguments: { message: "dropped" } } },
      { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 2 } },
    ],
    5_000,
  );
  const figures = `batch [call 1, call 2, cancel 2]: HTTP ${answer.status} ${answer.text.slice(0, 400)}`;
  expect(answer.status, figures).toBe(200);
  expect(answer.text, figures).toContain("kept");
  expect(answer.text, figures).toMatch(/"id":2[^\n]*"cancelled":true|"cancelled":true[^\n]*"id":2/);
}, 60_000);
