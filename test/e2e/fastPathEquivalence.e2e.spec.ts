import { buildGateway, loadGatewayConfig, type Gateway } from "@manifold/gateway";
import type { NatsServer } from "@manifold/nats-server";
import { createLogger } from "@manifold/telemetry";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { exchange, type HttpAnswer, type HttpCase } from "../fuzz/exchange.js";
import { Random } from "../fuzz/random.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { busEnv, connectAs, startNats, startStack, type Stack } from "../helpers/stack.js";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";

/**
 * The seam's fast path claims to answer only requests its era's SDK would accept as they are, and
 * to answer them as the SDK lane does. The suites prove that for the requests they send; this
 * proves it for requests near the fast path's edges: the same seeded cases (eras, methods, ids,
 * params, headers and envelopes, valid and not) go to a gateway with the fast path and to one
 * without (`GATEWAY_FAST_PATH=off`) on the same bus, and every answer must be the same messages
 * with the same status. Only the framing may differ: a JSON body or an SSE stream of the same message.
 */
const ERAS = ["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26"] as const;
type Era = (typeof ERAS)[number];
/** Fixed seeds, so CI runs the same 2,000 cases every time; `FUZZ_SEED` runs another's 400. */
const SEEDS = process.env.FUZZ_SEED ? [Number(process.env.FUZZ_SEED)] : [20261201, 1, 2, 3, 4];
const CASES = 400;
/** Tools of an upstream whose results vary (`malformedCallResults.mjs`): well formed, or breaking CallToolResult in one way each (a known member's value the SDKs refuse included), or at the edges of what it takes. */
const SHAPES = ["good", "no-content", "text-without-text", "unknown-type", "image-without-mime", "content-not-array", "is-error-not-boolean", "block-extra-keys", "audience-robot", "priority-two", "image-not-base64", "blob-not-base64", "icons-not-objects", "edge-values"];
const SHAPES_FIXTURE = new URL("../fixtures/malformedCallResults.mjs", import.meta.url).pathname;
const ENVELOPE = { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": { name: "fuzz", version: "1" }, "io.modelcontextprotocol/clientCapabilities": {} };

let nats: NatsServer;
let stack: Stack;
let slow: Gateway;
let recording: RecordingUpstream;
let shapes: ChildProcess;
let key: string;
let names: Record<string, string>;
const urls: Record<"fast" | "sdk", string> = { fast: "", sdk: "" };
/** Each gateway's 2025 session per era. */
const sessions: Record<"fast" | "sdk", Partial<Record<Era, string>>> = { fast: {}, sdk: {} };

const env = { GATEWAY_AUTH: "required", GATEWAY_MAX_REQUESTS_PER_S_PER_PRINCIPAL: "1000000" };

beforeAll(async () => {
  nats = await startNats();
  [stack, recording] = await Promise.all([startStack(nats.url, env), startRecordingUpstream()]);
  shapes = spawn(process.execPath, [SHAPES_FIXTURE], { stdio: ["ignore", "pipe", "inherit"] });
  const [shapesUrl] = await once(shapes.stdout!, "data");
  await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: recording.url } }, { name: "shapes", transport: { type: "streamable-http", url: String(shapesUrl).trim() } });
  names = await createVirtualServer(stack, "same", [
    { upstream: "rec", tool: "echo" },
    { upstream: "rec", tool: "add" },
    ...SHAPES.map((tool) => ({ upstream: "shapes", tool })),
  ]);
  expect((await stack.admin.post("/v1/consumers", { name: "fuzz" })).status).toBe(201);
  key = (await stack.admin.post("/v1/consumers/fuzz/keys", {})).body.key;
  expect((await stack.admin.post("/v1/virtual-servers/same/grants", { grantId: "fuzz", subject: { consumer: "fuzz" }, deniedTools: [names["rec/add"]] })).status).toBe(201);
  const gatewayEnv = { ...busEnv(nats, "gateway"), LOG_LEVEL: "silent", ...env, GATEWAY_FAST_PATH: "off" };
  slow = await buildGateway({ config: loadGatewayConfig(gatewayEnv), logger: createLogger({ component: "gateway-sdk", level: "silent" }), nc: await connectAs(nats, "gateway", "gateway-sdk"), env: gatewayEnv });
  await slow.follower.caughtUp;
  await slow.app.listen({ port: 0, host: "127.0.0.1" });
  urls.fast = stack.gatewayUrl;
  urls.sdk = `http://127.0.0.1:${(slow.app.server.address() as AddressInfo).port}`;
  for (const lane of ["fast", "sdk"] as const) {
    for (const era of ERAS.slice(1)) {
      const body = JSON.stringify({ jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: era, capabilities: {}, clientInfo: { name: "fuzz", version: "1" } } });
      const answer = (await exchange(urls[lane], { kind: "init", method: "POST", path: "/mcp/same", headers: { ...baseHeaders(), "mcp-protocol-version": era }, body })) as HttpAnswer;
      expect(answer.status, answer.text).toBe(200);
      sessions[lane][era] = String(answer.headers["mcp-session-id"]);
      const initialized = JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" });
      await exchange(urls[lane], { kind: "init", method: "POST", path: "/mcp/same", headers: { ...baseHeaders(), "mcp-protocol-version": era, "mcp-session-id": sessions[lane][era]! }, body: initialized });
    }
  }
}, 60_000);

