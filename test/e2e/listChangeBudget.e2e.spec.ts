import { RegistryStream, Subjects } from "@manifold/contracts";
import { LIST_CHANGE_BUDGET } from "@manifold/domain";
import type { NatsServer } from "@manifold/nats-server";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { CallToolRequestSchema, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, expect, test } from "vitest";
import { serveSessions, type SessionServer } from "../fixtures/sessionServer.js";
import { registerUpstreams } from "../helpers/catalog.js";
import { eventually } from "../helpers/mcp.js";
import { connectAs, startNats, startStack, type Stack } from "../helpers/stack.js";

// An upstream is not trusted to keep the registry's log small. Every recorded change of its lists
// appends the whole list to the registry stream, which keeps every event and which every node
// replays on start. Connectors pace the discoveries an upstream triggers, but not the periodic
// rediscovery, nor the sum over replicas: an upstream answering every listing with another list
// (here 50 tools of 2 KB, a new revision each time) grew the log without end; and twelve changes of
// the largest list a message holds were still 12 MB an hour.

let nats: NatsServer;
let stack: Stack;
let churn: SessionServer<Server>;
let observer: NatsConnection;
let jsm: JetStreamManager;
let listings = 0;

beforeAll(async () => {
  nats = await startNats();
  // Rediscovery every 100 ms stands for hours of the default five minutes, several replicas and reconnects.
  stack = await startStack(nats.url, { CONNECTOR_REDISCOVER_MS: "100" });
  churn = await serveSessions(() => {
    const server = new Server({ name: "churn", version: "1.0.0" }, { capabilities: { tools: {} } });
    server.setRequestHandler(ListToolsRequestSchema, () => {
      const revision = ++listings;
      return { tools: Array.from({ length: 50 }, (_, i) => ({ name: `t${i}`, description: `revision ${revision} ${"d".repeat(2_000)}`, inputSchema: { type: "object" as const } })) };
    });
    server.setRequestHandler(CallToolRequestSchema, () => ({ content: [{ type: "text" as const, text: "ok" }] }));
    return server;
  });
  observer = await connectAs(nats, "operator", "observer");
  jsm = await jetstreamManager(observer);
});

afterAll(async () => {
  await observer?.close();
  await stack?.close();
  await churn?.close();
  await nats?.stop();
});

test("attack: an upstream whose lists change at every listing records a bounded number of changes per hour; the operator sees it held and can still record", async () => {
  const before = (await jsm.streams.info(RegistryStream.name)).state;
  const listedBefore = listings;
  await registerUpstreams(stack, { name: "churn", transport: { type: "streamable-http", url: churn.url } });
  // A registry replica decides at most one report of an upstream a second (`REPORT_GAP_MS`): the budget is spent in about 12 s.
  await eventually(async () => ((await stack.admin.get("/v1/upstreams/churn")).body.listChanges?.heldUntil ? true : undefined), 30_000, 200);
  await new Promise((r) => setTimeout(r, 2_000));
  const after = (await jsm.streams.info(RegistryStream.name)).state;
  const events = after.messages - before.messages;
  const bytes = after.bytes - before.bytes;
  console.log(JSON.stringify({ listings: listings - listedBefore, events, bytes }));

  // The connector really kept finding new lists, more than the budget records (about one a second:
  // it waits for the registry's answer, given to one report of an upstream a second).
  expect(listings - listedBefore).toBeGreaterThan(events - 1);
  // Before: one event per listing (40 and more in 6 s, ~100 KB each). Now: the registration's
  // event and the budget's changes, then nothing until the hour has room again.
  expect(events).toBeLessThanOrEqual(1 + LIST_CHANGE_BUDGET.changes);
  // And by size: a change takes one unit of the budget per 64 KiB it records (these ~200 KB each take
  // four). Before: twelve changes whatever their size, 2.57 MB here, 290 MB a day at 1 MB a list.
  expect(bytes).toBeLessThan((LIST_CHANGE_BUDGET.changes + 4) * LIST_CHANGE_BUDGET.bytesPerChange);

  // The operator sees that the upstream's changes are held, and until when.
  const view = await eventually(async () => {
    const res = await stack.admin.get("/v1/upstreams/churn");
    return res.body.listChanges?.heldUntil ? res.body : undefined;
  }, 5_000);
  expect(view.listChanges.lastHour).toBe(LIST_CHANGE_BUDGET.changes);
  const heldFor = Date.parse(view.listChanges.heldUntil) - Date.now();
  expect(heldFor).toBeGreaterThan(LIST_CHANGE_BUDGET.windowMs - 60_000);
  expect(heldFor).toBeLessThanOrEqual(LIST_CHANGE_BUDGET.windowMs);

  // An operator's own discovery is not held: it records the list as it is now.
  const discovered = await stack.admin.post("/v1/upstreams/churn/discover", {});
  expect(discovered.status).toBe(200);
  expect(discovered.body.discovery).toMatchObject({ status: "ok", changed: true });
  expect((await jsm.streams.info(RegistryStream.name)).state.messages).toBe(after.messages + 1);
});

