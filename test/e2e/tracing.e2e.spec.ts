import { serviceEntry, spawnService, type ServiceName, type ServiceProcess } from "@manifold/cli";
import { freePort, type NatsServer } from "@manifold/nats-server";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from "../fixtures/otlpReceiver.js";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { AdminClient } from "../helpers/admin.js";
import { connectClient, eventually } from "../helpers/mcp.js";
import { ADMIN_TOKEN, busEnv, startNats } from "../helpers/stack.js";

const SERVER = 2;
const CLIENT = 3;
const PRODUCER = 4;
const CONSUMER = 5;
const ERROR = 2;

describe("one trace per tool call, across every process", () => {
  let nats: NatsServer;
  let receiver: OtlpReceiver;
  let recording: RecordingUpstream;
  let admin: AdminClient;
  let gatewayUrl: string;
  /** A second gateway on the same bus, started a new trace per call (`GATEWAY_AGENT_TRACE=link`). */
  let linkingUrl: string;
  let names: Record<string, string>;
  const services: ServiceProcess[] = [];

  beforeAll(async () => {
    [nats, receiver, recording] = await Promise.all([startNats(), startOtlpReceiver(), startRecordingUpstream()]);
    const common = {
      LOG_LEVEL: "warn",
      MANIFOLD_ADMIN_TOKEN: ADMIN_TOKEN,
      GATEWAY_AUTH: "off",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_BSP_SCHEDULE_DELAY: "100",
    };
    const ports: Record<ServiceName, number> = { registry: await freePort(), connector: await freePort(), gateway: await freePort() };
    const portVar = { registry: "REGISTRY_PORT", connector: "CONNECTOR_PORT", gateway: "GATEWAY_PORT" } as const;
    for (const name of ["registry", "connector", "gateway"] as const) {
      const metricsPort: Record<string, string> = name === "connector" ? {} : { [`${name.toUpperCase()}_METRICS_PORT`]: String(await freePort()) };
      const service = spawnService(name, serviceEntry(name), [], { ...common, ...busEnv(nats, name), ...metricsPort, [portVar[name]]: String(ports[name]) });
      services.push(service);
      await service.ready(`http://127.0.0.1:${ports[name]}/readyz`);
    }
    const linking = { port: await freePort(), metrics: await freePort() };
    const linkingGateway = spawnService("gateway", serviceEntry("gateway"), [], {
      ...common,
      ...busEnv(nats, "gateway"),
      GATEWAY_AGENT_TRACE: "link",
      GATEWAY_PORT: String(linking.port),
      GATEWAY_METRICS_PORT: String(linking.metrics),
    });
    services.push(linkingGateway);
    await linkingGateway.ready(`http://127.0.0.1:${linking.port}/readyz`);
    linkingUrl = `http://127.0.0.1:${linking.port}/mcp/traced`;
    admin = new AdminClient(`http://127.0.0.1:${ports.registry}`, ADMIN_TOKEN);
    gatewayUrl = `http://127.0.0.1:${ports.gateway}/mcp/traced`;
    for (const [name, options] of [["rec", {}], ["rec-strict", { callTimeoutMs: 200 }]] as const) {
      expect((await admin.post("/v1/upstreams", { name, transport: { type: "streamable-http", url: recording.url }, options })).body.discovery.status).toBe("ok");
    }
    const vs = await admin.post("/v1/virtual-servers", {
      name: "traced",
      tools: [{ upstream: "rec", tool: "echo" }, { upstream: "rec-strict", tool: "slow" }],
    });
    names = Object.fromEntries(vs.body.tools.map((t: { upstream: string; tool: string; exposedName: string }) => [`${t.upstream}/${t.tool}`, t.exposedName]));
  });

  afterAll(async () => {
    for (const service of services.reverse()) await service.stop();
    await Promise.all([receiver?.close(), recording?.close()]);
    await nats?.stop();
  });

  /** Calls a tool as an agent whose own trace context is `traceparent`. */
  const callWithTrace = async (tool: string, args: Record<string, unknown>, headers: Record<string, string> = {}) => {
    const traceId = randomBytes(16).toString("hex");
    const agentSpan = randomBytes(8).toString("hex");
    const transport = new StreamableHTTPClientTransport(new URL(gatewayUrl), { requestInit: { headers: { ...headers, traceparent: `00-${traceId}-${agentSpan}-01` } } });
    await using agent = await connectClient(transport);
    const outcome = await agent.callTool({ name: tool, arguments: args }).then(
      (result) => ({ result }),
      (error: unknown) => ({ error }),
    );
    return { traceId, agentSpan, outcome };
  };

  const spansOf = (traceId: string, expected: number) =>
    eventually(() => {
      const spans = receiver.spans.filter((s) => s.traceId === traceId);
      return spans.length >= expected ? spans : undefined;
    }, 10_000, 50);
  const one = (spans: ReceivedSpan[], service: string, kind: number) => {
    const found = spans.filter((s) => s.service === service && s.kind === kind);
    expect(found, `${service} kind ${kind}: ${JSON.stringify(spans.map((s) => [s.service, s.kind, s.name]))}`).toHaveLength(1);
    return found[0]!;
  };

  /** A 2026-07-28 tools/call of `rec/echo` as raw HTTP, with trace context in its headers and/or its `_meta`. */
  const modernEcho = async (url: string, message: string, trace: { headers?: Record<string, string>; meta?: Record<string, string> } = {}) => {
    const tool = names["rec/echo"]!;
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": tool, ...trace.headers },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "tools/call",
        params: { name: tool, arguments: { message }, _meta: { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}, ...trace.meta } },
      }),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { result: { content: unknown } }).result.content).toEqual([{ type: "text", text: `echo: ${message}` }]);
    return recording.calls.find((c) => (c.arguments as { message?: string }).message === message)!.headers;
  };

  test("gateway → NATS → connector → upstream share the agent's trace, each span the child of the one before", async () => {
    const { traceId, agentSpan, outcome } = await callWithTrace(names["rec/echo"]!, { message: "traced" });
    expect(outcome).toEqual({ result: { content: [{ type: "text", text: "echo: traced" }] } });
    const spans = await spansOf(traceId, 4);

    const server = one(spans, "manifold-gateway", SERVER);
    const producer = one(spans, "manifold-gateway", PRODUCER);
    const consumer = one(spans, "manifold-connector", CONSUMER);
    const client = one(spans, "manifold-connector", CLIENT);
    expect(server.parentSpanId).toBe(agentSpan);
    expect(producer.parentSpanId).toBe(server.spanId);
    expect(consumer.parentSpanId).toBe(producer.spanId);
    expect(client.parentSpanId).toBe(consumer.spanId);

    expect(server.name).toBe(`tools/call ${names["rec/echo"]}`);
    expect(server.attributes).toMatchObject({
      "mcp.method.name": "tools/call",
      "gen_ai.tool.name": names["rec/echo"],
      "manifold.virtual_server": "traced",
      "manifold.upstream": "rec",
      "jsonrpc.request.id": expect.any(String),
      "mcp.session.id": expect.any(String),
    });
    expect(producer.attributes).toMatchObject({ "messaging.system": "nats", "messaging.destination.name": "manifold.rpc.upstream.rec.call" });
    // The upstream itself received the trace context, with the connector's client span as parent.
    const traceparent = recording.calls.find((c) => (c.arguments as { message?: string }).message === "traced")!.headers.traceparent;
    expect(traceparent).toBe(`00-${traceId}-${client.spanId}-01`);
  });

  // The agent's HTTP headers never travel (docs/protocol.md): its W3C `baggage` went on to the
  // upstream with the trace context, key/values of the agent's choosing on a request sent with the
  // upstream's credentials. The trace context alone travels.
  test("the agent's baggage header does not reach the upstream; its trace does", async () => {
    const { traceId, outcome } = await callWithTrace(names["rec/echo"]!, { message: "with baggage" }, { baggage: "planted=1,role=admin" });
    expect(outcome).toEqual({ result: { content: [{ type: "text", text: "echo: with baggage" }] } });
    const { headers } = recording.calls.find((c) => (c.arguments as { message?: string }).message === "with baggage")!;
    expect({ baggage: headers.baggage, trace: String(headers.traceparent).split("-")[1] }).toEqual({ baggage: undefined, trace: traceId });
  });

  test("a 2026-07-28 call's _meta traceparent is the server span's parent, as the HTTP header would be", async () => {
    const traceId = randomBytes(16).toString("hex");
    const agentSpan = randomBytes(8).toString("hex");
    const otherTrace = randomBytes(16).toString("hex");
    await modernEcho(gatewayUrl, "meta-traced", {
      // The message's own context wins over the HTTP header's.
      headers: { traceparent: `00-${otherTrace}-${randomBytes(8).toString("hex")}-01` },
      meta: { traceparent: `00-${traceId}-${agentSpan}-01` },
    });
    const server = one(await spansOf(traceId, 4), "manifold-gateway", SERVER);
    expect(server.parentSpanId).toBe(agentSpan);
    expect(receiver.spans.some((s) => s.traceId === otherTrace)).toBe(false);
  });

  // A JSON-RPC id is the caller's own text, of any length up to the body limit: it went onto the
  // server span whole (`jsonrpc.request.id`), so one call put ~900 KB into the span the gateway
  // queues for export (2,048 spans queued, up to 512 in one export) and into the collector's store
  // every tenant's traces share (1,000 such calls held 1.4 GB in the gateway, 255 MB untraced).
  test("a caller's 900 KB JSON-RPC id is cut on the span, not exported whole", async () => {
    const traceId = randomBytes(16).toString("hex");
    const tool = names["rec/echo"]!;
    const id = "i".repeat(900_000);
    const res = await fetch(gatewayUrl, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": tool },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id,
        method: "tools/call",
        params: {
          name: tool,
          arguments: { message: "long id" },
          _meta: { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}, traceparent: `00-${traceId}-${randomBytes(8).toString("hex")}-01` },
        },
      }),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { result: { content: unknown } }).result.content).toEqual([{ type: "text", text: "echo: long id" }]);
    const server = one(await spansOf(traceId, 4), "manifold-gateway", SERVER);
    // Cut and copied: a slice would keep the whole id alive while the span waits for export.
    expect(server.attributes["jsonrpc.request.id"]).toBe(`${"i".repeat(256)}…`);
  });

  // OpenTelemetry keeps the raw tracestate on every span under it while it waits for export, though
  // it passes on at most 512 characters: 1,000 calls with a 900 KB `_meta.tracestate` held 1 GB in
  // the gateway. A longer one is left out; one that fits still travels to the upstream.
  test("a tracestate longer than OpenTelemetry keeps is left out; one that fits reaches the upstream", async () => {
    const tool = names["rec/echo"]!;
    const call = async (message: string, tracestate: string) => {
      const traceId = randomBytes(16).toString("hex");
      const res = await fetch(gatewayUrl, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": tool },
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: 1,
          method: "tools/call",
          params: {
            name: tool,
            arguments: { message },
            _meta: { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}, traceparent: `00-${traceId}-${randomBytes(8).toString("hex")}-01`, tracestate },
          },
        }),
      });
      expect(res.status).toBe(200);
      await res.json();
      const { headers } = recording.calls.find((c) => (c.arguments as { message?: string }).message === message)!;
      return { trace: String(headers.traceparent).split("-")[1] === traceId, tracestate: headers.tracestate };
    };
    expect(await call("small state", "vendor=abc")).toEqual({ trace: true, tracestate: "vendor=abc" });
    expect(await call("huge state", `vendor=abc,${"z".repeat(900_000)}`)).toEqual({ trace: true, tracestate: undefined });
  });

  // A later version's traceparent may carry more fields, of any length: its ids were slices of the
  // whole text, kept alive on each span (1 GB for 1,000 calls with a 900 KB tail). Past 512
  // characters it is not read, and the call starts a trace of its own.
  test("a traceparent with a 900 KB tail is not read: the call is traced under a trace of its own", async () => {
    const tool = names["rec/echo"]!;
    const traceId = randomBytes(16).toString("hex");
    const res = await fetch(gatewayUrl, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": tool },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "tools/call",
        params: {
          name: tool,
          arguments: { message: "long parent" },
          _meta: { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}, traceparent: `01-${traceId}-${randomBytes(8).toString("hex")}-01-${"z".repeat(900_000)}` },
        },
      }),
    });
    expect(res.status).toBe(200);
    await res.json();
    const { headers } = recording.calls.find((c) => (c.arguments as { message?: string }).message === "long parent")!;
    expect(String(headers.traceparent)).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(String(headers.traceparent).split("-")[1]).not.toBe(traceId);
  });

  test("the error path is traced too, with the error's code on every failed span", async () => {
    const { traceId, outcome } = await callWithTrace(names["rec-strict/slow"]!, { ms: 2_000 });
    expect((outcome as { error: { data: { code: string } } }).error.data.code).toBe("upstream_timeout");
    const spans = await spansOf(traceId, 4);
    for (const [service, kind] of [["manifold-gateway", SERVER], ["manifold-gateway", PRODUCER], ["manifold-connector", CONSUMER], ["manifold-connector", CLIENT]] as const) {
      const span = one(spans, service, kind);
      expect(span.status, span.name).toBe(ERROR);
      // A timeout is the connector's own verdict (the 2.x client's is a local SdkError, never a wire code): one name on every span.
      expect(span.attributes["error.type"], span.name).toBe("upstream_timeout");
    }
  });

  // An agent's traceparent names the trace and decides its sampling (ParentBased, OpenTelemetry's
  // default): honoured, an agent could leave its calls untraced (flags 00) while they reach the
  // upstream, or put its spans into a trace whose id it learnt elsewhere. Facing agents that are
  // not trusted, `GATEWAY_AGENT_TRACE=link` starts a trace of Manifold's at the edge; the agent's
  // context is a link of the server span, so the two can still be joined.
  describe("GATEWAY_AGENT_TRACE=link: an agent picks neither the trace nor whether it is sampled", () => {
    for (const where of ["header", "meta"] as const) {
      test(`an unsampled traceparent in the ${where === "header" ? "HTTP header" : "message's _meta"} is traced, in a trace of Manifold's linked to the agent's`, async () => {
        const traceId = randomBytes(16).toString("hex");
        const agentSpan = randomBytes(8).toString("hex");
        const agentTrace = { traceparent: `00-${traceId}-${agentSpan}-00`, tracestate: "planted=1" };
        const headers = await modernEcho(linkingUrl, `linked via ${where}`, where === "header" ? { headers: agentTrace } : { meta: agentTrace });
        const [, ownTrace, , flags] = String(headers.traceparent).split("-");
        // The upstream sees Manifold's trace, sampled by Manifold's sampler, and none of the agent's state.
        expect({ differs: ownTrace !== traceId, flags, tracestate: headers.tracestate }).toEqual({ differs: true, flags: "01", tracestate: undefined });
        const spans = await spansOf(ownTrace!, 4);
        const server = one(spans, "manifold-gateway", SERVER);
        expect(server.parentSpanId).toBeUndefined();
        expect(server.links).toEqual([{ traceId, spanId: agentSpan }]);
        // Only the edge's span links to the agent: the rest are its children, as before.
        expect(one(spans, "manifold-gateway", PRODUCER).links).toEqual([]);
        expect(receiver.spans.some((s) => s.traceId === traceId)).toBe(false);
      });
    }

    test("the gateway that honours the agent's context (the default) leaves an unsampled call untraced", async () => {
      const traceId = randomBytes(16).toString("hex");
      const headers = await modernEcho(gatewayUrl, "honoured unsampled", { headers: { traceparent: `00-${traceId}-${randomBytes(8).toString("hex")}-00` } });
      expect(String(headers.traceparent).split("-")).toEqual(["00", traceId, expect.any(String), "00"]);
    });
  });
});
