import type { NatsServer } from "@manifold/nats-server";
import { spawn, type ChildProcess } from "node:child_process";
import { connect } from "node:net";
import { createInterface, type Interface } from "node:readline";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// attack (helper-109): the gateway read every request body (up to GATEWAY_BODY_LIMIT_BYTES, 1 MiB)
// before it looked at the credentials. 480 connections without any, each sending the headers of a
// 1 MiB POST and all of its body but the last byte, held +411 MiB of the gateway's memory until the
// request timeout (30 s). One valid key could do the same with admitted requests: 120 connections, +123 MiB.

const FIXTURE = new URL("../fixtures/slowBodies.mjs", import.meta.url).pathname;
const SIZE = 1_000_000;
const MiB = 1024 * 1024;
/** How long the attacker waits for an answer before it sends the rest of each body. */
const WAIT_MS = 1_500;

interface Answer {
  status: number;
  code: string | undefined;
  ms: number | undefined;
  bodySent: number | undefined;
}
interface Report {
  answered?: Answer[];
  held: number;
}

let nats: NatsServer;
let stack: Stack;
let recording: RecordingUpstream;
let echo: string;
let keys: Record<string, string>;
const attackers: ChildProcess[] = [];

/** An attacker process (its buffers are not the gateway's): one command at a time, its report back. */
function attacker() {
  const child = spawn(process.execPath, [FIXTURE], {
    env: { ...process.env, URL: stack.mcpUrl("shared"), SIZE: String(SIZE), WAIT_MS: String(WAIT_MS), TOOL: echo },
    stdio: ["pipe", "pipe", "inherit"],
  });
  attackers.push(child);
  const lines: Interface = createInterface({ input: child.stdout! });
  return (command: Record<string, unknown>) =>
    new Promise<Report>((resolve) => {
      lines.once("line", (line) => resolve(JSON.parse(line) as Report));
      child.stdin!.write(JSON.stringify(command) + "\n");
    });
}

const rss = () => process.memoryUsage().rss;
const settle = () => new Promise((r) => setTimeout(r, 500));
const tally = (answers: Answer[]) => {
  const counts = new Map<string, number>();
  for (const a of answers) counts.set(`${a.status} ${a.code}`, (counts.get(`${a.status} ${a.code}`) ?? 0) + 1);
  return [...counts].map(([kind, n]) => `${n}× ${kind}`).join(", ");
};

beforeAll(async () => {
  nats = await startNats();
  [stack, recording] = await Promise.all([startStack(nats.url, {
      GATEWAY_AUTH: "required",
      // A 1 MB body costs ~250 of a caller's request units a second (its width): these tests send dozens
      // in a row and are about the places bodies take while they arrive, not the budget.
      GATEWAY_MAX_REQUESTS_PER_S_PER_PRINCIPAL: "100000",
    }), startRecordingUpstream()]);
  await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: recording.url } });
  echo = (await createVirtualServer(stack, "shared", [{ upstream: "rec", tool: "echo" }]))["rec/echo"]!;
  keys = await grantedConsumers(stack, "shared", ["mallory", "victim"]);
}, 60_000);

afterAll(async () => {
  for (const a of attackers) a.kill();
  await stack?.close();
  await recording?.close();
  await nats?.stop();
});

/** A call with a body of `SIZE` bytes, as a tenant sends it (fetch, one connection). */
async function largeCall(key: string | undefined): Promise<number> {
  const meta = { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": { name: "v", version: "1" }, "io.modelcontextprotocol/clientCapabilities": {} };
  const res = await fetch(stack.mcpUrl("shared"), {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...(key ? { authorization: `Bearer ${key}` } : {}), "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": echo },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: echo, arguments: { message: "v".repeat(SIZE - 400) }, _meta: meta } }),
  });
  await res.arrayBuffer();
  return res.status;
}

