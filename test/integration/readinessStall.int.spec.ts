import { setTimeout as sleep } from "node:timers/promises";
import { expect, test } from "vitest";
import { freeze } from "../helpers/freeze.js";
import { startRegistry, type RegistryOnly } from "../helpers/registryOnly.js";
import { startNats } from "../helpers/stack.js";

// `/readyz` (registry, connector, gateway) says whether the node follows the registry stream. One
// JetStream read left unanswered for 500 ms (a busy nats-server, a starved two-core machine) made
// it 503 until a read answered: a Kubernetes readiness probe took the pod out of service for a
// stall shorter than a second. A bus frozen for good must still make it 503, within a bound.

async function readyz(r: RegistryOnly): Promise<number> {
  return (await r.registry.app.inject({ method: "GET", url: "/readyz" })).statusCode;
}

test("one read of the registry stream unanswered for under a second leaves /readyz at 200", async () => {
  const nats = await startNats();
  await using r = await startRegistry(nats.url);
  expect(await readyz(r)).toBe(200);
  const statuses: number[] = [];
  let polling = true;
  const poll = (async () => {
    while (polling) {
      statuses.push(await readyz(r));
      await sleep(25);
    }
  })();
  await freeze(nats.process);
  const frozen = Date.now();
  try {
    // Until a read has gone unanswered (the reader's own timeout, 500 ms), then a little longer.
    while (r.registry.follower.isCaughtUp() && Date.now() - frozen < 10_000) await sleep(20);
    expect(r.registry.follower.isCaughtUp(), "a read of the stream went unanswered").toBe(false);
    await sleep(200);
  } finally {
    nats.process.kill("SIGCONT");
  }
  const stalled = Date.now() - frozen;
  const resumed = Date.now();
  while (!r.registry.follower.isCaughtUp() && Date.now() - resumed < 10_000) await sleep(20);
  polling = false;
  await poll;
  const notReady = statuses.filter((s) => s !== 200).length;
  console.log(`[measure] bus frozen ${stalled} ms (one read unanswered ~700 ms): /readyz not 200 in ${notReady} of ${statuses.length} probes`);
  expect(r.registry.follower.isCaughtUp()).toBe(true);
  expect(notReady).toBe(0);
}, 60_000);

test("a bus frozen for good makes /readyz 503 within a bounded time", async () => {
  const nats = await startNats();
  await using r = await startRegistry(nats.url);
  expect(await readyz(r)).toBe(200);
  await freeze(nats.process);
  const frozen = Date.now();
  try {
    while ((await readyz(r)) === 200 && Date.now() - frozen < 20_000) await sleep(25);
    const took = Date.now() - frozen;
    console.log(`[measure] bus frozen for good: /readyz 503 after ${took} ms`);
    expect(await readyz(r)).toBe(503);
    // The probe's interval (2 s) plus the window a read may go unanswered (2 s), and slack for a starved machine.
    expect(took).toBeLessThan(6_000);
  } finally {
    nats.process.kill("SIGCONT");
  }
  const resumed = Date.now();
  while ((await readyz(r)) !== 200 && Date.now() - resumed < 10_000) await sleep(25);
  console.log(`[measure] bus answering again: /readyz 200 after ${Date.now() - resumed} ms`);
  expect(await readyz(r)).toBe(200);
}, 60_000);
