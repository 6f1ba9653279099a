import { CommandType } from "@manifold/contracts";
import { beforeAll, expect, test } from "vitest";
import { AdminClient, TWO_ADMINS } from "../helpers/admin.js";
import { useRegistryOnly } from "../helpers/registryOnly.js";

// `GET /v1/upstream-tools?q=` reads every discovered definition in slices of 8 ms, with no bound on
// how many ran at once: one admin's 64 searches at once over 100,000 tools, within the request budget, kept the event
// loop turning through all their slices, and another admin's commands waited on them: p50 741 /
// max 1,140 ms (on a busy two-core machine); counted among the admin's reads, 141 / 177 ms.

const UPSTREAMS = 200;
const TOOLS = 500;
const { bob: BOB, eve: EVE } = TWO_ADMINS;
const suite = useRegistryOnly(TWO_ADMINS.env);

beforeAll(async () => {
  const { execute } = suite.registry;
  for (let u = 0; u < UPSTREAMS; u += 8) {
    await Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        const name = `upstream-${u + i}`;
        await execute({ type: CommandType.registerUpstream, name, transport: { type: "streamable-http", url: `http://127.0.0.1:9/${u + i}`, headers: {}, secretHeaders: {} }, options: {} });
        // A description longer than the 300 characters a search reads.
        const tools = Array.from({ length: TOOLS }, (_, t) => ({ name: `tool_${t}`, description: `Tool ${t}. ${"Searches the records of one kind by their fields. ".repeat(8)}`, inputSchema: { type: "object" as const } }));
        await execute({ type: CommandType.recordDiscovery, name, serverInfo: { name, version: "1.0.0" }, tools });
      }),
    );
  }
}, 300_000);

test(`attack: one admin's 64 searches at once over ${UPSTREAMS * TOOLS} tools are bounded (429 too_many_reads, Retry-After); another admin's commands stay fast`, { timeout: 120_000 }, async () => {
  const bob = new AdminClient(suite.admin.baseUrl, BOB);
  let flooding = true;
  const statuses = new Map<number, number>();
  const codes = new Set<string>();
  let retryAfter: string | null = null;
  const flood = Array.from({ length: 64 }, async (_, n) => {
    while (flooding) {
      // A needle no tool holds reads every definition: the most one search costs.
      const res = await fetch(`${suite.admin.baseUrl}/v1/upstream-tools?q=nothing-${n}&limit=500`, { headers: { authorization: `Bearer ${EVE}` } });
      const body = (await res.json()) as { error?: { code: string } };
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      if (res.status === 200) continue;
      retryAfter = res.headers.get("retry-after");
      if (body.error) codes.add(body.error.code);
      // Not a hot loop of refusals: that is the request budget's (`adminRequestFlood.int`).
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });
  await new Promise((resolve) => setTimeout(resolve, 500));
  const took: number[] = [];
  for (let i = 0; i < 20; i++) {
    const started = performance.now();
    expect((await bob.post("/v1/consumers", { name: `bob-${i}` })).status).toBe(201);
    took.push(performance.now() - started);
  }
  // Bob's own search is his, not Eve's: answered while she floods.
  expect((await bob.get("/v1/upstream-tools?q=tool%207.&limit=5")).status).toBe(200);
  flooding = false;
  await Promise.all(flood);
  took.sort((a, b) => a - b);
  console.log(`[tool search flood] another admin's command p50 ${Math.round(took[10]!)} / max ${Math.round(took[19]!)} ms while one admin runs 64 searches at once; answers ${JSON.stringify(Object.fromEntries(statuses))}`);
  expect(codes).toEqual(new Set(["too_many_reads"]));
  expect(retryAfter).toBe("1");
  expect(took[10]!).toBeLessThan(250);
});
