import type { NatsServer } from "@manifold/nats-server";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { registerUpstreams } from "../helpers/catalog.js";
import { modernRequest } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// attack (helper-115): a grant's `rateLimitPerMinute` counted tools/call, reads, prompts,
// completions and task requests, but not resource subscriptions, which go to the upstream's shared
// session just the same: a 2025 `resources/subscribe` is one upstream `resources/subscribe`, and a
// 2026-07-28 `subscriptions/listen` one per URI in its `resourceSubscriptions`. A consumer past its
// limit of 3 a minute sent 20 of them upstream in each era (measured below).

const META = { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": { name: "m", version: "1" }, "io.modelcontextprotocol/clientCapabilities": {} };
const FIXTURE = new URL("../fixtures/slowItemsUpstream.mjs", import.meta.url).pathname;
const URI = "docs+att://r/one";
let nats: NatsServer;
let stack: Stack;
let child: ChildProcess;
let upstreamUrl: string;
const keys: Record<string, string> = {};

const subscribesUpstream = async () =>
  ((await (await fetch(upstreamUrl.replace(/\/mcp$/, "/stats"))).json()) as { methods: Record<string, number> }).methods["resources/subscribe"] ?? 0;
const url = () => stack.mcpUrl("docs");

/** A 2025-11-25 session of `key`: its `send` posts one message and returns the JSON-RPC answer (JSON or the last SSE message). */
async function session(key: string) {
  const headers: Record<string, string> = { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${key}` };
  const init = await fetch(url(), {
    method: "POST",
    headers,
    body: JSON.stringify({ jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "a", version: "1" } } }),
  });
  await init.text();
  const sid = init.headers.get("mcp-session-id")!;
  expect(sid).toBeTruthy();
  Object.assign(headers, { "mcp-session-id": sid, "mcp-protocol-version": "2025-11-25" });
  await (await fetch(url(), { method: "POST", headers, body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }) })).text();
  let id = 1;
  return async (method: string, params: Record<string, unknown>) => {
    const res = await fetch(url(), { method: "POST", headers, body: JSON.stringify({ jsonrpc: "2.0", id: id++, method, params }) });
    const text = await res.text();
    const last = JSON.parse(text.startsWith("{") ? text : text.split("\n").filter((l) => l.startsWith("data:")).at(-1)!.slice(5));
    return { status: res.status, result: last.result, error: last.error };
  };
}

/** Opens a 2026-07-28 listen stream for `uris`; returns the HTTP status and its first message (the acknowledgement or the refusal), then closes it. */
async function listen(key: string, uris: string[]) {
  const closing = new AbortController();
  const res = await fetch(url(), {
    method: "POST",
    signal: closing.signal,
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${key}`, "mcp-protocol-version": "2026-07-28", "mcp-method": "subscriptions/listen" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "subscriptions/listen", params: { _meta: META, notifications: { resourceSubscriptions: uris } } }),
  });
  const reader = res.body!.getReader();
  let text = "";
  while (!/\n\n|^\{[\s\S]*\}$/.test(text)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += Buffer.from(value).toString();
  }
  closing.abort();
  const data = text.startsWith("{") ? text : text.split("\n").find((l) => l.startsWith("data:"))!.slice(5);
  return { status: res.status, message: JSON.parse(data) as Record<string, any> };
}

beforeAll(async () => {
  nats = await startNats();
  stack = await startStack(nats.url, { GATEWAY_AUTH: "required" });
  child = spawn(process.execPath, [FIXTURE], { stdio: ["ignore", "pipe", "inherit"] });
  const [first] = await once(child.stdout!, "data");
  upstreamUrl = String(first).trim();
  await registerUpstreams(stack, { name: "docs", transport: { type: "streamable-http", url: upstreamUrl } });
  const created = await stack.admin.post("/v1/virtual-servers", { name: "docs", tools: [{ upstream: "docs", tool: "echo" }], resources: [{ upstream: "docs", uri: "att://r/one" }] });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  for (const name of ["mallory", "eve"]) {
    await stack.admin.post("/v1/consumers", { name });
    keys[name] = (await stack.admin.post(`/v1/consumers/${name}/keys`, {})).body.key;
    const grant = await stack.admin.post("/v1/virtual-servers/docs/grants", { grantId: name, subject: { consumer: name }, rateLimitPerMinute: 3 });
    expect(grant.status, JSON.stringify(grant.body)).toBe(201);
  }
}, 60_000);

afterAll(async () => {
  child?.kill();
  await stack?.close();
  await nats?.stop();
});

describe("resource subscriptions reach the shared upstream, so a grant's rate limit meters them (both eras)", () => {
  test("2025: a consumer limited to 3 a minute sends at most 3 resources/subscribe upstream in that minute", async () => {
    // One session each: a session subscribed to a URI already does not ask the upstream again.
    const sends = [];
    for (let i = 0; i < 20; i++) sends.push(await session(keys.mallory!));
    const before = await subscribesUpstream();
    const answers = [];
    for (const send of sends) answers.push(await send("resources/subscribe", { uri: URI }));
    const reached = (await subscribesUpstream()) - before;
    const refused = answers.filter((a) => a.error?.data?.code === "rate_limited").length;
    const figures = `20 resources/subscribe under a limit of 3 a minute: ${reached} reached the upstream, ${refused} refused as rate_limited`;
    // Measured before the fix: 20 reached the upstream, 0 refused.
    expect(reached, figures).toBeLessThanOrEqual(3);
    expect(refused, figures).toBe(17);
    // Its calls share the same budget: the minute is used up.
    expect((await sends[0]!("tools/call", { name: "docs__echo", arguments: {} })).error?.data?.code, figures).toBe("rate_limited");
  }, 60_000);

  test("2026-07-28: listen streams naming resources count one per URI against the limit, and one past it is refused", async () => {
    const before = await subscribesUpstream();
    const answers = [];
    for (let i = 0; i < 20; i++) answers.push(await listen(keys.eve!, [URI]));
    const reached = (await subscribesUpstream()) - before;
    const refused = answers.filter((a) => a.status === 429 && a.message.error?.data?.code === "rate_limited").length;
    const figures = `20 listen streams on one URI under a limit of 3 a minute: ${reached} subscriptions reached the upstream, ${refused} streams refused as rate_limited`;
    // Measured before the fix: 20 reached the upstream, 0 refused.
    expect(reached, figures).toBeLessThanOrEqual(3);
    expect(refused, figures).toBe(17);
    // A listen without resources asks nothing upstream and stays open to a caller past its limit.
    const plain = await listen(keys.eve!, []);
    expect(plain.status, JSON.stringify(plain.message)).toBe(200);
    expect(plain.message.method).toBe("notifications/subscriptions/acknowledged");
    expect((await modernRequest(url(), keys.eve!, "tools/call", { name: "docs__echo", arguments: {} })).error?.data?.code).toBe("rate_limited");
  }, 60_000);
});
