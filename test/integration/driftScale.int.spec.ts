import { CommandType } from "@manifold/contracts";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { beforeAll, expect, test } from "vitest";
import { iterationStepsUntil } from "../helpers/iterationSteps.js";
import { useRegistryOnly } from "../helpers/registryOnly.js";

// GET /v1/virtual-servers/:name/drift answered every pending tool drift with its diff in one answer:
// 2,000 drifting tools of ~1.6 KB, 3.8 MiB in 228 ms holding the event loop 130 ms (measured here;
// docs/operations.md keeps the figures).

const UPSTREAMS = 10;
const TOOLS = 200;
const MiB = 1024 * 1024;
const suite = useRegistryOnly();

/** About 1.6 KB of definition; `version` changes its description, so every tool drifts. */
const toolsOf = (u: number, version: number) =>
  Array.from({ length: TOOLS }, (_, t) => ({
    name: `tool_${t}`,
    description: `Tool ${t} of upstream ${u}, v${version}. ${"Searches the records of one kind by their fields, returning at most the limit asked for, newest first. ".repeat(13)}`,
    inputSchema: { type: "object" as const, properties: { query: { type: "string", description: `What to search for (v${version}).` } }, required: ["query"] },
  }));
/** About 1.6 KB of prompt; `version` changes its text, so every prompt drifts. */
const promptsOf = (u: number, version: number) =>
  Array.from({ length: TOOLS }, (_, p) => ({
    name: `prompt_${p}`,
    description: `Prompt ${p} of upstream ${u}, v${version}. ${"Drafts a reply to one ticket in the team's voice, quoting the records it names and nothing else. ".repeat(16)}`,
    arguments: [{ name: "ticket", description: `The ticket to answer (v${version}).`, required: true }],
  }));

beforeAll(async () => {
  const { execute } = suite.registry;
  const discover = (u: number, version: number) => execute({ type: CommandType.recordDiscovery, name: `up-${u}`, serverInfo: { name: `up-${u}`, version: `${version}.0.0` }, tools: toolsOf(u, version) });
  for (let u = 0; u < UPSTREAMS; u++) {
    await execute({ type: CommandType.registerUpstream, name: `up-${u}`, transport: { type: "streamable-http", url: `http://127.0.0.1:9/${u}`, headers: {}, secretHeaders: {} }, options: {} });
    await discover(u, 1);
  }
  await execute({ type: CommandType.createVirtualServer, name: "wide", naming: { policy: "prefix", prefixes: {} }, driftPolicy: "pinned", tools: [] });
  for (let u = 0; u < UPSTREAMS; u++) {
    for (let from = 0; from < TOOLS; from += 100) {
      await execute({ type: CommandType.selectTools, name: "wide", tools: Array.from({ length: 100 }, (_, t) => ({ upstream: `up-${u}`, tool: `tool_${from + t}` })) });
    }
  }
  for (let u = 0; u < UPSTREAMS; u++) await discover(u, 2);

  // As many drifting prompts on upstreams of their own, selected by a virtual server of their own.
  const discoverPrompts = (u: number, version: number) =>
    execute({ type: CommandType.recordDiscovery, name: `pr-${u}`, serverInfo: { name: `pr-${u}`, version: `${version}.0.0` }, tools: [], prompts: promptsOf(u, version) });
  await execute({ type: CommandType.createVirtualServer, name: "talky", naming: { policy: "prefix", prefixes: {} }, driftPolicy: "pinned", tools: [] });
  for (let u = 0; u < UPSTREAMS; u++) {
    await execute({ type: CommandType.registerUpstream, name: `pr-${u}`, transport: { type: "streamable-http", url: `http://127.0.0.1:9/pr${u}`, headers: {}, secretHeaders: {} }, options: {} });
    await discoverPrompts(u, 1);
    for (let from = 0; from < TOOLS; from += 100) {
      await execute({ type: CommandType.selectItems, name: "talky", prompts: Array.from({ length: 100 }, (_, p) => ({ upstream: `pr-${u}`, prompt: `prompt_${from + p}` })), resources: [] });
    }
  }
  for (let u = 0; u < UPSTREAMS; u++) await discoverPrompts(u, 2);
}, 300_000);

/**
 * One admin read, with the registry's work counted (the steps of its Map and Set iterations; it
 * runs in this process and does nothing else meanwhile) and timed for the log only.
 */
async function measured(path: string) {
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  const started = performance.now();
  const { steps, value: res } = await iterationStepsUntil(() => suite.admin.get(path));
  const took = performance.now() - started;
  loop.disable();
  return { status: res.status, body: res.body, bytes: JSON.stringify(res.body ?? "").length, steps, took, held: loop.max / 1e6 };
}

