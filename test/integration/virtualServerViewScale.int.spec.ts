import { CommandType } from "@manifold/contracts";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { beforeAll, describe, expect, test } from "vitest";
import { AdminClient, TWO_ADMINS } from "../helpers/admin.js";
import { commandsWhile } from "../helpers/adminLoad.js";
import { useRegistryOnly } from "../helpers/registryOnly.js";
import { longTools } from "../helpers/longTools.js";

// A virtual server of thousands of selected tools answered every one of their pinned definitions
// to each of its commands (select, deselect, rename, describe, promote, drift policy, interactions)
// and to GET /v1/virtual-servers/:name; the tool search lowercased each of 100,000 descriptions per
// request. Measured here (the figures printed; docs/operations.md keeps them).

const UPSTREAMS = 10;
const TOOLS = 500;
/** Upstreams searched by `GET /v1/upstream-tools` beyond the selected ones (500 long tools each). */
const SEARCHED = Number(process.env.VS_VIEW_SCALE_SEARCHED_UPSTREAMS ?? 30);
const MiB = 1024 * 1024;
const { bob: BOB, eve: EVE } = TWO_ADMINS;

const toolsOf = (u: number) => longTools(u, TOOLS);

const suite = useRegistryOnly(TWO_ADMINS.env);
const upstreamName = (u: number) => `upstream-${String(u).padStart(3, "0")}`;

async function seed(): Promise<void> {
  const { execute } = suite.registry;
  for (let u = 0; u < UPSTREAMS + SEARCHED; u += 8) {
    await Promise.all(
      Array.from({ length: Math.min(8, UPSTREAMS + SEARCHED - u) }, async (_, i) => {
        const name = upstreamName(u + i);
        await execute({ type: CommandType.registerUpstream, name, transport: { type: "streamable-http", url: `http://127.0.0.1:9/${u + i}`, headers: {}, secretHeaders: {} }, options: {} });
        await execute({ type: CommandType.recordDiscovery, name, serverInfo: { name, version: "1.0.0" }, tools: toolsOf(u + i) });
      }),
    );
  }
  await execute({ type: CommandType.setEnvironment, name: "prod", bindings: {} });
  await execute({ type: CommandType.createVirtualServer, name: "wide", naming: { policy: "prefix", prefixes: {} }, driftPolicy: "pinned", tools: [] });
  // A selection's event carries its definitions: 250 at a time stays within a bus message.
  for (let u = 0; u < UPSTREAMS; u++) {
    for (let from = 0; from < TOOLS; from += 250) {
      const tools = Array.from({ length: 250 }, (_, t) => ({ upstream: upstreamName(u), tool: `tool_${from + t}` }));
      await execute({ type: CommandType.selectTools, name: "wide", tools });
    }
  }
}

/** One admin request's answer size, time and the event loop's longest hold meanwhile. */
async function measured(client: AdminClient, method: string, path: string, body?: unknown) {
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  const started = performance.now();
  const res = await client.request(method, path, body);
  const took = performance.now() - started;
  loop.disable();
  return { status: res.status, body: res.body, bytes: JSON.stringify(res.body ?? "").length, took, held: loop.max / 1e6 };
}

const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;

