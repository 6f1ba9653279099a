import type { NatsServer } from "@manifold/nats-server";
import { freePort } from "@manifold/nats-server";
import type { ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createMcpHandler } from "@modelcontextprotocol/server";
import { listen, modernServer, modernState } from "../fixtures/modern-upstream.mjs";
import { createVirtualServer, grantedConsumers, registerUpstreams, rpcError } from "../helpers/catalog.js";
import { freeze } from "../helpers/freeze.js";
import { connectHttp, connectWithKey, eventually, type DisposableClient } from "../helpers/mcp.js";
import { startOutageProxy, type OutageProxy } from "../helpers/outageProxy.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";
import { spawnModernUpstream } from "../helpers/upstreams.js";

const CALLERS = ["c0", "c1", "c2", "c3", "c4", "c5"];
/** Calls each caller makes while the upstream is gone, after the connector's ping found it so. */
const CALLS_EACH = 3;

type Health = { status: string; replicas: { reason?: string }[] };
const healthOf = async (stack: Stack, upstream: string) => (await stack.admin.get(`/v1/upstreams/${upstream}`)).body.health as Health;

/** The modern fixture with one prompt, `greet`: what the shared session asks besides calls. */
async function serveModernWithPrompt() {
  const state = modernState();
  const handler = createMcpHandler(() => {
    const server = modernServer(state);
    server.registerCapabilities({ prompts: {} });
    server.setRequestHandler("prompts/list", () => ({ prompts: [{ name: "greet", description: "Greets" }] }));
    server.setRequestHandler("prompts/get", () => ({ messages: [{ role: "user", content: { type: "text", text: "hello" } }] }));
    return server;
  }, { legacy: "reject" });
  return { ...(await listen(handler)), state };
}

/** The exposed name of the fixture's prompt, from a listing. */
const greet = (listed: { prompts: { name: string }[] }) => listed.prompts.find((p) => p.name.startsWith("greet"))!.name;

/** A call's outcome and how long it took: "ok", or the JSON-RPC code and message it failed with. */
async function timed(call: Promise<object>): Promise<{ ms: number; code?: number; message: string }> {
  const started = Date.now();
  return call.then(
    (answer) => ({ ms: Date.now() - started, message: (answer as { isError?: boolean }).isError ? JSON.stringify((answer as { content?: unknown }).content) : "ok" }),
    (error: { code?: number; message: string }) => ({ ms: Date.now() - started, code: error.code, message: error.message }),
  );
}

/**
 * A 2026-07-28 upstream (no session to drop) behind a proxy whose own upstream is gone: the proxy
 * answers every request 502. One caller's 502 is that caller's alone (`refusedCalls.e2e`,
 * "cut502"), but the connector's own ping answered 502 says the upstream cannot be reached.
 */
