import type { NatsConnection } from "@manifold/bus";
import { AuditStream, auditSubject, RegistryStream } from "@manifold/contracts";
import type { NatsServer } from "@manifold/nats-server";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectClient, eventually } from "../helpers/mcp.js";
import { ADMIN_TOKEN, connectAs, startNats, startStack, type Stack } from "../helpers/stack.js";
import { execFile, spawn } from "node:child_process";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);
const CLI = new URL("../../tools/manifold/dist/main.js", import.meta.url).pathname;

const PASSTHROUGH_SECRET = "pt-secret-5f1e2d";
const REFERENCE_SECRET = "ref-secret-9a8b7c";
const ARGUMENT_SECRET = "arg-secret-3c4d5e";

describe("metrics, audit trail and redaction", () => {
  let nats: NatsServer;
  let stack: Stack;
  let recording: RecordingUpstream;
  let inspector: NatsConnection;
  let names: Record<string, string>;
  let key: string;
  const logs: string[] = [];
  const spans = new InMemorySpanExporter();
  const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });

  const agent = () =>
    connectClient(
      new StreamableHTTPClientTransport(new URL(stack.mcpUrl("observed")), {
        requestInit: {
          headers: {
            authorization: `Bearer ${key}`,
            "x-manifold-upstream-headers": JSON.stringify({ rec: { Authorization: `Bearer ${PASSTHROUGH_SECRET}` } }),
          },
        },
      }),
    );

  beforeAll(async () => {
    provider.register();
    nats = await startNats();
    [stack, recording] = await Promise.all([
      startStack(nats.url, { GATEWAY_AUTH: "required" }, { logs, secretsEnv: { MANIFOLD_SECRET_REC_TOKEN: REFERENCE_SECRET } }),
      startRecordingUpstream(),
    ]);
    inspector = await connectAs(nats, "operator", "inspector");
    await registerUpstreams(stack, {
      name: "rec",
      transport: { type: "streamable-http", url: recording.url, secretHeaders: { "X-Api-Key": "env:MANIFOLD_SECRET_REC_TOKEN" } },
    });
    names = await createVirtualServer(stack, "observed", [
      { upstream: "rec", tool: "echo" },
      { upstream: "rec", tool: "add" },
    ]);
    await stack.admin.post("/v1/consumers", { name: "auditor" });
    key = (await stack.admin.post("/v1/consumers/auditor/keys", {})).body.key;
    await stack.admin.post("/v1/virtual-servers/observed/grants", { grantId: "auditor", subject: { consumer: "auditor" } });
  });

  afterAll(async () => {
    await inspector?.close();
    await stack?.close();
    await recording?.close();
    await nats?.stop();
    await provider.shutdown();
  });

  test("every call leaves an audit record, queryable by filters and in pages", async () => {
    await using client = await agent();
    for (let i = 0; i < 5; i++) await client.callTool({ name: names["rec/echo"]!, arguments: { message: `hello ${i}` } });
    await client.callTool({ name: names["rec/add"]!, arguments: { a: 1, b: 2 } });
    await client.callTool({ name: "not-a-tool", arguments: {} }).catch(() => undefined);

    const all = await eventually(async () => {
      const { body } = await stack.admin.get("/v1/audit?virtualServer=observed&limit=100");
      return body.items.length >= 7 ? body.items : undefined;
    });
    const echo = all.find((r: { tool: string }) => r.tool === "echo");
    expect(echo).toMatchObject({
      consumer: "consumer:auditor",
      virtualServer: "observed",
      environment: "default",
      exposedTool: names["rec/echo"],
      upstream: "rec",
      outcome: "ok",
      argumentBytes: expect.any(Number),
      resultBytes: expect.any(Number),
      durationMs: expect.any(Number),
    });
    expect(echo.argumentBytes).toBeGreaterThan(0);
    expect(all.find((r: { exposedTool: string }) => r.exposedTool === "not-a-tool")).toMatchObject({ outcome: "error", errorCode: "unknown_tool" });

    const adds = (await stack.admin.get(`/v1/audit?tool=add&consumer=auditor`)).body.items;
    expect(adds).toHaveLength(1);
    expect((await stack.admin.get("/v1/audit?outcome=error")).body.items).toHaveLength(1);
    expect((await stack.admin.get(`/v1/audit?since=${new Date(Date.now() + 60_000).toISOString()}`)).body.items).toEqual([]);
    // Times without milliseconds mean the whole second: compared as text, `…:05Z` sorted after `…:05.300Z`.
    const wholeSecond = `${(echo.at as string).slice(0, 19)}Z`;
    const sequences = async (query: string) => ((await stack.admin.get(`/v1/audit?${query}`)).body.items as { sequence: number }[]).map((r) => r.sequence);
    expect(await sequences(`since=${wholeSecond}`)).toContain(echo.sequence);
    if (!echo.at.endsWith(".000Z")) expect(await sequences(`until=${wholeSecond}`)).not.toContain(echo.sequence);

    const first = (await stack.admin.get("/v1/audit?limit=3")).body;
    expect(first.items).toHaveLength(3);
    const second = (await stack.admin.get(`/v1/audit?limit=3&after=${first.next}`)).body;
    expect(second.items[0].sequence).toBeGreaterThan(first.items[2].sequence);
  });

  test("manifold audit query prints records; manifold audit tail follows new ones live", async () => {
    const env = { ...process.env, MANIFOLD_REGISTRY_URL: stack.admin.baseUrl, MANIFOLD_ADMIN_TOKEN: ADMIN_TOKEN };
    const query = await execFileAsync(process.execPath, [CLI, "audit", "query", "--virtual-server", "observed", "--tool", "add", "--json"], { env });
    const printed = query.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(printed).toHaveLength(1);
    expect(printed[0]).toMatchObject({ tool: "add", consumer: "consumer:auditor" });

    const tail = spawn(process.execPath, [CLI, "audit", "tail", "--virtual-server", "observed"], { env, stdio: ["ignore", "pipe", "pipe"] });
    try {
      let out = "";
      let err = "";
      tail.stdout.on("data", (c: Buffer) => (out += c.toString()));
      tail.stderr.on("data", (c: Buffer) => (err += c.toString()));
      // Only records after the tail started are followed: call once it says it is following.
      await eventually(() => (err.includes("following the audit trail") ? err : undefined), 10_000, 50);
      await using client = await agent();
      await client.callTool({ name: names["rec/add"]!, arguments: { a: 20, b: 22 } });
      const followed = await eventually(() => (out.includes("→ rec/add") ? out : undefined), 5_000, 50);
      expect(followed).toContain("consumer:auditor");
    } finally {
      tail.kill("SIGINT");
    }
  });

  test("values are recorded only when the virtual server enables it, with its fields redacted", async () => {
    await using client = await agent();
    await client.callTool({ name: names["rec/add"]!, arguments: { a: 11, b: 31 } });
    const setting = await stack.admin.request("PUT", "/v1/virtual-servers/observed/audit", { recordValues: true, redactFields: ["b"] });
    expect(setting.status).toBe(200);
    await client.callTool({ name: names["rec/add"]!, arguments: { a: 12, b: 30 } });
    const adds = await eventually(async () => {
      const { body } = await stack.admin.get("/v1/audit?tool=add&limit=1000");
      return body.items.some((r: { arguments?: unknown }) => r.arguments) ? body.items : undefined;
    });
    const withValues = adds.filter((r: { arguments?: unknown }) => r.arguments !== undefined);
    expect(withValues).toHaveLength(1);
    expect(withValues[0].arguments).toEqual({ a: 12, b: "[redacted]" });
    expect(withValues[0].result).toMatchObject({ structuredContent: { sum: 42 } });
    expect(adds.filter((r: { arguments?: unknown }) => r.arguments === undefined).length).toBeGreaterThanOrEqual(2);

    // Values too large for one audit message: the record is kept without them, and the gateway keeps running.
    const message = "m".repeat(600_000);
    const echoed = await client.callTool({ name: names["rec/echo"]!, arguments: { message } });
    expect((echoed.content as { text: string }[])[0]!.text).toHaveLength(600_006);
    const large = await eventually(async () => {
      const { body } = await stack.admin.get("/v1/audit?tool=echo&limit=1000");
      return body.items.find((r: { argumentBytes: number }) => r.argumentBytes > 600_000);
    });
    expect(large).toMatchObject({ outcome: "ok", valuesOmitted: "too_large" });
    expect(large.arguments).toBeUndefined();
    expect((await client.callTool({ name: names["rec/add"]!, arguments: { a: 1, b: 2 } })).structuredContent).toEqual({ sum: 3 });
    await stack.admin.request("PUT", "/v1/virtual-servers/observed/audit", { recordValues: false, redactFields: [] });
  });

  test("an audit failure never fails a call: with the audit stream gone, calls still succeed", async () => {
    const jsm = await jetstreamManager(inspector);
    await jsm.streams.delete(AuditStream.name);
    // The record is published after the answer (batched, within 20 ms): watch this call's go by
    // before restoring the stream (a record of an earlier test's call may still pass first).
    const published = inspector.subscribe(auditSubject("observed"));
    await inspector.flush();
    await using client = await agent();
    const calledAt = new Date().toISOString();
    const result = await client.callTool({ name: names["rec/echo"]!, arguments: { message: "unaudited" } });
    expect(result.content).toEqual([{ type: "text", text: "echo: unaudited" }]);
    for await (const record of published) if ((record.json() as { at: string }).at >= calledAt) break;
    published.unsubscribe();
    // Restoring the stream restores auditing; only calls while it was missing are lost.
    await jsm.streams.add({ name: AuditStream.name, subjects: [AuditStream.subjects] });
    await client.callTool({ name: names["rec/echo"]!, arguments: { message: "audited again" } });
    const items = await eventually(async () => {
      const { body } = await stack.admin.get("/v1/audit");
      return body.items.length === 1 ? body.items : undefined;
    });
    expect(items[0].tool).toBe("echo");
  });

  test("every service serves Prometheus metrics with bounded labels", async () => {
    const scrape = async (app: { server: { address(): unknown } }) => {
      const address = app.server.address() as { port: number } | null;
      if (address) return (await fetch(`http://127.0.0.1:${address.port}/metrics`)).text();
      const injected = await (app as unknown as { inject(o: object): Promise<{ body: string }> }).inject({ method: "GET", url: "/metrics" });
      return injected.body;
    };
    // Refusals at the HTTP edge are counted too, by code and (once known) consumer.
    const refused = await fetch(stack.mcpUrl("observed"), {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer mk_aaaaaaaaaaaa_${"A".repeat(43)}` },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
    });
    expect(refused.status).toBe(401);
    // The gateway's series name consumers, tools and upstreams: never on the public port, only on the metrics listener.
    expect((await fetch(`${stack.gatewayUrl}/metrics`)).status).toBe(404);
    const gateway = await scrape(stack.gateway.metricsApp);
    expect(gateway).toMatch(/manifold_gateway_requests_refused_total\{[^}]*code="unauthorized"[^}]*consumer="unauthenticated"[^}]*\} [1-9]/);
    expect(gateway).toMatch(/manifold_gateway_tool_calls_total\{[^}]*virtual_server="observed"[^}]*tool="[^"]+"[^}]*consumer="auditor"[^}]*outcome="ok"[^}]*\} \d+/);
    expect(gateway).toContain('outcome="unknown_tool"');
    expect(gateway).toContain("manifold_gateway_tool_call_duration_seconds_bucket");
    expect(gateway).toMatch(/manifold_gateway_sessions\{[^}]*\} \d+/);
    expect(gateway).toMatch(/manifold_projection_lag_events\{[^}]*\} 0/);
    // The gateway sees the upstreams' health that the connectors publish.
    expect(gateway).toMatch(/manifold_gateway_upstream_health\{[^}]*upstream="rec"[^}]*\} 0/);
    const connector = await scrape(stack.connector!.app);
    expect(connector).toMatch(/manifold_connector_calls_total\{[^}]*upstream="rec"[^}]*outcome="ok"[^}]*\} \d+/);
    expect(connector).toContain("manifold_connector_call_duration_seconds_bucket");
    expect(connector).toMatch(/manifold_upstream_health\{[^}]*upstream="rec"[^}]*status="up"[^}]*\} 1/);
    expect(connector).toMatch(/manifold_upstream_circuit_state\{[^}]*upstream="rec"[^}]*\} 0/);
    const registry = await scrape(stack.registry.metricsApp);
    expect(registry).toMatch(/manifold_registry_events_applied_total\{[^}]*type="virtual-server.created"/);
    // No session ids or argument values as labels.
    expect(gateway).not.toMatch(/session_id|mcp_session|session="/);
    expect(gateway).not.toContain("hello 0");
  });

  // Health gauges are set for the upstreams that exist, and were never unset: a deleted upstream kept
  // its last status in both services for the process's life (an alert on `down` fired for good), and
  // each name an admin ever registered stayed a series.
  test("a deleted upstream's health series go with it, on the gateway and the connector", async () => {
    const scrape = async (app: { inject(o: object): Promise<{ body: string }> }) => (await app.inject({ method: "GET", url: "/metrics" })).body;
    const gatewayApp = stack.gateway.metricsApp as unknown as { inject(o: object): Promise<{ body: string }> };
    const connectorApp = stack.connector!.app as unknown as { inject(o: object): Promise<{ body: string }> };
    await registerUpstreams(stack, { name: "gone-soon", transport: { type: "streamable-http", url: recording.url } });
    const series = /^manifold_(gateway_)?upstream_(health|circuit_state)\{[^}]*upstream="gone-soon"/m;
    await eventually(async () => (series.test(await scrape(gatewayApp)) && series.test(await scrape(connectorApp)) ? true : undefined));
    expect((await stack.admin.delete("/v1/upstreams/gone-soon")).status).toBe(204);
    const left = async () => [...(await scrape(gatewayApp)).split("\n"), ...(await scrape(connectorApp)).split("\n")].filter((line) => series.test(line));
    await eventually(async () => ((await left()).length === 0 ? true : undefined), 5_000, 50).catch(() => undefined);
    expect(await left()).toEqual([]);
    // The upstreams that remain keep theirs.
    expect(await scrape(gatewayApp)).toMatch(/manifold_gateway_upstream_health\{[^}]*upstream="rec"/);
  });

  test("log lines written during a call carry its trace and span ids", async () => {
    await registerUpstreams(stack, { name: "rec-strict", transport: { type: "streamable-http", url: recording.url }, options: { callTimeoutMs: 150 } });
    const selected = await stack.admin.post("/v1/virtual-servers/observed/tools", { tools: [{ upstream: "rec-strict", tool: "slow" }] });
    const slow = selected.body.tools.find((t: { upstream: string }) => t.upstream === "rec-strict").exposedName;
    await using client = await agent();
    await client.callTool({ name: slow, arguments: { ms: 1_000 } }).catch(() => undefined);
    const line = await eventually(() => logs.map((l) => JSON.parse(l)).find((l) => l.msg === "call failed" && l.upstream === "rec-strict"));
    expect(line.trace_id).toMatch(/^[0-9a-f]{32}$/);
    expect(line.span_id).toMatch(/^[0-9a-f]{16}$/);
    const traced = spans.getFinishedSpans().filter((s) => s.spanContext().traceId === line.trace_id);
    expect(traced.map((s) => s.name)).toEqual(expect.arrayContaining([`tools/call ${slow}`, "send manifold.rpc.upstream.rec-strict.call"]));
  });

  test("secrets appear in no log line, span attribute, audit record or registry event", async () => {
    await using client = await agent();
    await client.callTool({ name: names["rec/echo"]!, arguments: { message: ARGUMENT_SECRET } });
    // The secrets did reach where they were meant to go.
    const seen = recording.calls.at(-1)!;
    expect(seen.headers.authorization).toBe(`Bearer ${PASSTHROUGH_SECRET}`);
    expect(seen.headers["x-api-key"]).toBe(REFERENCE_SECRET);

    const audit = await eventually(async () => {
      const { body } = await stack.admin.get("/v1/audit?limit=1000");
      return body.items.some((r: { argumentBytes: number }) => r.argumentBytes > 0) ? JSON.stringify(body) : undefined;
    });
    const jsm = await jetstreamManager(inspector);
    const { last_seq } = (await jsm.streams.info(RegistryStream.name)).state;
    let events = "";
    for (let seq = 1; seq <= last_seq; seq++) events += (await jsm.streams.getMessage(RegistryStream.name, { seq }))?.string() ?? "";
    const attributes = JSON.stringify(spans.getFinishedSpans().map((s) => s.attributes));
    expect(spans.getFinishedSpans().length).toBeGreaterThan(0);
    for (const secret of [PASSTHROUGH_SECRET, REFERENCE_SECRET, ARGUMENT_SECRET]) {
      expect(logs.filter((line) => line.includes(secret))).toEqual([]);
      expect(attributes).not.toContain(secret);
      expect(audit).not.toContain(secret);
      expect(events).not.toContain(secret);
    }
  });
});
