import type { NatsServer } from "@manifold/nats-server";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, expect, test } from "vitest";
import { serveModernTasksHttp } from "../fixtures/modern-tasks-upstream.mjs";
import { registerUpstreams } from "../helpers/catalog.js";
import { forward } from "../helpers/forward.js";
import { modernRequest } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// attack (found by an attacker helper): a consumer whose grant allows 3 requests a minute creates
// one task, then polls tasks/get in a loop. Each poll is a request to the upstream (a completed
// task's is two: tasks/get and tasks/result); none was counted against the grant's rate limit or
// the caller's calls in flight: 150 polls in 3.6 s, all answered, 300 upstream requests.

const KEY_ENV = { GATEWAY_REQUEST_STATE_KEY: "env:MANIFOLD_SECRET_STATE_KEY", MANIFOLD_SECRET_STATE_KEY: "u".repeat(48) };
let nats: NatsServer;
let stack: Stack;
let modern: Awaited<ReturnType<typeof serveModernTasksHttp>>;
let proxy: Server;
let proxyUrl: string;
const seen = new Map<string, number>();
/** While set, the proxy holds each tasks/get this long, counting how many it holds at once. */
let holdTasksGetMs = 0;
const held = { now: 0, most: 0 };
let key: string;
let research: string;
let echo: string;

beforeAll(async () => {
  nats = await startNats();
  [stack, modern] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", ...KEY_ENV }), serveModernTasksHttp()]);
  // A counting proxy in front of the upstream: every JSON-RPC method that reaches it.
  proxy = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    try {
      const m = (JSON.parse(body.toString()) as { method?: string }).method;
      if (m) seen.set(m, (seen.get(m) ?? 0) + 1);
      if (m === "tasks/get" && holdTasksGetMs > 0) {
        held.most = Math.max(held.most, ++held.now);
        await new Promise((r) => setTimeout(r, holdTasksGetMs));
        held.now--;
      }
    } catch {
      // Not JSON (a GET): nothing to count.
    }
    await forward(modern.url, req, body, res);
  });
  await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
  proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}${new URL(modern.url).pathname}`;
  await registerUpstreams(stack, { name: "modern", transport: { type: "streamable-http", url: proxyUrl } });
  const vs = await stack.admin.post("/v1/virtual-servers", { name: "jobs", tools: [{ upstream: "modern", tool: "research" }, { upstream: "modern", tool: "echo" }] });
  for (const t of vs.body.tools) {
    if (t.tool === "research") research = t.exposedName;
    else echo = t.exposedName;
  }
  await stack.admin.post("/v1/consumers", { name: "mallory" });
  key = (await stack.admin.post("/v1/consumers/mallory/keys", {})).body.key;
  const g = await stack.admin.post("/v1/virtual-servers/jobs/grants", { grantId: "mallory", subject: { consumer: "mallory" }, rateLimitPerMinute: 3 });
  expect(g.status, JSON.stringify(g.body)).toBeLessThan(300);
}, 60_000);

afterAll(async () => {
  await stack?.close();
  proxy?.close();
  await modern?.close();
  await nats?.stop();
});

test("requests about a task count against the grant's rate limit, as calls do", async () => {
  const url = stack.mcpUrl("jobs");
  const created = await modernRequest(url, key, "tools/call", { name: research, arguments: { topic: "tides", ms: 10 } });
  const handle = created.result?.taskId as string;
  expect(handle, JSON.stringify(created)).toMatch(/^mt2\./);
  // Control: the limit holds for calls (1 spent on the task; 2 more, then refused).
  const calls = [];
  for (let i = 0; i < 4; i++) calls.push(await modernRequest(url, key, "tools/call", { name: echo, arguments: { message: "x" } }, {}));
  const refusedCalls = calls.filter((c) => c.error).length;
  console.log(`echo calls after the task: ${calls.length}, refused: ${refusedCalls}: ${JSON.stringify(calls.at(-1)?.error)}`);
  expect(refusedCalls).toBeGreaterThan(0);
  await new Promise((r) => setTimeout(r, 300));
  const before = new Map(seen);
  const answers: string[] = [];
  for (let i = 0; i < 150; i++) {
    const got = await modernRequest(url, key, "tasks/get", { taskId: handle });
    answers.push(got.result?.status === "completed" ? "completed" : String(got.error?.data?.code ?? got.error?.code ?? got.status));
  }
  const delta = (m: string) => (seen.get(m) ?? 0) - (before.get(m) ?? 0);
  const refused = answers.filter((a) => a === "rate_limited").length;
  console.log(`150 tasks/get under rateLimitPerMinute=3: ${refused} refused; the upstream received tasks/get ${delta("tasks/get")}, tasks/result ${delta("tasks/result")}`);
  // A minute's window may turn during the loop: at most one more window's 3 polls, two upstream requests each.
  expect(refused).toBeGreaterThanOrEqual(147);
  expect(delta("tasks/get") + delta("tasks/result")).toBeLessThanOrEqual(6);
  // Past its limit, a caller can still stop its own task's work upstream (cancelling a finished task is the upstream's to refuse).
  const cancel = await modernRequest(url, key, "tasks/cancel", { taskId: handle });
  expect(cancel.error?.data?.code, JSON.stringify(cancel)).not.toBe("rate_limited");
}, 60_000);

test("requests about a task take the upstream's slots, as calls do (maxConcurrency bounds them)", async () => {
  // attack: task requests took none of the upstream's slots, so polls held open on an upstream an
  // operator had bounded to 2 ran any number at once.
  await registerUpstreams(stack, { name: "tight", transport: { type: "streamable-http", url: proxyUrl }, options: { maxConcurrency: 2 } });
  const vs = await stack.admin.post("/v1/virtual-servers", { name: "tight", tools: [{ upstream: "tight", tool: "research" }] });
  expect(vs.status, JSON.stringify(vs.body)).toBe(201);
  await stack.admin.post("/v1/consumers", { name: "tenant" });
  const tenant = (await stack.admin.post("/v1/consumers/tenant/keys", {})).body.key as string;
  expect((await stack.admin.post("/v1/virtual-servers/tight/grants", { grantId: "tenant", subject: { consumer: "tenant" } })).status).toBe(201);
  const url = stack.mcpUrl("tight");
  const created = await modernRequest(url, tenant, "tools/call", { name: vs.body.tools[0].exposedName, arguments: { topic: "tides", ms: 10 } });
  const handle = created.result?.taskId as string;
  expect(handle, JSON.stringify(created)).toMatch(/^mt2\./);
  holdTasksGetMs = 400;
  try {
    const polls = await Promise.all(Array.from({ length: 6 }, () => modernRequest(url, tenant, "tasks/get", { taskId: handle })));
    const answered = polls.filter((p) => typeof p.result?.status === "string").length;
    const figures = `6 tasks/get at once, each held 400 ms upstream: ${answered} answered, at most ${held.most} at the upstream at once (maxConcurrency 2)`;
    console.log(figures);
    // Measured before the fix: 6 answered, 6 at the upstream at once.
    expect(held.most, figures).toBe(2);
    expect(answered, figures).toBe(6);
  } finally {
    holdTasksGetMs = 0;
  }
}, 60_000);
