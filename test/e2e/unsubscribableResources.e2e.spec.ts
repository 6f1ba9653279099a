import type { NatsServer } from "@manifold/nats-server";
import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from "@modelcontextprotocol/client";
import { toNodeHandler } from "@modelcontextprotocol/node";
import { createMcpHandler, Server } from "@modelcontextprotocol/server";
import { createServer } from "node:http";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { grantedConsumers, registerUpstreams, rpcError } from "../helpers/catalog.js";
import { connectWithKey } from "../helpers/mcp.js";
import { MODERN, modernRequest } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

/**
 * An upstream (the 2.x SDK; 2026-07-28, and 2025 too when `legacy`) with one resource; `subscribe`
 * says whether it declares `resources.subscribe`. `methods`: every request method it received.
 */
async function docsUpstream(subscribe: boolean, legacy: "reject" | "stateless" = "reject") {
  const methods: string[] = [];
  const server = () => {
    const s = new Server({ name: "docs", version: "1.0.0" }, { capabilities: { resources: subscribe ? { subscribe: true } : {} } });
    s.setRequestHandler("resources/list", () => ({ resources: [{ uri: "doc://a", name: "a" }] }));
    s.setRequestHandler("resources/templates/list", () => ({ resourceTemplates: [] }));
    s.setRequestHandler("resources/read", ({ params }) => ({ contents: [{ uri: params.uri, text: "a" }] }));
    return s;
  };
  const handler = createMcpHandler(server, { legacy });
  const node = toNodeHandler(handler);
  // Each POST body read here first, to note its methods, then handed to the SDK parsed.
  const http = createServer((req, res) => {
    if (req.method !== "POST") return void node(req, res);
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const body: unknown = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      for (const message of [body].flat() as { method?: unknown }[]) if (typeof message?.method === "string") methods.push(message.method);
      void node(req, res, body);
    });
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  return {
    methods,
    url: `http://127.0.0.1:${(http.address() as { port: number }).port}/mcp`,
    close: async () => {
      await handler.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

/**
 * `resources.subscribe` is offered only when an upstream behind the virtual server's resources
 * declared it, and a subscription to a resource whose upstream did not is refused at the gateway
 * (`subscribe_unsupported`, -32602), in both eras. Before, every virtual server with resources
 * said `subscribe: true`, and such a subscription went upstream and came back -32012
 * `upstream_error` (`upstreamCode` -32601).
 */
describe("resource subscriptions offered as the upstreams support them", () => {
  let nats: NatsServer;
  let stack: Stack;
  let subscribing: Awaited<ReturnType<typeof docsUpstream>>;
  let plain: Awaited<ReturnType<typeof docsUpstream>>;
  let old: Awaited<ReturnType<typeof docsUpstream>>;
  let key: string;
  let keys: Record<string, string>;

  beforeAll(async () => {
    nats = await startNats();
    [stack, subscribing, plain, old] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required" }), docsUpstream(true), docsUpstream(false), docsUpstream(false, "stateless")]);
    await registerUpstreams(
      stack,
      { name: "subs", transport: { type: "streamable-http", url: subscribing.url } },
      { name: "plain", transport: { type: "streamable-http", url: plain.url } },
      // Spoken to in 2025: its resources/subscribe, asked, is the upstream's -32601.
      { name: "old", transport: { type: "streamable-http", url: old.url, protocol: "2025" } },
    );
    for (const [name, upstreams] of [["only-plain", ["plain", "old"]], ["both", ["subs", "plain", "old"]]] as const) {
      const created = await stack.admin.post("/v1/virtual-servers", { name, resources: upstreams.map((upstream) => ({ upstream, uri: "doc://a" })) });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
    }
    keys = await grantedConsumers(stack, "only-plain", ["ann", "eve", "mal"]);
    key = keys.ann!;
    await stack.admin.post("/v1/virtual-servers/both/grants", { grantId: "ann", subject: { consumer: "ann" } });
    // On "both", eve may not read plain's resource (its upstream takes no subscriptions), mal may not read subs' (its upstream does).
    for (const [consumer, uri] of [["eve", "plain+doc://a"], ["mal", "subs+doc://a"]] as const) {
      const denied = await stack.admin.post("/v1/virtual-servers/both/grants", { grantId: consumer, subject: { consumer }, deniedResources: [uri] });
      expect(denied.status, JSON.stringify(denied.body)).toBe(201);
    }
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    await subscribing?.close();
    await plain?.close();
    await old?.close();
    await nats?.stop();
  });

  test("2025-11-25 agent: no subscribe offered where no upstream has it; where one has, the other's resource is refused at the gateway", async () => {
    await using onlyPlain = await connectWithKey(stack.mcpUrl("only-plain"), key);
    const offered = onlyPlain.getServerCapabilities()?.resources;
    const refusedThere = await rpcError(onlyPlain.subscribeResource({ uri: "old+doc://a" }));
    await using both = await connectWithKey(stack.mcpUrl("both"), key);
    const offeredBoth = both.getServerCapabilities()?.resources;
    const refused = await rpcError(both.subscribeResource({ uri: "plain+doc://a" }));
    const refusedOld = await rpcError(both.subscribeResource({ uri: "old+doc://a" }));
    const taken = await both.subscribeResource({ uri: "subs+doc://a" });
    console.log(`only-plain offers ${JSON.stringify(offered)}, subscribe → ${refusedThere.code} ${JSON.stringify(refusedThere.data)}; both offers ${JSON.stringify(offeredBoth)}, plain's → ${refused.code} ${JSON.stringify(refused.data)} "${refused.message}", old's (2025) → ${refusedOld.code} ${JSON.stringify(refusedOld.data)}, subs' → ${JSON.stringify(taken)}`);
    expect(offered).toEqual({ listChanged: true });
    expect(refusedThere.code).toBe(-32601);
    expect(offeredBoth).toEqual({ subscribe: true, listChanged: true });
    expect(refused.code).toBe(-32602);
    expect(refused.data).toMatchObject({ code: "subscribe_unsupported" });
    expect(refusedOld.code).toBe(-32602);
    expect(refusedOld.data).toMatchObject({ code: "subscribe_unsupported" });
    expect(taken).toEqual({});
  }, 30_000);

  test("2026-07-28 agent: server/discover offers subscribe as above; a listen acknowledges only the resource whose upstream takes subscriptions", async () => {
    const discovered = async (vs: string) => (await modernRequest(stack.mcpUrl(vs), key, "server/discover", {})).result?.capabilities?.resources;
    const [onlyPlain, both] = [await discovered("only-plain"), await discovered("both")];
    const agent = new ModernClient({ name: "listener", version: "1" }, { versionNegotiation: { mode: { pin: MODERN } } });
    await agent.connect(new ModernTransport(new URL(stack.mcpUrl("both")), { requestInit: { headers: { authorization: `Bearer ${key}` } } }));
    try {
      const subscription = await agent.listen({ resourceSubscriptions: ["plain+doc://a", "old+doc://a", "subs+doc://a"] });
      console.log(`discover: only-plain ${JSON.stringify(onlyPlain)}, both ${JSON.stringify(both)}; listen honoured ${JSON.stringify(subscription.honoredFilter)}`);
      expect(onlyPlain).toEqual({ listChanged: true });
      expect(both).toEqual({ subscribe: true, listChanged: true });
      expect(subscription.honoredFilter).toMatchObject({ resourceSubscriptions: ["subs+doc://a"] });
    } finally {
      await agent.close();
    }
  }, 30_000);

  // attack (helper-191): subscribe_unsupported is decided at the gateway, so it must come after the
  // grant: answered for a URI the caller may not read, it would tell the caller that the URI exists
  // behind the virtual server and that its upstream takes no subscriptions. And a refusal at the
  // gateway must cost the upstreams nothing however often it is asked.
  test("attack: a denied resource is resource_not_found whatever its upstream supports; 100 refused subscriptions reach no upstream", async () => {
    // What subscribes upstream: a 2025 session's resources/subscribe, a 2026-07-28 connection's listen.
    const subscribed = () => [subscribing, plain, old].map((u) => u.methods.filter((m) => m === "resources/subscribe" || m === "subscriptions/listen").length);
    const before = subscribed();
    // eve is denied plain's resource (whose upstream takes no subscriptions), mal subs' (whose upstream does).
    await using eve = await connectWithKey(stack.mcpUrl("both"), keys.eve!);
    const [deniedPlain, unknown, grantedOld] = await Promise.all(["plain+doc://a", "nowhere+doc://a", "old+doc://a"].map((uri) => rpcError(eve.subscribeResource({ uri }))));
    const listenAs = async (consumer: string, uris: string[]) => {
      const agent = new ModernClient({ name: consumer, version: "1" }, { versionNegotiation: { mode: { pin: MODERN } } });
      await agent.connect(new ModernTransport(new URL(stack.mcpUrl("both")), { requestInit: { headers: { authorization: `Bearer ${keys[consumer]}` } } }));
      return (await agent.listen({ resourceSubscriptions: uris }).finally(() => agent.close())).honoredFilter.resourceSubscriptions ?? [];
    };
    const [eveListened, malListened] = [await listenAs("eve", ["plain+doc://a", "old+doc://a"]), await listenAs("mal", ["subs+doc://a"])];
    // ann, granted all three, asks 100 times at once for the one whose upstream takes none.
    await using ann = await connectWithKey(stack.mcpUrl("both"), key);
    const flood = await Promise.all(Array.from({ length: 100 }, () => rpcError(ann.subscribeResource({ uri: "plain+doc://a" }))));
    const after = subscribed();
    const summary = (e: { code: number; data?: any } | undefined) => `${e?.code} ${e?.data?.code}`;
    console.log(
      `eve: denied plain's → ${summary(deniedPlain)}, unknown → ${summary(unknown)}, old's → ${summary(grantedOld)}; listens honoured: eve ${JSON.stringify(eveListened)}, mal ${JSON.stringify(malListened)}; ` +
        `ann's 100 → ${[...new Set(flood.map(summary))].join(", ")}; subscriptions received by subs, plain, old: before ${before.join(", ")}, after ${after.join(", ")}`,
    );
    expect(deniedPlain).toMatchObject({ code: -32602, data: { code: "resource_not_found" } });
    expect(unknown).toMatchObject({ code: -32602, data: { code: "resource_not_found" } });
    expect(grantedOld?.data).toMatchObject({ code: "subscribe_unsupported" });
    expect([eveListened, malListened]).toEqual([[], []]);
    expect(flood.every((e) => e.code === -32602 && e.data?.code === "subscribe_unsupported")).toBe(true);
    expect(after).toEqual(before);
  }, 60_000);
});
