import { freePort, startNatsServer, type NatsServer } from "@manifold/nats-server";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, test } from "vitest";
import { startWireTap, type WireTap } from "../fixtures/wireTap.js";
import { registryEvents, spawnRegistry, type RegistryProcess } from "../helpers/registryProcess.js";
import { ADMIN_TOKEN } from "../helpers/stack.js";

// `manifold` against a real registry process whose nats-server is killed (-9) and restarted on the
// same port and store: a command answered 503 `bus_unavailable` is sent again after its
// `Retry-After`, with the Idempotency-Key the CLI made for it, so it is applied exactly once
// whichever attempt got through; and it stops within its bounded wait when the bus stays away.
const CLI = new URL("../../tools/manifold/dist/main.js", import.meta.url).pathname;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let dir: string;
let natsPort: number;
let nats: NatsServer;
let registry: RegistryProcess;
let tap: WireTap;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "manifold-cli-resend-"));
  natsPort = await freePort();
  nats = await startNatsServer({ port: natsPort, storeDir: join(dir, "nats"), operator: true });
  registry = await spawnRegistry(nats);
  // Every byte the CLI sends passes through it: how many attempts, and which keys they carried.
  tap = await startWireTap(registry.url);
}, 60_000);

afterAll(async () => {
  await tap?.close();
  await registry?.process.stop();
  await nats?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** `manifold create consumers -f <file>` through the tap: its exit code, output and how long it took. */
async function createConsumer(name: string): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
  const file = join(dir, `${name}.yaml`);
  await writeFile(file, `name: ${name}\n`);
  const started = Date.now();
  return promisify(execFile)(process.execPath, [CLI, "create", "consumers", "-f", file], { env: { ...process.env, MANIFOLD_REGISTRY_URL: tap.url, MANIFOLD_ADMIN_TOKEN: ADMIN_TOKEN } }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr, ms: Date.now() - started }),
    (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr, ms: Date.now() - started }),
  );
}

/** The Idempotency-Key of each `POST /v1/consumers` the tap has seen, in order. */
const keysSent = () => [...tap.sent().matchAll(/POST \/v1\/consumers HTTP\/1\.1\r\n([\s\S]*?)\r\n\r\n/g)].map((m) => /^idempotency-key: (.*)$/im.exec(m[1]!)?.[1]);

test("nats-server killed and kept away: a command is sent again after each Retry-After, then given up within the bounded wait", { timeout: 60_000 }, async () => {
  nats.process.kill("SIGKILL");
  await sleep(200);
  const outcome = await createConsumer("never");
  const keys = keysSent();
  console.info(`cliResend: gave up after ${outcome.ms} ms and ${keys.length} attempts: ${outcome.stderr.trim()}`);
  expect(outcome.code).toBe(1);
  expect(outcome.stderr).toContain("503 bus_unavailable");
  // Sent again, each time with the one key the CLI made for this command.
  expect(keys.length).toBeGreaterThan(1);
  expect(new Set(keys).size).toBe(1);
  expect(keys[0]).toMatch(/^[\x21-\x7e]{16,128}$/);
  // The documented bound: at most 15 s of waiting (plus the attempts themselves).
  expect(outcome.ms).toBeLessThan(25_000);
});

test("nats-server restarted while a command waits: the command is applied exactly once, with one key", { timeout: 60_000 }, async () => {
  const already = keysSent().length;
  const pending = createConsumer("resent");
  // Brought back once the CLI has been refused and sent the command again (it gave up by itself otherwise).
  const resentBy = Date.now() + 15_000;
  while (keysSent().length < already + 2 && Date.now() < resentBy) await sleep(50);
  nats = await startNatsServer({ port: natsPort, storeDir: join(dir, "nats"), operator: true });
  const outcome = await pending;
  const keys = keysSent().slice(already);
  console.info(`cliResend: answered after ${outcome.ms} ms and ${keys.length} attempts`);
  expect(outcome, outcome.stderr).toMatchObject({ code: 0, stdout: "created consumers resent\n" });
  expect(keys.length).toBeGreaterThan(1);
  expect(new Set(keys).size).toBe(1);
  const created = (await registryEvents(nats)).filter((event) => event.type === "consumer.created" && event.data.name === "resent");
  expect(created.map((event) => event.meta.commandId)).toEqual([keys[0]]);
  expect((await registryEvents(nats)).filter((event) => event.data?.name === "never")).toEqual([]);
});
