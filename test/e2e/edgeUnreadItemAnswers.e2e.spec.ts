import type { NatsServer } from "@manifold/nats-server";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { rawPost, SlowReaders, unreadOutcome, writesHeld } from "../helpers/slowReaders.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// helper-195: a caller's unread answer bytes (MAX_UNREAD_ANSWER_BYTES, 16 MiB) were checked again
// as each tool call's answer came, but a resources/read or prompts/get was checked only when
// admitted. Reads admitted together (none answered yet, so nothing unread) all answered together:
// one caller's 16 reads of a 4 MB resource, read slowly, were all written and held ~61 MiB.
const ANSWER_BYTES = 4_000_000;
const READS = 16;
const FIXTURE = new URL("../fixtures/slowItemsUpstream.mjs", import.meta.url).pathname;
const MODERN = { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": { name: "t", version: "1" }, "io.modelcontextprotocol/clientCapabilities": {} };
const URI = "docs+att://r/big";

describe("large resource reads admitted together, read slowly", () => {
  let nats: NatsServer;
  let stack: Stack;
  let child: ChildProcess;
  let keys: Record<string, string>;
  const readers = new SlowReaders();
  let heldBytes: () => number;

  beforeAll(async () => {
    // Answers of 4 MB travel the bus whole.
    nats = await startNats({ extraConfig: ["max_payload: 8MB"] });
    stack = await startStack(nats.url, { GATEWAY_AUTH: "required" });
    // Every read is answered 3 s after it is asked: all of them are admitted before the first answer.
    child = spawn(process.execPath, [FIXTURE], { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, BIG_BYTES: String(ANSWER_BYTES), BIG_MS: "3000" } });
    const [first] = await once(child.stdout!, "data");
    await registerUpstreams(stack, { name: "docs", transport: { type: "streamable-http", url: String(first).trim() } });
    const created = await stack.admin.post("/v1/virtual-servers", { name: "docs", tools: [{ upstream: "docs", tool: "echo" }], resources: [{ upstream: "docs", uri: "att://r/big" }] });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    keys = await grantedConsumers(stack, "docs", ["hoarder", "tenant"]);
    heldBytes = writesHeld(stack.gateway.app.server);
  }, 120_000);

  afterAll(async () => {
    readers.close();
    child?.kill();
    await stack?.close();
    await nats?.stop();
  });

  /** A raw 2026-07-28 request's headers: `Mcp-Name` mirrors what it names. */
  const headers = (key: string, method = "resources/read", name = URI) => ({ authorization: `Bearer ${key}`, "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": "2026-07-28", "mcp-method": method, "mcp-name": name });
  const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "resources/read", params: { uri: URI, _meta: MODERN } });

  test("attack: one consumer's reads answered together are bounded in unread bytes, as its calls are", async () => {
    const url = new URL(stack.mcpUrl("docs"));
    const before = heldBytes();
    const firsts = await readers.open(url, () => rawPost(url, headers(keys.hoarder!), body), READS, 20);
    const { answered, refused, holding } = await unreadOutcome(firsts, READS, heldBytes, before);

    const tenantStarted = performance.now();
    const res = await fetch(url, { method: "POST", headers: headers(keys.tenant!, "tools/call", "docs__echo"), body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "docs__echo", arguments: {}, _meta: MODERN } }) });
    await res.text();
    const tenantMs = Math.round(performance.now() - tenantStarted);

    console.log(
      `[measure] ${READS} resources/read answering ${ANSWER_BYTES / 1e6} MB together, read 4 KB/100 ms by one consumer: ${answered} answered, ${refused} refused answers_unread; ` +
        `the gateway holds ${(holding / 2 ** 20).toFixed(0)} MiB to write (rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB); another tenant's call: ${res.status} in ${tenantMs} ms`,
    );
    expect(res.status).toBe(200);
    expect(answered + refused).toBe(READS);
    expect(refused).toBeGreaterThan(0);
    // 16 MiB of answers being written per caller, and the answer that crosses it.
    expect(holding).toBeLessThan(16 * 2 ** 20 + 2 * ANSWER_BYTES);
  }, 120_000);
});
