import { CommandType, EventType } from "@manifold/contracts";
import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, expect, test } from "vitest";
import { connectHttp, eventually } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";
import { longTools } from "../helpers/longTools.js";

// A promotion's event carried every pin it copied with its whole definition: a virtual server of
// 5,000 tools of 1.6 KB promoted to prod made an event of ~8 MB, past a bus message (max_payload,
// 1 MiB), and the promotion was refused 413 payload_too_large with no way around it (promotion is
// all at once). Measured here through a real registry and gateway over a real nats-server
// (docs/operations.md keeps the figures).

const UPSTREAMS = 10;
const TOOLS = 500;
const ALL = UPSTREAMS * TOOLS;
const upstreamName = (u: number) => `upstream-${String(u).padStart(3, "0")}`;

const toolsOf = (u: number) => longTools(u, TOOLS);

let nats: NatsServer | undefined;
let stack: Stack | undefined;
const started = () => stack!;

beforeAll(async () => {
  nats = await startNats();
  stack = await startStack(nats, {}, { connector: false });
  const { execute } = stack.registry;
  for (let u = 0; u < UPSTREAMS; u++) {
    const name = upstreamName(u);
    await execute({ type: CommandType.registerUpstream, name, transport: { type: "streamable-http", url: `http://127.0.0.1:9/${u}`, headers: {}, secretHeaders: {} }, options: {} });
    await execute({ type: CommandType.recordDiscovery, name, serverInfo: { name, version: "1.0.0" }, tools: toolsOf(u) });
  }
  await execute({ type: CommandType.setEnvironment, name: "prod", bindings: {} });
  await execute({ type: CommandType.setEnvironment, name: "staging", bindings: {} });
  await execute({ type: CommandType.createVirtualServer, name: "wide", naming: { policy: "prefix", prefixes: {} }, driftPolicy: "pinned", tools: [] });
  // A selection's event carries its definitions: 250 at a time stays within a bus message.
  for (let u = 0; u < UPSTREAMS; u++) {
    for (let from = 0; from < TOOLS; from += 250) {
      await execute({ type: CommandType.selectTools, name: "wide", tools: Array.from({ length: 250 }, (_, t) => ({ upstream: upstreamName(u), tool: `tool_${from + t}` })) });
    }
  }
}, 300_000);

afterAll(async () => {
  await stack?.close();
  await nats?.stop();
});

/** The promotion through the admin API, and its event as the virtual server's history shows it. */
async function promote(body: Record<string, unknown>) {
  const { admin } = started();
  const before = (await admin.get("/v1/virtual-servers/wide")).body.version as number;
  const began = performance.now();
  const res = await admin.post("/v1/virtual-servers/wide/promote", body);
  const took = performance.now() - began;
  const history = await admin.get(`/v1/virtual-servers/wide/history?after=${before}`);
  const event = (history.body.items as { type: string; data: Record<string, unknown> }[]).find((e) => e.type === EventType.virtualServerPromoted);
  return { res, took, event, bytes: event ? JSON.stringify(event).length : 0 };
}

test(`attack: a virtual server of ${ALL} tools of 1.6 KB is promoted whole, in an event that does not carry their definitions`, { timeout: 120_000 }, async () => {
  const { res, took, event, bytes } = await promote({ from: "default", to: "prod" });
  console.log(`[promotion scale] promote ${ALL} tools default -> prod: ${res.status} ${res.body?.error?.code ?? ""} in ${Math.round(took)} ms; its event ${bytes} B`);
  expect(res.status, JSON.stringify(res.body).slice(0, 400)).toBe(200);
  // The answer says what was promoted: the target's counts.
  expect(res.body.environments.prod).toEqual({ tools: ALL, prompts: 0, resources: 0, resourceTemplates: 0 });
  expect(event?.data).toMatchObject({ from: "default", to: "prod", forced: false, copied: { tools: ALL, prompts: 0, resources: 0, resourceTemplates: 0 } });
  expect(bytes).toBeLessThan(1024);

  // The gateway folds the same event to the same pins, and serves them under prod with their definitions.
  const { gateway, gatewayUrl, mcpUrl } = started();
  await eventually(() => (gateway.projection.virtualServer("wide")?.environments.get("prod")?.size === ALL ? true : undefined), 10_000);
  await using prod = await connectHttp(`${gatewayUrl}/mcp/prod/wide`);
  await using selection = await connectHttp(mcpUrl("wide"));
  const [inProd, inDefault] = await Promise.all([prod.listTools(), selection.listTools()]);
  expect(inProd.tools).toHaveLength(ALL);
  expect(inProd.tools).toEqual(inDefault.tools);
  const sample = toolsOf(7)[123]!;
  expect(inProd.tools.find((t) => t.name === `${upstreamName(7)}_tool_123`)).toMatchObject({ description: sample.description, inputSchema: sample.inputSchema });
});

test("a promotion of 1,000 named tools names them, and the environment serves those only", { timeout: 120_000 }, async () => {
  const names = Array.from({ length: 1_000 }, (_, i) => `${upstreamName(i % UPSTREAMS)}_tool_${Math.floor(i / UPSTREAMS)}`);
  const { res, took, event, bytes } = await promote({ from: "prod", to: "staging", tools: names });
  console.log(`[promotion scale] promote 1000 named tools prod -> staging: ${res.status} ${res.body?.error?.code ?? ""} in ${Math.round(took)} ms; its event ${bytes} B`);
  expect(res.status, JSON.stringify(res.body).slice(0, 400)).toBe(200);
  expect(res.body.environments.staging).toMatchObject({ tools: 1_000 });
  expect(event?.data).toMatchObject({ tools: names, copied: { tools: 1_000 } });
  const { gateway } = started();
  await eventually(() => (gateway.projection.virtualServer("wide")?.environments.get("staging")?.size === 1_000 ? true : undefined), 10_000);
  expect([...gateway.projection.virtualServer("wide")!.environments.get("staging")!.keys()].sort()).toEqual([...names].sort());
});
