import type { NatsServer } from "@manifold/nats-server";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { grantedConsumers } from "../helpers/catalog.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// attack4: a 2025 call served by the SDK lane (a progress token, a session log level, a batch) and
// cancelled with `notifications/cancelled`: the 1.x SDK sends no response for a cancelled request,
// so its POST stream is never ended by the gateway. The open response is held against
// GATEWAY_MAX_CALLS_PER_PRINCIPAL for ever, and a batch's other answers wait behind it.

const FIXTURE = new URL("../fixtures/taggedStdio.mjs", import.meta.url).pathname;
const BOUND = 4;
let nats: NatsServer;
let stack: Stack;
let url: string;
let tool: string;
let keys: Record<string, string>;
let dir: string;

beforeAll(async () => {
  nats = await startNats();
  dir = await mkdtemp(join(tmpdir(), "attack4-cancel-"));
  stack = await startStack(nats.url, { GATEWAY_AUTH: "required", GATEWAY_MAX_CALLS_PER_PRINCIPAL: String(BOUND) });
  await stack.admin.post("/v1/upstreams", { name: "tagged", transport: { type: "stdio", command: process.execPath, args: [FIXTURE], env: { CALL_LOG: join(dir, "calls.log") }, protocol: "2025" }, options: { callTimeoutMs: 60_000 } });
  const vs = await stack.admin.post("/v1/virtual-servers", { name: "cancels", tools: [{ upstream: "tagged", tool: "tagged" }] });
  tool = vs.body.tools[0].exposedName as string;
  keys = await grantedConsumers(stack, "cancels", ["agent", "batcher"]);
  url = stack.mcpUrl("cancels");
}, 60_000);
afterAll(async () => {
  await stack?.close();
  await nats?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const headers = (key: string, session?: string, version = "2025-06-18") => ({
  authorization: `Bearer ${key}`,
  "content-type": "application/json",
  accept: "application/json, text/event-stream",
  "mcp-protocol-version": version,
  ...(session ? { "mcp-session-id": session } : {}),
});

async function openSession(key: string, version = "2025-06-18"): Promise<string> {
  const init = await fetch(url, { method: "POST", headers: headers(key, undefined, version), body: JSON.stringify({ jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: version, capabilities: {}, clientInfo: { name: "a4", version: "1" } } }) });
  await init.text();
  const session = init.headers.get("mcp-session-id")!;
  await (await fetch(url, { method: "POST", headers: headers(key, session, version), body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }) })).text();
  return session;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const call = (id: number, tag: string, ms: number) => ({ jsonrpc: "2.0", id, method: "tools/call", params: { name: tool, arguments: { tag, ms }, _meta: { progressToken: `p${id}` } } });
const cancel = (id: number) => ({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: id, reason: "user" } });

/** Reads a response to its end; resolves with the ms it took, or undefined if still open after `waitMs`. */
async function endsWithin(response: Response, waitMs: number): Promise<{ ms: number | undefined; text: string }> {
  const t0 = Date.now();
  let text = "";
  const reader = response.body!.getReader();
  const done = (async () => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return Date.now() - t0;
      text += new TextDecoder().decode(value);
    }
  })().catch(() => undefined);
  const ms = await Promise.race([done, sleep(waitMs).then(() => undefined)]);
  if (ms === undefined) await reader.cancel().catch(() => undefined);
  return { ms, text };
}

test("a cancelled 2025 call's stream ends and no longer counts against the caller's calls in flight", async () => {
  const key = keys.agent!;
  const session = await openSession(key);
  const responses: Response[] = [];
  for (let id = 1; id <= BOUND; id++) {
    const response = await fetch(url, { method: "POST", headers: headers(key, session), body: JSON.stringify(call(id, `c${id}`, 60_000)) });
    responses.push(response);
    await sleep(200);
    await (await fetch(url, { method: "POST", headers: headers(key, session), body: JSON.stringify(cancel(id)) })).text();
  }
  // The client reads on, as a real one does, for 10 s; a new call meanwhile, after 3 s.
  const ending = responses.map((r) => endsWithin(r, 10_000));
  await sleep(3_000);
  const next = await fetch(url, { method: "POST", headers: headers(key, session), body: JSON.stringify({ jsonrpc: "2.0", id: 99, method: "tools/call", params: { name: tool, arguments: { tag: "next", ms: 10 } } }) });
  const nextText = await next.text();
  const ends = await Promise.all(ending);
  const open = ends.flatMap((e, i) => (e.ms === undefined ? [i + 1] : []));
  const upstream = (await readFile(join(dir, "calls.log"), "utf8")).split("\n").filter((l) => /^\w+ c\d$/.test(l));
  expect(
    { open, nextStatus: next.status },
    `${open.length} of ${BOUND} cancelled calls' POST streams were still open 10 s after their cancellation (ids ${JSON.stringify(open)}; the upstream saw ${JSON.stringify(upstream)}); a new call 3 s after the cancellations got HTTP ${next.status}: ${nextText.slice(0, 220)}`,
  ).toEqual({ open: [], nextStatus: 200 });
}, 60_000);

test("a 2025-03-26 batch with one cancelled call ends once its other calls are answered", async () => {
  const key = keys.batcher!;
  const session = await openSession(key, "2025-03-26");
  const t0 = Date.now();
  const response = await fetch(url, { method: "POST", headers: headers(key, session, "2025-03-26"), body: JSON.stringify([call(1, "b1", 60_000), call(2, "b2", 500)]) });
  await sleep(200);
  await (await fetch(url, { method: "POST", headers: headers(key, session, "2025-03-26"), body: JSON.stringify(cancel(1)) })).text();
  const { ms, text } = await endsWithin(response, 6_000);
  const answered = text.includes('"id":2') && text.includes("b2");
  expect(
    { ended: ms !== undefined, answered },
    `batch [60 s call id 1, 0.5 s call id 2], id 1 cancelled at +200 ms: the stream ${ms === undefined ? "was still open after 6 s" : `ended after ${ms} ms`}, call 2's answer ${answered ? "arrived" : "never arrived"} (${Date.now() - t0} ms, ${text.length} bytes read)`,
  ).toEqual({ ended: true, answered: true });
}, 60_000);
