import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, expect, test } from "vitest";
import { startHostileUpstream, type HostileUpstream } from "../fixtures/hostileUpstream.js";
import { registerUpstreams } from "../helpers/catalog.js";
import { connectHttp, eventually } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// A 2025-era session's resource subscriptions are held upstream while the session holds them, as a
// 2026-07-28 listen stream's are while it is open: `resources/unsubscribe` and the session's end
// let go upstream of what no other session or stream of any caller holds. Before (2026-12-07), a
// 2025 session's subscriptions were held on the connector's upstream session for that session's
// life (until the caller's share of the upstream's subscriptions overflowed), whatever the agent did:
// five URIs subscribed, one unsubscribed and the session ended, five stayed subscribed upstream.

let nats: NatsServer;
let stack: Stack;
let upstream: HostileUpstream;

beforeAll(async () => {
  nats = await startNats();
  [stack, upstream] = await Promise.all([startStack(nats.url), startHostileUpstream()]);
  await registerUpstreams(stack, { name: "hostile", transport: { type: "streamable-http", url: upstream.url } });
  const created = await stack.admin.post("/v1/virtual-servers", { name: "subs", tools: [], resources: [{ upstream: "hostile", uriTemplate: "hostile://r/{id}" }] });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
}, 60_000);

afterAll(async () => {
  await stack?.close();
  await upstream?.close();
  await nats?.stop();
});

const upstreamHolds = (count: number) => eventually(() => (upstream.subscribed().length === count ? upstream.subscribed() : undefined), 5_000, 50);

test("a 2025 session's unsubscribe and its end let go upstream of what no other session holds", async () => {
  const alice = await connectHttp(stack.mcpUrl("subs"));
  await using other = await connectHttp(stack.mcpUrl("subs"));
  const template = (await alice.listResourceTemplates()).resourceTemplates[0]!.uriTemplate;
  const uri = (id: number) => template.replace("{id}", String(id));
  for (let id = 1; id <= 5; id++) await alice.subscribeResource({ uri: uri(id) });
  await other.subscribeResource({ uri: uri(1) });
  expect(await upstreamHolds(5)).toEqual([1, 2, 3, 4, 5].map((id) => `hostile://r/${id}`));

  await alice.unsubscribeResource({ uri: uri(2) });
  expect(await upstreamHolds(4).catch(() => upstream.subscribed())).toEqual([1, 3, 4, 5].map((id) => `hostile://r/${id}`));

  // DELETE: the session ends; what only it held is let go, what the other session holds stays.
  await (alice.transport as unknown as { terminateSession(): Promise<void> }).terminateSession();
  await alice.close();
  expect(await upstreamHolds(1).catch(() => upstream.subscribed())).toEqual(["hostile://r/1"]);
}, 30_000);