test(`attack: the pending drift of ${UPSTREAMS * TOOLS} tools of 1.6 KB comes a page at a time, each at most 1 MiB`, { timeout: 120_000 }, async () => {
  const first = await measured("/v1/virtual-servers/wide/drift");
  console.log(`[drift scale] GET …/drift: ${first.status}, ${(first.bytes / 1024).toFixed(1)} KiB, ${first.body.items?.length} items in ${Math.round(first.took)} ms and ${first.steps} steps, event loop held up to ${Math.round(first.held)} ms`);
  expect(first.status).toBe(200);
  expect(first.body.total).toBe(UPSTREAMS * TOOLS);
  // Only the page's drift is classified: all 2,000 held the loop 75 ms a request, a page of 100
  // ~13 ms (38 ms beside other tests' load, so the bound is counted, not timed). Classifying a tool
  // costs ~41 steps (500 of them: 22,523 steps), so all 2,000 would be ~84,000; the page of 100 is
  // 6,133: the pins read once and its own 100 classified.
  expect(first.body.items).toHaveLength(100);
  expect(first.steps).toBeLessThanOrEqual(2 * UPSTREAMS * TOOLS + 50 * 100);
  const names: string[] = [];
  let largest = 0;
  let pages = 0;
  for (let after: string | undefined; pages < 100; ) {
    const page = await measured(`/v1/virtual-servers/wide/drift?limit=500${after ? `&after=${encodeURIComponent(after)}` : ""}`);
    expect(page.status, JSON.stringify(page.body).slice(0, 300)).toBe(200);
    pages++;
    largest = Math.max(largest, page.bytes);
    names.push(...page.body.items.map((d: { exposedName: string }) => d.exposedName));
    after = page.body.next;
    if (!after) break;
  }
  console.log(`[drift scale] ${names.length} drifts in ${pages} pages of at most ${(largest / 1024).toFixed(1)} KiB`);
  expect(largest).toBeLessThanOrEqual(MiB + 4096);
  expect(new Set(names).size).toBe(UPSTREAMS * TOOLS);
  const found = await suite.admin.get("/v1/virtual-servers/wide/drift?q=up-3_tool_19");
  expect(found.body.items.map((d: { exposedName: string }) => d.exposedName)).toEqual(["up-3_tool_19", "up-3_tool_190", "up-3_tool_191", "up-3_tool_192", "up-3_tool_193", "up-3_tool_194", "up-3_tool_195", "up-3_tool_196", "up-3_tool_197", "up-3_tool_198", "up-3_tool_199"]);
});

// attack (helper-145): the prompts', resources' and templates' drift came whole, with its diffs, in
// every page of the tool drift (`promptsAndResources`): a virtual server may select 10,000 of each.
test(`attack: the pending drift of ${UPSTREAMS * TOOLS} prompts of 1.6 KB comes a page at a time, each at most 1 MiB, apart from the tools'`, { timeout: 120_000 }, async () => {
  const tools = await measured("/v1/virtual-servers/talky/drift");
  console.log(`[drift scale] GET …/drift of a server of prompts: ${tools.status}, ${(tools.bytes / 1024).toFixed(1)} KiB in ${Math.round(tools.took)} ms, event loop held up to ${Math.round(tools.held)} ms`);
  expect(tools.status).toBe(200);
  expect(tools.bytes).toBeLessThan(4096);
  const first = await measured("/v1/virtual-servers/talky/drift/items");
  console.log(`[drift scale] GET …/drift/items: ${first.status}, ${(first.bytes / 1024).toFixed(1)} KiB, ${first.body.items?.length} items in ${Math.round(first.took)} ms and ${first.steps} steps, event loop held up to ${Math.round(first.held)} ms`);
  expect(first.status).toBe(200);
  expect(first.body.total).toBe(UPSTREAMS * TOOLS);
  expect(first.body.items[0]).toMatchObject({ kind: "prompt", classification: expect.any(String), diff: expect.any(Array) });
  // A prompt's classification is ~8.5 steps (500 of them: 6,325), all 2,000 would be ~19,000; the
  // page of 100 is 2,923.
  expect(first.body.items).toHaveLength(100);
  expect(first.steps).toBeLessThanOrEqual(2 * UPSTREAMS * TOOLS + 20 * 100);
  const keys: string[] = [];
  let largest = 0;
  let pages = 0;
  for (let after: string | undefined; pages < 100; ) {
    const page = await measured(`/v1/virtual-servers/talky/drift/items?limit=500${after ? `&after=${encodeURIComponent(after)}` : ""}`);
    expect(page.status, JSON.stringify(page.body).slice(0, 300)).toBe(200);
    pages++;
    largest = Math.max(largest, page.bytes);
    keys.push(...page.body.items.map((d: { key: string }) => d.key));
    after = page.body.next;
    if (!after) break;
  }
  console.log(`[drift scale] ${keys.length} prompt drifts in ${pages} pages of at most ${(largest / 1024).toFixed(1)} KiB`);
  expect(largest).toBeLessThanOrEqual(MiB + 4096);
  expect(new Set(keys).size).toBe(UPSTREAMS * TOOLS);
  const found = await suite.admin.get("/v1/virtual-servers/talky/drift/items?q=pr-3_prompt_19");
  expect(found.body.items.map((d: { key: string }) => d.key)).toEqual(["pr-3_prompt_19", ...Array.from({ length: 10 }, (_, i) => `pr-3_prompt_19${i}`)]);
});
