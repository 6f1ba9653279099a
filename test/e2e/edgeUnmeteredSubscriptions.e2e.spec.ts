import type { NatsServer } from "@manifold/nats-server";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { registerUpstreams } from "../helpers/catalog.js";
import { modernRequest } from "../helpers/modernRequests.js";
import { listenOnce, rawSession } from "../helpers/itemStreams.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// attack (helper-115): a grant's `rateLimitPerMinute` counted tools/call, reads, prompts,
// completions and task requests, but not resource subscriptions, which go to the upstream's shared
// session just the same: a 2025 `resources/subscribe` is one upstream `resources/subscribe`, and a
// 2026-07-28 `subscriptions/listen` one per URI in its `resourceSubscriptions`. A consumer past its
// limit of 3 a minute sent 20 of them upstream in each era (measured below).

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

const session = (key: string) => rawSession(url(), key);
const listen = (key: string, uris: string[]) => listenOnce(url(), key, uris);

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