afterAll(async () => {
  await slow?.close();
  await stack?.close();
  await recording?.close();
  shapes?.kill();
  await nats?.stop();
});

const baseHeaders = (): Record<string, string> => ({ "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${key}` });

/** One case, in terms both lanes can be given: the session header is filled in per lane. */
interface Case {
  era: Era;
  headers: Record<string, string>;
  /** Send the lane's session id for the era (2025 only). */
  withSession: boolean;
  body: string;
}

/**
 * A valid request of a random era and method, then none, one or two of the mutations below. A
 * quarter of the calls go to a tool whose upstream result varies (`results`, a stream of its own,
 * so the seeds' request cases stay as they were).
 */
function generate(random: Random, results: Random): Case {
  const era = random.pick(ERAS);
  const modern = era === "2026-07-28";
  const method = random.pick(["tools/call", "tools/call", "tools/call", "tools/list", "tools/list", ...(modern ? ["server/discover"] : []), "notifications/cancelled", "ping", "prompts/list"]);
  const params: Record<string, unknown> = method === "tools/call" ? { name: names["rec/echo"]!, arguments: { message: "hello" } } : method === "notifications/cancelled" ? { requestId: 999 } : {};
  if (method === "tools/call" && results.chance(0.25)) params.name = names[`shapes/${SHAPES[results.int(0, SHAPES.length - 1)]}`]!;
  if (modern) params._meta = { ...ENVELOPE };
  const message: Record<string, unknown> = { jsonrpc: "2.0", method, params };
  if (!method.startsWith("notifications/")) message.id = random.pick([1, 2, "req-1", 0]);
  const headers: Record<string, string | undefined> = { ...baseHeaders(), "mcp-protocol-version": era };
  if (modern) {
    headers["mcp-method"] = method;
    if (typeof params.name === "string") headers["mcp-name"] = params.name;
  }
  let withSession = !modern;
  let batch = false;
  const meta = () => (params._meta ??= {}) as Record<string, unknown>;
  const mutations: (() => void)[] = [
    () => (params.name = random.pick([names["rec/add"]!, "no-such-tool", "", 42, `=?base64?${Buffer.from(names["rec/echo"]!).toString("base64")}?=`])),
    () => delete params.name,
    () => (params.arguments = random.pick<unknown>([{}, { message: 5 }, { message: "x", extra: true }, [], "text", null])),
    () => delete params.arguments,
    () => (params.cursor = random.pick(["", "abc", 5, null])),
    () => (params.task = random.pick([{}, { ttl: 1000 }, "t"])),
    () => (meta().progressToken = random.pick(["p", 3])),
    () => (meta().traceparent = random.pick(["00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "garbage"])),
    () => (meta()["io.modelcontextprotocol/protocolVersion"] = random.pick(["2025-11-25", "2099-01-01", 7])),
    () => (meta()["io.modelcontextprotocol/clientCapabilities"] = random.pick(["none", [], { elicitation: {} }, { extensions: { "io.modelcontextprotocol/tasks": {} } }])),
    () => delete params._meta,
    () => (message.id = random.pick<unknown>(["", -3, 1.5, null, true, { n: 1 }, "x".repeat(300)])),
    () => delete message.id,
    () => (message.jsonrpc = random.pick(["1.0", undefined])),
    () => (message.params = random.pick([[], "p", 3])),
    () => (headers.accept = random.pick(["application/json", "text/event-stream", "*/*", "application/json,text/event-stream", undefined])),
    () => (headers["content-type"] = random.pick(["application/json; charset=utf-8", "text/plain"])),
    () => (headers["mcp-protocol-version"] = random.pick([undefined, "2025-11-25", "2026-07-28", "1999-01-01"])),
    () => (headers["mcp-method"] = random.pick([undefined, "tools/list", "tools/call", method.toUpperCase()])),
    () => (headers["mcp-name"] = random.pick([undefined, "other", String(params.name ?? "").toUpperCase(), names["rec/echo"]!])),
    () => (withSession = !withSession),
    () => (message[random.pick(["extra", "result", "error"])] = random.pick<unknown>([1, {}, null])),
    () => (params._meta = random.pick<unknown>(["meta", [], null])),
    () => (meta()[random.pick(["io.modelcontextprotocol/logLevel", "logLevel"])] = random.pick(["debug", "nonsense"])),
    () => {
      const depth = random.pick([10, 70]);
      params.arguments = { message: "deep", nested: JSON.parse("[".repeat(depth) + "]".repeat(depth)) as unknown };
    },
    () => (params.name = `${String(params.name ?? "")}\u00e9`),
    // A 2025-03-26 batch of one: the SDK's to serve, whatever it holds.
    () => (batch = true),
  ];
  for (let i = random.pick([0, 0, 1, 1, 1, 2]); i > 0; i--) random.pick(mutations)();
  const sent = Object.fromEntries(Object.entries(headers).filter((entry): entry is [string, string] => entry[1] !== undefined && entry[1] !== ""));
  return { era, headers: sent, withSession, body: JSON.stringify(batch ? [message] : message) };
}

/** The messages an answer carries, whether as one JSON body or as an SSE stream (comments and event ids aside). */
function messagesOf(answer: HttpAnswer): unknown {
  const type = String(answer.headers["content-type"] ?? "");
  if (answer.text === "") return "";
  if (type.startsWith("text/event-stream")) {
    return answer.text
      .split("\n")
      .filter((line) => line.startsWith("data:"))
      .map((line) => line.slice(5).trim())
      .filter((data) => data !== "")
      .map((data) => JSON.parse(data) as unknown);
  }
  try {
    return [JSON.parse(answer.text) as unknown].flat();
  } catch {
    return answer.text;
  }
}

/** JSON with every object's keys sorted: the two lanes may write members in different orders. */
const canonical = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) => (typeof v === "object" && v !== null && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([x], [y]) => (x < y ? -1 : 1))) : v));

describe("the fast path answers as the SDK lane does", () => {
  test.each(SEEDS)(`${CASES} seeded cases near the fast path's edges (seed %i): the same status and messages from both gateways`, async (seed) => {
    const random = new Random(seed);
    const results = new Random(seed + 1);
    const callsBefore = recording.calls.length;
    const differences: string[] = [];
    const outcomes = new Map<string, number>();
    for (let n = 0; n < CASES; n++) {
      const c = generate(random, results);
      const send = (lane: "fast" | "sdk") => {
        // A 2026-07-28 request "with a session" carries a stray one: no era of it has sessions.
        const headers = { ...c.headers, ...(c.withSession ? { "mcp-session-id": sessions[lane][c.era] ?? "stray-session" } : {}) };
        const httpCase: HttpCase = { kind: "same", method: "POST", path: "/mcp/same", headers, body: c.body };
        return exchange(urls[lane], httpCase, 10_000);
      };
      const [fast, sdk] = await Promise.all([send("fast"), send("sdk")]);
      if ("error" in fast || "error" in sdk) {
        differences.push(`#${n} ${c.era} ${c.body}: no answer (${"error" in fast ? `fast: ${fast.error}` : ""} ${"error" in sdk ? `sdk: ${sdk.error}` : ""})`);
        continue;
      }
      const [a, b] = [messagesOf(fast), messagesOf(sdk)];
      const outcome = `${fast.status}`;
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      if (fast.status !== sdk.status || canonical(a) !== canonical(b)) {
        differences.push(`#${n} ${c.era} ${JSON.stringify(c.headers)} ${c.body}\n  fast ${fast.status} ${JSON.stringify(a).slice(0, 400)}\n  sdk  ${sdk.status} ${JSON.stringify(b).slice(0, 400)}`);
      }
    }
    console.log(`fast path vs SDK lane, ${CASES} cases: statuses ${JSON.stringify(Object.fromEntries(outcomes))}, ${differences.length} differing`);
    expect(differences, differences.slice(0, 10).join("\n")).toEqual([]);
    // The cases reach the fast path: calls that went upstream through both lanes.
    expect(recording.calls.length - callsBefore).toBeGreaterThan(100);
  }, 120_000);
});
