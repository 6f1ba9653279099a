import { freePort, startNatsServer, type NatsServer } from "@manifold/nats-server";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, registerUpstreams, rpcError } from "../helpers/catalog.js";
import { connectHttp, eventually } from "../helpers/mcp.js";
import { startStack, type Stack } from "../helpers/stack.js";

// NATS going away (killed) and coming back, under running services: a call in the gap fails at once
// with a code that names the bus and says when to retry, nothing crashes, and the registry's stream
// is intact afterwards. Every `bus_unavailable` answer carries a retry hint in each form its lane
// allows: an HTTP answer the gateway writes itself (a 503, or its fast path's 200) `Retry-After: 1`,
// and the JSON-RPC error `data.retryAfterMs: 1000`, also on an SSE stream (the SDK lane), whose
// headers went out before the error was known. MCP defines no retry field of its own; JSON-RPC
// leaves `data` to the server (docs/errors.md, Retry-After).
let nats: NatsServer;
let port: number;
let storeDir: string;
let stack: Stack;
let upstream: RecordingUpstream;

beforeAll(async () => {
  port = await freePort();
  storeDir = await mkdtemp(join(tmpdir(), "manifold-outage-"));
  nats = await startNatsServer({ port, storeDir });
  [stack, upstream] = await Promise.all([startStack(nats), startRecordingUpstream()]);
  await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: upstream.url } });
});

afterAll(async () => {
  await stack?.close();
  await upstream?.close();
  await nats?.stop();
  await rm(storeDir, { recursive: true, force: true });
});

test("a call while NATS is down fails fast with bus_unavailable and a retry hint; after it returns, calls and admin commands work", async () => {
  const names = await createVirtualServer(stack, "outage", [{ upstream: "rec", tool: "echo" }]);
  await using agent = await connectHttp(stack.mcpUrl("outage"));
  const echo = (message: string) => agent.callTool({ name: names["rec/echo"]!, arguments: { message } });
  expect((await echo("before")).content).toEqual([{ type: "text", text: "echo: before" }]);

  // A session this replica does not hold (it began on another one, or before a restart) is looked
  // up in the session directory, on the bus.
  const mcpHeaders = { "content-type": "application/json", accept: "application/json, text/event-stream" };
  const initialize = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } } };
  const opened = await fetch(stack.mcpUrl("outage"), { method: "POST", headers: mcpHeaders, body: JSON.stringify(initialize) });
  const elsewhere = opened.headers.get("mcp-session-id")!;
  expect(elsewhere).toBeTruthy();
  await opened.text();
  await stack.gateway.sessions.closeLocal(elsewhere);

  nats.process.kill("SIGKILL");
  const started = Date.now();
  const error = await eventually(async () => {
    const failure = await rpcError(echo("during"));
    return failure.data?.code === "bus_unavailable" ? failure : undefined;
  });
  expect(error.message).toMatch(/message bus/);
  expect(Date.now() - started).toBeLessThan(5_000);
  expect(error.data?.retryAfterMs).toBe(1_000);
  // The same call as raw HTTP: on the fast path (a 200 the gateway writes) and, with a progress
  // token, on the SDK lane's SSE stream.
  const session = { ...mcpHeaders, "mcp-session-id": agent.transport!.sessionId!, "mcp-protocol-version": "2025-06-18" };
  const call = (meta?: Record<string, unknown>) =>
    fetch(stack.mcpUrl("outage"), {
      method: "POST",
      headers: session,
      body: JSON.stringify({ jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: names["rec/echo"], arguments: { message: "raw" }, ...(meta ? { _meta: meta } : {}) } }),
    });
  const fast = await call();
  expect({ status: fast.status, retryAfter: fast.headers.get("retry-after"), data: ((await fast.json()) as { error: { data: unknown } }).error.data }).toMatchObject({
    status: 200,
    retryAfter: "1",
    data: { code: "bus_unavailable", retryAfterMs: 1_000 },
  });
  const streamed = await call({ progressToken: "p1" });
  expect(streamed.headers.get("content-type")).toMatch(/text\/event-stream/);
  const event = (await streamed.text()).split("\n").find((line) => line.startsWith("data: ") && line.includes('"error"'));
  expect(JSON.parse(event!.slice("data: ".length)).error.data).toMatchObject({ code: "bus_unavailable", retryAfterMs: 1_000 });
  // What the gateway knows it still answers: the tool list comes from its projection.
  expect((await agent.listTools()).tools.map((t) => t.name)).toEqual([names["rec/echo"]]);
  // A refusal does not wait to catch up with a stream it cannot reach: the answer comes at once.
  const askedAt = Date.now();
  const unknown = await fetch(stack.mcpUrl("nowhere"), {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } } }),
  });
  expect(unknown.status).toBe(404);
  expect(Date.now() - askedAt).toBeLessThan(500);
  // A request of a session the directory must be asked about names the bus, not a parse error.
  const adopted = await fetch(stack.mcpUrl("outage"), {
    method: "POST",
    headers: { ...mcpHeaders, "mcp-session-id": elsewhere, "mcp-protocol-version": "2025-06-18" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list" }),
  });
  const adoptedBody = (await adopted.json()) as { error?: { code: number; message: string; data?: { code?: string } } };
  expect({ status: adopted.status, code: adoptedBody.error?.data?.code, retryAfter: adopted.headers.get("retry-after") }).toEqual({ status: 503, code: "bus_unavailable", retryAfter: "1" });
  expect(adoptedBody.error?.code).not.toBe(-32700);
  expect(adoptedBody.error?.message).toMatch(/message bus/);
  // Likewise a new session, which could not be recorded for the other replicas.
  const refused = await fetch(stack.mcpUrl("outage"), { method: "POST", headers: mcpHeaders, body: JSON.stringify(initialize) });
  const refusedBody = (await refused.json()) as { error?: { code: number; data?: { code?: string } } };
  expect({ status: refused.status, code: refusedBody.error?.data?.code, retryAfter: refused.headers.get("retry-after") }).toEqual({ status: 503, code: "bus_unavailable", retryAfter: "1" });
  expect(refused.headers.get("mcp-session-id")).toBeNull();

  nats = await startNatsServer({ port, storeDir });
  const after = await eventually(() => echo("after").catch(() => undefined), 15_000, 100);
  expect(after.content).toEqual([{ type: "text", text: "echo: after" }]);
  // The stream survived on disk: the old virtual server is there, and a new change is applied.
  expect((await stack.admin.get("/v1/virtual-servers/outage")).status).toBe(200);
  // Until JetStream has recovered the stream from disk, a command is refused as retryable.
  const refusals: string[] = [];
  const created = await eventually(async () => {
    const res = await stack.admin.post("/v1/virtual-servers", { name: "after-outage", tools: [{ upstream: "rec", tool: "echo" }] });
    if (res.status !== 201) refusals.push(`${res.status} ${res.body.error?.code}`);
    return res.status === 201 ? res.body : undefined;
  }, 10_000, 100);
  expect(refusals.filter((r) => r !== "503 bus_unavailable")).toEqual([]);
  const again: Record<string, string> = Object.fromEntries(created.tools.map((t: { upstream: string; tool: string; exposedName: string }) => [`${t.upstream}/${t.tool}`, t.exposedName]));
  await using second = await connectHttp(stack.mcpUrl("after-outage"));
  const result = await eventually(() => second.callTool({ name: again["rec/echo"]!, arguments: { message: "new" } }).catch(() => undefined), 5_000, 100);
  expect(result.content).toEqual([{ type: "text", text: "echo: new" }]);
});
