import { adminCall } from "@manifold/cli";
import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, expect, test } from "vitest";
import { AdminClient, TWO_ADMINS } from "../helpers/admin.js";
import { spawnRegistry, type RegistryProcess } from "../helpers/registryProcess.js";
import { startRegistry } from "../helpers/registryOnly.js";
import { startNats } from "../helpers/stack.js";

// Nothing bounded how many requests one admin token sent: 200 loops of `GET /v1/whoami` (the
// cheapest request there is) put another admin's commands at p50 69–117 ms, max 2.6 s (4 ms alone),
// and 200 loops of a bad token at 73–85 ms. A cheap request's 429 or 401 costs what its answer did,
// so refusals past the budget are held for their Retry-After (`adminBudget.ts`). The registry runs
// in a process of its own: the flood's client is not the registry's to pay for.

const { bob: BOB, eve: EVE } = TWO_ADMINS;
let nats: NatsServer;
let r: RegistryProcess;

beforeAll(async () => {
  nats = await startNats();
  r = await spawnRegistry(nats, "registry", undefined, TWO_ADMINS.env);
}, 60_000);
afterAll(async () => {
  await r?.process.stop();
  await nats?.stop();
});

/** REGISTRY_MAX_REQUESTS_PER_S_PER_ADMIN's default, and the burst an idle budget allows (a tenth of a second's worth). */
const PER_SECOND = 500;
const BURST = PER_SECOND / 10;
/** How long a refusal past the budget is held before it is answered (its Retry-After). */
const HOLD_MS = 1_000;

/** Bob's 20 commands, spread over 2 s whatever else runs: all must be created; their median. */
async function bobsMedian(bob: AdminClient) {
  const took: number[] = [];
  for (let i = 0; i < 20; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const started = performance.now();
    expect((await bob.post("/v1/virtual-servers", { name: `bob-${crypto.randomUUID()}`, tools: [] })).status).toBe(201);
    took.push(performance.now() - started);
  }
  return Math.round(took.sort((a, b) => a - b)[10]! * 10) / 10;
}

/**
 * Bob's commands alone, then while 200 loops send `flood` as fast as they are answered; what the
 * flood was answered, at once or held, over how long. Bob's medians are for the record only: on a
 * shared two-core machine they move with whatever else runs (with the budget, 5–65 ms under the
 * flood at 6 ms alone; without it, 104–211 ms at 4–15 ms). What the budget promises is counted
 * instead: the requests it answered at once, and the refusals it held.
 */
async function bobUnder(flood: () => Promise<Response>) {
  const bob = new AdminClient(r.url, BOB);
  const alone = await bobsMedian(bob);
  let flooding = true;
  const answers: { status: number; ms: number }[] = [];
  let refusal: { status: number; retryAfter: string | null; body: unknown } | undefined;
  const began = performance.now();
  const loops = Array.from({ length: 200 }, async () => {
    while (flooding) {
      const sent = performance.now();
      const res = await flood();
      const body = await res.json();
      answers.push({ status: res.status, ms: performance.now() - sent });
      if (res.status !== 200) refusal = { status: res.status, retryAfter: res.headers.get("retry-after"), body };
    }
  });
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const flooded = await bobsMedian(bob);
  flooding = false;
  await Promise.all(loops);
  const seconds = (performance.now() - began) / 1_000;
  const atOnce = answers.filter((a) => a.ms < HOLD_MS);
  console.log(JSON.stringify({ bobAloneP50Ms: alone, bobFloodedP50Ms: flooded, seconds: Math.round(seconds * 10) / 10, answered: answers.length, atOnce: atOnce.length, ok: answers.filter((a) => a.status === 200).length }));
  // A token bucket's bound: what it let through in `seconds`, from full.
  return { answers, atOnce, refusal, mostTaken: BURST + PER_SECOND * seconds };
}

// Before (no budget): the flood was answered at once, 1,500–1,700 a second (11,399 in ~7 s), and
// Bob's median was 104–119 ms (5.7–14.7 ms alone); 69–117 ms on a quieter machine, 4 ms alone.
test("attack: one admin's 200 loops of GET /v1/whoami are held past its budget; another admin's commands are served", async () => {
  const eve = await bobUnder(() => fetch(`${r.url}/v1/whoami`, { headers: { authorization: `Bearer ${EVE}` } }));
  // Each whoami answered took a request of the budget: at most its burst and 500 a second.
  expect(eve.answers.filter((a) => a.status === 200).length).toBeLessThanOrEqual(eve.mostTaken);
  // Past it each loop waits out its refusal: one request a second.
  const refused = eve.answers.filter((a) => a.status === 429);
  expect(refused.length).toBeGreaterThan(0);
  expect(Math.min(...refused.map((a) => a.ms))).toBeGreaterThanOrEqual(HOLD_MS - 10);
  expect(eve.refusal).toEqual({ status: 429, retryAfter: "1", body: { error: expect.objectContaining({ code: "rate_limited" }) } });
}, 60_000);

// Before (no budget): 1,100–1,800 bad tokens a second answered at once (10,314 in ~7 s), Bob's
// median 154–211 ms (3.8–3.9 ms alone); 73–85 ms on a quieter machine.
test("attack: 200 loops of bad tokens are held past their shared budget; an admin's commands are served", async () => {
  const bad = await bobUnder(() => fetch(`${r.url}/v1/whoami`, { headers: { authorization: `Bearer not-a-token-${crypto.randomUUID()}` } }));
  // Those answered at once took a request of the budget they share; the rest waited out the hold.
  expect(bad.atOnce.length).toBeLessThanOrEqual(bad.mostTaken);
  expect(bad.atOnce.length).toBeLessThan(bad.answers.length);
  // Still refused as what they are.
  expect([...new Set(bad.answers.map((a) => a.status))]).toEqual([401]);
}, 60_000);

test("past REGISTRY_MAX_REQUESTS_PER_S_PER_ADMIN an admin's requests are refused (429 rate_limited, Retry-After: 1); other admins' are not", async () => {
  await using small = await startRegistry(nats.url, { ...TWO_ADMINS.env, REGISTRY_MAX_REQUESTS_PER_S_PER_ADMIN: "50" });
  const whoami = (token: string) => fetch(`${small.admin.baseUrl}/v1/whoami`, { headers: { authorization: `Bearer ${token}` } });
  // A tenth of a second's worth at once: 5, and one more for each 20 ms the eight take to arrive
  // on a busy machine.
  const answers = await Promise.all(Array.from({ length: 8 }, () => whoami(EVE)));
  expect(answers.filter((a) => a.status === 200).length).toBeGreaterThanOrEqual(5);
  expect(answers.filter((a) => a.status === 429).length).toBeGreaterThanOrEqual(1);
  const refused = answers.find((a) => a.status === 429)!;
  expect(refused.headers.get("retry-after")).toBe("1");
  expect(await refused.json()).toMatchObject({ error: { code: "rate_limited", message: expect.stringContaining("admin 'eve'") } });
  expect((await whoami(BOB)).status).toBe(200);
});

test("the CLI sends a request refused for its budget again after its Retry-After: a long apply waits, it does not fail", async () => {
  await using small = await startRegistry(nats.url, { ...TWO_ADMINS.env, REGISTRY_MAX_REQUESTS_PER_S_PER_ADMIN: "50" });
  const target = { url: small.admin.baseUrl, token: EVE };
  const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => adminCall(target, "POST", "/v1/virtual-servers", { name: `cli-${i}`, tools: [] })));
  expect(answers.map((a) => a.name).sort()).toEqual(Array.from({ length: 8 }, (_, i) => `cli-${i}`).sort());
});
