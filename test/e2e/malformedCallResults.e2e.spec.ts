import { jsonRpcCodeOf } from "@manifold/contracts";
import type { NatsServer } from "@manifold/nats-server";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CreateTaskResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { z } from "zod";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { modernRequest } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

const FIXTURE = new URL("../fixtures/malformedCallResults.mjs", import.meta.url).pathname;
const MALFORMED = ["no-content", "text-without-text", "unknown-type", "image-without-mime", "content-not-array", "is-error-not-boolean",
  // Known members with values the SDKs' schemas refuse (the fast path passed them on, the SDK lane refused them -32602).
  "audience-robot", "priority-two", "last-modified-number", "image-not-base64", "blob-not-base64", "icons-not-objects", "meta-not-object",
  // structuredContent that its tool's pinned outputSchema refuses (the fast path passed it on).
  "schema-wrong"];
const ANY = z.looseObject({});

/** What an agent got: the result, or the error's code, Manifold code and reason. */
type Outcome = { result: unknown } | { code: number | undefined; manifold: unknown; reason: unknown };
const outcomeOf = (call: Promise<unknown>): Promise<Outcome> =>
  call.then(
    (result) => ({ result }),
    (error: { code?: number; data?: { code?: unknown; reason?: unknown } }) => ({ code: error.code, manifold: error.data?.code, reason: error.data?.reason }),
  );

/**
 * A tools/call result that breaks the CallToolResult schema (no `content`, a text block without
 * `text`, a content type no revision has, …) gets one answer on every lane: `upstream_error`,
 * `data.reason: "invalid_result"`, as docs/errors.md says. Before, the answer depended on the lane:
 * the connector's direct caller (Streamable HTTP) and the gateway's 2025 fast path passed it on as
 * written, the SDK lane (a call with a progress token) patched it (`content: []`) or refused it
 * -32602, and over stdio the SDK client refused it `invalid_result`.
 */
