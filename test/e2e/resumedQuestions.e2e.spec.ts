import type { NatsServer } from "@manifold/nats-server";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { serveLeftoverQuestions } from "../fixtures/leftoverQuestionUpstream.mjs";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { eventually } from "../helpers/mcp.js";
import { recordSpans } from "../helpers/spans.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// A question on a 2025 call's resumed stream (GET with `Last-Event-ID`, SEP-1699) from an upstream
// whose event store replays the whole session (test/fixtures/hostileAnswerUpstream.mjs), its one
// shared session serving two consumers: relayed only when it can be no other tenant's
// (sessionQuestions.ts). Alice and Mallory each call with their own key.

const FIXTURE = new URL("../fixtures/hostileAnswerUpstream.mjs", import.meta.url).pathname;

let nats: NatsServer;
let stack: Stack;
let child: ChildProcess;
let rawUrl: string;
let names: Record<string, string>;
let leftover: Awaited<ReturnType<typeof serveLeftoverQuestions>>;
let keys: Record<string, string>;
const logs: string[] = [];
// Traced, as an operator's deployment is: the audit record names each call's trace, which a refusal's log line must name too.
const spans = recordSpans();
/** The connector's log lines of refused questions, since `from`. */
const refusals = (from: number) => logs.slice(from).filter((line) => line.includes("resumed stream was refused"));

beforeAll(async () => {
  spans.register();
  nats = await startNats();
  child = spawn(process.execPath, [FIXTURE], { stdio: ["ignore", "pipe", "inherit"] });
  const [first] = await once(child.stdout!, "data");
  rawUrl = String(first).trim();
  [stack, leftover] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", CALL_TIMEOUT_MS: "4000" }, { logs }), serveLeftoverQuestions()]);
  await registerUpstreams(stack, { name: "raw", transport: { type: "streamable-http", url: rawUrl } }, { name: "left", transport: { type: "streamable-http", url: leftover.url } });
  names = await createVirtualServer(stack, "v", [
    ...["sse-resume-slow", "sse-resume-asks-first", "sse-asks-own", "sse-resume-asks-seen"].map((tool) => ({ upstream: "raw", tool })),
    ...["leaves-work", "resumes"].map((tool) => ({ upstream: "left", tool })),
  ]);
  keys = await grantedConsumers(stack, "v", ["alice", "mallory"]);
}, 60_000);

afterAll(async () => {
  child?.kill();
  await stack?.close();
  await leftover?.close();
  await nats?.stop();
  await spans[Symbol.asyncDispose]();
});

const counts = async () => (await (await fetch(new URL("/counts", rawUrl))).json()) as { questionsAnswered: number; questionsRefused: number };

/** `who` calls `tool` (`upstream/tool`) as an agent that answers any elicitation: the call's text, the questions put to the agent, and the upstream's count of answers and refusals. */
async function asking(who: string, tool: string, upstream = "raw") {
  const client = new Client({ name: who, version: "1" }, { capabilities: { elicitation: { form: {} } } });
  const asked: string[] = [];
  client.setRequestHandler(ElicitRequestSchema, async (request) => {
    asked.push(request.params.message);
    return { action: "accept", content: {} };
  });
  const transport = new StreamableHTTPClientTransport(new URL(stack.mcpUrl("v")), { requestInit: { headers: { authorization: `Bearer ${keys[who]}` } } });
  await client.connect(transport);
  const before = await counts();
  try {
    const text = await client.callTool({ name: names[`${upstream}/${tool}`]!, arguments: {} }).then((r) => JSON.stringify(r), (e: Error) => `ERR ${e.message}`);
    // The answer to the question is POSTed as the call's answer comes in: give it a moment to land.
    await new Promise((r) => setTimeout(r, 200));
    const after = await counts();
    // Not enumerable: the figures printed below never show it.
    return Object.defineProperty({ text, asked, answered: after.questionsAnswered - before.questionsAnswered, refused: after.questionsRefused - before.questionsRefused }, "sessionId", { value: transport.sessionId, enumerable: false }) as { text: string; asked: string[]; answered: number; refused: number; readonly sessionId: string | undefined };
  } finally {
    await client.close();
  }
}

