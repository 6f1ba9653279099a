import { CommandType, RegistryLimits } from "@manifold/contracts";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { beforeAll, describe, expect, test } from "vitest";
import { AdminClient, listAll, TWO_ADMINS } from "../helpers/admin.js";
import { commandsWhile } from "../helpers/adminLoad.js";
import { useRegistryOnly } from "../helpers/registryOnly.js";

// Every admin list answered every object's whole view: `GET /v1/virtual-servers` over 200 virtual
// servers of 500 tools each, promoted to one more environment, was every selected tool's pinned
// definition and every environment's pins of each. Measured here before the lists were paged (see
// the figures printed; docs/operations.md keeps them).

const UPSTREAMS = 20;
const SERVERS = Number(process.env.ADMIN_LIST_SCALE_SERVERS ?? 200);
const TOOLS = 500;
const { bob: BOB, eve: EVE } = TWO_ADMINS;

/** About 900 bytes of definition, as a real upstream's tool with a few documented parameters. */
const toolsOf = (u: number) =>
  Array.from({ length: TOOLS }, (_, t) => ({
    name: `tool_${t}`,
    description: `Tool ${t} of upstream ${u}: searches the records of one kind by their fields, returning at most the limit asked for, newest first, with a cursor for the next page.`,
    inputSchema: {
      type: "object" as const,
      properties: {
        query: { type: "string", description: "What to search for: words, a quoted phrase, or field:value pairs." },
        kind: { type: "string", enum: ["issue", "pull", "commit", "release"], description: "Which records to search." },
        limit: { type: "integer", minimum: 1, maximum: 100, description: "How many records at most." },
        cursor: { type: "string", description: "Where the previous page ended." },
        fields: { type: "array", items: { type: "string" }, description: "Which fields each record carries back." },
      },
      required: ["query"],
    },
  }));

const suite = useRegistryOnly(TWO_ADMINS.env);

/** Fills the registry through its command path: each upstream and virtual server is its own aggregate, so 16 appends run at once. */
async function seed(): Promise<void> {
  const { execute } = suite.registry;
  const batches = async (count: number, one: (i: number) => Promise<unknown>) => {
    for (let i = 0; i < count; i += 16) await Promise.all(Array.from({ length: Math.min(16, count - i) }, (_, j) => one(i + j)));
  };
  await batches(UPSTREAMS, async (u) => {
    const name = `upstream-${String(u).padStart(2, "0")}`;
    await execute({ type: CommandType.registerUpstream, name, transport: { type: "streamable-http", url: `http://127.0.0.1:9/${u}`, headers: {}, secretHeaders: {} }, options: {} });
    await execute({ type: CommandType.recordDiscovery, name, serverInfo: { name: `server-${u}`, version: "1.0.0" }, tools: toolsOf(u) });
  });
  await execute({ type: CommandType.setEnvironment, name: "prod", bindings: {} });
  await batches(SERVERS, async (v) => {
    const name = `vs-${String(v).padStart(3, "0")}`;
    const upstream = `upstream-${String(v % UPSTREAMS).padStart(2, "0")}`;
    const tools = Array.from({ length: TOOLS }, (_, t) => ({ upstream, tool: `tool_${t}` }));
    await execute({ type: CommandType.createVirtualServer, name, naming: { policy: "suffix", prefixes: {} }, driftPolicy: "pinned", tools });
    await execute({ type: CommandType.promote, name, from: "default", to: "prod", force: false });
  });
}

