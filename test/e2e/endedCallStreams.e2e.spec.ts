import type { NatsServer } from "@manifold/nats-server";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { InMemoryEventStore } from "@modelcontextprotocol/sdk/examples/shared/inMemoryEventStore.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { ElicitRequestSchema, LoggingMessageNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { serveModernHttpEndingStreams } from "../fixtures/modern-upstream.mjs";
import { serveSessions } from "../fixtures/sessionServer.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectHttp, type DisposableClient } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// An upstream whose SSE answer to one tool ends without the call's answer (toolCallHandler.ts,
// `onResponseEnd`), while another caller's calls of another tool of the same upstream run on the
// same shared session. 2025-era: test/fixtures/hostileAnswerUpstream.mjs's `sse-ends-early` (a
// SEP-1699 priming event with an id and a retry, then the end); 2026-07-28: modern-upstream.mjs's
// `ends`. The breaker keeps its default threshold (5): what it counts is the point. A 2025 stream
// ended after an event id is resumed first (GET with `Last-Event-ID`, SEP-1699): `sse-resumable`
// answers on the second resumption, `sse-resume-loop` never does.

const FIXTURE = new URL("../fixtures/hostileAnswerUpstream.mjs", import.meta.url).pathname;
const CALL_TIMEOUT_MS = 4_000;
const ENDED_CALLS = 8;

let nats: NatsServer;
let stack: Stack;
let child: ChildProcess;
let rawUrl: string;
let modern: Awaited<ReturnType<typeof serveModernHttpEndingStreams>>;
let names: Record<string, string>;
let agent: DisposableClient;
let tenant: DisposableClient;

interface Outcome {
  ms: number;
  code?: string;
  reason?: unknown;
  message?: string;
  text?: string;
}
async function call(client: DisposableClient, key: string, args: Record<string, unknown> = {}): Promise<Outcome> {
  const started = Date.now();
  try {
    const result = await client.callTool({ name: names[key]!, arguments: args });
    return { ms: Date.now() - started, text: JSON.stringify(result).slice(0, 200) };
  } catch (e) {
    const error = e as { message: string; data?: Record<string, unknown> };
    return { ms: Date.now() - started, code: error.data?.code as string | undefined, reason: error.data?.reason, message: error.message.slice(0, 160) };
  }
}

/** Calls `tool` of virtual server `vs` as an agent that answers any elicitation: the call's text and the questions put to the agent. */
async function asking(vs: string, tool: string) {
  const client = new Client({ name: "asked", version: "1" }, { capabilities: { elicitation: { form: {} } } });
  const asked: string[] = [];
  client.setRequestHandler(ElicitRequestSchema, async (request) => {
    asked.push(request.params.message);
    return { action: "accept", content: {} };
  });
  await client.connect(new StreamableHTTPClientTransport(new URL(stack.mcpUrl(vs))));
  try {
    const text = await client.callTool({ name: tool, arguments: {} }).then((r) => JSON.stringify(r), (e: Error) => `ERR ${e.message}`);
    return { text, asked };
  } finally {
    await client.close();
  }
}

/** The SDK's own server (1.x) with an event store, polling (`retry: 50`), serving one tool. */
const pollingServer = (tool: string, run: (server: McpServer, extra: { closeSSEStream?: () => void; requestId: string | number }) => Promise<string>) =>
  serveSessions(
    () => {
      const server = new McpServer({ name: "polling", version: "1.0.0" });
      server.registerTool(tool, { inputSchema: {} }, async (_args, extra) => ({ content: [{ type: "text", text: await run(server, extra) }] }));
      return server;
    },
    0,
    undefined,
    { eventStore: new InMemoryEventStore(), retryInterval: 50 },
  );

beforeAll(async () => {
  nats = await startNats();
  child = spawn(process.execPath, [FIXTURE], { stdio: ["ignore", "pipe", "inherit"] });
  const [first] = await once(child.stdout!, "data");
  rawUrl = String(first).trim();
  [stack, modern] = await Promise.all([startStack(nats.url, { CALL_TIMEOUT_MS: String(CALL_TIMEOUT_MS) }), serveModernHttpEndingStreams()]);
  await registerUpstreams(stack, { name: "raw", transport: { type: "streamable-http", url: rawUrl } }, { name: "modern", transport: { type: "streamable-http", url: modern.url } });
  names = await createVirtualServer(stack, "v", [
    { upstream: "raw", tool: "sse-ends-early" },
    { upstream: "raw", tool: "good" },
    { upstream: "raw", tool: "sse-resumable" },
    { upstream: "raw", tool: "sse-resume-loop" },
    { upstream: "raw", tool: "sse-resume-late" },
    { upstream: "raw", tool: "sse-resume-slow" },
    { upstream: "raw", tool: "sse-resume-mixed" },
    { upstream: "raw", tool: "sse-resume-logged" },
    { upstream: "raw", tool: "sse-resume-asks-mixed" },
    { upstream: "modern", tool: "ends" },
    { upstream: "modern", tool: "echo" },
  ]);
  [agent, tenant] = await Promise.all([connectHttp(stack.mcpUrl("v")), connectHttp(stack.mcpUrl("v"))]);
}, 60_000);

