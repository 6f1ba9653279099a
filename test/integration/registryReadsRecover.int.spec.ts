import { setTimeout as sleep } from "node:timers/promises";
import { expect, test } from "vitest";
import { freeze } from "../helpers/freeze.js";
import { startRegistry } from "../helpers/registryOnly.js";
import { startNats } from "../helpers/stack.js";

// A read of the registry stream that times out (a bus busy moving megabytes, a starved machine)
// makes the registry not live until its next read answers, well within a second once the bus
// answers again. A command that came in that window was refused at once: in CI, discovering an
// upstream of 600 tools of 10 KB was answered `bus_unavailable` ("the registry is not following its
// event stream") in two test files of one run, the bus answering again moments later.

test("a command that comes while the registry's reads of its stream go unanswered waits for them to answer again, and is stored", async () => {
  const nats = await startNats();
  await using r = await startRegistry(nats.url);
  expect((await r.admin.post("/v1/consumers", { name: "before" })).status).toBe(201);
  await freeze(nats.process);
  let answer: ReturnType<typeof r.admin.post> | undefined;
  try {
    // Until the registry has seen a read of its stream go unanswered.
    const started = Date.now();
    while (r.registry.follower.isCaughtUp() && Date.now() - started < 10_000) await sleep(50);
    expect(r.registry.follower.isCaughtUp(), "the registry noticed its reads going unanswered").toBe(false);
    answer = r.admin.post("/v1/consumers", { name: "during" });
    await sleep(500);
  } finally {
    nats.process.kill("SIGCONT");
  }
  const resumed = Date.now();
  const { status, body } = await answer!;
  console.log(`[measure] a command sent while the bus was frozen: ${status} ${status === 201 ? "" : JSON.stringify(body)}, ${Date.now() - resumed} ms after the bus answered again`);
  expect(status, JSON.stringify(body)).toBe(201);
  expect((await r.admin.get("/v1/consumers/during")).status).toBe(200);
}, 60_000);

test("with the bus still away past the wait, commands are refused bus_unavailable, bounded once for all of them", async () => {
  const nats = await startNats();
  await using r = await startRegistry(nats.url);
  await freeze(nats.process);
  try {
    const started = Date.now();
    while (r.registry.follower.isCaughtUp() && Date.now() - started < 10_000) await sleep(50);
    const sent = Date.now();
    // Commands are decided one at a time: three sent at once wait out one stop, not three in turn.
    const answers = await Promise.all(
      ["a", "b", "c"].map(async (name) => {
        const { status, body } = await r.admin.post("/v1/consumers", { name });
        return { status, body, waited: Date.now() - sent };
      }),
    );
    console.log(`[measure] three commands sent at once while the bus stayed frozen: ${answers.map((a) => `${a.status} after ${a.waited} ms`).join(", ")}`);
    for (const { status, body, waited } of answers) {
      expect(status).toBe(503);
      expect(body).toMatchObject({ error: { code: "bus_unavailable" } });
      expect(waited).toBeLessThan(6_000);
    }
  } finally {
    nats.process.kill("SIGCONT");
  }
}, 60_000);