describe("what is decided before a request body is read", () => {
  test("attack: requests without credentials are refused (401) when their headers arrive, and their bodies are never read", async () => {
    const COUNT = 200;
    const run = attacker();
    const before = rss();
    const report = await run({ op: "open", count: COUNT, token: null });
    await settle();
    const grown = (rss() - before) / MiB;
    const answered = report.answered!;
    const figures = `${COUNT} connections without credentials, ${SIZE} bytes announced: ${answered.length} answered within ${WAIT_MS} ms (${tally(answered)}; slowest ${Math.max(0, ...answered.map((a) => a.ms ?? 0))} ms, at most ${Math.max(0, ...answered.map((a) => a.bodySent ?? 0))} body bytes sent before the answer), ${report.held} held; gateway RSS +${grown.toFixed(0)} MiB`;
    console.log(figures);
    await run({ op: "close" });
    // Measured before the fix (2026-12-04): no answer within 1.5 s for any of the 200 (the gateway
    // waited for each body), RSS +~170 MiB, held until the request timeout.
    expect(answered.length, figures).toBe(COUNT);
    for (const answer of answered) {
      expect(answer, figures).toMatchObject({ status: 401, code: "unauthorized" });
      // Answered on the headers and the first KiB, not the body.
      expect(answer.bodySent, figures).toBeLessThanOrEqual(1024);
    }
    expect(report.held, figures).toBe(0);
    expect(grown, figures).toBeLessThan(64);
    // A client sending its whole large body at once still reads the refusal, though the body is not read.
    expect(await largeCall(undefined)).toBe(401);
    // An admitted caller's body is read as before.
    expect(await largeCall(keys.victim)).toBe(200);
  }, 60_000);

  test("a body sent to a path no route serves, or with a method an MCP endpoint does not serve, is not read: answered at once, connection closed", async () => {
    const { port, host } = new URL(stack.gatewayUrl);
    const exchange = (head: string) =>
      new Promise<{ answer: string; ms: number }>((resolve) => {
        const started = Date.now();
        const socket = connect(Number(port), "127.0.0.1");
        let answer = "";
        socket.setEncoding("utf8").on("data", (chunk: string) => (answer += chunk));
        socket.on("error", () => undefined).once("close", () => resolve({ answer, ms: Date.now() - started }));
        // 1 MiB announced, 10 bytes sent.
        socket.write(`${head} HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nContent-Length: ${MiB}\r\n\r\n{"a":"bbbb`);
      });
    const nowhere = await exchange("POST /nowhere");
    expect(nowhere.answer).toMatch(/^HTTP\/1\.1 404 /);
    expect(nowhere.answer).toContain('"code":"not_found"');
    expect(nowhere.ms).toBeLessThan(1_000);
    const put = await exchange("PUT /mcp/shared");
    expect(put.answer).toMatch(/^HTTP\/1\.1 405 /);
    expect(put.answer).toContain('"code":"method_not_allowed"');
    expect(put.ms).toBeLessThan(1_000);
  });

  test("attack: one caller's large bodies arriving at once are bounded (16 per replica); the rest are refused (429) before their bodies are read, another caller is served", async () => {
    const COUNT = 120;
    const run = attacker();
    const before = rss();
    const report = await run({ op: "open", count: COUNT, token: keys.mallory });
    await settle();
    const grown = (rss() - before) / MiB;
    const answered = report.answered!;
    const figures = `${COUNT} connections of one consumer, ${SIZE} bytes announced, all but the last sent: ${answered.length} answered within ${WAIT_MS} ms (${tally(answered)}), ${report.held} held; gateway RSS +${grown.toFixed(0)} MiB`;
    console.log(figures);
    try {
      // Measured before the fix (2026-12-04): none refused, all 120 held, RSS +~120 MiB.
      expect(report.held, figures).toBe(16);
      for (const answer of answered) {
        expect(answer, figures).toMatchObject({ status: 429, code: "too_many_calls" });
        expect(answer.bodySent, figures).toBeLessThanOrEqual(1024);
      }
      expect(grown, figures).toBeLessThan(48);
      // Another caller's large body is served meanwhile.
      expect(await largeCall(keys.victim!)).toBe(200);
      expect(await largeCall(keys.mallory!)).toBe(429);

      // A body that ends, and one whose connection is gone, each gives its place back.
      const finished = await run({ op: "finish", count: 8 });
      expect(finished.answered!.map((a) => a.status)).toEqual(Array(8).fill(200));
      await run({ op: "abort", count: 8 });
      await settle();
      const again = await run({ op: "open", count: 16, token: keys.mallory });
      expect(again.answered, tally(again.answered!)).toEqual([]);
      expect((await run({ op: "finish", count: 16 })).answered!.map((a) => a.status)).toEqual(Array(16).fill(200));
      expect(await largeCall(keys.mallory!)).toBe(200);
    } finally {
      await run({ op: "close" });
    }
  }, 90_000);
});
