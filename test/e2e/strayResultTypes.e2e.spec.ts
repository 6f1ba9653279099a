import type { NatsServer } from "@manifold/nats-server";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { serveStrayResultTypes } from "../fixtures/strayResultTypes.mjs";
import { createVirtualServer, registerUpstreams, rpcError } from "../helpers/catalog.js";
import { connectHttp } from "../helpers/mcp.js";
import { declaring, modernRequest } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

const fixture = (file: string) => new URL(`../fixtures/${file}`, import.meta.url).pathname;

// The connector is its upstream's client, and "a `resultType` of any value unrecognized by the
// client MUST be considered invalid" (2026-07-28 basic/index). Before (helper-182), an upstream's
// `resultType: "weird"` or an unasked `"task"` (with an upstream task id the gateway never mapped)
// reached the agent as a result, with the fast path on and off, and 2025 agents saw the field too.
describe.each(["on", "off"] as const)("an upstream's unrecognised resultType (fast path %s)", (fastPath) => {
  let nats: NatsServer;
  let stack: Stack;
  let modern: Awaited<ReturnType<typeof serveStrayResultTypes>>;
  let legacy: ChildProcess;
  let names: Record<string, string>;

  beforeAll(async () => {
    nats = await startNats();
    legacy = spawn(process.execPath, [fixture("hostileAnswerUpstream.mjs")], { stdio: ["ignore", "pipe", "inherit"] });
    const [legacyUrl] = await once(legacy.stdout!, "data");
    [stack, modern] = await Promise.all([startStack(nats.url, { GATEWAY_FAST_PATH: fastPath }), serveStrayResultTypes()]);
    await registerUpstreams(
      stack,
      { name: "m", transport: { type: "streamable-http", url: modern.url } },
      { name: "s", transport: { type: "stdio", command: process.execPath, args: [fixture("strayResultTypes.mjs")], env: {} } },
      { name: "o", transport: { type: "stdio", command: process.execPath, args: [fixture("hostileStdio.mjs")], env: {} } },
      { name: "h", transport: { type: "streamable-http", url: String(legacyUrl).trim() } },
    );
    names = await createVirtualServer(stack, "v", [
      { upstream: "m", tool: "typed" },
      { upstream: "m", tool: "plain" },
      { upstream: "s", tool: "typed" },
      { upstream: "o", tool: "result-type" },
      { upstream: "h", tool: "result-type-task" },
      { upstream: "h", tool: "good" },
    ]);
  }, 60_000);

  afterAll(async () => {
    legacy?.kill();
    await stack?.close();
    await modern?.close();
    await nats?.stop();
  });

  // From 2026-07-28 upstreams, over Streamable HTTP (the direct caller) and stdio (the SDK client).
  const strays = [
    ["m/typed", { type: "weird" }],
    ["m/typed", { type: "task" }],
    ["s/typed", { type: "weird" }],
    ["s/typed", { type: "task" }],
  ] as const;
  // A 2025 result has no resultType: the field is dropped on both lanes (the SDK client drops it on stdio).
  const legacyStrays = ["o/result-type", "h/result-type-task"] as const;

  test("a 2026-07-28 agent gets upstream_error (invalid_result), with or without the tasks extension declared", async () => {
    const seen: string[] = [];
    for (const capabilities of [{}, declaring()]) {
      for (const [tool, args] of strays) {
        const answer = await modernRequest(stack.mcpUrl("v"), "none", "tools/call", { name: names[tool]!, arguments: args }, capabilities);
        seen.push(`${tool} ${JSON.stringify(args)}: ${answer.error ? `${answer.error.data?.code}/${answer.error.data?.reason}` : `resultType ${answer.result?.resultType}`}`);
      }
      for (const tool of legacyStrays) {
        const answer = await modernRequest(stack.mcpUrl("v"), "none", "tools/call", { name: names[tool]!, arguments: {} }, capabilities);
        expect(answer.result, JSON.stringify(answer)).toMatchObject({ resultType: "complete", taskId: "upstream-task-1" });
      }
    }
    expect(seen.filter((line) => !line.endsWith("upstream_error/invalid_result"))).toEqual([]);
    const plain = await modernRequest(stack.mcpUrl("v"), "none", "tools/call", { name: names["m/plain"]!, arguments: {} }, {});
    expect(plain.result).toMatchObject({ resultType: "complete", content: [{ type: "text", text: "from the upstream" }] });
  }, 60_000);

  test("a 2025 agent gets upstream_error (invalid_result), and no stray field", async () => {
    await using client = await connectHttp(stack.mcpUrl("v"));
    const seen: string[] = [];
    for (const [tool, args] of strays) {
      const outcome = await rpcError(client.callTool({ name: names[tool]!, arguments: args })).then((e) => `${e.data?.code}/${e.data?.reason} ${e.code}`, (e: Error) => e.message.slice(0, 160));
      seen.push(`${tool} ${JSON.stringify(args)}: ${outcome}`);
    }
    expect(seen.filter((line) => !line.endsWith("upstream_error/invalid_result -32012"))).toEqual([]);
    for (const tool of legacyStrays) expect(await client.callTool({ name: names[tool]!, arguments: {} })).not.toHaveProperty("resultType");
    expect(await client.callTool({ name: names["h/good"]!, arguments: {} })).toMatchObject({ content: [{ type: "text", text: "ok" }] });
  }, 60_000);
});
