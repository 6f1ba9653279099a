import { freePort, startNatsServer, type NatsServer } from "@manifold/nats-server";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, registerUpstreams, rpcError } from "../helpers/catalog.js";
import { connectHttp, eventually } from "../helpers/mcp.js";
import { startStack, type Stack } from "../helpers/stack.js";
import { freeze } from "../helpers/freeze.js";

// nats-server frozen (SIGSTOP), not dead: its sockets stay open, nothing answers. Measures how long
// a call and an admin command wait, with which error, and how soon the services recover on SIGCONT.
let nats: NatsServer;
let storeDir: string;
let stack: Stack;
let upstream: RecordingUpstream;

beforeAll(async () => {
  storeDir = await mkdtemp(join(tmpdir(), "manifold-frozen-"));
  nats = await startNatsServer({ port: await freePort(), storeDir });
  [stack, upstream] = await Promise.all([startStack(nats), startRecordingUpstream()]);
  await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: upstream.url } });
});

afterAll(async () => {
  if (nats?.process.signalCode === null) nats.process.kill("SIGCONT");
  await stack?.close();
  await upstream?.close();
  await nats?.stop();
  await rm(storeDir, { recursive: true, force: true });
});

test("a frozen nats-server: calls and admin commands fail within seconds naming the bus, and recover after SIGCONT", async () => {
  // Names of this attempt's own, so a retry in CI starts from a clean slate.
  const run = `${Date.now() % 100_000}`;
  const names = await createVirtualServer(stack, `frozen-${run}`, [{ upstream: "rec", tool: "echo" }]);
  await using agent = await connectHttp(stack.mcpUrl(`frozen-${run}`));
  const echo = (message: string) => agent.callTool({ name: names["rec/echo"]!, arguments: { message } });
  expect((await echo("before")).content).toEqual([{ type: "text", text: "echo: before" }]);

  await freeze(nats.process);
  const frozenAt = Date.now();
  try {
    const callStarted = Date.now();
    const failure = await rpcError(echo("during"));
    const callWait = Date.now() - callStarted;
    const adminStarted = Date.now();
    const res = await stack.admin.post("/v1/virtual-servers", { name: `while-frozen-${run}`, tools: [{ upstream: "rec", tool: "echo" }] });
    const adminWait = Date.now() - adminStarted;
    const failure2 = await rpcError(echo("during2"));
    expect(callWait).toBeLessThan(5_000);
    expect(failure.data?.code).toBe("bus_unavailable");
    expect(failure.message).toMatch(/message bus stopped answering/);
    expect(failure2.data?.code).toBe("bus_unavailable");
    expect(adminWait).toBeLessThan(6_000);
    expect(res.status).toBe(503);
    expect(res.body.error?.code).toBe("bus_unavailable");
    while (Date.now() - frozenAt < 15_000) await new Promise((r) => setTimeout(r, 250));
  } finally {
    nats.process.kill("SIGCONT");
  }
  const resumedAt = Date.now();
  const after = await eventually(() => echo("after").catch(() => undefined), 20_000, 100);
  expect(after.content).toEqual([{ type: "text", text: "echo: after" }]);
  expect(Date.now() - resumedAt).toBeLessThan(3_000);
  const created = await eventually(async () => {
    const r = await stack.admin.post("/v1/virtual-servers", { name: `after-frozen-${run}`, tools: [{ upstream: "rec", tool: "echo" }] });
    return r.status === 201 ? r : undefined;
  }, 20_000, 100);
  expect(created.status).toBe(201);
  expect(Date.now() - resumedAt).toBeLessThan(5_000);
  // The command refused while frozen was not stored behind the caller's back.
  expect((await stack.admin.get(`/v1/virtual-servers/while-frozen-${run}`)).status).toBe(404);
}, 90_000);
