import type { NatsServer } from "@manifold/nats-server";
import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from "@modelcontextprotocol/client";
import { toNodeHandler } from "@modelcontextprotocol/node";
import { createMcpHandler, Server } from "@modelcontextprotocol/server";
import { createServer } from "node:http";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { registerUpstreams } from "../helpers/catalog.js";
import { eventually } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";
import { everythingStdio } from "../helpers/upstreams.js";

// Resource subscriptions live on the connector's shared upstream session, which every caller
// shares. A caller may subscribe to as many URIs as a selected template expands to: it must use up
// its own share only, never another tenant's subscriptions, and what nobody holds is let go upstream.

/** A 2026-07-28 upstream (the 2.x SDK) with listed resources and a template, counting the listen streams open on it. */
async function resourceUpstream() {
  const server = () => {
    const s = new Server({ name: "docs", version: "1.0.0" }, { capabilities: { resources: { subscribe: true, listChanged: true } } });
    s.setRequestHandler("resources/list", () => ({ resources: [{ uri: "doc://a", name: "a" }, { uri: "doc://b", name: "b" }] }));
    s.setRequestHandler("resources/templates/list", () => ({ resourceTemplates: [{ uriTemplate: "doc://item/{id}", name: "item" }] }));
    s.setRequestHandler("resources/read", ({ params }) => ({ contents: [{ uri: params.uri, text: `content of ${params.uri}` }] }));
    return s;
  };
  const handler = createMcpHandler(server, { legacy: "reject", maxSubscriptions: 100_000 });
  const node = toNodeHandler(handler);
  let openListens = 0;
  const http = createServer((req, res) => {
    if (req.headers["mcp-method"] === "subscriptions/listen") {
      openListens++;
      res.once("close", () => openListens--);
    }
    void node(req, res);
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(http.address() as { port: number }).port}/mcp`,
    openListens: () => openListens,
    close: async () => {
      await handler.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

describe("a caller's resource subscriptions use up its own share, never another tenant's", () => {
  let nats: NatsServer;
  let stack: Stack;
  let docs: Awaited<ReturnType<typeof resourceUpstream>>;
  let toggle: string;
  const keys: Record<string, string> = {};
  const FEATURES = "pipe+demo://resource/static/document/features.md";

  beforeAll(async () => {
    nats = await startNats();
    // A request budget the attacker's 10,400 subscriptions (110 units a listen of 100) never exhaust: the shares are what is tested.
    [stack, docs] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", GATEWAY_MAX_REQUESTS_PER_S_PER_PRINCIPAL: "1000000" }), resourceUpstream()]);
    await registerUpstreams(stack, { name: "pipe", transport: everythingStdio() }, { name: "docs", transport: { type: "streamable-http", url: docs.url } });
    const created = await stack.admin.post("/v1/virtual-servers", {
      name: "vault",
      tools: [{ upstream: "pipe", tool: "toggle-subscriber-updates" }],
      resources: [
        { upstream: "pipe", uri: "demo://resource/static/document/features.md" },
        { upstream: "pipe", uriTemplate: "demo://resource/dynamic/text/{resourceId}" },
        { upstream: "docs", uri: "doc://a" },
        { upstream: "docs", uri: "doc://b" },
        { upstream: "docs", uriTemplate: "doc://item/{id}" },
      ],
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    toggle = created.body.tools[0].exposedName;
    for (const name of ["victim", "attacker"]) {
      expect((await stack.admin.post("/v1/consumers", { name })).status).toBe(201);
      keys[name] = (await stack.admin.post(`/v1/consumers/${name}/keys`, {})).body.key;
      expect((await stack.admin.post("/v1/virtual-servers/vault/grants", { grantId: name, subject: { consumer: name } })).status).toBe(201);
    }
  }, 120_000);

  afterAll(async () => {
    await stack?.close();
    await docs?.close();
    await nats?.stop();
  });

  const client = async (consumer: string) => {
    const c = new ModernClient({ name: consumer, version: "1.0.0" }, { versionNegotiation: { mode: { pin: "2026-07-28" } } });
    await c.connect(new ModernTransport(new URL(stack.mcpUrl("vault")), { requestInit: { headers: { authorization: `Bearer ${keys[consumer]}` } } }));
    return c;
  };

  /** Subscribes the attacker to `batches` × 100 distinct URIs of a template, closing each stream at once unless `open` keeps them. */
  const flood = async (attacker: ModernClient, template: (n: number) => string, batches: number, open?: { close(): Promise<void> }[]) => {
    for (let batch = 0; batch < batches; batch += 4) {
      await Promise.all(
        [0, 1, 2, 3].filter((i) => batch + i < batches).map(async (i) => {
          const stream = await attacker.listen({ resourceSubscriptions: Array.from({ length: 100 }, (_, n) => template((batch + i) * 100 + n + 1)) });
          expect(stream.honoredFilter.resourceSubscriptions).toHaveLength(100);
          if (open) open.push(stream);
          else await stream.close();
        }),
      );
    }
  };

  test("10,400 URIs subscribed by one consumer do not make another consumer's open stream deaf (server-everything over stdio)", async () => {
    const victim = await client("victim");
    const heard: string[] = [];
    victim.setNotificationHandler("notifications/resources/updated", (n) => void heard.push(n.params.uri));
    /** server-everything announces an update of every subscribed URI every few seconds while toggled on. */
    const hears = async () => {
      heard.length = 0;
      await victim.callTool({ name: toggle, arguments: {} });
      const got = await eventually(() => (heard.includes(FEATURES) ? true : undefined), 8_000, 50).catch(() => false);
      await victim.callTool({ name: toggle, arguments: {} });
      return got;
    };
    const stream = await victim.listen({ resourceSubscriptions: [FEATURES] });
    const attacker = await client("attacker");
    try {
      expect(stream.honoredFilter.resourceSubscriptions).toEqual([FEATURES]);
      expect(await hears()).toBe(true);
      await flood(attacker, (n) => `pipe+demo://resource/dynamic/text/${n}`, 104);
      // Before: the connector kept the last 10,000 URIs subscribed through it, whoever asked, and the victim's was forgotten.
      expect(await hears()).toBe(true);
    } finally {
      await stream.close();
      await Promise.all([victim.close(), attacker.close()]);
    }
  }, 120_000);

  test("a 2026-07-28 upstream's listen streams are closed once no caller holds their URIs, and only then", async () => {
    const victim = await client("victim");
    const attacker = await client("attacker");
    const base = docs.openListens();
    const uris = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, n) => `docs+doc://item/r${from + n}`);
    try {
      // The victim holds 10 of the 50 URIs the attacker subscribes to, on a stream it keeps open.
      const kept = await victim.listen({ resourceSubscriptions: uris(1, 10) });
      expect(kept.honoredFilter.resourceSubscriptions).toHaveLength(10);
      const mine = await attacker.listen({ resourceSubscriptions: uris(1, 50) });
      const again = await attacker.listen({ resourceSubscriptions: uris(41, 50) });
      expect(mine.honoredFilter.resourceSubscriptions).toHaveLength(50);
      expect(docs.openListens() - base).toBe(50);
      // One of the attacker's two streams holding 41-50 closes: the other still holds them.
      await mine.close();
      expect(await eventually(() => (docs.openListens() - base === 20 ? 20 : undefined), 10_000, 50).catch(() => docs.openListens() - base)).toBe(20);
      await again.close();
      // Before: all 50 stayed open upstream for the connection's life; now only the victim's 10.
      expect(await eventually(() => (docs.openListens() - base === 10 ? 10 : undefined), 10_000, 50).catch(() => docs.openListens() - base)).toBe(10);
      await kept.close();
      expect(await eventually(() => (docs.openListens() === base ? 0 : undefined), 10_000, 50).catch(() => docs.openListens() - base)).toBe(0);
    } finally {
      await Promise.all([victim.close(), attacker.close()]);
    }
  }, 60_000);

  test("one consumer's 1,000 URIs of a 2026-07-28 upstream leave another consumer's subscriptions honoured, and the upstream holds no more than 1,000 streams", async () => {
    const victim = await client("victim");
    const attacker = await client("attacker");
    const open: { close(): Promise<void> }[] = [];
    try {
      // Held open: a closed stream's URIs are let go of upstream, and would make room by themselves.
      await flood(attacker, (n) => `docs+doc://item/${n}`, 10, open);
      // Before: each URI kept a listen stream open upstream for the connection's life (1,000 of 1,000), and the victim's was refused.
      const stream = await victim.listen({ resourceSubscriptions: ["docs+doc://b"] });
      expect(stream.honoredFilter.resourceSubscriptions).toEqual(["docs+doc://b"]);
      await stream.close();
      // The connector follows at most 1,000 resources of the upstream, one listen stream each: the victim's made room by letting go of the attacker's oldest.
      expect(docs.openListens()).toBeLessThanOrEqual(1_000);
    } finally {
      await Promise.all(open.map((stream) => stream.close()));
      await Promise.all([victim.close(), attacker.close()]);
    }
  }, 120_000);
});
