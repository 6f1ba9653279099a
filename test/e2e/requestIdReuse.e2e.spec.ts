import type { NatsServer } from "@manifold/nats-server";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { grantedConsumers } from "../helpers/catalog.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// attack4: a 2025 session reuses the JSON-RPC id of a call whose POST stream it closed while the call
// still runs (`PendingRequestIds.claim` frees the id at the disconnect). The SDK transport keeps the first
// request's id -> stream mapping, so the second request's stream is where the first call's answer goes.

const FIXTURE = new URL("../fixtures/taggedStdio.mjs", import.meta.url).pathname;
let nats: NatsServer;
let stack: Stack;
let dir: string;
let url: string;
let tool: string;
let keys: Record<string, string>;

beforeAll(async () => {
  nats = await startNats();
  dir = await mkdtemp(join(tmpdir(), "attack4-ids-"));
  stack = await startStack(nats.url, { GATEWAY_AUTH: "required" });
  await stack.admin.post("/v1/upstreams", { name: "tagged", transport: { type: "stdio", command: process.execPath, args: [FIXTURE], env: { CALL_LOG: join(dir, "calls.log") }, protocol: "2025" }, options: { callTimeoutMs: 60_000 } });
  const vs = await stack.admin.post("/v1/virtual-servers", { name: "ids", tools: [{ upstream: "tagged", tool: "tagged" }] });
  tool = vs.body.tools[0].exposedName as string;
  keys = await grantedConsumers(stack, "ids", ["alice", "carol"]);
  url = stack.mcpUrl("ids");
}, 60_000);
afterAll(async () => {
  await stack?.close();
  await nats?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const headers = (key: string, session?: string) => ({
  authorization: `Bearer ${key}`,
  "content-type": "application/json",
  accept: "application/json, text/event-stream",
  "mcp-protocol-version": "2025-06-18",
  ...(session ? { "mcp-session-id": session } : {}),
});

async function openSession(key: string): Promise<string> {
  const init = await fetch(url, { method: "POST", headers: headers(key), body: JSON.stringify({ jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "a4", version: "1" } } }) });
  await init.text();
  const session = init.headers.get("mcp-session-id")!;
  await (await fetch(url, { method: "POST", headers: headers(key, session), body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }) })).text();
  return session;
}

const post = (key: string, session: string, body: unknown, signal?: AbortSignal) => fetch(url, { method: "POST", headers: headers(key, session), body: JSON.stringify(body), signal });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every JSON-RPC message of an SSE or JSON answer. */
async function messagesOf(response: Response): Promise<any[]> {
  const text = await response.text();
  if ((response.headers.get("content-type") ?? "").includes("application/json")) return [JSON.parse(text)].flat();
  return text
    .split("\n")
    .filter((l) => l.startsWith("data:"))
    .map((l) => l.slice(5).trim())
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

const callBody = (id: string | number, tag: string, ms: number, progress = true) => ({ jsonrpc: "2.0", id, method: "tools/call", params: { name: tool, arguments: { tag, ms }, ...(progress ? { _meta: { progressToken: `tok-${tag}` } } : {}) } });

test("a request id reused while its first call still runs (its stream closed) is refused, and once that call ends it is free again", async () => {
  const session = await openSession(keys.alice!);
  // Call 1 ("first", 1.5 s), its stream closed after 300 ms: it runs on.
  const abort = new AbortController();
  const first = post(keys.alice!, session, callBody(7, "first", 1_500), abort.signal).then((r) => r.text()).catch(() => undefined);
  await sleep(300);
  abort.abort();
  await first;
  await sleep(100);
  // Call 2 under the same id ("second", 3 s).
  const t0 = Date.now();
  const second = await post(keys.alice!, session, callBody(7, "second", 3_000));
  const messages = await messagesOf(second);
  const elapsed = Date.now() - t0;
  const result = messages.find((m) => m.id === 7);
  const texts = result?.result?.content?.map((c: { text: string }) => c.text) ?? [];
  const foreignProgress = messages.filter((m) => m.method === "notifications/progress" && m.params?.message === "first").length;
  // Before: the second call got the abandoned call's 12 progress notifications and its result
  // "first" after 1,143 ms, and its own answer was dropped.
  expect(
    { texts, foreignProgress, status: second.status, code: messages[0]?.error?.data?.code },
    `the second call (tag "second", 3 s) was answered after ${elapsed} ms with ${JSON.stringify(texts)} and ${foreignProgress} progress notifications of the abandoned first call (status ${second.status}, ${messages.length} messages)`,
  ).toEqual({ texts: [], foreignProgress: 0, status: 409, code: "duplicate_request_id" });
  // The first call ends (1.5 s): the id is the session's to use again, and answers its own call.
  await sleep(1_500);
  const third = await messagesOf(await post(keys.alice!, session, callBody(7, "third", 10, false)));
  expect(third.find((m) => m.id === 7)?.result?.content?.map((c: { text: string }) => c.text)).toEqual(["third"]);
}, 30_000);

// The connector keeps one cancellation per call id (`<session>/<request id>`): a second call under
// the id of one still running replaces it there, so cancelling the id reaches only the newer call.
// Deleting a consumer cancels its calls by id ("a deleted consumer's calls are cancelled"): the
// older one runs on at the upstream to its end, after the revocation.
test("a deleted consumer's calls are all cancelled, also two that share a request id", async () => {
  const log = join(dir, "calls.log");
  const session = await openSession(keys.carol!);
  const abort = new AbortController();
  const first = post(keys.carol!, session, callBody(9, "carol-first", 4_000, false), abort.signal).then((r) => r.text()).catch(() => undefined);
  await sleep(300);
  abort.abort();
  await first;
  await sleep(100);
  const second = post(keys.carol!, session, callBody(9, "carol-second", 4_000, false)).then((r) => r.text()).catch(() => undefined);
  await sleep(500);
  const deletedAt = Date.now();
  expect((await stack.admin.request("DELETE", "/v1/consumers/carol")).status).toBe(204);
  await second;
  await sleep(5_000);
  const lines = (await readFile(log, "utf8")).split("\n").filter((l) => l.includes("carol-"));
  const completed = lines.filter((l) => l.startsWith("end "));
  expect(completed, `after consumer 'carol' was deleted (at +0 ms), the upstream saw: ${JSON.stringify(lines)} (${Date.now() - deletedAt} ms later): the call whose id was reused ran to its end`).toEqual([]);
}, 30_000);
