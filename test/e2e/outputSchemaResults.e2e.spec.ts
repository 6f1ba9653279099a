import { jsonRpcCodeOf } from "@manifold/contracts";
import type { NatsServer } from "@manifold/nats-server";
import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from "@modelcontextprotocol/client";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startOutputSchemaUpstream } from "../fixtures/outputSchemaUpstream.js";
import type { SessionServer } from "../fixtures/sessionServer.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { MODERN } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";
import { eventually } from "../helpers/mcp.js";

/** What an agent got: the result, or the error's code, Manifold code, reason and message. */
type Outcome = { result: Record<string, unknown> } | { code: number | undefined; manifold: unknown; reason: unknown; message: string };
const outcomeOf = (call: Promise<unknown>): Promise<Outcome> =>
  call.then(
    (result) => ({ result: result as Record<string, unknown> }),
    (error: { code?: number; message?: string; data?: { code?: unknown; reason?: unknown } }) => ({ code: error.code, manifold: error.data?.code, reason: error.data?.reason, message: String(error.message) }),
  );

/**
 * A tool whose pinned definition has an `outputSchema` is answered only with a result that follows
 * it (structuredContent present and valid unless `isError`), and `structuredContent` that is not an
 * object is refused for every tool: `upstream_error` / `invalid_result` naming the failing path,
 * never the value, the same for a 1.32.2 client (fast path and SDK lane) and a 2.4 client pinned to
 * 2026-07-28, with the fast path on and off. Before, the wrong result reached the agent as the
 * upstream wrote it, and the 1.x client's `callTool` threw on it.
 */
