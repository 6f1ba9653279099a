import type { NatsConnection } from "@manifold/bus";
import { buildGateway, loadGatewayConfig, type Gateway } from "@manifold/gateway";
import type { NatsServer } from "@manifold/nats-server";
import { createLogger } from "@manifold/telemetry";
import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from "@modelcontextprotocol/client";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CreateMessageRequestSchema, ElicitRequestSchema, ListRootsRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { serveModernHttp } from "../fixtures/modern-upstream.mjs";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { registerUpstreams } from "../helpers/catalog.js";
import { eventually } from "../helpers/mcp.js";
import { busEnv, connectAs, startNats, startStack, type Stack } from "../helpers/stack.js";
import { everythingStdio, spawnEverything, type SpawnedUpstream } from "../helpers/upstreams.js";

const MODERN = "2026-07-28";
/** Every replica shares it (a secret reference under the default `MANIFOLD_SECRET_` prefix). */
const KEY_ENV = { GATEWAY_REQUEST_STATE_KEY: "env:MANIFOLD_SECRET_STATE_KEY", MANIFOLD_SECRET_STATE_KEY: "k".repeat(48) };
const ALL = { elicitation: { form: {}, url: {} }, sampling: {}, roots: {} };
const FORM_ANSWER = { action: "accept", content: { name: "Ada", check: true, firstLine: "Call me Ishmael.", email: "ada@example.com", homepage: "https://example.com", birthdate: "1815-12-10", integer: 1, number: 1, untitledSingleSelectEnum: "option1", untitledMultipleSelectEnum: ["option1"], titledSingleSelectEnum: "value1", titledMultipleSelectEnum: ["value1"], legacyTitledEnum: "opt1" } } as const;

type Result = { content?: { type: string; text?: string }[]; isError?: boolean };
const textOf = (result: unknown) => ((result as Result).content ?? []).map((c) => c.text ?? "").join("\n");
/** A call the agent got no answer to: a JSON-RPC error, or a tool result marked as an error. */
const refusal = async (call: Promise<unknown>): Promise<string> =>
  call.then(
    (result) => {
      expect((result as Result).isError, JSON.stringify(result)).toBe(true);
      return textOf(result);
    },
    (error: Error) => error.message,
  );

async function legacyAgent(url: string, capabilities: Record<string, unknown>): Promise<Client> {
  const client = new Client({ name: "legacy-agent", version: "1.0.0" }, { capabilities });
  // The 1.x client only lets an agent handle what it declared.
  if (capabilities.elicitation) {
    client.setRequestHandler(ElicitRequestSchema, async (request) =>
      request.params.mode === "url" ? { action: "accept" } : { ...FORM_ANSWER, content: { ...FORM_ANSWER.content } },
    );
  }
  if (capabilities.sampling) {
    client.setRequestHandler(CreateMessageRequestSchema, async () => ({ role: "assistant", content: { type: "text", text: "sampled by the agent" }, model: "test-model", stopReason: "endTurn" }));
  }
  if (capabilities.roots) client.setRequestHandler(ListRootsRequestSchema, async () => ({ roots: [{ uri: "file:///agent/root", name: "agent root" }] }));
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  return client;
}

/** A 2.4 client pinned to 2026-07-28; `route` picks where each request goes (a load balancer). */
async function modernAgent(url: string, capabilities: Record<string, unknown>, route?: (body: string) => string): Promise<ModernClient> {
  const client = new ModernClient({ name: "modern-agent", version: "1.0.0" }, { capabilities, versionNegotiation: { mode: { pin: MODERN } } });
  client.setRequestHandler("elicitation/create", async (request) =>
    request.params.mode === "url" ? { action: "accept" as const } : { action: "accept" as const, content: { name: "Ada" } },
  );
  const fetchVia = route ? (input: string | URL | Request, init?: RequestInit) => fetch(route(String(init?.body ?? "")), init) : undefined;
  await client.connect(new ModernTransport(new URL(url), fetchVia ? { fetch: fetchVia } : {}));
  return client;
}

