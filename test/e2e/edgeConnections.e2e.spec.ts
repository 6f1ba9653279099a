import type { NatsServer } from "@manifold/nats-server";
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// attack5: nothing bounds the connections the gateway's public port accepts, in total or per
// client (no `maxConnections`, keep-alive 72 s, an idle connection costs one descriptor). One
// client without credentials opens as many connections as the gateway process has descriptors
// (`ulimit -n`, 20,000 here); each needs only `GET /healthz` once to be an idle keep-alive
// connection for 72 s (with nothing sent, the 10 s headers timeout; the client just reconnects).
// Once the process is out of descriptors, accept() fails: another tenant's request never arrives,
// and the gateway cannot open anything itself (a provider's key set, an authorization server, a
// new bus connection after a reconnect; in this in-process stack, the connector's upstream sockets).

const FIXTURE = new URL("../fixtures/idleSockets.mjs", import.meta.url).pathname;
// A new connection per request (agent: false), as a client that is not already connected.
const VICTIM = `
const http = require("node:http");
const once = () => {
  const started = Date.now();
  const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: process.env.TOOL, arguments: { message: "hi" }, _meta: { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": { name: "v", version: "1" }, "io.modelcontextprotocol/clientCapabilities": {} } } });
  let done = false;
  const finish = (o) => { if (done) return; done = true; process.stdout.write(JSON.stringify({ ...o, ms: Date.now() - started }) + "\\n"); };
  const req = http.request(process.env.URL, { method: "POST", agent: false, timeout: 5000, headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": process.env.TOOL } }, (res) => {
    let text = "";
    res.setEncoding("utf8").on("data", (c) => (text += c)).on("end", () => finish({ status: res.statusCode, text: text.slice(0, 200) }));
  });
  req.on("timeout", () => { req.destroy(); finish({ status: 0, text: "no answer in 5 s" }); });
  req.on("error", (e) => finish({ status: 0, text: String(e.code ?? e) }));
  req.end(body);
};
require("node:readline").createInterface({ input: process.stdin }).on("line", () => void once());
`;
let nats: NatsServer;
let stack: Stack;
let recording: RecordingUpstream;
let tool: string;
let attackers: ChildProcess[] = [];

/** Another tenant, from its own process (started before the attack: its socket is not one of the gateway process's descriptors). */
let victimProcess: ChildProcess;
let victimLines: ReturnType<typeof createInterface>;
const victim = () =>
  new Promise<{ status: number; text: string; ms: number }>((resolve) => {
    victimLines.once("line", (l) => resolve(JSON.parse(l)));
    victimProcess.stdin!.write("go\n");
  });
/** Descriptors of this (the gateway's) process; 20,000 when none is left even to list them (EMFILE). */
const fds = () => {
  try {
    return readdirSync("/proc/self/fd").length;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EMFILE") return 20_000;
    throw error;
  }
};

beforeAll(async () => {
  nats = await startNats();
  [stack, recording] = await Promise.all([startStack(nats.url), startRecordingUpstream()]);
  await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: recording.url } });
  tool = (await createVirtualServer(stack, "shared", [{ upstream: "rec", tool: "echo" }]))["rec/echo"]!;
  victimProcess = spawn(process.execPath, ["-e", VICTIM], { env: { ...process.env, URL: stack.mcpUrl("shared"), TOOL: tool }, stdio: ["pipe", "pipe", "inherit"] });
  victimLines = createInterface({ input: victimProcess.stdout! });
}, 60_000);

afterAll(async () => {
  for (const a of attackers) a.kill();
  victimProcess?.kill();
  await stack?.close();
  await recording?.close();
  await nats?.stop();
});

