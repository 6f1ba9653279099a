import type { NatsServer } from "@manifold/nats-server";
import type { ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { bothEraAgents, closeSuite, registerOutOfRangeUpstreams } from "../helpers/outOfRangeUpstreams.js";
import type { Agent } from "../helpers/eraAgents.js";
import { MODERN } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

/** Where a test body holds `BIG`, the raw number text goes (no client can write 1e400: JSON.stringify writes Infinity as null). */
const BIG = "__number__";
const ACCEPT = "application/json, text/event-stream";

/**
 * A number `JSON.parse` reads as ±Infinity (1e400) used to pass the argument check as a number and
 * reach the upstream as `null` (JSON.stringify of Infinity), on both lanes: an argument the agent
 * never sent. Refused where the body is parsed (2026-12-07, helper-198).
 */
describe.each(["on", "off"] as const)("numbers no double holds (fast path %s)", (fastPath) => {
  let nats: NatsServer;
  let stack: Stack;
  let recording: RecordingUpstream;
  let add: string;
  let key: string;
  let session: Record<string, string>;

  /** One raw request of either era; `number` replaces the quoted `BIG` in its text. */
  const post = async (era: "legacy" | "modern", method: string, params: Record<string, unknown>, number: string) => {
    const headers: Record<string, string> =
      era === "legacy" ? { ...session } : { "mcp-protocol-version": MODERN, "mcp-method": method, ...(typeof params.name === "string" ? { "mcp-name": params.name } : {}) };
    const meta = era === "modern" ? { "io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientInfo": { name: "raw", version: "1" }, "io.modelcontextprotocol/clientCapabilities": {} } : undefined;
    const body = JSON.stringify({ jsonrpc: "2.0", id: 9, method, params: { ...params, ...(meta ? { _meta: { ...meta, ...(params._meta as object) } } : {}) } }).replace(`"${BIG}"`, number);
    const res = await fetch(stack.mcpUrl("nums"), { method: "POST", headers: { "content-type": "application/json", accept: ACCEPT, authorization: `Bearer ${key}`, ...headers }, body });
    const text = await res.text();
    const message = JSON.parse(text.startsWith("{") ? text : text.split("\n").filter((l) => l.startsWith("data:")).pop()!.slice(5)) as Record<string, any>;
    return { status: res.status, text, message };
  };

  beforeAll(async () => {
    nats = await startNats();
    [stack, recording] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", GATEWAY_FAST_PATH: fastPath }), startRecordingUpstream()]);
    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: recording.url } });
    add = (await createVirtualServer(stack, "nums", [{ upstream: "rec", tool: "add" }]))["rec/add"]!;
    key = (await grantedConsumers(stack, "nums", ["ada"])).ada!;
    const init = await fetch(stack.mcpUrl("nums"), {
      method: "POST",
      headers: { "content-type": "application/json", accept: ACCEPT, authorization: `Bearer ${key}` },
      body: JSON.stringify({ jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "raw", version: "1" } } }),
    });
    await init.text();
    session = { "mcp-session-id": init.headers.get("mcp-session-id")!, "mcp-protocol-version": "2025-11-25" };
    await fetch(stack.mcpUrl("nums"), { method: "POST", headers: { "content-type": "application/json", accept: ACCEPT, authorization: `Bearer ${key}`, ...session }, body: '{"jsonrpc":"2.0","method":"notifications/initialized"}' });
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    await recording?.close();
    await nats?.stop();
  });

  test.each(["legacy", "modern"] as const)("%s: tools/call arguments of 1e400, -1e400, 1e309 are refused -32600 naming the path, never the value; nothing reaches the upstream", async (era) => {
    const before = recording.calls.length;
    for (const number of ["1e400", "-1e400", "1e309", "1" + "0".repeat(309), "-2.5E+308"]) {
      const answer = await post(era, "tools/call", { name: add, arguments: { a: BIG, b: 2 } }, number);
      expect(answer.status, answer.text).toBe(400);
      expect(answer.message.error).toMatchObject({ code: -32600, data: { code: "json_number_out_of_range", path: "/params/arguments/a" } });
      expect(answer.text).not.toContain(number.slice(0, 6));
    }
    expect(recording.calls.length).toBe(before);
  });

  test.each(["legacy", "modern"] as const)("%s: every method is refused the same (tools/list, ping, a _meta member)", async (era) => {
    const list = await post(era, "tools/list", { _meta: { odd: [1, BIG] } }, "1e400");
    expect(list.message.error).toMatchObject({ code: -32600, data: { code: "json_number_out_of_range", path: "/params/_meta/odd/1" } });
    const ping = await post(era, "ping", { x: BIG }, "-1e999");
    expect(ping.message.error).toMatchObject({ code: -32600, data: { code: "json_number_out_of_range", path: "/params/x" } });
  });

  test.each(["legacy", "modern"] as const)("%s: finite numbers pass as the upstream reads them; integers past 2^53 arrive rounded to a double, as JSON.parse reads them", async (era) => {
    for (const [number, expected] of [
      ["1.7976931348623157e308", 1.7976931348623157e308],
      ["1e-400", 0],
      ["12345678901234567890", 12345678901234567000],
      ["9007199254740993", 9007199254740992],
    ] as const) {
      const answer = await post(era, "tools/call", { name: add, arguments: { a: BIG, b: 0 } }, number);
      expect(answer.message.error, answer.text).toBeUndefined();
      expect(recording.calls.at(-1)!.arguments).toEqual({ a: expected, b: 0 });
    }
  });
});