describe("server-to-client requests reach the agent that made the call", () => {
  let nats: NatsServer;
  let stack: Stack;
  let everything: SpawnedUpstream;
  let modern: Awaited<ReturnType<typeof serveModernHttp>>;
  let recording: RecordingUpstream;
  let second: Gateway;
  let secondUrl: string;
  const names: Record<string, Record<string, string>> = {};

  beforeAll(async () => {
    nats = await startNats();
    [stack, everything, modern, recording] = await Promise.all([startStack(nats.url, KEY_ENV), spawnEverything("streamableHttp"), serveModernHttp(), startRecordingUpstream()]);
    await registerUpstreams(
      stack,
      { name: "stdio", transport: everythingStdio() },
      { name: "http", transport: { type: "streamable-http", url: everything.url } },
      { name: "modern", transport: { type: "streamable-http", url: modern.url } },
      { name: "rec", transport: { type: "streamable-http", url: recording.url } },
    );
    const tools = [
      { upstream: "stdio", tool: "trigger-elicitation-request" },
      { upstream: "stdio", tool: "trigger-sampling-request" },
      { upstream: "stdio", tool: "get-roots-list" },
      { upstream: "http", tool: "trigger-elicitation-request" },
      { upstream: "modern", tool: "ask" },
      { upstream: "rec", tool: "ask-and-go" },
      { upstream: "rec", tool: "ask-twice" },
      { upstream: "rec", tool: "ask-flood" },
      { upstream: "rec", tool: "ask-then-wait" },
    ];
    for (const [name, interactions] of [
      ["open", { elicitation: true, sampling: true, roots: true }],
      ["strict", undefined],
    ] as const) {
      const res = await stack.admin.post("/v1/virtual-servers", { name, tools, ...(interactions ? { interactions } : {}) });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      names[name] = Object.fromEntries(res.body.tools.map((t: { upstream: string; tool: string; exposedName: string }) => [`${t.upstream}/${t.tool}`, t.exposedName]));
    }
    const nc: NatsConnection = await connectAs(nats, "gateway", "gateway-2");
    const env = { ...busEnv(nats, "gateway"), LOG_LEVEL: "silent", GATEWAY_AUTH: "off", ...KEY_ENV };
    second = await buildGateway({ config: loadGatewayConfig(env), logger: createLogger({ component: "gateway-2", level: "silent" }), nc, env });
    await second.follower.caughtUp;
    await second.app.listen({ port: 0, host: "127.0.0.1" });
    secondUrl = `http://127.0.0.1:${(second.app.server.address() as AddressInfo).port}`;
  }, 60_000);

  type Agent = { callTool(params: { name: string; arguments: Record<string, unknown> }): Promise<unknown>; close(): Promise<void> };
  /** The tool answers `expected` well within the call's budget (a round-trip defect once made such calls wait it out). */
  const answersQuickly = async (connecting: Promise<Agent>, tool: string, expected: string) => {
    const agent = await connecting;
    try {
      const started = Date.now();
      expect(textOf(await agent.callTool({ name: names.open![tool]!, arguments: {} }))).toBe(expected);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await agent.close();
    }
  };
  /** `rec/ask-and-go` asks and ends at once: "went", long before the call's budget (the answer's request once waited it out). */
  const askAndGo = (connecting: Promise<Agent>) => answersQuickly(connecting, "rec/ask-and-go", "went");
  /** `rec/ask-twice` asks two questions at once and waits for both: the second once went to a spent reply and the call waited out its budget. */
  const askTwice = (connecting: Promise<Agent>) => answersQuickly(connecting, "rec/ask-twice", "answered: accept, accept");

  afterAll(async () => {
    await second?.close();
    await stack?.close();
    await Promise.all([everything?.stop(), modern?.close(), recording?.close()]);
    await nats?.stop();
  });

  test("a call cancelled after its agent answered a round still reaches the upstream as a cancellation", async () => {
    const agent = await legacyAgent(stack.mcpUrl("open"), ALL);
    try {
      const controller = new AbortController();
      const call = agent.callTool({ name: names.open!["rec/ask-then-wait"]!, arguments: { ms: 20_000, tag: "after-round" } }, undefined, { signal: controller.signal });
      // The round is answered and the upstream works on: now the agent gives up.
      await eventually(() => (recording.calls.some((c) => (c.arguments as { tag?: string }).tag === "after-round") ? true : undefined));
      const cancelledAt = Date.now();
      controller.abort("changed my mind");
      await expect(call).rejects.toThrow();
      await eventually(() => (recording.cancelled.includes("after-round") ? true : undefined), 3_000);
      expect(Date.now() - cancelledAt).toBeLessThan(3_000);
      // Audited once, as what it came to (not as a success when its round went out).
      expect(await auditedNext("ask-then-wait", 1)).toMatchObject([{ outcome: "error", tool: "ask-then-wait" }]);
    } finally {
      await agent.close();
    }
  });

  test("attack: a 2026-07-28 call given up during its retry (after its round was answered) reaches the upstream as a cancellation", async () => {
    let retried = false;
    const url = stack.mcpUrl("open");
    const agent = await modernAgent(url, ALL, (body) => ((retried ||= body.includes('"requestState"')), url));
    try {
      const controller = new AbortController();
      const call = agent.callTool({ name: names.open!["rec/ask-then-wait"]!, arguments: { ms: 20_000, tag: "after-retry" } }, { signal: controller.signal });
      // The retry carried the answers and the upstream works on; the agent closes the retry's stream.
      await eventually(() => (retried && recording.calls.some((c) => (c.arguments as { tag?: string }).tag === "after-retry") ? true : undefined));
      await new Promise((r) => setTimeout(r, 300));
      const cancelledAt = Date.now();
      controller.abort("changed my mind");
      await expect(call).rejects.toThrow();
      // Before: the close cancelled the retry's own new id, which no connector held: the upstream worked on.
      await eventually(() => (recording.cancelled.includes("after-retry") ? true : undefined), 3_000);
      expect(Date.now() - cancelledAt).toBeLessThan(3_000);
      // Audited per request: the first as paused, the retry as what it came to.
      expect((await auditedNext("ask-then-wait", 2)).map((r) => r.outcome)).toEqual(["input_required", "error"]);
    } finally {
      await agent.close();
    }
  });

  test("attack: progress after an answered round reaches the agent, in both eras (2026-07-28: on the retry's own token)", async () => {
    const progressed = async (agent: { callTool(params: object, ...rest: unknown[]): Promise<unknown> }, options: object, modern: boolean) => {
      const seen: string[] = [];
      const onprogress = (p: { message?: string }) => void seen.push(p.message ?? "");
      const params = { name: names.open!["rec/ask-then-wait"]!, arguments: { ms: 200, tag: modern ? "progress-modern" : "progress-legacy" } };
      const result = modern ? await agent.callTool(params, { ...options, onprogress }) : await agent.callTool(params, undefined, { ...options, onprogress });
      expect(textOf(result)).toBe("waited 200 ms");
      // The 2.x client reports its own rounds as progress too ("Fulfilling input required …"): the upstream's only.
      return seen.filter((message) => message.startsWith("answered"));
    };
    const legacy = await legacyAgent(stack.mcpUrl("open"), ALL);
    try {
      expect(await progressed(legacy, {}, false)).toEqual(["answered accept"]);
    } finally {
      await legacy.close();
    }
    const modern = await modernAgent(stack.mcpUrl("open"), ALL);
    try {
      // Before: the held call published to the first request's subject, which nobody read after its round: nothing arrived.
      expect(await progressed(modern, {}, true)).toEqual(["answered accept"]);
    } finally {
      await modern.close();
    }
    await auditedNext("ask-then-wait", 3);
  });

  /** The next `count` audit records of calls to `tool`, in order; exactly that many have been added. */
  const audited = new Map<string, number>();
  const auditedNext = async (tool: string, count: number) => {
    const seen = audited.get(tool) ?? 0;
    const records = async () => ((await stack.admin.get(`/v1/audit?virtualServer=open&tool=${tool}&limit=1000`)).body.items as { outcome: string; durationMs: number }[]);
    await eventually(async () => ((await records()).length >= seen + count ? true : undefined));
    // A late extra record would show here: wait past the gateway's audit batching, then read again.
    await new Promise((r) => setTimeout(r, 200));
    const all = await records();
    expect(all).toHaveLength(seen + count);
    audited.set(tool, seen + count);
    return all.slice(seen);
  };

  test("a call that paused for its agent is audited by what it came to: once (2025), or per request (2026-07-28)", async () => {
    const call = (agent: Agent) => agent.callTool({ name: names.open!["rec/ask-then-wait"]!, arguments: { ms: 300, tag: "whole" } });
    const legacy = await legacyAgent(stack.mcpUrl("open"), ALL);
    try {
      expect(textOf(await call(legacy))).toBe("waited 300 ms");
      // One request: the round and the wait after it are in its one record, not a success at the round.
      const [record] = await auditedNext("ask-then-wait", 1);
      expect(record).toMatchObject({ outcome: "ok" });
      expect(record!.durationMs).toBeGreaterThanOrEqual(300);
    } finally {
      await legacy.close();
    }
    const modern = await modernAgent(stack.mcpUrl("open"), { elicitation: { form: {} } });
    try {
      expect(textOf(await call(modern))).toBe("waited 300 ms");
      // Two requests: the one answered input_required, then the retry that came to the result.
      const [paused, retry] = await auditedNext("ask-then-wait", 2);
      expect(paused).toMatchObject({ outcome: "input_required" });
      expect(retry).toMatchObject({ outcome: "ok" });
      expect(retry!.durationMs).toBeGreaterThanOrEqual(300);
    } finally {
      await modern.close();
    }
  });

  describe("a 1.32.2 client (2025-11-25) answers on its request's stream", () => {
    test("elicitation from a stdio and a Streamable HTTP 2025 upstream, and a 2026-07-28 upstream's input_required round", async () => {
      const agent = await legacyAgent(stack.mcpUrl("open"), ALL);
      try {
        for (const upstream of ["stdio", "http"]) {
          const result = await agent.callTool({ name: names.open![`${upstream}/trigger-elicitation-request`]!, arguments: {} });
          expect(textOf(result), upstream).toContain("Ada");
        }
        const asked = await agent.callTool({ name: names.open!["modern/ask"]!, arguments: {} });
        expect(textOf(asked)).toBe('answered: {"action":"accept","content":{"name":"Ada","check":true,"firstLine":"Call me Ishmael.","email":"ada@example.com","homepage":"https://example.com","birthdate":"1815-12-10","integer":1,"number":1,"untitledSingleSelectEnum":"option1","untitledMultipleSelectEnum":["option1"],"titledSingleSelectEnum":"value1","titledMultipleSelectEnum":["value1"],"legacyTitledEnum":"opt1"}}');
      } finally {
        await agent.close();
      }
    });

    test("a question the upstream does not wait for: the agent answers it, then gets the call's result", () => askAndGo(legacyAgent(stack.mcpUrl("open"), ALL)));

    test("two questions at once: the agent answers both, one round after the other, and gets the result", () => askTwice(legacyAgent(stack.mcpUrl("open"), ALL)));

    test("an upstream that floods its call with questions: the first 8 reach the agent, the rest are refused at once", async () => {
      const agent = await legacyAgent(stack.mcpUrl("open"), ALL);
      try {
        const started = Date.now();
        expect(textOf(await agent.callTool({ name: names.open!["rec/ask-flood"]!, arguments: {} }))).toBe("answered 8, refused 4");
        expect(Date.now() - started).toBeLessThan(5_000);
      } finally {
        await agent.close();
      }
    });

    test("sampling and roots where the virtual server allows them and the agent declares them", async () => {
      const agent = await legacyAgent(stack.mcpUrl("open"), ALL);
      try {
        const sampled = await agent.callTool({ name: names.open!["stdio/trigger-sampling-request"]!, arguments: { prompt: "hi", maxTokens: 10 } });
        expect(textOf(sampled)).toContain("sampled by the agent");
        const roots = await agent.callTool({ name: names.open!["stdio/get-roots-list"]!, arguments: {} });
        expect(textOf(roots)).toContain("file:///agent/root");
      } finally {
        await agent.close();
      }
    });

    test("refused when the agent did not declare the capability, or its virtual server does not allow it", async () => {
      const silent = await legacyAgent(stack.mcpUrl("open"), {});
      const strict = await legacyAgent(stack.mcpUrl("strict"), ALL);
      try {
        expect(await refusal(silent.callTool({ name: names.open!["stdio/trigger-elicitation-request"]!, arguments: {} }))).not.toContain("Ada");
        expect(await refusal(silent.callTool({ name: names.open!["http/trigger-elicitation-request"]!, arguments: {} }))).not.toContain("Ada");
        expect(await refusal(strict.callTool({ name: names.strict!["stdio/trigger-sampling-request"]!, arguments: { prompt: "hi", maxTokens: 10 } }))).not.toContain("sampled");
        // Elicitation is allowed by default.
        expect(textOf(await strict.callTool({ name: names.strict!["stdio/trigger-elicitation-request"]!, arguments: {} }))).toContain("Ada");
      } finally {
        await Promise.all([silent.close(), strict.close()]);
      }
    });
  });

  describe("a 2.4.0 client pinned to 2026-07-28 gets input_required and retries", () => {
    test("elicitation from 2025 upstreams (a held call) and a 2026-07-28 upstream, form and URL mode", async () => {
      const agent = await modernAgent(stack.mcpUrl("open"), { elicitation: { form: {}, url: {} } });
      try {
        for (const upstream of ["stdio", "http"]) {
          const result = await agent.callTool({ name: names.open![`${upstream}/trigger-elicitation-request`]!, arguments: {} });
          expect(textOf(result), upstream).toContain("Ada");
        }
        expect(textOf(await agent.callTool({ name: names.open!["modern/ask"]!, arguments: {} }))).toBe('answered: {"action":"accept","content":{"name":"Ada"}}');
        expect(textOf(await agent.callTool({ name: names.open!["modern/ask"]!, arguments: { url: true } }))).toBe('answered: {"action":"accept"}');
      } finally {
        await agent.close();
      }
    });

    test("a question the upstream does not wait for: the agent answers it, then gets the call's result", () => askAndGo(modernAgent(stack.mcpUrl("open"), { elicitation: { form: {} } })));

    test("two questions at once: two input_required rounds, then the result", () => askTwice(modernAgent(stack.mcpUrl("open"), { elicitation: { form: {} } })));

    test("the retry lands on a second gateway replica", async () => {
      const first = new URL(stack.mcpUrl("open"));
      const retries: string[] = [];
      // The load balancer sends every retry (it carries requestState) to the other replica.
      const route = (body: string) => {
        if (!body.includes('"requestState"')) return first.toString();
        retries.push(body);
        return `${secondUrl}${first.pathname}`;
      };
      const agent = await modernAgent(first.toString(), { elicitation: { form: {} } }, route);
      try {
        expect(textOf(await agent.callTool({ name: names.open!["stdio/trigger-elicitation-request"]!, arguments: {} }))).toContain("Ada");
        expect(textOf(await agent.callTool({ name: names.open!["modern/ask"]!, arguments: {} }))).toBe('answered: {"action":"accept","content":{"name":"Ada"}}');
        expect(retries).toHaveLength(2);
      } finally {
        await agent.close();
      }
    });

    test("a forged or tampered requestState is refused", async () => {
      const post = async (params: Record<string, unknown>) => {
        const res = await fetch(stack.mcpUrl("open"), {
          method: "POST",
          headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": MODERN, "mcp-method": "tools/call", "mcp-name": names.open!["modern/ask"]! },
          body: JSON.stringify({
            jsonrpc: "2.0",
            id: 1,
            method: "tools/call",
            params: {
              name: names.open!["modern/ask"],
              arguments: {},
              ...params,
              _meta: {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientInfo": { name: "raw", version: "1" },
                "io.modelcontextprotocol/clientCapabilities": { elicitation: { form: {} } },
              },
            },
          }),
        });
        const body = await res.text();
        const data = body.startsWith("{") ? body : body.split("\n").find((l) => l.startsWith("data:"))!.slice(5);
        return JSON.parse(data) as { result?: { resultType?: string; requestState?: string }; error?: { code: number; message: string } };
      };
      const first = await post({});
      expect(first.result?.resultType).toBe("input_required");
      const state = first.result!.requestState!;
      const [version, payload, mac] = state.split(".");
      const decoded = JSON.parse(Buffer.from(payload!, "base64url").toString()) as { p: { r: string } };
      decoded.p.r = decoded.p.r.replace(/\.[^.]+$/, ".forged");
      const tampered = `${version}.${Buffer.from(JSON.stringify(decoded)).toString("base64url")}.${mac}`;
      for (const requestState of [tampered, "v1.e30.AAAA", `${state}x`]) {
        const refused = await post({ requestState, inputResponses: { who: { action: "accept", content: { name: "Mallory" } } } });
        expect(refused.error?.code, JSON.stringify(refused)).toBe(-32602);
      }
      // The genuine state still works.
      const answered = await post({ requestState: state, inputResponses: { who: { action: "accept", content: { name: "Ada" } } } });
      expect(answered.result?.resultType, JSON.stringify(answered)).toBe("complete");
    });
  });
});
