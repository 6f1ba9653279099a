import type { NatsServer } from "@manifold/nats-server";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { afterAll, beforeAll, expect, test } from "vitest";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectHttp, eventually, type DisposableClient } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

const FIXTURE = new URL("../fixtures/heldCancellations.mjs", import.meta.url).pathname;
/** How long the upstream may take to accept a notification (a POST answered 202). */
const CONNECT_TIMEOUT_MS = 20_000;
/** Calls cancelled at once per round: a tool's share of the upstream's slots (64 × 0.5). */
const ROUND = 32;
/** Rounds: 128 cancellations, the direct caller's keep-alive connections to one upstream. */
const ROUNDS = 4;

type Counts = { calls: number; callsOpen: number; cancelled: number; cancelledOpen: number };

let nats: NatsServer;
let stack: Stack;
let child: ChildProcess;
let base: string;
let names: Record<string, string>;
let mallory: DisposableClient;
let alice: DisposableClient;

beforeAll(async () => {
  nats = await startNats();
  stack = await startStack(nats.url, { CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS), CALL_TIMEOUT_MS: "60000" });
  child = spawn(process.execPath, [FIXTURE], { stdio: ["ignore", "pipe", "inherit"] });
  const [first] = await once(child.stdout!, "data");
  base = String(first).trim();
  await registerUpstreams(stack, { name: "held", transport: { type: "streamable-http", url: base } });
  names = await createVirtualServer(stack, "heldcancel", [{ upstream: "held", tool: "hold" }, { upstream: "held", tool: "good" }]);
  [mallory, alice] = await Promise.all([connectHttp(stack.mcpUrl("heldcancel")), connectHttp(stack.mcpUrl("heldcancel"))]);
}, 60_000);
afterAll(async () => {
  await mallory?.close();
  await alice?.close();
  // First: the cancellations it holds would keep the connector's shutdown waiting for them.
  child?.kill();
  await stack?.close();
  await nats?.stop();
});

const counts = async (): Promise<Counts> => (await fetch(new URL("/counts", base))).json() as Promise<Counts>;

// fault: an upstream that never answers `notifications/cancelled`. Each cancelled direct call's
// request was ended, but the cancellation's own POST held one of the upstream's 128 keep-alive
// connections for CONNECT_TIMEOUT_MS: an agent cancelling calls as fast as it made them (its own
// calls freed at each cancel) filled them all, and every other caller of the upstream waited for
// one. Cancellations in flight to one upstream are now bounded (a few of its connections); past the
// bound the notification is not sent: the cancelled request is ended all the same.
test("fault: cancellations an upstream never answers hold none of another caller's connections", async () => {
  await eventually(() => alice.callTool({ name: names["held/good"]!, arguments: {} }).then((r) => r, () => undefined), 15_000, 100);
  const cancelledErrors = new Set<string>();
  for (let round = 1; round <= ROUNDS; round++) {
    const controllers = Array.from({ length: ROUND }, () => new AbortController());
    const calls = controllers.map((controller) =>
      mallory.callTool({ name: names["held/hold"]!, arguments: {} }, undefined, { signal: controller.signal, timeout: 60_000 }).then(
        () => "answered",
        (e: Error) => void cancelledErrors.add(e.name),
      ),
    );
    await eventually(async () => ((await counts()).callsOpen === ROUND ? true : undefined), 10_000, 20);
    for (const controller of controllers) controller.abort();
    await Promise.all(calls);
    // The cancelled calls' own requests end (their connections close) at their cancellation.
    await eventually(async () => ((await counts()).callsOpen === 0 ? true : undefined), 5_000, 20);
  }
  await new Promise((r) => setTimeout(r, 500));
  const held = await counts();
  const t0 = Date.now();
  const answer = await alice.callTool({ name: names["held/good"]!, arguments: {} }, undefined, { timeout: 60_000 }).then(
    (r) => JSON.stringify(r.content),
    (e: Error) => `ERR ${e.message}`,
  );
  const took = Date.now() - t0;
  const seen = `after ${ROUNDS * ROUND} cancelled calls: ${JSON.stringify(held)}; another caller's call took ${took} ms`;
  console.log(seen);
  expect(answer, seen).toContain("ok");
  expect(took, seen).toBeLessThan(2_000);
  // A few cancellations stay open until CONNECT_TIMEOUT_MS; the others were not sent.
  expect(held.cancelledOpen, seen).toBeLessThanOrEqual(16);
  expect(held.calls, seen).toBe(ROUNDS * ROUND);
}, 120_000);
