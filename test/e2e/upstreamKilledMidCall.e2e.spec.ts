import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createVirtualServer, registerUpstreams, rpcError } from "../helpers/catalog.js";
import { startEveryTransportUpstreams, type EveryTransportUpstreams } from "../helpers/everyTransportUpstreams.js";
import { connectHttp, type DisposableClient } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

/** Far above what any bound below allows: a call that waits for it is a hang. */
const CALL_TIMEOUT_MS = 20_000;
/**
 * Far above the recovery bound too: the calls refused while the upstream is away may open its
 * circuit, which must not outlive the reconnection (before, the SSE case served again only once
 * the cooldown had passed).
 */
const BREAKER_COOLDOWN_MS = 30_000;
/**
 * An upstream killed (SIGKILL) while a call runs on it, over each transport and in both eras: the
 * call fails at once with `upstream_unavailable` (not at the call's budget with `upstream_timeout`),
 * and once the upstream is back (an HTTP one restarted on its port, a stdio one respawned by the
 * connector) the next call succeeds within seconds. Before: a legacy SSE upstream's session
 * outlived its event stream (the SDK's EventSource just reconnects), so the call in flight waited
 * out its whole budget, and so did the first call after the upstream came back. And the calls
 * refused meanwhile could open the upstream's circuit, which then refused every caller for its
 * whole cooldown although the upstream was back.
 */
describe("an upstream killed in the middle of a call", () => {
  let nats: NatsServer;
  let stack: Stack;
  let agent: DisposableClient;
  let names: Record<string, string>;
  let upstreams: EveryTransportUpstreams;

  beforeAll(async () => {
    nats = await startNats();
    [stack, upstreams] = await Promise.all([
      startStack(nats.url, { HEALTH_HEARTBEAT_MS: "200", CALL_TIMEOUT_MS: String(CALL_TIMEOUT_MS), CONNECTOR_BREAKER_COOLDOWN_MS: String(BREAKER_COOLDOWN_MS) }),
      startEveryTransportUpstreams(),
    ]);
    await registerUpstreams(stack, ...upstreams.specs("estdio", "esse", "ehttp", "mhttp", "mstdio"));
    const tools = [];
    for (const u of ["estdio", "esse", "ehttp"]) tools.push({ upstream: u, tool: "echo" }, { upstream: u, tool: "trigger-long-running-operation" });
    for (const u of ["mhttp", "mstdio"]) tools.push({ upstream: u, tool: "echo" }, { upstream: u, tool: "slow" });
    names = await createVirtualServer(stack, "killed", tools);
    agent = await connectHttp(stack.mcpUrl("killed"));
  }, 60_000);

  afterAll(async () => {
    await agent?.close();
    await stack?.close();
    await upstreams?.close();
    await nats?.stop();
  });

  const call = (tool: string, args: Record<string, unknown>) => agent.callTool({ name: names[tool]!, arguments: args }, undefined, { timeout: 60_000 });
  const long = (u: string) => (u.startsWith("e") ? call(`${u}/trigger-long-running-operation`, { duration: 10, steps: 5 }) : call(`${u}/slow`, { ms: 10_000 }));

  test.each([
    ["stdio, 2025 (server-everything)", "estdio"],
    ["legacy HTTP+SSE (server-everything)", "esse"],
    ["Streamable HTTP, 2025 (server-everything)", "ehttp"],
    ["Streamable HTTP, 2026-07-28 (the 2.x SDK fixture)", "mhttp"],
    ["stdio, 2026-07-28 (the 2.x SDK fixture)", "mstdio"],
  ])("%s: the call fails at once with upstream_unavailable, and the upstream serves again within seconds", async (_, u) => {
    expect(await call(`${u}/echo`, { message: "before" })).toHaveProperty("content");
    const pending = rpcError(long(u));
    await new Promise((r) => setTimeout(r, 700));
    const killedAt = Date.now();
    await upstreams.kill(u);
    const error = await pending;
    const failedAfter = Date.now() - killedAt;
    expect({ code: error.data?.code, message: error.message }, `after ${failedAfter} ms`).toMatchObject({ code: "upstream_unavailable", message: expect.stringContaining(`'${u}'`) });
    expect(failedAfter, error.message).toBeLessThan(5_000);

    // An HTTP upstream comes back on its port; a stdio one is respawned by the connector.
    if (!u.endsWith("stdio")) await upstreams.restart(u);
    const backAt = Date.now();
    const failures: string[] = [];
    for (;;) {
      const outcome = await call(`${u}/echo`, { message: "after" }).then(
        () => undefined,
        (e: { data?: { code?: string }; message: string }) => `${Date.now() - backAt} ms: ${e.data?.code} ${e.message}`,
      );
      if (!outcome) break;
      failures.push(outcome);
      expect(Date.now() - backAt, failures.join(" | ")).toBeLessThan(10_000);
      // Often enough that the refusals while the upstream is away open its circuit.
      await new Promise((r) => setTimeout(r, 50));
    }
    // Every call meanwhile was refused at once, none waited for the call budget.
    for (const failure of failures) expect(failure).toMatch(/upstream_unavailable/);
  }, 30_000);
});