describe.each(["on", "off"])("GATEWAY_FAST_PATH=%s: results held to the pinned output schema", (fastPath) => {
  let nats: NatsServer;
  let stack: Stack;
  let upstream: SessionServer<unknown>;
  let names: Record<string, string>;
  let legacy: Client;
  let modern: ModernClient;

  beforeAll(async () => {
    nats = await startNats();
    [stack, upstream] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", GATEWAY_FAST_PATH: fastPath }), startOutputSchemaUpstream()]);
    await registerUpstreams(stack, { name: "meteo", transport: { type: "streamable-http", url: upstream.url } });
    names = await createVirtualServer(stack, "schemas", [{ upstream: "meteo", tool: "weather" }, { upstream: "meteo", tool: "plain" }]);
    const key = (await grantedConsumers(stack, "schemas", ["alice"])).alice!;
    const requestInit = { headers: { authorization: `Bearer ${key}` } };
    legacy = new Client({ name: "legacy", version: "1.0.0" });
    await legacy.connect(new StreamableHTTPClientTransport(new URL(stack.mcpUrl("schemas")), { requestInit }));
    modern = new ModernClient({ name: "modern", version: "1.0.0" }, { versionNegotiation: { mode: { pin: MODERN } } });
    await modern.connect(new ModernTransport(new URL(stack.mcpUrl("schemas")), { requestInit }));
    // Both clients validate structured content against the schemas of the tools they have listed.
    await legacy.listTools();
    await modern.listTools();
  }, 60_000);

  afterAll(async () => {
    await legacy?.close();
    await modern?.close();
    await upstream?.close();
    await stack?.close();
    await nats?.stop();
  });

  const call = (tool: string, mode: string) => {
    const name = names[`meteo/${tool}`]!;
    return {
      fast: outcomeOf(legacy.callTool({ name, arguments: { mode } })),
      // A progress token sends a 2025 call through the SDK's server (mcpServer.ts), whatever the fast path.
      sdk: outcomeOf(legacy.callTool({ name, arguments: { mode } }, undefined, { onprogress: () => {} })),
      modern: outcomeOf(modern.callTool({ name, arguments: { mode } })),
    };
  };
  const settle = async (lanes: ReturnType<typeof call>) => ({ fast: await lanes.fast, sdk: await lanes.sdk, modern: await lanes.modern });
  const refused = (reason = "invalid_result") => {
    const legacyError = { code: jsonRpcCodeOf("upstream_error", "legacy"), manifold: "upstream_error", reason };
    return { fast: expect.objectContaining(legacyError), sdk: expect.objectContaining(legacyError), modern: expect.objectContaining({ ...legacyError, code: jsonRpcCodeOf("upstream_error", "modern") }) };
  };

  test("a result against the pinned output schema is upstream_error / invalid_result on every lane and era, naming the path and never the value", async () => {
    const seen: Record<string, Awaited<ReturnType<typeof settle>>> = {};
    for (const mode of ["wrong-type", "missing", "no-structured", "array"]) seen[mode] = await settle(call("weather", mode));
    console.log(`fast path ${fastPath}: ${JSON.stringify(seen)}`);
    for (const [mode, outcomes] of Object.entries(seen)) {
      expect(outcomes, mode).toEqual(refused());
      for (const outcome of Object.values(outcomes)) expect(JSON.stringify(outcome), mode).not.toContain("secret-reading-42");
    }
    expect((seen["wrong-type"]!.fast as { message: string }).message).toContain("/temperature");
    expect((seen.missing!.modern as { message: string }).message).toContain("temperature");
    expect((seen["no-structured"]!.sdk as { message: string }).message).toContain("structuredContent");
  }, 60_000);

  test("recorded as such: the audit record's errorReason and the gateway's metrics say invalid_result", async () => {
    await settle(call("weather", "wrong-type"));
    const records = await eventually(async () => {
      const items = (await stack.admin.get(`/v1/audit?consumer=alice&limit=1000`)).body.items as Record<string, unknown>[];
      return items.some((r) => r.errorReason === "invalid_result") ? items : undefined;
    });
    expect(records.find((r) => r.errorReason === "invalid_result")).toMatchObject({ outcome: "error", errorCode: "upstream_error", upstream: "meteo", tool: "weather" });
    // Nothing of the wrong value is kept (the virtual server records no values).
    expect(JSON.stringify(records)).not.toContain("secret-reading-42");
    const metrics = await (await fetch(`http://127.0.0.1:${(stack.gateway.metricsApp.server.address() as { port: number }).port}/metrics`)).text();
    expect(metrics).toMatch(/manifold_gateway_tool_call_errors_total\{[^}]*upstream="meteo"[^}]*reason="invalid_result"[^}]*\} [1-9]/);
  }, 60_000);

  test("a valid result, and a tool execution error without structured content, pass as the upstream wrote them", async () => {
    const good = await settle(call("weather", "good"));
    for (const outcome of Object.values(good)) expect(outcome).toMatchObject({ result: { structuredContent: { temperature: 21 }, content: [{ type: "text", text: "21" }] } });
    const failed = await settle(call("weather", "tool-error"));
    for (const outcome of Object.values(failed)) expect(outcome).toMatchObject({ result: { isError: true, content: [{ type: "text", text: "the sensor is down" }] } });
  }, 60_000);

  test("structuredContent that is not an object, from a tool without an output schema: refused to a 2025 agent (its revisions type it an object), passed to a 2026-07-28 agent (any JSON value, SEP-2106); an object passes", async () => {
    const { fast, sdk, modern } = await settle(call("plain", "array"));
    const { modern: _, ...legacyRefused } = refused();
    expect({ fast, sdk }).toEqual(legacyRefused);
    expect(modern).toMatchObject({ result: { structuredContent: [21] } });
    for (const outcome of Object.values(await settle(call("plain", "good")))) expect(outcome).toMatchObject({ result: { structuredContent: { temperature: 21 } } });
  }, 60_000);

  test("hostile structured content is refused by the bounds before any validator walks it: 10,000-deep nesting and 2 MiB", async () => {
    const deep = await settle(call("weather", "deep"));
    const big = await settle(call("weather", "big"));
    console.log(`fast path ${fastPath}: deep ${JSON.stringify(deep)} big ${JSON.stringify(big).slice(0, 600)}`);
    expect(deep).toEqual(refused("result_too_deep"));
    // Past the bus's max_payload (1 MiB here): refused by the connector as it reads, never parsed.
    for (const outcome of Object.values(big)) expect(outcome).toMatchObject({ manifold: "payload_too_large" });
    expect(JSON.stringify(big).length).toBeLessThan(10_000);
  }, 60_000);
});