describe("a tools/call result that breaks the CallToolResult schema: one answer on every lane", () => {
  let nats: NatsServer;
  let stack: Stack;
  let child: ChildProcess;
  let names: Record<string, string>;
  let key: string;
  let agent: Client;

  beforeAll(async () => {
    nats = await startNats();
    stack = await startStack(nats.url, { GATEWAY_AUTH: "required" });
    child = spawn(process.execPath, [FIXTURE, "tasks"], { stdio: ["ignore", "pipe", "inherit"] });
    const [first] = await once(child.stdout!, "data");
    await registerUpstreams(
      stack,
      { name: "http", transport: { type: "streamable-http", url: String(first).trim() } },
      { name: "stdio", transport: { type: "stdio", command: process.execPath, args: [FIXTURE, "stdio", "tasks"] } },
    );
    names = await createVirtualServer(stack, "shapes", ["http", "stdio"].flatMap((upstream) => ["good", "block-extra-keys", "edge-values", "structured-not-object", ...MALFORMED].map((tool) => ({ upstream, tool }))));
    key = (await grantedConsumers(stack, "shapes", ["alice"])).alice!;
    agent = new Client({ name: "alice", version: "1.0.0" });
    await agent.connect(new StreamableHTTPClientTransport(new URL(stack.mcpUrl("shapes")), { requestInit: { headers: { authorization: `Bearer ${key}` } } }));
  }, 60_000);

  afterAll(async () => {
    await agent?.close();
    child?.kill();
    await stack?.close();
    await nats?.stop();
  });

  test.each(["http", "stdio"])("over %s: each malformed result is upstream_error / invalid_result for a 2025 agent (fast path and SDK lane) and a 2026-07-28 agent; a good one passes", async (upstream) => {
    const lanes = (tool: string) => {
      const name = names[`${upstream}/${tool}`]!;
      return {
        fast: outcomeOf(agent.request({ method: "tools/call", params: { name, arguments: {} } }, ANY)),
        // A progress token sends the call through the SDK's server (mcpServer.ts), not the fast path.
        sdk: outcomeOf(agent.request({ method: "tools/call", params: { name, arguments: {} } }, ANY, { onprogress: () => {} })),
        modern: modernRequest(stack.mcpUrl("shapes"), key, "tools/call", { name, arguments: {} }).then((a): Outcome => (a.error ? { code: a.error.code, manifold: a.error.data?.code, reason: a.error.data?.reason } : { result: a.result })),
      };
    };
    const seen: Record<string, Record<string, Outcome>> = {};
    for (const tool of MALFORMED) {
      const { fast, sdk, modern } = lanes(tool);
      seen[tool] = { fast: await fast, sdk: await sdk, modern: await modern };
    }
    console.log(`${upstream}: ${JSON.stringify(seen)}`);
    const refused = { code: jsonRpcCodeOf("upstream_error", "legacy"), manifold: "upstream_error", reason: "invalid_result" };
    // The same error in each era's code (a 2026-07-28 agent's is -31012: jsonRpcCodeOf).
    const refusedModern = { ...refused, code: jsonRpcCodeOf("upstream_error", "modern") };
    for (const tool of MALFORMED) expect(seen[tool], tool).toEqual({ fast: refused, sdk: refused, modern: refusedModern });

    // structuredContent that is no object: 2025 revisions type it an object (the 1.x client refuses
    // it), 2026-07-28 takes any JSON value (SEP-2106): refused to a 2025 agent on both lanes, passed
    // to a 2026-07-28 one as written.
    const notObject = lanes("structured-not-object");
    expect({ fast: await notObject.fast, sdk: await notObject.sdk }).toEqual({ fast: refused, sdk: refused });
    expect(await notObject.modern).toMatchObject({ result: { structuredContent: [1], resultType: "complete" } });

    const good = lanes("good");
    expect(await good.fast).toEqual({ result: { content: [{ type: "text", text: "ok" }] } });
    expect(await good.sdk).toEqual({ result: { content: [{ type: "text", text: "ok" }] } });
    expect(await good.modern).toMatchObject({ result: { content: [{ type: "text", text: "ok" }], resultType: "complete" } });

    // Members no revision names inside content blocks are left out on every lane, as the SDK lane's
    // schema leaves them out (the fast path passed them on: fastPathEquivalence.e2e); `_meta` and the
    // result's own members stay.
    const extra = lanes("block-extra-keys");
    const kept = {
      content: [
        { type: "text", text: "ok", annotations: { audience: ["user"] }, _meta: { k: 1 } },
        { type: "resource", resource: { uri: `${upstream}+file:///a`, text: "a" } },
        { type: "resource_link", uri: `${upstream}+file:///b`, name: "b", size: 3 },
      ],
      vendor: { x: 1 },
    };
    expect(await extra.fast).toEqual({ result: kept });
    expect(await extra.sdk).toEqual({ result: kept });
    expect(await extra.modern).toMatchObject({ result: { ...kept, resultType: "complete" } });
    expect(((await extra.modern) as { result: typeof kept }).result.content).toEqual(kept.content);

    // Values at the edges of what the schemas accept pass on every lane, the same (the SDK lane's
    // schema leaves out the text contents' `blob`, so the connector does too).
    const edge = lanes("edge-values");
    const sdkEdge = (await edge.sdk) as { result: { content: unknown[] } };
    expect(sdkEdge.result.content).toHaveLength(5);
    expect(await edge.fast).toEqual(sdkEdge);
    expect(((await edge.modern) as { result: { content: unknown[] } }).result.content).toEqual(sdkEdge.result.content);
  }, 60_000);

  test.each(["http", "stdio"])("over %s: a 2025 task's result is judged as a call's: a malformed one upstream_error / invalid_result, strangers in its blocks left out", async (upstream) => {
    const viaTask = async (tool: string) => {
      const created = await agent.request({ method: "tools/call", params: { name: names[`${upstream}/${tool}`]!, arguments: {}, task: { ttl: 60_000 } } }, CreateTaskResultSchema);
      return outcomeOf(agent.request({ method: "tasks/result", params: { taskId: created.task.taskId } }, ANY));
    };
    const refused = { code: jsonRpcCodeOf("upstream_error", "legacy"), manifold: "upstream_error", reason: "invalid_result" };
    const seen = { malformed: await viaTask("text-without-text"), robot: await viaTask("audience-robot"), base64: await viaTask("image-not-base64"), schema: await viaTask("schema-wrong"), extra: await viaTask("block-extra-keys") };
    console.log(`${upstream} task: ${JSON.stringify(seen)}`);
    expect(seen.malformed).toEqual(refused);
    expect(seen.robot).toEqual(refused);
    expect(seen.base64).toEqual(refused);
    // Held to the pinned outputSchema, as the call's own result is (since 2026-12-07, helper-194).
    expect(seen.schema).toEqual(refused);
    expect((seen.extra as { result: { content: unknown[] } }).result.content).toEqual([
      { type: "text", text: "ok", annotations: { audience: ["user"] }, _meta: { k: 1 } },
      { type: "resource", resource: { uri: `${upstream}+file:///a`, text: "a" } },
      { type: "resource_link", uri: `${upstream}+file:///b`, name: "b", size: 3 },
    ]);
  }, 60_000);
});