describe("one client's idle connections", () => {
  test("one client holding idle keep-alive connections cannot take every descriptor of the gateway process: another tenant is still served", async () => {
    const baseline = await victim();
    expect(baseline.status, JSON.stringify(baseline)).toBe(200);
    const fdsBefore = fds();
    let fdsMax = 0;
    const sampler = setInterval(() => (fdsMax = Math.max(fdsMax, fds())), 100);
    // One client, from two processes (a process has 20,000 descriptors too): 2 x 11,000 connections.
    attackers = [0, 1].map(() => spawn(process.execPath, [FIXTURE], { env: { ...process.env, PORT: new URL(stack.gatewayUrl).port, COUNT: "11000" }, stdio: ["ignore", "pipe", "inherit"] }));
    const reports = attackers.map((a) => createInterface({ input: a.stdout! }));
    const next = () => Promise.all(reports.map((lines) => new Promise<{ open: number; failed: number }>((resolve) => lines.once("line", (l) => resolve(JSON.parse(l))))));
    const sum = (all: { open: number; failed: number }[]) => ({ open: all.reduce((a, r) => a + r.open, 0), failed: all.reduce((a, r) => a + r.failed, 0) });
    const settled = sum(await next());
    const fdsDuring = fds();
    await new Promise((r) => setTimeout(r, 1_000));
    const during = [await victim(), await victim(), await victim()];
    clearInterval(sampler);
    const still = sum(await next());
    for (const a of attackers) a.kill();
    attackers = [];
    await new Promise((r) => setTimeout(r, 1_500));
    const after = await victim();
    const served = during.filter((d) => d.status === 200).length;
    const figures =
      `gateway process descriptors ${fdsBefore} -> ${fdsDuring}, at most ${fdsMax} (ulimit 20,000); one client: ${settled.open} connections open and idle, ${settled.failed} failed, ${still.open} still open a second later; ` +
      `another tenant during: ${during.map((d) => `${d.status} ${d.text.slice(0, 40)} in ${d.ms} ms`).join(" | ")}; baseline ${baseline.ms} ms; after the client left: ${after.status} in ${after.ms} ms`;
    console.log(figures);
    // Measured 2026-12-01: descriptors 43 -> 20,000 (EMFILE); 20,651 idle connections of one client
    // without credentials; another tenant's three requests: ECONNRESET in 1-3 ms each (accept() fails,
    // libuv accepts and drops); after the client left: 200 in 25 ms.
    // Safe: a bound on connections (per client and in total) below the process's descriptors, so
    // another tenant's request is accepted and served while one client holds what it may.
    expect(served, figures).toBe(3);
    expect(fdsMax, figures).toBeLessThan(15_000);
  }, 90_000);
});

// attack: a slow request body. Headers complete, a Content-Length of 1 MB, then a byte a second:
// Node counts the connection busy (its response object exists) from the headers on, so at the
// bound none was idle to give way, and every other tenant's new connection was refused at once,
// with no credentials needed (they are checked once the body is read). Each request lasts the 30 s
// request timeout, so keeping the port full cost a few connections a second.
describe("one client's slow request bodies", () => {
  const MAX = 100;
  let slowNats: NatsServer;
  let slowStack: Stack;
  let slowTool: string;
  const held: Socket[] = [];

  beforeAll(async () => {
    slowNats = await startNats();
    slowStack = await startStack(slowNats.url, { GATEWAY_MAX_CONNECTIONS: String(MAX) });
    await registerUpstreams(slowStack, { name: "rec", transport: { type: "streamable-http", url: recording.url } });
    slowTool = (await createVirtualServer(slowStack, "shared", [{ upstream: "rec", tool: "echo" }]))["rec/echo"]!;
  }, 60_000);

  afterAll(async () => {
    for (const socket of held) socket.destroy();
    await slowStack?.close();
    await slowNats?.stop();
  });

  test("cannot take every connection of the public port: another tenant's new connection is served", async () => {
    const url = new URL(slowStack.mcpUrl("shared"));
    for (let i = 0; i < MAX; i++) {
      const socket = connect(Number(url.port), "127.0.0.1");
      socket.on("error", () => undefined);
      socket.write(`POST ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{`);
      held.push(socket);
    }
    const trickle = setInterval(() => held.forEach((s) => s.writable && s.write(" ")), 1_000);
    await new Promise((r) => setTimeout(r, 1_000));
    const answers = [];
    for (let i = 0; i < 3; i++) {
      const answer = await fetch(url, {
        method: "POST",
        // A connection of its own each time, as a tenant not yet connected.
        headers: { connection: "close", "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": slowTool },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: slowTool, arguments: { message: "hi" }, _meta: { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": { name: "v", version: "1" }, "io.modelcontextprotocol/clientCapabilities": {} } } }),
      }).then(
        (res) => res.status,
        (error: Error) => String((error.cause as { code?: string } | undefined)?.code ?? error.message),
      );
      answers.push(answer);
    }
    clearInterval(trickle);
    expect(answers).toEqual([200, 200, 200]);
  }, 30_000);
});
