import { freePort, type NatsServer } from "@manifold/nats-server";
import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from "@modelcontextprotocol/client";
import { toNodeHandler } from "@modelcontextprotocol/node";
import { ResourceUpdatedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { createMcpHandler, Server } from "@modelcontextprotocol/server";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { connectWithKey, eventually } from "../helpers/mcp.js";
import { MODERN } from "../helpers/modernRequests.js";
import { busCut, type BusCut } from "../helpers/busCut.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

/**
 * A resource an upstream announces as changed while nats-server is down (killed and restarted on
 * its port and store, helper-178): the update travels the bus as a core message, stored nowhere, so
 * a gateway that was not subscribed when the connector published it never heard of it. Both eras'
 * subscribers must still hear of it once the bus is back: a 2026-07-28 `subscriptions/listen`
 * stream and a 2025-11-25 session's resources/subscribe (on its GET stream). The same when only the
 * gateway's own bus connection is away while the server and the connector stay up: the services
 * reach nats-server through a relay that can cut one of them off.
 */
let natsPort: number;
let storeDir: string;
let nats: NatsServer;
let stack: Stack;
let docs: Awaited<ReturnType<typeof changingUpstream>>;
let key: string;
let relay: BusCut;

/** A 2026-07-28 upstream (the 2.x SDK) with one resource whose content the test changes and announces itself. */
async function changingUpstream() {
  let version = 1;
  const server = () => {
    const s = new Server({ name: "docs", version: "1.0.0" }, { capabilities: { resources: { subscribe: true } } });
    s.setRequestHandler("resources/list", () => ({ resources: [{ uri: "doc://a", name: "a" }] }));
    s.setRequestHandler("resources/templates/list", () => ({ resourceTemplates: [] }));
    s.setRequestHandler("resources/read", ({ params }) => ({ contents: [{ uri: params.uri, text: `version ${version}` }] }));
    return s;
  };
  const handler = createMcpHandler(server, { legacy: "reject" });
  const node = toNodeHandler(handler);
  const http = createServer((req, res) => void node(req, res));
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(http.address() as { port: number }).port}/mcp`,
    version: () => version,
    change: () => {
      version++;
      handler.notify.resourceUpdated("doc://a");
    },
    close: async () => {
      await handler.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

beforeAll(async () => {
  natsPort = await freePort();
  storeDir = await mkdtemp(join(tmpdir(), "manifold-updates-restart-"));
  nats = await startNats({ port: natsPort, storeDir });
  relay = await busCut(natsPort);
  [stack, docs] = await Promise.all([startStack(nats, { GATEWAY_AUTH: "required", NATS_URL: relay.url }), changingUpstream()]);
  await registerUpstreams(stack, { name: "docs", transport: { type: "streamable-http", url: docs.url } });
  const created = await stack.admin.post("/v1/virtual-servers", { name: "v", resources: [{ upstream: "docs", uri: "doc://a" }] });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  key = (await grantedConsumers(stack, "v", ["ann"])).ann!;
}, 60_000);

afterAll(async () => {
  await stack?.close();
  await docs?.close();
  await relay?.close();
  await nats?.stop();
  await rm(storeDir, { recursive: true, force: true });
});

/** A 2025-11-25 session subscribed to the resource and a 2026-07-28 listen stream following it, each counting its updates. */
async function subscribers() {
  const legacy = await connectWithKey(stack.mcpUrl("v"), key);
  const [exposed] = (await legacy.listResources()).resources.map((r) => r.uri);
  expect(exposed).toBeDefined();
  const heard = { modern: 0, legacy: 0 };
  legacy.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void (n.params.uri === exposed && heard.legacy++));
  // Right after an outage the gateway may not see the connector yet (-32010): asked again until it does.
  await eventually(() => legacy.subscribeResource({ uri: exposed! }), 10_000, 200);
  const modern = new ModernClient({ name: "listener", version: "1" }, { versionNegotiation: { mode: { pin: MODERN } } });
  await modern.connect(new ModernTransport(new URL(stack.mcpUrl("v")), { requestInit: { headers: { authorization: `Bearer ${key}` } } }));
  modern.setNotificationHandler("notifications/resources/updated", (n) => void (n.params.uri === exposed && heard.modern++));
  const subscription = await modern.listen({ resourceSubscriptions: [exposed!] });
  expect(subscription.honoredFilter).toMatchObject({ resourceSubscriptions: [exposed] });
  // With the bus up, an update reaches both.
  await eventually(() => {
    docs.change();
    return heard.modern > 0 && heard.legacy > 0 ? true : undefined;
  }, 10_000, 500);
  await new Promise((r) => setTimeout(r, 500));
  heard.modern = heard.legacy = 0;
  /**
   * Both hear of the update announced during `outage` within 10 s of `since` (when the bus came back
   * for the gateway), and the resource reads as it is now.
   */
  const toldAfter = async (outage: string, since: number) => {
    const within = (era: keyof typeof heard) => eventually(() => (heard[era] > 0 ? Date.now() - since : undefined), 20_000, 50).catch(() => undefined);
    const [modernMs, legacyMs] = await Promise.all([within("modern"), within("legacy")]);
    const shown = (ms: number | undefined) => (ms === undefined ? "never (20 s)" : `${ms} ms`);
    console.info(`resourceUpdatesAcrossBusRestart: update announced while ${outage} told the listen stream ${shown(modernMs)} and the 2025 session ${shown(legacyMs)} after`);
    const read = await eventually(() => legacy.readResource({ uri: exposed! }), 10_000, 200);
    expect(read.contents[0]).toMatchObject({ text: `version ${docs.version()}` });
    for (const ms of [modernMs, legacyMs]) {
      expect(ms).toBeDefined();
      expect(ms!).toBeLessThan(10_000);
    }
  };
  const close = async () => {
    await subscription.close();
    await Promise.all([modern.close(), legacy.close()]);
  };
  return { toldAfter, close };
}

test("a resource update announced while nats-server is down reaches both eras' subscribers once it is back", async () => {
  const agents = await subscribers();
  nats.process.kill("SIGKILL");
  await new Promise((r) => nats.process.once("exit", r));
  // The resource changes while no gateway can hear of it.
  docs.change();
  await new Promise((r) => setTimeout(r, 3_000));

  nats = await startNats({ port: natsPort, storeDir });
  await agents.toldAfter("nats-server was down (from the restart)", Date.now());
  await agents.close();
}, 90_000);

test("a resource update announced while only the gateway's bus connection is away reaches both eras' subscribers once it is back", async () => {
  const agents = await subscribers();
  relay.cut("manifold-gateway");
  await new Promise((r) => setTimeout(r, 1_000));
  // nats-server and the connector are up: the connector publishes the update, and no gateway is subscribed.
  docs.change();
  await new Promise((r) => setTimeout(r, 2_000));

  relay.restore();
  await agents.toldAfter("the gateway's connection was away (from when it was let back)", Date.now());
  await agents.close();
}, 90_000);