// attack (helper-94): one connector identity sent the same 1,000-tool report ~21 times a second on
// its own upstream's subject. Each unchanged report cost the registry ~114 ms, queued with the admin
// commands: an admin request took 1.4–3.1 s, then 6 of 10 were answered 503.
test("attack: a flood of one upstream's reports is decided one a second, latest first, and admin requests stay quick", async () => {
  // An upstream no connector reaches: only the flood reports its lists.
  await registerUpstreams(stack, { name: "flooded", transport: { type: "streamable-http", url: "http://127.0.0.1:9/mcp" } }).catch(() => undefined);
  const connector = await connectAs(nats, "connector", "flooder");
  const tools = Array.from({ length: 1_000 }, (_, i) => ({ name: `t${i}`, description: "d".repeat(300), inputSchema: { type: "object", properties: { a: { type: "string" }, b: { type: "integer" } } } }));
  const report = JSON.stringify({ upstream: "flooded", serverInfo: { name: "flooded", version: "1" }, tools });
  const answers = { changed: 0, unchanged: 0, superseded: 0, other: 0 };
  let flooding = true;
  const flood = (async () => {
    while (flooding) {
      // 80 reports a second, four times the attack's rate: enough that nearly all wait and are
      // superseded. (At 400 a second, 160 MB/s of reports, a full CI run's two cores were the bound:
      // one admin request took 2 s while the registry only read and set aside what it was sent.)
      for (let i = 0; i < 4; i++) {
        void connector.request(Subjects.registryDiscovered("flooded"), report, { timeout: 30_000 }).then(
          (reply) => {
            const body = reply.json<{ changed?: boolean; superseded?: boolean }>();
            answers[body.superseded ? "superseded" : body.changed === true ? "changed" : body.changed === false ? "unchanged" : "other"]++;
          },
          () => void answers.other++,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const admin: { ms: number; status: number }[] = [];
  const attempt = Math.random().toString(36).slice(2, 8); // names of its own: a retried run creates, too
  for (let i = 0; i < 10; i++) {
    await new Promise((r) => setTimeout(r, 400));
    const started = performance.now();
    const res = await stack.admin.post("/v1/consumers", { name: `during-flood-${attempt}-${i}` });
    admin.push({ ms: Math.round(performance.now() - started), status: res.status });
  }
  flooding = false;
  await flood;
  await new Promise((r) => setTimeout(r, 2_000));
  await connector.close();
  console.log(JSON.stringify({ admin, answers }));
  expect(admin.map((a) => a.status)).toEqual(Array(10).fill(201));
  expect(Math.max(...admin.map((a) => a.ms)), "slowest admin request during the flood, ms").toBeLessThan(1_000);
  // Hundreds sent; about one decided a second, the rest answered as superseded.
  expect(answers.superseded).toBeGreaterThan(100);
  expect(answers.changed + answers.unchanged).toBeLessThanOrEqual(8);
}, 60_000);