afterAll(async () => {
  await Promise.all([agent?.close(), tenant?.close()]);
  child?.kill();
  await modern?.close();
  await stack?.close();
  await nats?.stop();
});

interface Counts {
  initializes: number;
  cancelled: number;
  resumed: number;
  resumedInSession: number;
  questionsAnswered: number;
  questionsRefused: number;
}
const counts = async () => (await (await fetch(new URL("/counts", rawUrl))).json()) as Counts;

/**
 * `ENDED_CALLS` calls of `ended` by the agent, at once, while the tenant calls `other`
 * (same upstream, same shared session) in a loop: both sides' outcomes.
 */
async function alongside(ended: string, other: string, args: Record<string, unknown> = {}) {
  const times: number[] = [];
  const otherFailures: string[] = [];
  let done = false;
  const loop = (async () => {
    while (!done) {
      const o = await call(tenant, other, args);
      if (o.text) times.push(o.ms);
      else otherFailures.push(`${o.code}: ${o.message}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  // At once, as one busy caller's calls come: failures the breaker counted as the upstream's were
  // then consecutive, with none of the tenant's successes between them.
  const outcomes = await Promise.all(Array.from({ length: ENDED_CALLS }, () => call(agent, ended)));
  // The tenant's calls a second longer: a circuit opened meanwhile shows after the last ended call too.
  await new Promise((r) => setTimeout(r, 1_000));
  done = true;
  await loop;
  times.sort((a, b) => a - b);
  return {
    outcomes,
    otherOk: times.length,
    otherFailed: otherFailures.length,
    otherFailures: [...new Set(otherFailures)].slice(0, 3),
    otherP50: times[times.length >> 1] ?? -1,
    otherMax: times.at(-1) ?? -1,
  };
}

describe("a call's SSE answer that ends without the answer fails that call only", () => {
  // Measured 2026-12-06 before the fix (a plain Error, mapped to upstream_unavailable): the 8 calls
  // upstream_unavailable ("could not be reached", "is not connected", then "circuit open after 5
  // consecutive failures"), the shared session dropped and opened again (1 initialize), and the
  // tenant's calls of `good` 50 ok / 14 failed (circuit open) in the 1.1 s that followed. No
  // notifications/cancelled was sent (the upstream kept working on calls nobody would read).
  test("2025-era (SEP-1699 priming event, then the end; its GET refused): upstream_error stream_ended; the shared session kept, another caller untouched", async () => {
    expect((await call(tenant, "raw/good")).text).toContain("ok");
    const before = await counts();
    const seen = await alongside("raw/sse-ends-early", "raw/good");
    const after = await counts();
    const sessionsOpened = after.initializes - before.initializes;
    const cancelled = after.cancelled - before.cancelled;
    const figures = JSON.stringify({ sessionsOpened, cancelled, ...seen });
    console.log(`2025: ${figures}`);
    for (const o of seen.outcomes) {
      expect(o.code, figures).toBe("upstream_error");
      expect(o.reason, figures).toBe("stream_ended");
      expect(o.ms, figures).toBeLessThan(CALL_TIMEOUT_MS / 2);
    }
    expect(sessionsOpened, figures).toBe(0);
    // 2025-11-25: a disconnection is no cancellation, and the connector will not poll: the upstream is told.
    expect(cancelled, figures).toBe(ENDED_CALLS);
    // Each stream was asked for again once (the fixture answers that GET 405).
    expect(after.resumed - before.resumed, figures).toBe(ENDED_CALLS);
    expect(seen.otherFailed, figures).toBe(0);
    expect((await stack.admin.get("/v1/upstreams/raw")).body.health?.status).toBe("up");
  }, 60_000);

  // Measured before resumption: upstream_error stream_ended at once (20-40 ms), no GET.
  test("2025-era: a stream ended twice after an event id is resumed (GET, Last-Event-ID, on the session) and the call answered", async () => {
    const before = await counts();
    const outcomes = await Promise.all([0, 1, 2, 3].map(() => call(agent, "raw/sse-resumable")));
    const after = await counts();
    const figures = JSON.stringify({ resumed: after.resumed - before.resumed, inSession: after.resumedInSession - before.resumedInSession, outcomes });
    console.log(`2025 resumed: ${figures}`);
    for (const o of outcomes) {
      expect(o.text, figures).toContain('"ok"');
      // Two waits of the stream's `retry: 50`.
      expect(o.ms, figures).toBeLessThan(CALL_TIMEOUT_MS / 2);
    }
    expect(after.resumed - before.resumed, figures).toBe(8);
    expect(after.resumedInSession - before.resumedInSession, figures).toBe(8);
    expect(after.initializes - before.initializes, figures).toBe(0);
  }, 30_000);

  test("2025-era: a stream ended again at once with retry: 0 is resumed 16 times at most, 100 ms apart, then the call fails alone", async () => {
    const before = await counts();
    const seen = await alongside("raw/sse-resume-loop", "raw/good");
    const after = await counts();
    const figures = JSON.stringify({ resumed: after.resumed - before.resumed, sessionsOpened: after.initializes - before.initializes, ...seen });
    console.log(`2025 resume loop: ${figures}`);
    for (const o of seen.outcomes) {
      expect(o.code, figures).toBe("upstream_error");
      expect(o.reason, figures).toBe("stream_ended");
      expect(o.ms, figures).toBeGreaterThanOrEqual(16 * 100);
      expect(o.ms, figures).toBeLessThan(CALL_TIMEOUT_MS);
    }
    expect(after.resumed - before.resumed, figures).toBe(16 * ENDED_CALLS);
    expect(after.initializes - before.initializes, figures).toBe(0);
    expect(seen.otherFailed, figures).toBe(0);
  }, 60_000);

  test("2025-era: a stream whose retry outlasts the call's budget is not waited for: the call fails at once", async () => {
    const before = await counts();
    const o = await call(agent, "raw/sse-resume-late");
    const after = await counts();
    expect([o.code, o.reason], JSON.stringify(o)).toEqual(["upstream_error", "stream_ended"]);
    expect(o.ms, JSON.stringify(o)).toBeLessThan(CALL_TIMEOUT_MS / 2);
    expect(after.resumed - before.resumed).toBe(0);
  }, 30_000);

  test("2025-era: a call cancelled while it waits to resume its stream is not resumed, and the upstream hears the cancel", async () => {
    const before = await counts();
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 300);
    const outcome = await agent.callTool({ name: names["raw/sse-resume-slow"]!, arguments: {} }, undefined, { signal: abort.signal }).then(
      () => "answered",
      (e: Error) => e.message,
    );
    // Past the stream's `retry: 1500`: a resumption still pending would have been sent by now.
    await new Promise((r) => setTimeout(r, 2_000));
    const after = await counts();
    const figures = JSON.stringify({ outcome, resumed: after.resumed - before.resumed, cancelled: after.cancelled - before.cancelled });
    expect(after.resumed - before.resumed, figures).toBe(0);
    expect(after.cancelled - before.cancelled, figures).toBe(1);
  }, 30_000);

  // A real server's polling (SDK 1.32.2, `closeSSEStream`, `retryInterval: 50`). Measured before
  // resumption: upstream_error stream_ended at 102 ms, the answer lost; before that (main at 2f96f03):
  // upstream_unavailable "could not be reached" at 231 ms, the shared session dropped. After: 369 ms, answered.
  test("2025-era, the SDK's own server (1.x, an event store): a tool that closes its stream (closeSSEStream) and answers later is answered", async () => {
    const sdk = await pollingServer("polled", async (_server, extra) => {
      extra.closeSSEStream?.();
      await new Promise((r) => setTimeout(r, 300));
      return "polled ok";
    });
    try {
      await registerUpstreams(stack, { name: "sdk", transport: { type: "streamable-http", url: sdk.url } });
      const tools = await createVirtualServer(stack, "w", [{ upstream: "sdk", tool: "polled" }]);
      await using client = await connectHttp(stack.mcpUrl("w"));
      const started = Date.now();
      const result = await client.callTool({ name: tools["sdk/polled"]!, arguments: {} }).then((r) => JSON.stringify(r), (e: Error) => `ERR ${e.message}`);
      console.log(`2025 SDK server: ${Date.now() - started} ms ${result.slice(0, 200)}`);
      expect(result).toContain("polled ok");
    } finally {
      await sdk.close();
    }
  }, 30_000);

  // A compliant server that closes its stream and then asks (SDK 1.32.2: `closeSSEStream`, then
  // `elicitInput` on the same request, which its event store delivers on the resuming GET): the
  // question can be no other caller's, as only this call ran on the session (sessionQuestions.ts).
  // Refusing every question on a resumed stream (helper-167) refused it: the tool heard "polled
  // refused: ...", its agent was asked nothing. Now the agent is asked and the tool says "polled accept".
  test("2025-era, the SDK's own server: a question asked after closeSSEStream is put to the call's agent", async () => {
    const sdk = await pollingServer("polled-asks", async (server, extra) => {
      extra.closeSSEStream?.();
      await new Promise((r) => setTimeout(r, 300));
      const sure = { mode: "form" as const, message: "sure?", requestedSchema: { type: "object" as const, properties: {} } };
      const answer = await server.server.elicitInput(sure, { relatedRequestId: extra.requestId }).then((a) => a.action, (e: Error) => `refused: ${e.message}`);
      return `polled ${answer}`;
    });
    try {
      await registerUpstreams(stack, { name: "sdk-asks", transport: { type: "streamable-http", url: sdk.url } });
      const tools = await createVirtualServer(stack, "x", [{ upstream: "sdk-asks", tool: "polled-asks" }]);
      const { text: result, asked } = await asking("x", tools["sdk-asks/polled-asks"]!);
      console.log(`2025 SDK server asking on its resumed stream: ${JSON.stringify({ result, asked })}`);
      expect(result).toContain("polled accept");
      expect(asked).toEqual(["sure?"]);
    } finally {
      await sdk.close();
    }
  }, 30_000);

  // Measured before the fix: no session to drop, but the 8 calls opened the upstream's circuit
  // ("circuit open after 8 consecutive failures") and the tenant's calls of `echo` went 1 ok / 66 failed.
  test("2026-07-28 (closing is the client's cancel; the server's early end is a broken answer): upstream_error stream_ended; the upstream's circuit stays closed", async () => {
    expect((await call(tenant, "modern/echo", { message: "hi" })).text).toContain("echo: hi");
    const seen = await alongside("modern/ends", "modern/echo", { message: "hi" });
    const figures = JSON.stringify(seen);
    console.log(`2026-07-28: ${figures}`);
    for (const o of seen.outcomes) {
      expect(o.code, figures).toBe("upstream_error");
      expect(o.reason, figures).toBe("stream_ended");
      expect(o.ms, figures).toBeLessThan(CALL_TIMEOUT_MS / 2);
    }
    expect(seen.otherFailed, figures).toBe(0);
    expect((await stack.admin.get("/v1/upstreams/modern")).body.health?.status).toBe("up");
  }, 60_000);
});

describe("a 2025 call's resumed stream carries nothing of another call to this call's agent", () => {
  // fault (helper-158): an upstream whose event store replays the whole session after
  // `Last-Event-ID`, not the call's stream alone: the resumed stream carried another call's answer
  // and progress (not taken: their ids are not this call's) and log messages, which were all
  // relayed to this call's agent as its own. A resumed stream's log messages are now held until the
  // call's answer, and relayed only when nothing on the stream was another call's.
  const logged = async (tool: string) => {
    const client = await connectHttp(stack.mcpUrl("v"));
    const logs: unknown[] = [];
    const progress: unknown[] = [];
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void logs.push(n.params.data));
    await client.setLoggingLevel("debug");
    try {
      const result = await client.callTool({ name: names[`raw/${tool}`]!, arguments: {} }, undefined, { onprogress: (p) => void progress.push(p.message) });
      await new Promise((r) => setTimeout(r, 300));
      return { text: JSON.stringify(result), logs, progress };
    } finally {
      await client.close();
    }
  };

  test("a resumed stream that carries another call's answer and progress: its log messages are not this call's", async () => {
    const seen = await logged("sse-resume-mixed");
    console.log(`2025 mixed resumed stream: ${JSON.stringify(seen)}`);
    expect(seen.text).toContain('"ok"');
    expect(seen.progress).toEqual([]);
    // Measured before the fix: ["a log of no call", "another call's log"] relayed to this agent.
    expect(seen.logs).toEqual([]);
  }, 30_000);

  // Measured before the fix: the question asked on the replayed stream after another call's answer
  // was put to this call's agent (["another call's question"]), and its answer sent upstream.
  test("a resumed stream that carried another call's answer: a question on it after that is refused, not put to this call's agent", async () => {
    const seen = await asking("v", names["raw/sse-resume-asks-mixed"]!);
    console.log(`2025 question on a mixed resumed stream: ${JSON.stringify(seen)}`);
    expect(seen.text).toContain('"ok"');
    expect(seen.asked).toEqual([]);
  }, 30_000);

  // A question first on a resumed stream, with another consumer's call on the session: resumedQuestions.e2e.

  test("a resumed stream of this call alone: its log messages reach the agent, before the answer", async () => {
    const seen = await logged("sse-resume-logged");
    expect(seen.text).toContain('"ok"');
    expect(seen.logs).toEqual([expect.stringMatching(/^resumed log of m\d+$/)]);
  }, 30_000);
});
