import type { NatsServer } from "@manifold/nats-server";
import { freePort } from "@manifold/nats-server";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createMcpHandler } from "@modelcontextprotocol/server";
import { listen, modernServer, modernState } from "../fixtures/modern-upstream.mjs";
import { createVirtualServer, grantedConsumers, registerUpstreams, rpcError } from "../helpers/catalog.js";
import { connectWithKey, eventually, type DisposableClient } from "../helpers/mcp.js";
import { startOutageProxy, type OutageProxy } from "../helpers/outageProxy.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

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