describe("a question on a resumed 2025 stream, the upstream's session shared by two consumers", () => {
  // attack (helper-167): the replay begins with a question of another call, which nothing on the
  // wire tells apart from this call's. Mallory's call resumes while Alice's runs on the session, so
  // the question may be Alice's: refused, and Mallory's agent asked nothing.
  test("while another consumer's call runs on the session: refused, not put to this call's agent", async () => {
    const logged = logs.length;
    const alice = asking("alice", "sse-resume-slow");
    await new Promise((r) => setTimeout(r, 300));
    const seen = await asking("mallory", "sse-resume-asks-first");
    const figures = JSON.stringify(seen);
    console.log(`question first on a resumed stream, another consumer's call running: ${figures}`);
    expect(seen.text, figures).toContain('"ok"');
    expect(seen.asked, figures).toEqual([]);
    expect(seen.refused, figures).toBe(1);
    expect(seen.answered, figures).toBe(0);
    expect((await alice).text).toContain('"ok"');
    // Logged at the connector, warn (40), with the upstream and the call's id; never the question's text.
    const [line, ...more] = refusals(logged);
    expect(more).toEqual([]);
    expect(JSON.parse(line!)).toMatchObject({ level: 40, upstream: "raw", call: expect.stringMatching(/^m\d+$/) });
    expect(line).not.toContain("another call's question");
    // And the trace the gateway's audit record of Mallory's call names, so an operator finds one from
    // the other (before: no trace id, the line written outside the call's context). Not the bus call
    // id: a 2025 agent's names its Mcp-Session-Id, which is never logged, and no audit record holds it.
    const record = await eventually(async () => ((await stack.admin.get("/v1/audit?consumer=mallory&upstream=raw")).body.items as { tool: string; traceId?: string }[]).find((r) => r.tool === "sse-resume-asks-first"));
    expect(record.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(JSON.parse(line!), line).toMatchObject({ trace_id: record.traceId });
    expect(seen.sessionId).toBeTruthy();
    expect(line).not.toContain(seen.sessionId!);
    expect(line).not.toContain(keys.mallory!);
  }, 30_000);

  // Every call on the session since hers began is her own: the question can be no other tenant's.
  test("when every call on the session since this one began is its caller's: put to its agent", async () => {
    const seen = await asking("alice", "sse-resume-asks-first");
    const figures = JSON.stringify(seen);
    console.log(`question first on a resumed stream, the caller's call alone: ${figures}`);
    expect(seen.text, figures).toContain('"ok"');
    expect(seen.asked, figures).toEqual(["another call's question, first"]);
    expect(seen.answered, figures).toBe(1);
  }, 30_000);

  // A replay of a question that another call's stream carried (Alice's, answered by her agent) is
  // that call's, though no call of another consumer runs now: refused on Mallory's resumed stream.
  test("a replayed question already seen on another consumer's call: refused", async () => {
    const alice = await asking("alice", "sse-asks-own");
    expect(alice.asked).toEqual(["a question seen before"]);
    const seen = await asking("mallory", "sse-resume-asks-seen");
    const figures = JSON.stringify(seen);
    console.log(`replayed question seen on another call: ${figures}`);
    expect(seen.text, figures).toContain('"ok"');
    expect(seen.asked, figures).toEqual([]);
    expect(seen.refused, figures).toBe(1);
  }, 30_000);

  // A question that work left behind by another consumer's ended call asked on the session's GET
  // stream (no call's), replayed on this call's resumed stream: no call of another consumer runs
  // or ended while this one did, but the id was seen on no call's stream.
  test("a replayed question the session's GET stream carried (another consumer's left-over work): refused", async () => {
    await eventually(() => leftover.listening() > 0 || undefined);
    expect((await asking("mallory", "leaves-work", "left")).text).toContain('"ok"');
    await eventually(() => leftover.counts.refused > 0 || undefined);
    const seen = await asking("alice", "resumes", "left");
    const figures = JSON.stringify({ ...seen, counts: leftover.counts });
    console.log(`replayed question of left-over work: ${figures}`);
    expect(seen.text, figures).toContain('"ok"');
    expect(seen.asked, figures).toEqual([]);
    expect(leftover.counts.answered, figures).toBe(0);
  }, 30_000);

  test("a question relayed is not logged as refused", async () => {
    const logged = logs.length;
    expect((await asking("alice", "sse-resume-asks-first")).answered).toBe(1);
    expect(refusals(logged)).toEqual([]);
  }, 30_000);
});