describe(`a virtual server of ${UPSTREAMS * TOOLS} selected tools with long definitions`, () => {
  beforeAll(async () => {
    const seeding = performance.now();
    await seed();
    console.log(`[vs view scale] seeded ${UPSTREAMS + SEARCHED} upstreams × ${TOOLS} tools, ${UPSTREAMS * TOOLS} selected, in ${Math.round(performance.now() - seeding)} ms`);
  }, 600_000);

  test("attack: the view and each command's answer are bounded; another admin's commands stay fast while one loops on the view", { timeout: 300_000 }, async () => {
    const eve = new AdminClient(suite.admin.baseUrl, EVE);
    const bob = new AdminClient(suite.admin.baseUrl, BOB);
    const first = "upstream-000_tool_0";
    const answers = {
      view: await measured(eve, "GET", "/v1/virtual-servers/wide"),
      select: await measured(eve, "POST", "/v1/virtual-servers/wide/tools", { tools: [{ upstream: upstreamName(UPSTREAMS), tool: "tool_0" }] }),
      deselect: await measured(eve, "POST", "/v1/virtual-servers/wide/tools/remove", { exposedNames: [`${upstreamName(UPSTREAMS)}_tool_0`] }),
      describe: await measured(eve, "PATCH", `/v1/virtual-servers/wide/tools/${first}`, { description: "Searches the first kind." }),
      rename: await measured(eve, "POST", `/v1/virtual-servers/wide/tools/${first}/rename`, { newName: "first_search", keepDeprecatedAlias: true }),
      promote: await measured(eve, "POST", "/v1/virtual-servers/wide/promote", { from: "default", to: "prod", tools: ["first_search", "upstream-001_tool_1"] }),
      driftPolicy: await measured(eve, "PUT", "/v1/virtual-servers/wide/drift-policy", { policy: "pinned" }),
      interactions: await measured(eve, "PUT", "/v1/virtual-servers/wide/interactions", { elicitation: false, sampling: true, roots: true }),
    };
    for (const [what, a] of Object.entries(answers)) {
      console.log(`[vs view scale] ${what}: ${a.status}, ${kib(a.bytes)} in ${Math.round(a.took)} ms, event loop held up to ${Math.round(a.held)} ms`);
    }
    const alone = await commandsWhile(undefined, bob, "alone");
    const view = () => fetch(`${suite.admin.baseUrl}/v1/virtual-servers/wide`, { headers: { authorization: `Bearer ${EVE}` } }).then((r) => r.arrayBuffer());
    const during = await commandsWhile(view, bob, "view");
    console.log(`[vs view scale] another admin's command p50 ${Math.round(alone[5]!)} ms alone, p50 ${Math.round(during[5]!)} / max ${Math.round(during[9]!)} ms while 4 views loop`);

    for (const [what, a] of Object.entries(answers)) {
      expect(a.status, `${what}: ${JSON.stringify(a.body).slice(0, 300)}`).toBe(200);
      // Summaries, counts and what each command decided: never every pinned definition.
      expect(a.bytes, what).toBeLessThan(64 * 1024);
    }
    expect(answers.view.body.counts.tools).toBe(UPSTREAMS * TOOLS);
    expect(answers.select.body.tools).toMatchObject([{ upstream: upstreamName(UPSTREAMS), tool: "tool_0", exposedName: `${upstreamName(UPSTREAMS)}_tool_0` }]);
    expect(answers.rename.body.deprecatedAlias).toEqual({ alias: first, current: "first_search" });
    expect(answers.describe.body.tool).toMatchObject({ exposedName: first, descriptionOverride: "Searches the first kind." });
    expect(answers.interactions.body.interactions).toEqual({ elicitation: false, sampling: true, roots: true });
    expect(during[5]!).toBeLessThan(250);
  });

  test("the selection comes a page at a time on its own routes, each page at most 1 MiB, every tool with its definition", { timeout: 120_000 }, async () => {
    const eve = new AdminClient(suite.admin.baseUrl, EVE);
    const names: string[] = [];
    let largest = 0;
    let pages = 0;
    for (let after: string | undefined; pages < 200; ) {
      const page = await measured(eve, "GET", `/v1/virtual-servers/wide/tools?limit=500${after ? `&after=${encodeURIComponent(after)}` : ""}`);
      expect(page.status, JSON.stringify(page.body).slice(0, 300)).toBe(200);
      pages++;
      largest = Math.max(largest, page.bytes);
      expect(page.body.items[0].definition.description).toContain("Searches the records");
      names.push(...page.body.items.map((t: { exposedName: string }) => t.exposedName));
      after = page.body.next;
      if (!after) break;
    }
    console.log(`[vs view scale] GET /v1/virtual-servers/wide/tools: ${names.length} tools in ${pages} pages of at most ${kib(largest)}`);
    expect(largest).toBeLessThanOrEqual(MiB + 4096);
    expect(names).toHaveLength(UPSTREAMS * TOOLS);
    expect(new Set(names).size).toBe(names.length);
    expect([...names].sort()).toEqual(names);
    const aliases = await eve.get("/v1/virtual-servers/wide/aliases");
    expect(aliases.body.items).toEqual([{ alias: "upstream-000_tool_0", current: "first_search" }]);
  });

  test(`the tool search over ${(UPSTREAMS + SEARCHED) * TOOLS} long definitions holds the event loop briefly; another admin's commands stay fast while one admin searches`, { timeout: 120_000 }, async () => {
    const eve = new AdminClient(suite.admin.baseUrl, EVE);
    const bob = new AdminClient(suite.admin.baseUrl, BOB);
    // A needle no tool holds reads every definition: the most one search costs.
    const misses = [];
    for (let i = 0; i < 10; i++) misses.push(await measured(eve, "GET", `/v1/upstream-tools?q=no-such-words-${i}&limit=500`));
    // The first search reads each definition's text once; the others find it made. The median of
    // each search's longest hold: one collection or a descheduled process is not the search's.
    const [cold, ...warm] = misses;
    const holds = warm.map((m) => m.held).sort((a, b) => a - b);
    const held = holds[4]!;
    const took = warm.map((m) => m.took).sort((a, b) => a - b);
    const search = () => fetch(`${suite.admin.baseUrl}/v1/upstream-tools?q=nothing-at-all&limit=500`, { headers: { authorization: `Bearer ${EVE}` } }).then((r) => r.arrayBuffer());
    const during = await commandsWhile(search, bob, "search");
    console.log(
      `[vs view scale] GET /v1/upstream-tools?q= (miss) over ${(UPSTREAMS + SEARCHED) * TOOLS} tools: the first ${Math.round(cold!.took)} ms (loop held ${Math.round(cold!.held)} ms), then p50 ${Math.round(took[4]!)} ms, event loop held p50 ${Math.round(held)} / max ${Math.round(holds[8]!)} ms; ` +
        `another admin's command p50 ${Math.round(during[5]!)} / max ${Math.round(during[9]!)} ms while 4 searches loop`,
    );
    expect(misses.every((m) => m.status === 200 && m.body.items.length === 0)).toBe(true);
    const found = await eve.get("/v1/upstream-tools?q=TOOL%207%20OF%20UPSTREAM%203.&limit=5");
    expect(found.body.items).toEqual([expect.objectContaining({ upstream: upstreamName(3), tool: "tool_7" })]);
    // Slices of 4 ms (before: 87 ms, every search alike).
    expect(held).toBeLessThan(30);
    expect(during[5]!).toBeLessThan(250);
  });

  test("environments and identity providers are paged lists", { timeout: 60_000 }, async () => {
    const eve = new AdminClient(suite.admin.baseUrl, EVE);
    const { execute } = suite.registry;
    for (let e = 0; e < 12; e++) await execute({ type: CommandType.setEnvironment, name: `env-${String(e).padStart(2, "0")}`, bindings: {} });
    const page = await eve.get("/v1/environments?limit=5");
    expect(page.status).toBe(200);
    expect(page.body.items.map((e: { name: string }) => e.name)).toEqual(["default", "env-00", "env-01", "env-02", "env-03"]);
    expect(page.body.total).toBe(14);
    expect(page.body.next).toBe("env-03");
    const providers = await eve.get("/v1/identity-providers?limit=5");
    expect(providers.status).toBe(200);
    expect(providers.body).toEqual({ items: [], total: 0 });
  });
});
