import type { NatsServer } from "@manifold/nats-server";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { connectClient } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// attack1: a 2025 upstream's answer to resources/read, prompts/get or completion/complete that the
// SDK client's schema refuses (a blob that is not Base64, a message role other than user or
// assistant: what a sloppy server may send for one item) is mapped to `upstream_unavailable`
// ("could not be reached"), and the connector then drops the upstream's SHARED session
// (`UpstreamSession.#attempt` -> `invalidate`). So one agent reading one malformed item:
//  - fails every other caller's request in flight on that session ("closed the connection"),
//  - fails other callers' next requests with ITS error text ("is not connected: Invalid result for …"),
//  - turns the upstream's health "down" with that text as the reason,
// and reading it in a loop keeps the upstream down for every tenant. The threat model says an agent
// must never "cut other callers off an upstream"; an HTTP status already "drops no session".

const FIXTURE = new URL("../fixtures/hostileItemsUpstream.mjs", import.meta.url).pathname;
let nats: NatsServer;
let stack: Stack;
let child: ChildProcess;
let keys: Record<string, string>;
let promptNames: Record<string, string>;

const as = (key: string) =>
  connectClient(new StreamableHTTPClientTransport(new URL(stack.mcpUrl("docs")), { requestInit: { headers: { authorization: `Bearer ${key}` } } }));
const outcome = (p: Promise<unknown>) => p.then(() => "ok", (e: Error) => e.message);
/** Waits until the upstream answers again (the session of a previous case reconnected). */
async function upAgain(client: Awaited<ReturnType<typeof as>>): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await outcome(client.readResource({ uri: "docs+att://r/one" }))) === "ok") return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("the upstream did not come back within 10 s");
}

beforeAll(async () => {
  nats = await startNats();
  // Bob reads as fast as he can (230 reads a second here): his own request budget is not under test.
  stack = await startStack(nats.url, { GATEWAY_AUTH: "required", GATEWAY_MAX_REQUESTS_PER_S_PER_PRINCIPAL: "100000" });
  child = spawn(process.execPath, [FIXTURE], { stdio: ["ignore", "pipe", "inherit"] });
  const [first] = await once(child.stdout!, "data");
  await registerUpstreams(stack, { name: "docs", transport: { type: "streamable-http", url: String(first).trim() } });
  const created = await stack.admin.post("/v1/virtual-servers", {
    name: "docs",
    resources: ["one", "bad", "slow"].map((n) => ({ upstream: "docs", uri: `att://r/${n}` })),
    prompts: [{ upstream: "docs", prompt: "p" }, { upstream: "docs", prompt: "bad" }],
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  promptNames = Object.fromEntries(created.body.prompts.map((p: { prompt: string; exposedName: string }) => [p.prompt, p.exposedName]));
  keys = await grantedConsumers(stack, "docs", ["alice", "bob"]);
}, 60_000);

afterAll(async () => {
  child?.kill();
  await stack?.close();
  await nats?.stop();
});

describe("one caller's malformed item answer must not cut other callers off a 2025 upstream", () => {
  test.each([
    ["resources/read of a resource whose blob is not Base64", "resource"],
    ["prompts/get of a prompt whose message role is 'system'", "prompt"],
  ])("%s: another caller's read in flight and its next read succeed, health stays up", async (_what, kind) => {
    await using alice = await as(keys.alice!);
    await using bob = await as(keys.bob!);
    await upAgain(bob);
    // Bob's read is in flight (the upstream answers it after 2 s) when Alice asks for the malformed item.
    const inFlight = outcome(bob.readResource({ uri: "docs+att://r/slow" }));
    await new Promise((r) => setTimeout(r, 300));
    const aliceSaw = await outcome(kind === "resource" ? alice.readResource({ uri: "docs+att://r/bad" }) : alice.getPrompt({ name: promptNames.bad! }));
    const bobNext = await outcome(bob.readResource({ uri: "docs+att://r/one" }));
    const bobInFlight = await inFlight;
    const health = (await stack.admin.get("/v1/upstreams/docs")).body.health;
    const figures = `alice: ${aliceSaw.slice(0, 90)} | bob in flight: ${bobInFlight.slice(0, 90)} | bob next: ${bobNext.slice(0, 120)} | health: ${health?.status} (${String(health?.replicas?.[0]?.reason ?? "").slice(0, 60)})`;
    // Measured 2026-12-01: bob in flight "upstream 'docs' closed the connection"; bob next "upstream
    // 'docs' is not connected: Invalid result for resources/read: [ { "code": "custom", "path":
    // ["contents", 0, "blob"], "message": "Invalid Base64 string" } ]" (Alice's failure); health "down".
    expect(bobInFlight, figures).toBe("ok");
    expect(bobNext, figures).toBe("ok");
    expect(health?.status, figures).not.toBe("down");
  }, 30_000);

  test("one caller reading a malformed resource in a loop keeps failing no other caller's reads", async () => {
    await using alice = await as(keys.alice!);
    await using bob = await as(keys.bob!);
    await upAgain(bob);
    let running = true;
    let aliceReads = 0;
    const attacker = (async () => {
      while (running) {
        await outcome(alice.readResource({ uri: "docs+att://r/bad" }));
        aliceReads++;
      }
    })();
    const failures: string[] = [];
    let reads = 0;
    const until = Date.now() + 5_000;
    while (Date.now() < until) {
      const seen = await outcome(bob.readResource({ uri: "docs+att://r/one" }));
      reads++;
      if (seen !== "ok") failures.push(seen);
    }
    running = false;
    await attacker;
    // Measured 2026-12-01: 569 of Bob's 583 reads failed in 5 s (Alice: 581 reads), "closed the connection"
    // or "is not connected: Invalid result for resources/read …".
    expect(failures.length, `${failures.length} of Bob's ${reads} reads failed in 5 s while Alice read the malformed resource ${aliceReads} times; first: ${failures[0]?.slice(0, 160)}`).toBe(0);
  }, 30_000);
});
