import { CommandType } from "@manifold/contracts";
import { jetstream } from "@nats-io/jetstream";
import { beforeAll, expect, test } from "vitest";
import { useRegistryOnly } from "../helpers/registryOnly.js";
import { connectAs } from "../helpers/stack.js";

// helper-159: tool searches were counted in the page-read pool (`PageReads`): 4 per admin, 16 in
// all. So the searches of four admins (or readers: a console each) took every place, and another
// admin's audit and history pages were refused 503 `at_capacity` while they searched.

const UPSTREAMS = 100;
const TOOLS = 500;
const SEARCHERS = ["s1", "s2", "s3", "s4"];
const token = (name: string) => `${name}-admin-token-0123456789`;
const suite = useRegistryOnly({ MANIFOLD_ADMIN_TOKENS: ["bob", ...SEARCHERS].map((name) => `${name}=${token(name)}`).join(",") });

beforeAll(async () => {
  const { execute } = suite.registry;
  for (let u = 0; u < UPSTREAMS; u += 10) {
    await Promise.all(
      Array.from({ length: 10 }, async (_, i) => {
        const name = `upstream-${u + i}`;
        await execute({ type: CommandType.registerUpstream, name, transport: { type: "streamable-http", url: `http://127.0.0.1:9/${u + i}`, headers: {}, secretHeaders: {} }, options: {} });
        const tools = Array.from({ length: TOOLS }, (_, t) => ({ name: `tool_${t}`, description: `Tool ${t}. ${"Searches the records of one kind by their fields. ".repeat(8)}`, inputSchema: { type: "object" as const } }));
        await execute({ type: CommandType.recordDiscovery, name, serverInfo: { name, version: "1.0.0" }, tools });
      }),
    );
  }
  const gateway = await connectAs(suite.nats, "gateway");
  const record = JSON.stringify({ at: new Date().toISOString(), consumer: "consumer:a", virtualServer: "vs", environment: "default", exposedTool: "t", tool: "t", upstream: "u", durationMs: 1, outcome: "ok", argumentBytes: 0, resultBytes: 0 });
  await Promise.all(Array.from({ length: 200 }, () => jetstream(gateway).publish("manifold.audit.vs", record)));
  await gateway.close();
}, 300_000);

test(`attack: four admins' searches over ${UPSTREAMS * TOOLS} tools leave another admin's page reads served`, { timeout: 120_000 }, async () => {
  const base = suite.admin.baseUrl;
  const pages = async () => {
    const statuses: number[] = [];
    const took: number[] = [];
    for (let i = 0; i < 20; i++) {
      const started = performance.now();
      const res = await fetch(`${base}/v1/audit?limit=50`, { headers: { authorization: `Bearer ${token("bob")}` } });
      await res.arrayBuffer();
      statuses.push(res.status);
      took.push(performance.now() - started);
    }
    took.sort((a, b) => a - b);
    return { served: statuses.filter((s) => s === 200).length, refused: statuses.filter((s) => s !== 200).length, p50: Math.round(took[10]!) };
  };
  const alone = await pages();
  let flooding = true;
  const searches = new Map<number, number>();
  const flood = SEARCHERS.flatMap((name) =>
    Array.from({ length: 16 }, async (_, n) => {
      while (flooding) {
        const res = await fetch(`${base}/v1/upstream-tools?q=nothing-${n}&limit=500`, { headers: { authorization: `Bearer ${token(name)}` } });
        await res.arrayBuffer();
        searches.set(res.status, (searches.get(res.status) ?? 0) + 1);
        if (res.status !== 200) await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }),
  );
  await new Promise((resolve) => setTimeout(resolve, 500));
  const flooded = await pages();
  flooding = false;
  await Promise.all(flood);
  console.log(
    `[measure] another admin's 20 audit pages: alone ${alone.served} served (p50 ${alone.p50} ms); while ${SEARCHERS.length} admins search ${flooded.served} served, ${flooded.refused} refused (p50 ${flooded.p50} ms); searches ${JSON.stringify(Object.fromEntries(searches))}`,
  );
  expect(flooded.served).toBe(20);
});