describe("fault: a 2026-07-28 upstream's proxy answers everything 502, or is gone", () => {
  let nats: NatsServer;
  let stack: Stack;
  let modern: Awaited<ReturnType<typeof serveModernWithPrompt>>;
  let proxy: OutageProxy;
  let port: number;
  let keys: Record<string, string>;
  let names: Record<string, string>;

  beforeAll(async () => {
    nats = await startNats();
    [stack, modern, port] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", HEALTH_HEARTBEAT_MS: "200" }), serveModernWithPrompt(), freePort()]);
    proxy = await startOutageProxy(modern.url, port);
    await registerUpstreams(stack, { name: "modern", transport: { type: "streamable-http", url: proxy.url } });
    names = await createVirtualServer(
      stack,
      "gone",
      [
        { upstream: "modern", tool: "echo" },
        { upstream: "modern", tool: "pid" },
      ],
      { prompts: [{ upstream: "modern", prompt: "greet" }] },
    );
    keys = await grantedConsumers(stack, "gone", [...CALLERS, "mallory", "alice"]);
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    await proxy?.close();
    await modern?.close();
    await nats?.stop();
  });

  // Only the connector's own ping decides: one caller's calls the proxy answers 502 (nginx's answer
  // for a request whose connection the upstream cut) are hers alone, and refuse nobody else.
  test("one caller's calls answered 502 alone leave every other caller served, and the upstream up", async () => {
    await using mallory = await connectWithKey(stack.mcpUrl("gone"), keys.mallory!);
    await using alice = await connectWithKey(stack.mcpUrl("gone"), keys.alice!);
    const call = (client: DisposableClient, tool: string) => timed(client.callTool({ name: names[`modern/${tool}`]!, arguments: { message: "hi" } }, undefined, { timeout: 30_000 }));
    expect((await call(alice, "pid")).message).toBe("ok");
    proxy.cuts = (body) => body.includes('"tools/call"') && body.includes('"echo"');
    const failures: string[] = [];
    try {
      let stop = false;
      const flood = (async () => {
        while (!stop) await call(mallory, "echo");
      })();
      for (const until = Date.now() + 3_000; Date.now() < until; await new Promise((r) => setTimeout(r, 20))) {
        const outcome = await call(alice, "pid");
        if (outcome.message !== "ok") failures.push(outcome.message);
      }
      stop = true;
      await flood;
    } finally {
      proxy.cuts = undefined;
    }
    expect(failures).toEqual([]);
    expect((await call(mallory, "echo")).message).toMatch(/answered HTTP 502|circuit open/);
    expect((await healthOf(stack, "modern")).status).not.toBe("down");
  }, 30_000);

  // Before (2026-12-07, helper-211): health said `down` ("cannot be reached: a ping failed (answered
  // HTTP 502)"), yet each caller's calls still went to the proxy and failed there, one failing round
  // trip each, until that caller's own circuit of the tool opened after 5 of them: 15 of the 15
  // calls below reached the proxy.
  test("once the connector's ping cannot reach it, every caller's calls are refused at once, and served again within seconds of the proxy healing", async () => {
    const clients: DisposableClient[] = await Promise.all(CALLERS.map((name) => connectWithKey(stack.mcpUrl("gone"), keys[name]!)));
    try {
      const echo = (client: DisposableClient) => timed(client.callTool({ name: names["modern/echo"]!, arguments: { message: "hi" } }, undefined, { timeout: 30_000 }));
      for (const client of clients) expect((await echo(client)).message).toBe("ok");
      const prompt = greet(await clients[1]!.listPrompts());
      expect((await timed(clients[1]!.getPrompt({ name: prompt }))).message).toBe("ok");
      proxy.down = true;
      // One caller's call answered 502: that caller's alone, but it has the upstream pinged.
      expect((await echo(clients[0]!)).message).toMatch(/answered HTTP 502/);
      const down = await eventually(async () => {
        const now = await healthOf(stack, "modern");
        return now.status === "down" ? now : undefined;
      }, 5_000, 50);
      expect(down.replicas[0]!.reason).toMatch(/^cannot be reached: a ping failed \(answered HTTP 502\)/);
      const reachedBefore = proxy.refused("tools/call");
      const outcomes = [];
      for (const client of clients.slice(1)) for (let i = 0; i < CALLS_EACH; i++) outcomes.push(await echo(client));
      const reached = proxy.refused("tools/call") - reachedBefore;
      console.log(JSON.stringify({ reached, outcomes: outcomes.map(({ ms, code, message }) => ({ ms, code, message: message.slice(0, 160) })) }));
      expect(reached, "calls that went to the proxy after the ping found the upstream gone").toBe(0);
      for (const outcome of outcomes) {
        expect(outcome.code).toBe(-32010);
        expect(outcome.message).toMatch(/upstream 'modern' cannot be reached: a ping failed \(answered HTTP 502\)/);
      }
      // The first caller's too: nobody's calls go out while the ping says so. The refusal says when to
      // ask again: when the next ping goes (1-5 s apart here), never at once.
      const refusal = await rpcError(clients[0]!.callTool({ name: names["modern/echo"]!, arguments: { message: "hi" } }, undefined, { timeout: 30_000 }));
      expect(refusal.message).toMatch(/cannot be reached/);
      expect(proxy.refused("tools/call") - reachedBefore).toBe(0);
      console.log(JSON.stringify({ callRefusalData: refusal.data }));
      expect(refusal.data?.retryAfterMs).toBeGreaterThan(0);
      expect(refusal.data?.retryAfterMs).toBeLessThanOrEqual(5_000);

      // Before (2026-12-07, helper-214): a prompt, read or completion still went out, one failing
      // round trip each (5 of the 5 prompts/get below reached the proxy), and carried no retry hint.
      const prompted = proxy.refused("prompts/get");
      const prompts = [];
      for (const client of clients.slice(1)) prompts.push(await timed(client.getPrompt({ name: prompt }, { timeout: 30_000 })));
      const promptsReached = proxy.refused("prompts/get") - prompted;
      const promptRefusal = await rpcError(clients[1]!.getPrompt({ name: prompt }, { timeout: 30_000 }));
      console.log(JSON.stringify({ promptsReached, prompts: prompts.map(({ ms, code, message }) => ({ ms, code, message: message.slice(0, 160) })), promptRefusalData: promptRefusal.data }));
      expect(promptsReached, "prompts/get that went to the proxy after the ping found the upstream gone").toBe(0);
      for (const outcome of prompts) {
        expect(outcome.code).toBe(-32010);
        expect(outcome.message).toMatch(/upstream 'modern' cannot be reached: a ping failed \(answered HTTP 502\)/);
      }
      expect(promptRefusal.data?.retryAfterMs).toBeGreaterThan(0);

      proxy.down = false;
      const healed = Date.now();
      await eventually(async () => ((await echo(clients[1]!)).message === "ok" ? true : undefined), 15_000, 50);
      const servedAfter = Date.now() - healed;
      console.log(JSON.stringify({ servedAfterMs: servedAfter }));
      // Pinged at most a breaker cooldown (5 s) apart, plus the ping.
      expect(servedAfter).toBeLessThanOrEqual(6_500);
      for (const client of clients) expect((await echo(client)).message).toBe("ok");
      await eventually(async () => ((await healthOf(stack, "modern")).status === "up" ? true : undefined), 5_000, 50);
    } finally {
      proxy.down = false;
      await Promise.all(clients.map((client) => client.close()));
    }
  }, 60_000);

  // A proxy that is gone altogether: a refused connection is no single request's failure, and
  // counts against the upstream's own circuit, which a few calls open for everyone; a failure that
  // had the connector ping first (a pooled connection cut as the proxy went) refuses them as well.
  test("a few refused connections open the upstream's circuit for every caller; served again within seconds of a proxy answering there", async () => {
    const clients: DisposableClient[] = await Promise.all(CALLERS.map((name) => connectWithKey(stack.mcpUrl("gone"), keys[name]!)));
    try {
      const echo = (client: DisposableClient) => timed(client.callTool({ name: names["modern/echo"]!, arguments: { message: "hi" } }, undefined, { timeout: 30_000 }));
      for (const client of clients) expect((await echo(client)).message).toBe("ok");
      await proxy.close();
      const outcomes = [];
      for (const client of clients) for (let i = 0; i < CALLS_EACH; i++) outcomes.push(await echo(client));
      // Refused at once either way: by the upstream's open circuit, or, when a failure had the
      // connector ping first, by that ping's verdict (both seen: which comes first is a race).
      const refusedAtOnce = /circuit open|cannot be reached: a ping failed/;
      const refusedThere = outcomes.filter((o) => /ECONNREFUSED/.test(o.message) && !refusedAtOnce.test(o.message)).length;
      console.log(JSON.stringify({ refusedThere, outcomes: outcomes.map(({ ms, message }) => ({ ms, message: message.slice(0, 140) })) }));
      expect(refusedThere, "calls that tried to connect").toBeLessThanOrEqual(5);
      expect(outcomes.at(-1)!.message).toMatch(/upstream 'modern' (is unavailable \(circuit open|cannot be reached: a ping failed)/);
      expect((await healthOf(stack, "modern")).status).toBe("down");
      proxy = await startOutageProxy(modern.url, port);
      const back = Date.now();
      await eventually(async () => ((await echo(clients[1]!)).message === "ok" ? true : undefined), 15_000, 50);
      const servedAfter = Date.now() - back;
      console.log(JSON.stringify({ servedAfterMs: servedAfter }));
      // The circuit lets a probe through after its cooldown (5 s); the silent pings come at most that far apart.
      expect(servedAfter).toBeLessThanOrEqual(6_500);
      for (const client of clients) expect((await echo(client)).message).toBe("ok");
    } finally {
      await Promise.all(clients.map((client) => client.close()));
    }
  }, 60_000);
});

/**
 * A 2026-07-28 upstream that answers nothing for 40 s (its process stopped), idle meanwhile: its
 * health is `down` ("answers nothing") and it is pinged at growing intervals, and the periodic
 * rediscovery that falls in the stop cannot list it; once it runs again, how long until its health
 * says `up`?
 */
describe("fault: an idle upstream answers nothing for 40 s, then runs again", () => {
  const HANG_MS = 40_000;
  // The periodic rediscovery, and when the stop begins after the upstream is registered (its worker
  // starts then, and the timer with it): the rediscovery at 45 s falls in the stop (20-60 s) with
  // 10 s to spare for its listing's timeout (CONNECT_TIMEOUT_MS, 10 s) and ~15 s for a start slowed
  // by load; the next one (90 s) is ~30 s after the upstream runs again. In CI a discovery fell in
  // the stop by chance, most likely (see below); here one does every run.
  const REDISCOVER_MS = 45_000;
  const STOP_AFTER_MS = 20_000;
  let registered = 0;
  let nats: NatsServer;
  let stack: Stack;
  let upstream: ChildProcess;
  let names: Record<string, string>;

  beforeAll(async () => {
    nats = await startNats();
    const port = await freePort();
    [stack, upstream] = await Promise.all([startStack(nats.url, { HEALTH_HEARTBEAT_MS: "200", CALL_TIMEOUT_MS: "2000", HEALTH_PING_TIMEOUT_MS: "1000", CONNECTOR_REDISCOVER_MS: String(REDISCOVER_MS) }), spawnModernUpstream(port)]);
    registered = Date.now();
    await registerUpstreams(stack, { name: "idle", transport: { type: "streamable-http", url: `http://127.0.0.1:${port}/mcp` } });
    names = await createVirtualServer(stack, "idle", [{ upstream: "idle", tool: "echo" }]);
  }, 60_000);

  afterAll(async () => {
    upstream?.kill("SIGCONT");
    upstream?.kill("SIGTERM");
    await stack?.close();
    await nats?.stop();
  });

  // Before (2026-12-07, helper-211): pinged 1 s, 2 s, 4 s … 30 s apart, it was `down` for 26 s after
  // it ran again (the next ping was that far off). Then 5.0-5.4 s on a quiet machine, but in CI not
  // `up` after 40 s, twice; the fitting cause, made to happen here (helper-216): a listing that timed
  // out while it was stopped left it `degraded` ("its lists cannot be read") after the ping cleared
  // its `down`, until the next rediscovery (5 min by default; `up` after 27.0 s here). Now a
  // failed discovery runs again as soon as it answers: a breaker cooldown (5 s), a ping, a listing.
  // The bound allows one more pause and ping, for a ping of 1 s missed under CI load (one run took
  // 83 s in all beside five other suites), and still fails both the old pacing's 26 s and the ~30 s
  // until the next rediscovery.
  test("its health is up within seconds of it answering again", async () => {
    await using agent = await connectHttp(stack.mcpUrl("idle"));
    const echo = () => timed(agent.callTool({ name: names["idle/echo"]!, arguments: { message: "x" } }, undefined, { timeout: 30_000 }));
    expect((await echo()).message).toBe("ok");
    await new Promise((r) => setTimeout(r, Math.max(0, registered + STOP_AFTER_MS - Date.now())));
    await freeze(upstream);
    let thawed = false;
    try {
      expect((await echo()).message).toMatch(/did not answer within 2000 ms/);
      await eventually(async () => ((await healthOf(stack, "idle")).status === "down" ? true : undefined), 5_000, 100);
      await new Promise((r) => setTimeout(r, HANG_MS));
      expect((await healthOf(stack, "idle")).status).toBe("down");
      upstream.kill("SIGCONT");
      thawed = true;
      const ran = Date.now();
      const seen: string[] = [];
      await eventually(async () => {
        const { status, replicas } = await healthOf(stack, "idle");
        const now = `${status}: ${replicas[0]?.reason ?? ""}`;
        if (seen.at(-1) !== now) seen.push(now);
        return status === "up" ? true : undefined;
      }, 40_000, 100);
      const upAfter = Date.now() - ran;
      console.log(JSON.stringify({ upAfterMs: upAfter, seen }));
      expect(upAfter).toBeLessThanOrEqual(12_500);
    } finally {
      if (!thawed) upstream.kill("SIGCONT");
    }
    expect((await echo()).message).toBe("ok");
  }, 150_000);
});
