import type { NatsServer } from "@manifold/nats-server";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { afterAll, beforeAll, expect, test } from "vitest";
import { serveModernHttp } from "../fixtures/modern-upstream.mjs";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectHttp } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// An upstream may answer a call with an SSE stream of endless tiny events, each well framed and none
// the answer: every byte is read and checked by the connector. Found by an attacker run: four such
// calls slowed another tenant's calls through the same process ~47× (p50 13.8 → 651.7 ms), each for
// the call's whole budget. A call's stream is bounded in total, not only per event.
let nats: NatsServer;
let stack: Stack;
let child: ChildProcess;
let modern: Awaited<ReturnType<typeof serveModernHttp>>;
let trickle: string;
let echo: string;
const stderr: string[] = [];

beforeAll(async () => {
  nats = await startNats();
  child = spawn(process.execPath, [new URL("../fixtures/trickleUpstream.mjs", import.meta.url).pathname, "data"], { stdio: ["ignore", "pipe", "pipe"] });
  child.stderr!.on("data", (d) => stderr.push(String(d)));
  const [first] = await once(child.stdout!, "data");
  [stack, modern] = await Promise.all([startStack(nats.url, { CALL_TIMEOUT_MS: "30000" }), serveModernHttp()]);
  await registerUpstreams(stack, { name: "trickle", transport: { type: "streamable-http", url: String(first).trim() } }, { name: "good", transport: { type: "streamable-http", url: modern.url } });
  trickle = (await createVirtualServer(stack, "evil", [{ upstream: "trickle", tool: "trickle" }]))["trickle/trickle"]!;
  echo = (await createVirtualServer(stack, "tenant", [{ upstream: "good", tool: "echo" }]))["good/echo"]!;
}, 60_000);

afterAll(async () => {
  await stack?.close();
  await modern?.close();
  child?.kill();
  await nats?.stop();
});

test("attack: a call answered with endless tiny events is cut once its stream passes its bound, not at its budget; other tenants' calls go on", async () => {
  const agents = await Promise.all([0, 1, 2, 3].map(() => connectHttp(stack.mcpUrl("evil"))));
  const started = Date.now();
  const outcomes = await Promise.all(
    agents.map((a) =>
      a.callTool({ name: trickle, arguments: {} }, undefined, { timeout: 60_000 }).then(
        (result) => JSON.stringify(result),
        (error: Error) => error.message,
      ),
    ),
  );
  const elapsed = Date.now() - started;
  await Promise.all(agents.map((a) => a.close()));
  // Before: each read endless events for the call's whole budget (30 s here), then timed out.
  for (const outcome of outcomes) expect(outcome).toMatch(/more than \d+ bytes/);
  expect(elapsed).toBeLessThan(15_000);
  await using tenant = await connectHttp(stack.mcpUrl("tenant"));
  expect((await tenant.callTool({ name: echo, arguments: { message: "hi" } })).content).toEqual([{ type: "text", text: "echo: hi" }]);
}, 90_000);