describe(`admin lists at scale: ${SERVERS} virtual servers × ${TOOLS} tools, in two environments`, () => {
  beforeAll(async () => {
    const seeding = performance.now();
    await seed();
    console.log(`[admin list scale] seeded ${UPSTREAMS} upstreams × ${TOOLS} tools, ${SERVERS} virtual servers in ${Math.round(performance.now() - seeding)} ms`);
  }, 300_000);

  test("attack: one admin's list of virtual servers is bounded in bytes and time; another admin's commands stay fast meanwhile", { timeout: 120_000 }, async () => {
    const eve = new AdminClient(suite.admin.baseUrl, EVE);
    const bob = new AdminClient(suite.admin.baseUrl, BOB);
    const alone = await commandsWhile(undefined, bob, "alone");

    const loop = monitorEventLoopDelay({ resolution: 5 });
    loop.enable();
    const started = performance.now();
    const res = await fetch(`${suite.admin.baseUrl}/v1/virtual-servers`, { headers: { authorization: `Bearer ${EVE}` } });
    const bytes = (await res.arrayBuffer()).byteLength;
    const took = performance.now() - started;
    loop.disable();
    const held = loop.max / 1e6;
    const list = () => fetch(`${suite.admin.baseUrl}/v1/virtual-servers`, { headers: { authorization: `Bearer ${EVE}` } }).then((r) => r.arrayBuffer());
    const during = await commandsWhile(list, bob, "vs");
    console.log(
      `[admin list scale] GET /v1/virtual-servers: ${res.status}, ${(bytes / 1_048_576).toFixed(2)} MiB in ${Math.round(took)} ms, event loop held up to ${Math.round(held)} ms; ` +
        `another admin's command p50 ${Math.round(alone[5]!)} ms alone, p50 ${Math.round(during[5]!)} / max ${Math.round(during[9]!)} ms while 4 lists run`,
    );
    const upstreams = await eve.get("/v1/upstreams");
    console.log(`[admin list scale] GET /v1/upstreams: ${(JSON.stringify(upstreams.body).length / 1_048_576).toFixed(2)} MiB`);
    expect(res.status).toBe(200);
    // A page of summaries: names and counts, not every pinned definition.
    expect(bytes).toBeLessThan(256 * 1024);
    expect(during[5]!).toBeLessThan(250);
    expect(JSON.stringify(upstreams.body).length).toBeLessThan(256 * 1024);

    // Every virtual server is reached by following `next`, each once, in name order.
    const names: string[] = [];
    for (let after: string | undefined = undefined, pages = 0; pages < 100; pages++) {
      const page: { status: number; body: { items: { name: string; counts: { tools: number } }[]; next?: string } } = await eve.get(`/v1/virtual-servers?limit=50${after ? `&after=${after}` : ""}`);
      expect(page.status).toBe(200);
      names.push(...page.body.items.map((v) => v.name));
      expect(page.body.items[0]?.counts.tools).toBe(TOOLS);
      after = page.body.next;
      if (!after) break;
    }
    expect(names).toEqual(Array.from({ length: SERVERS }, (_, v) => `vs-${String(v).padStart(3, "0")}`));
  });

  test("a virtual server's view counts its environments' pins, which come a page at a time on their own route; a drift decision answers what it decided", { timeout: 120_000 }, async () => {
    const eve = new AdminClient(suite.admin.baseUrl, EVE);
    const view = await eve.get("/v1/virtual-servers/vs-000");
    const viewBytes = JSON.stringify(view.body).length;
    const pins: { exposedName: string }[] = [];
    let pages = 0;
    for (let after: string | undefined; pages < 10; ) {
      const page = await eve.get(`/v1/virtual-servers/vs-000/environments/prod?limit=200${after ? `&after=${encodeURIComponent(after)}` : ""}`);
      expect(page.status).toBe(200);
      pages++;
      pins.push(...page.body.items);
      after = page.body.next;
      if (!after) break;
    }
    expect(view.body.environments.prod).toEqual({ tools: TOOLS, prompts: 0, resources: 0, resourceTemplates: 0 });
    expect(pages).toBe(3);
    const selected = await listAll<{ exposedName: string; tool: string }>(eve, "/v1/virtual-servers/vs-000/tools");
    expect(pins.map((p) => p.exposedName).sort()).toEqual(selected.map((t) => t.exposedName).sort());

    // A changed tool_0 upstream: drift on each virtual server selecting it.
    const changed = toolsOf(0).map((t, i) => (i === 0 ? { ...t, description: `${t.description} Now newest last.` } : t));
    await suite.registry.execute({ type: CommandType.recordDiscovery, name: "upstream-00", serverInfo: { name: "server-0", version: "1.1.0" }, tools: changed });
    const exposed = selected.find((t) => t.tool === "tool_0")!.exposedName;
    const started = performance.now();
    const decided = await eve.post(`/v1/virtual-servers/vs-000/drift/${exposed}/accept`, {});
    const took = performance.now() - started;
    const decisionBytes = JSON.stringify(decided.body).length;
    console.log(`[admin list scale] GET /v1/virtual-servers/vs-000: ${(viewBytes / 1024).toFixed(0)} KiB; its prod pins in ${pages} pages of 200; an accepted drift answered ${(decisionBytes / 1024).toFixed(1)} KiB in ${Math.round(took)} ms`);
    expect(decided.status, JSON.stringify(decided.body).slice(0, 300)).toBe(200);
    expect(decided.body).toMatchObject({ virtualServer: "vs-000", environment: "default", exposedName: exposed, decision: "accept", changed: true, pin: { upstream: "upstream-00", tool: "tool_0" } });
    expect(decisionBytes).toBeLessThan(1024);
  });

  test(`at the limit of ${RegistryLimits.environmentPinsPerVirtualServer} environment pins, the view and a drift decision stay small`, { timeout: 300_000 }, async () => {
    const { execute } = suite.registry;
    const tools = 1_000;
    const environments = RegistryLimits.environmentPinsPerVirtualServer / tools;
    // Short definitions: the view's size is its pins here, not the selection's definitions.
    await execute({ type: CommandType.registerUpstream, name: "wide", transport: { type: "streamable-http", url: "http://127.0.0.1:9/wide", headers: {}, secretHeaders: {} }, options: {} });
    await execute({ type: CommandType.recordDiscovery, name: "wide", serverInfo: { name: "wide", version: "1.0.0" }, tools: Array.from({ length: tools }, (_, t) => ({ name: `w_${t}`, inputSchema: { type: "object" as const } })) });
    await execute({ type: CommandType.createVirtualServer, name: "pinned-wide", naming: { policy: "bare", prefixes: {} }, driftPolicy: "pinned", tools: Array.from({ length: tools }, (_, t) => ({ upstream: "wide", tool: `w_${t}` })) });
    for (let e = 0; e < environments; e += 10) {
      await Promise.all(Array.from({ length: 10 }, (_, i) => execute({ type: CommandType.setEnvironment, name: `env-${e + i}`, bindings: {} })));
      for (let i = 0; i < 10; i++) await execute({ type: CommandType.promote, name: "pinned-wide", from: "default", to: `env-${e + i}`, force: false });
    }
    const eve = new AdminClient(suite.admin.baseUrl, EVE);
    const started = performance.now();
    const view = await eve.get("/v1/virtual-servers/pinned-wide");
    const took = performance.now() - started;
    const bytes = JSON.stringify(view.body).length;
    await execute({ type: CommandType.recordDiscovery, name: "wide", serverInfo: { name: "wide", version: "1.1.0" }, tools: Array.from({ length: tools }, (_, t) => ({ name: `w_${t}`, description: t === 0 ? "changed" : undefined, inputSchema: { type: "object" as const } })) });
    const decided = await eve.post("/v1/virtual-servers/pinned-wide/drift/w_0/accept?environment=env-0", {});
    const decisionBytes = JSON.stringify(decided.body).length;
    console.log(`[admin list scale] ${environments} environments × ${tools} pins: the view ${(bytes / 1024).toFixed(0)} KiB in ${Math.round(took)} ms; a drift decision in env-0 answered ${(decisionBytes / 1024).toFixed(1)} KiB`);
    expect(view.status).toBe(200);
    expect(decided.status, JSON.stringify(decided.body).slice(0, 300)).toBe(200);
    expect(bytes).toBeLessThan(512 * 1024);
    expect(decisionBytes).toBeLessThan(1024);
  });
});
