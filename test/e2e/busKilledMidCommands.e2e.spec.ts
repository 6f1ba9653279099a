import { freePort, startNatsServer, type NatsServer } from "@manifold/nats-server";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import type { AdminClient } from "../helpers/admin.js";
import { registryEvents, spawnRegistry, type RegistryProcess } from "../helpers/registryProcess.js";

// nats-server killed (-9) while many admin commands are in flight at once, restarted on the same
// port and store (busRestart.e2e covers one command at a time under call load): every command the
// registry acknowledged (2xx) is in the stream afterwards, and each command, retried with its
// Idempotency-Key until answered, is stored exactly once.
const CREATES = 40;
const UPDATES = 20;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let dir: string;
let natsPort: number;
let nats: NatsServer;
let registry: RegistryProcess;
let admin: AdminClient;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "manifold-bus-killed-"));
  natsPort = await freePort();
  nats = await startNatsServer({ port: natsPort, storeDir: join(dir, "nats"), operator: true });
  registry = await spawnRegistry(nats);
  admin = registry.admin;
  for (let i = 0; i < UPDATES; i++) expect((await admin.post("/v1/consumers", { name: `u-${i}` })).status).toBe(201);
}, 60_000);

afterAll(async () => {
  await registry?.process.stop();
  await nats?.stop();
  await rm(dir, { recursive: true, force: true });
});

type Command = { method: string; path: string; body: unknown; key: string };
const send = ({ method, path, body, key }: Command) =>
  admin.request(method, path, body, { "idempotency-key": key }).then(
    (res) => ({ status: res.status, code: res.body?.error?.code as string | undefined, retryAfter: Number(res.headers.get("retry-after") ?? 0) }),
    () => ({ status: 0, code: "reset", retryAfter: 0 }),
  );

/** Each event's Idempotency-Key (its meta's commandId), straight from JetStream. */
async function storedKeys(): Promise<string[]> {
  return (await registryEvents(nats)).map((event) => event.meta.commandId);
}

test(`nats-server killed with ${CREATES + UPDATES} admin commands in flight: no acknowledged event lost, each stored once after retries`, { timeout: 90_000 }, async () => {
  const commands: Command[] = [
    ...Array.from({ length: CREATES }, (_, i) => ({ method: "POST", path: "/v1/consumers", body: { name: `c-${i}` }, key: `create-${i}` })),
    ...Array.from({ length: UPDATES }, (_, i) => ({ method: "PUT", path: `/v1/consumers/u-${i}`, body: { description: "second" }, key: `update-${i}` })),
  ];
  const first = commands.map(send);
  await sleep(40);
  nats.process.kill("SIGKILL");
  const killedAt = Date.now();
  const before = await Promise.all(first);
  const acknowledged = commands.filter((_, i) => before[i]!.status >= 200 && before[i]!.status < 300).map((c) => c.key);
  const firstCounts = before.reduce<Record<string, number>>((acc, o) => ({ ...acc, [`${o.status}${o.code ? ` ${o.code}` : ""}`]: (acc[`${o.status}${o.code ? ` ${o.code}` : ""}`] ?? 0) + 1 }), {});
  // Refused or cut short, never an internal error.
  for (const o of before) expect([0, 200, 201, 503]).toContain(o.status);

  await sleep(1_000 - (Date.now() - killedAt));
  nats = await startNatsServer({ port: natsPort, storeDir: join(dir, "nats"), operator: true });
  const restartedAt = Date.now();
  let firstAnswer: number | undefined;
  // Retried as a well-behaved client does: after the refusal's Retry-After when it names one. Sixty
  // commands retried every 50 ms are 1,200 requests a second, past the admin's request budget, so
  // some retries are refused 429 rate_limited, which is as retryable as the bus's 503.
  const after = await Promise.all(
    commands.map(async (command) => {
      for (;;) {
        const outcome = await send(command);
        if (![0, 429, 503].includes(outcome.status)) {
          firstAnswer ??= Date.now() - restartedAt;
          return outcome;
        }
        if (Date.now() - restartedAt > 20_000) return outcome;
        await sleep(outcome.retryAfter > 0 ? outcome.retryAfter * 1_000 : 50);
      }
    }),
  );
  console.info(
    `busKilledMidCommands: first round ${JSON.stringify(firstCounts)}; restarted nats answered the first command after ${firstAnswer} ms, all ${commands.length} after ${Date.now() - restartedAt} ms`,
  );
  for (const [i, outcome] of after.entries()) expect(outcome.status, commands[i]!.key).toBe(i < CREATES ? 201 : 200);

  const keys = await storedKeys();
  for (const key of acknowledged) expect(keys.filter((k) => k === key), key).toHaveLength(1);
  for (const command of commands) expect(keys.filter((k) => k === command.key), command.key).toHaveLength(1);
});
