import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { startEveryTransportUpstreams, type EveryTransportUpstreams } from "../helpers/everyTransportUpstreams.js";
import { freeze } from "../helpers/freeze.js";
import { connectHttp, type DisposableClient } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

const CALL_TIMEOUT_MS = 2_000;

const timed = async <T>(work: Promise<T>) => {
  const started = Date.now();
  const outcome = await work.then(
    () => "ok",
    (e: { data?: { code?: string }; message?: string }) => `${e.data?.code} ${e.message}`,
  );
  return { ms: Date.now() - started, outcome };
};

/**
 * An upstream that keeps its connections open but answers nothing (its process stopped: SIGSTOP,
 * a stalled host), in each transport and era: its calls end at the call budget with
 * `upstream_timeout`, so does a discovery, while another caller's calls to another upstream and
 * the agent's tool list are served as usual; once it runs again its next call is answered at once.
 */
describe("an upstream that hangs", () => {
  let nats: NatsServer;
  let stack: Stack;
  let agent: DisposableClient;
  let other: DisposableClient;
  let names: Record<string, string>;
  let upstreams: EveryTransportUpstreams;

  beforeAll(async () => {
    nats = await startNats();
    [stack, upstreams] = await Promise.all([
      startStack(nats.url, { HEALTH_HEARTBEAT_MS: "200", CALL_TIMEOUT_MS: String(CALL_TIMEOUT_MS) }),
      startEveryTransportUpstreams(["esse", "ehttp", "mhttp"], { healthy: "ehttp" }),
    ]);
    await registerUpstreams(stack, ...upstreams.specs("estdio", "esse", "ehttp", "mhttp", "healthy"));
    names = await createVirtualServer(stack, "hang", ["estdio", "esse", "ehttp", "mhttp", "healthy"].map((upstream) => ({ upstream, tool: "echo" })));
    [agent, other] = await Promise.all([connectHttp(stack.mcpUrl("hang")), connectHttp(stack.mcpUrl("hang"))]);
  }, 60_000);

  afterAll(async () => {
    await Promise.all([agent?.close(), other?.close()]);
    await stack?.close();
    await upstreams?.close();
    await nats?.stop();
  });

  const echo = (client: DisposableClient, upstream: string) => client.callTool({ name: names[`${upstream}/echo`]!, arguments: { message: "x" } }, undefined, { timeout: 60_000 });

  test.each([
    ["stdio, 2025", "estdio"],
    ["legacy HTTP+SSE", "esse"],
    ["Streamable HTTP, 2025", "ehttp"],
    ["Streamable HTTP, 2026-07-28", "mhttp"],
  ])("%s: calls and discovery end at the budget with upstream_timeout, no one else waits, and it serves at once when it runs again", async (_, u) => {
    const pids = upstreams.pids(u);
    expect(pids.length).toBeGreaterThan(0);
    if (u === "estdio") for (const pid of pids) process.kill(pid, "SIGSTOP");
    else await freeze(upstreams.server(u));
    try {
      const hung = [timed(echo(agent, u)), timed(echo(agent, u))];
      const discovery = timed(stack.admin.post(`/v1/upstreams/${u}/discover`, {}).then((r) => (r.body.discovery?.status === "ok" ? r : Promise.reject(Object.assign(new Error(r.body.discovery?.error?.message), { data: r.body.discovery?.error })))));
      await new Promise((r) => setTimeout(r, 200));
      // Meanwhile: another caller, another upstream, and the virtual server's tool list.
      const elsewhere = await Promise.all([timed(echo(other, "healthy")), timed(echo(agent, "healthy")), timed(other.listTools())]);
      for (const { ms, outcome } of elsewhere) {
        expect(outcome).toBe("ok");
        expect(ms).toBeLessThan(1_500);
      }
      for (const { ms, outcome } of [...(await Promise.all(hung)), await discovery]) {
        expect(outcome).toMatch(new RegExp(`^upstream_timeout .*upstream '${u}' did not answer within ${CALL_TIMEOUT_MS} ms`));
        expect(ms).toBeGreaterThanOrEqual(CALL_TIMEOUT_MS - 100);
        expect(ms).toBeLessThan(CALL_TIMEOUT_MS + 4_000);
      }
    } finally {
      for (const pid of pids) process.kill(pid, "SIGCONT");
    }
    const resumed = await timed(echo(agent, u));
    expect(resumed.outcome).toBe("ok");
    expect(resumed.ms).toBeLessThan(3_000);
  }, 20_000);
});