/**
 * The same from upstreams: a result holding 1e400 reached the agent as `null` (written again) or as
 * the text 1e400, which the agent's client reads as Infinity (passed on as written). Refused as
 * `upstream_error` / `invalid_result` naming the path; a notification holding one is dropped.
 */
describe.each(["on", "off"] as const)("upstream answers holding numbers no double holds (fast path %s)", (fastPath) => {
  let nats: NatsServer;
  let stack: Stack;
  let children: ChildProcess[];
  let names: Record<string, string>;
  let agents: Agent[];

  beforeAll(async () => {
    nats = await startNats();
    stack = await startStack(nats.url, { GATEWAY_AUTH: "required", GATEWAY_FAST_PATH: fastPath });
    children = await registerOutOfRangeUpstreams(stack);
    names = await createVirtualServer(
      stack,
      "answers",
      ["infinite-result", "infinite-error", "infinite-progress", "big-integer"].flatMap((tool) => [{ upstream: "http", tool }, { upstream: "stdio", tool }]),
    );
    agents = await bothEraAgents(stack, "answers");
  }, 60_000);

  afterAll(() => closeSuite({ agents, stack, children, nats }));

  test.each(["http", "stdio"])("%s upstream: a result or error holding 1e400 is upstream_error / invalid_result naming the path, for 1.32.2 and 2.4 clients", async (upstream) => {
    for (const agent of agents) {
      for (const [tool, path] of [
        ["infinite-result", "/result/structuredContent/x"],
        ["infinite-error", "/error/data/why/0"],
      ] as const) {
        const error = await agent.callTool(names[`${upstream}/${tool}`]!, {}).then(
          (result) => ({ result }),
          (e: { code?: number; message?: string; data?: Record<string, unknown> }) => e,
        );
        expect(error, `${agent.era} ${tool}: ${JSON.stringify(error)}`).toMatchObject({ data: { code: "upstream_error", reason: "invalid_result" } });
        expect((error as { data: { path: string } }).data.path).toBe(path);
        expect((error as Error).message).not.toMatch(/e400|null/);
      }
    }
  });

  test.each(["http", "stdio"])("%s upstream: a progress notification holding 1e309 is dropped; the next one and the call's answer arrive", async (upstream) => {
    for (const agent of agents) {
      expect(await agent.progressOf(names[`${upstream}/infinite-progress`]!, {}), agent.era).toEqual([2]);
      expect((await agent.callTool(names[`${upstream}/infinite-progress`]!, {})).content).toEqual([{ type: "text", text: "fine" }]);
    }
  });

  test.each(["http", "stdio"])("%s upstream: an integer past 2^53 reaches the agent rounded to a double (12345678901234567890 -> 12345678901234567000)", async (upstream) => {
    for (const agent of agents) {
      const result = await agent.callTool(names[`${upstream}/big-integer`]!, {});
      expect(result.structuredContent).toEqual({ n: 12345678901234567000 });
    }
  });
});
