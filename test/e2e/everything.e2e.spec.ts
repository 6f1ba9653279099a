import type { NatsServer } from "@manifold/nats-server";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  ListRootsRequestSchema,
  type Prompt,
  type Resource,
  type ResourceTemplate,
  type Tool,
} from "@modelcontextprotocol/sdk/types.js";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { rpcError } from "../helpers/catalog.js";
import { connectClient, eventually } from "../helpers/mcp.js";
import { ALL_INTERACTIONS, legacyAgent, modernAgent, type Agent } from "../helpers/eraAgents.js";
import { MODERN } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";
import { EVERYTHING_BIN, everythingStdio, spawnEverything, type SpawnedUpstream } from "../helpers/upstreams.js";

type Json = Record<string, any>;
/** server-everything twice: over stdio and over Streamable HTTP. */
const UPSTREAMS = ["pipe", "web"] as const;
type Up = (typeof UPSTREAMS)[number];
const KEY_ENV = { GATEWAY_REQUEST_STATE_KEY: "env:MANIFOLD_SECRET_STATE_KEY", MANIFOLD_SECRET_STATE_KEY: "e".repeat(48) };
/** What the connector's client declares to every upstream (docs/protocol.md, "Settings"), so a direct client is offered the same catalogue. */
const CONNECTOR_CAPABILITIES = ALL_INTERACTIONS;
/** Client-side tasks (a server's request answered with a task), which the connector does not declare. */
const CLIENT_TASKS = { tasks: { requests: { elicitation: { create: {} }, sampling: { createMessage: {} } } } };

interface Catalogue {
  tools: Tool[];
  resources: Resource[];
  resourceTemplates: ResourceTemplate[];
  prompts: Prompt[];
}

const b64 = (text: string) => Buffer.from(text).toString("base64");
const textOf = (result: Json) => ((result.content ?? []) as Json[]).map((c) => c.text ?? "").join("\n");
/** The agent's view of an upstream's URI: `<upstream>+<uri>` (docs/protocol.md). */
const expose = (upstream: Up, uri: string) => `${upstream}+${uri}`;

/** An upstream's result as the agent must see it: its resource URIs mapped, in the places the spec defines. */
function exposed(upstream: Up, result: Json): Json {
  const copy = structuredClone(result);
  const block = (b: Json | undefined) => {
    if (b?.type === "resource_link") b.uri = expose(upstream, b.uri);
    if (b?.type === "resource") b.resource.uri = expose(upstream, b.resource.uri);
  };
  for (const b of copy.content ?? []) block(b);
  for (const m of copy.messages ?? []) block(m.content);
  for (const c of copy.contents ?? []) c.uri = expose(upstream, c.uri);
  return copy;
}
/** Top-level members a result's envelope adds (2026-07-28: resultType, caching hints; `_meta` with the server's info): not the upstream's answer. */
const ENVELOPE = new Set(["_meta", "resultType", "ttlMs", "cacheScope"]);
/** server-everything stamps dynamic resources with the time of day (text, or inside a base64 blob); the rest must be equal. */
function stable(value: unknown): unknown {
  const unstamp = (s: string) => s.replace(/created at [0-9:]+( ?[AP]M)?/g, "created at <time>");
  if (typeof value === "string") return unstamp(value);
  if (Array.isArray(value)) return value.map(stable);
  if (typeof value !== "object" || value === null) return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => {
      if (k === "blob" && typeof v === "string" && Buffer.from(v, "base64").toString().includes("created at")) return [k, unstamp(Buffer.from(v, "base64").toString())];
      return [k, stable(v)];
    }),
  );
}
/** `execution: { taskSupport: "forbidden" }` is what an absent `execution` means (2025-11-25 tools): Manifold pins it as absent. */
const withoutDefaultExecution = (tool: Tool): Json => {
  const { execution, ...rest } = tool;
  return execution?.taskSupport === "forbidden" && Object.keys(execution).length === 1 ? rest : tool;
};
/** A result through Manifold equals the upstream's (mapped), but for the members the answer's envelope adds. */
const same = (got: Json, want: Json) => {
  const payload = (r: Json) => Object.fromEntries(Object.entries(r).filter(([k]) => !ENVELOPE.has(k)));
  expect(stable(payload(got))).toEqual(stable(payload(want)));
};

/** The one variable the connector adds to a stdio upstream's environment: its process tree's mark, a random UUID per process (docs/security.md). */
const TREE_MARK = "MANIFOLD_UPSTREAM_TREE";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** get-env's answer, parsed. */
const envOf = (result: Json): Json => JSON.parse(textOf(result)) as Json;
const withoutMark = ({ [TREE_MARK]: _mark, ...env }: Json): Json => env;

/** Valid arguments from a tool's input schema (its required properties); `ARGS` overrides per tool. */
function argumentsFor(tool: Tool): Json {
  const props = (tool.inputSchema.properties ?? {}) as Record<string, Json>;
  const valueOf = (p: Json): unknown =>
    Array.isArray(p.enum) ? p.enum[0] : p.type === "string" ? (p.format === "uri" ? "https://example.com/" : "x") : p.type === "number" || p.type === "integer" ? 1 : p.type === "boolean" ? false : p.type === "array" ? [] : {};
  const derived = Object.fromEntries((tool.inputSchema.required ?? []).map((k) => [k, valueOf(props[k] ?? {})]));
  return { ...derived, ...ARGS[tool.name] };
}
const ARGS: Record<string, Json> = {
  echo: { message: "hello, everything" },
  "get-sum": { a: 19, b: 23 },
  "get-annotated-message": { messageType: "success", includeImage: true },
  "get-resource-links": { count: 4 },
  "get-resource-reference": { resourceType: "Blob", resourceId: 5 },
  "get-structured-content": { location: "Chicago" },
  // A data: URL: the machine has no network, and the tool's default fetches from GitHub.
  "gzip-file-as-resource": { name: "note.txt.gz", data: `data:text/plain;base64,${b64("gzipped through Manifold")}`, outputType: "resource" },
  "trigger-long-running-operation": { duration: 0.2, steps: 2 },
  "trigger-url-elicitation": { url: "https://example.com/consent" },
  "trigger-sampling-request": { prompt: "say hi", maxTokens: 10 },
  "simulate-research-query": { topic: "tides" },
};
/** Prompt argument values that server-everything accepts (completable ones must be known values); others get "1". */
const PROMPT_VALUES: Record<string, string> = { city: "Lisbon", state: "Lisboa", department: "Engineering", name: "Alice", resourceType: "Text", resourceId: "2" };
const promptArgs = (p: Prompt) => Object.fromEntries((p.arguments ?? []).map((a) => [a.name, PROMPT_VALUES[a.name] ?? "1"]));

/**
 * Tools whose result depends on who calls (the agent's answers, the upstream session's state):
 * checked by what they must say. Every other tool's result must equal a direct call's.
 */
const ANSWERED: Record<string, (result: Json, agent: Agent) => void> = {
  "get-roots-list": (r, agent) => expect(textOf(r)).toContain(agent.root),
  "trigger-elicitation-request": (r) => expect(textOf(r)).toContain("Ada"),
  "trigger-url-elicitation": (r) => expect(textOf(r)).toContain("User completed the URL elicitation flow"),
  "trigger-sampling-request": (r) => expect(textOf(r)).toContain("sampled by the agent"),
  // On the agent's own session (it may be asked for roots): started here, stopped by a second call.
  "toggle-simulated-logging": (r) => expect(textOf(r)).toMatch(/^Started simulated/),
  "toggle-subscriber-updates": (r) => expect(textOf(r)).toMatch(/^Started simulated/),
};

/** A 1.32.2 client on server-everything itself, declaring what the connector declares (plus `extra`). */
async function directClient(upstream: Up, httpUrl: string, extra: Json = {}): Promise<Client> {
  const c = new Client({ name: "direct", version: "1.0.0" }, { capabilities: { ...CONNECTOR_CAPABILITIES, ...extra } });
  c.setRequestHandler(ListRootsRequestSchema, async () => ({ roots: [] }));
  await c.connect(upstream === "pipe" ? new StdioClientTransport({ command: process.execPath, args: [EVERYTHING_BIN, "stdio"], stderr: "ignore" }) : new StreamableHTTPClientTransport(new URL(httpUrl)));
  return c;
}
const catalogueOf = async (c: Client): Promise<Catalogue> => ({
  tools: (await c.listTools()).tools,
  resources: (await c.listResources()).resources,
  resourceTemplates: (await c.listResourceTemplates()).resourceTemplates,
  prompts: (await c.listPrompts()).prompts,
});

/**
 * Everything server-everything offers (issue 14), through one virtual server, from both
 * transports, with a 2025 agent and a 2026-07-28 agent. The catalogue is read from the upstream
 * directly, not written down here: an item server-everything adds that Manifold drops fails.
 */
describe("everything server-everything offers, through one virtual server", () => {
  let nats: NatsServer;
  let stack: Stack;
  let http: SpawnedUpstream;
  const direct = {} as Record<Up, Client>;
  const catalogue = {} as Record<Up, Catalogue>;
  /** Exposed names by `<upstream>/<name>`. */
  let tools: Record<string, string>;
  let prompts: Record<string, string>;
  const keys: Record<string, string> = {};

  beforeAll(async () => {
    nats = await startNats();
    // Authentication on: each agent is its own consumer, as callers are told apart in production.
    [stack, http] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", ...KEY_ENV }), spawnEverything("streamableHttp")]);
    for (const [name, transport] of [["pipe", everythingStdio()], ["web", { type: "streamable-http", url: http.url }]] as const) {
      const res = await stack.admin.post("/v1/upstreams", { name, transport });
      expect(res.body.discovery?.status, JSON.stringify(res.body)).toBe("ok");
    }
    for (const u of UPSTREAMS) {
      direct[u] = await directClient(u, http.url);
      catalogue[u] = await catalogueOf(direct[u]);
    }
    // Everything listed directly is selected: an item Manifold did not discover fails here (422).
    const all = <T>(pick: (c: Catalogue, u: Up) => T[]) => UPSTREAMS.flatMap((u) => pick(catalogue[u], u));
    const res = await stack.admin.post("/v1/virtual-servers", {
      name: "everything",
      interactions: { elicitation: true, sampling: true, roots: true },
      tools: all((c, u) => c.tools.map((t) => ({ upstream: u, tool: t.name }))),
      prompts: all((c, u) => c.prompts.map((p) => ({ upstream: u, prompt: p.name }))),
      resources: all((c, u) => [...c.resources.map((r) => ({ upstream: u, uri: r.uri })), ...c.resourceTemplates.map((t) => ({ upstream: u, uriTemplate: t.uriTemplate }))]),
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    for (const consumer of ["legacy", "modern"]) {
      expect((await stack.admin.post("/v1/consumers", { name: consumer })).status).toBe(201);
      keys[consumer] = (await stack.admin.post(`/v1/consumers/${consumer}/keys`, {})).body.key;
      expect((await stack.admin.post("/v1/virtual-servers/everything/grants", { grantId: consumer, subject: { consumer } })).status).toBeLessThan(300);
    }
    tools = Object.fromEntries(res.body.tools.map((t: Json) => [`${t.upstream}/${t.tool}`, t.exposedName]));
    prompts = Object.fromEntries(res.body.prompts.map((p: Json) => [`${p.upstream}/${p.prompt}`, p.exposedName]));
  });

  afterAll(async () => {
    await Promise.all(UPSTREAMS.map((u) => direct[u]?.close()));
    await stack?.close();
    await http?.stop();
    await nats?.stop();
  });

  test("the catalogue is not empty, the same on both transports, and its tool names collide across them", () => {
    expect(catalogue.pipe.tools.length).toBeGreaterThanOrEqual(17);
    expect(catalogue.pipe.resources.length).toBeGreaterThan(0);
    expect(catalogue.pipe.resourceTemplates.length).toBeGreaterThan(0);
    expect(catalogue.pipe.prompts.length).toBeGreaterThan(0);
    for (const kind of ["tools", "prompts"] as const) expect(catalogue.web[kind].map((i) => i.name).sort()).toEqual(catalogue.pipe[kind].map((i) => i.name).sort());
    // Both upstreams' names collide: the naming policy tells them apart.
    expect(new Set(Object.values(tools)).size).toBe(Object.keys(tools).length);
    expect(new Set(Object.values(prompts)).size).toBe(Object.keys(prompts).length);
  });

  test("tools that need client-side tasks are the only ones not offered: the connector does not declare them, selecting one is 422 tool_not_discovered", async () => {
    const withTasks = await directClient("pipe", http.url, CLIENT_TASKS);
    try {
      const offered = new Set(catalogue.pipe.tools.map((t) => t.name));
      const missing = (await withTasks.listTools()).tools.map((t) => t.name).filter((n) => !offered.has(n));
      expect(missing.sort()).toEqual(["trigger-elicitation-request-async", "trigger-sampling-request-async"]);
      for (const tool of missing) {
        const res = await stack.admin.post("/v1/virtual-servers/everything/tools", { tools: [{ upstream: "pipe", tool }] });
        expect(res.status, tool).toBe(422);
        expect(res.body.error?.code ?? res.body.code, JSON.stringify(res.body)).toBe("tool_not_discovered");
      }
    } finally {
      await withTasks.close();
    }
  });

  describe.each([
    { name: "a 1.32.2 client (2025-11-25)", consumer: "legacy", connect: legacyAgent },
    { name: "a 2.4.0 client pinned to 2026-07-28", consumer: "modern", connect: modernAgent },
  ])("$name", ({ consumer, connect }) => {
    let agent: Agent;
    beforeAll(async () => {
      agent = await connect(stack.mcpUrl("everything"), keys[consumer]!);
    });
    afterAll(async () => {
      await agent?.close();
    });

    test("the lists are the upstreams' lists, mapped: names by the naming policy, URIs as <upstream>+<uri>, every other field as it is", async () => {
      const [listedTools, listedResources, listedTemplates, listedPrompts] = await Promise.all([agent.listTools(), agent.listResources(), agent.listResourceTemplates(), agent.listPrompts()]);
      const want = <T>(pick: (u: Up) => T[]) => UPSTREAMS.flatMap(pick);
      const sorted = (items: Json[], key: string) => (stable(items) as Json[]).sort((a, b) => String(a[key]).localeCompare(String(b[key])));
      // 2026-07-28 tools carry no `execution`: under the tasks extension the server decides (SEP-2663).
      const definition = (t: Tool) => (agent.era === MODERN ? (({ execution: _, ...rest }) => rest)(t) : withoutDefaultExecution(t));
      expect(sorted(listedTools, "name")).toEqual(sorted(want((u) => catalogue[u].tools.map((t) => ({ ...definition(t), name: tools[`${u}/${t.name}`] }))), "name"));
      expect(sorted(listedResources, "uri")).toEqual(sorted(want((u) => catalogue[u].resources.map((r) => ({ ...r, uri: expose(u, r.uri) }))), "uri"));
      expect(sorted(listedTemplates, "uriTemplate")).toEqual(sorted(want((u) => catalogue[u].resourceTemplates.map((t) => ({ ...t, uriTemplate: expose(u, t.uriTemplate) }))), "uriTemplate"));
      expect(sorted(listedPrompts, "name")).toEqual(sorted(want((u) => catalogue[u].prompts.map((p) => ({ ...p, name: prompts[`${u}/${p.name}`] }))), "name"));
    });

    test("every tool of both upstreams answers as it does directly, as the agent answered it, or (task-augmented) as a task", async () => {
      const tasks: Promise<void>[] = [];
      for (const u of UPSTREAMS) {
        for (const tool of catalogue[u].tools) {
          const name = tools[`${u}/${tool.name}`]!;
          const args = argumentsFor(tool);
          const where = `${u}/${tool.name}`;
          if (tool.execution?.taskSupport === "required") {
            // Polled while the other tools are called: a research task takes seconds.
            tasks.push(
              agent.runTask(name, args).then((task) => {
                expect(task.status, where).toBe("completed");
                expect(task.taskId, where).toMatch(/^mt2\./);
                expect(textOf(task.result), where).toContain(`Research Report: ${args.topic}`);
              }),
            );
            continue;
          }
          const result = await agent.callTool(name, args);
          expect(result.isError, `${where}: ${JSON.stringify(result)}`).toBeFalsy();
          const check = ANSWERED[tool.name];
          if (check) {
            check(result, agent);
            if (tool.name.startsWith("toggle-")) expect(textOf(await agent.callTool(name, args)), where).toMatch(/^Stopped simulated/);
            continue;
          }
          const want = await direct[u].callTool({ name: tool.name, arguments: args });
          if (tool.name === "get-env") expect(withoutMark(envOf(result)), where).toEqual(withoutMark(envOf(want)));
          else same(result, exposed(u, want));
        }
      }
      expect(tasks).toHaveLength(UPSTREAMS.length);
      await Promise.all(tasks);
    });

    test("progress: every step reaches the agent before the result, on both transports (5 calls each)", async () => {
      for (const u of UPSTREAMS) {
        for (let i = 0; i < 5; i++) expect(await agent.progressOf(tools[`${u}/trigger-long-running-operation`]!, { duration: 0.05, steps: 2 }), u).toEqual([1, 2]);
      }
    });

    test("real content: the echo, the sum, the structured weather, the gzipped bytes", async () => {
      for (const u of UPSTREAMS) {
        expect((await agent.callTool(tools[`${u}/echo`]!, { message: "hi" })).content).toEqual([{ type: "text", text: "Echo: hi" }]);
        expect(textOf(await agent.callTool(tools[`${u}/get-sum`]!, { a: 19, b: 23 }))).toContain("42");
        // The upstream's environment holds none of Manifold's: no bus credential, no secret; a stdio one only its tree's mark.
        const shown = envOf(await agent.callTool(tools[`${u}/get-env`]!, {}));
        if (u === "pipe") expect(shown[TREE_MARK]).toMatch(UUID);
        else expect(shown[TREE_MARK]).toBeUndefined();
        const env = JSON.stringify(withoutMark(shown));
        expect(env).toContain("PATH");
        for (const secret of ["NATS", "MANIFOLD", KEY_ENV.MANIFOLD_SECRET_STATE_KEY]) expect(env).not.toContain(secret);
        expect((await agent.callTool(tools[`${u}/get-structured-content`]!, { location: "Chicago" })).structuredContent).toMatchObject({ temperature: expect.any(Number) });
        const zipped = (await agent.callTool(tools[`${u}/gzip-file-as-resource`]!, ARGS["gzip-file-as-resource"]!)).content[0];
        expect(zipped.resource.uri).toBe(expose(u, "demo://resource/session/note.txt.gz"));
        expect(gunzipSync(Buffer.from(zipped.resource.blob, "base64")).toString()).toBe("gzipped through Manifold");
      }
    });

    test("every resource, and one instance of every template, reads as it does directly", async () => {
      for (const u of UPSTREAMS) {
        for (const r of catalogue[u].resources) same(await agent.readResource(expose(u, r.uri)), exposed(u, await direct[u].readResource({ uri: r.uri })));
        for (const t of catalogue[u].resourceTemplates) {
          const uri = t.uriTemplate.replace(/\{[^}]+\}/g, "7");
          same(await agent.readResource(expose(u, uri)), exposed(u, await direct[u].readResource({ uri })));
        }
      }
    });

    test("every prompt, its arguments filled, gets what it gets directly", async () => {
      for (const u of UPSTREAMS) {
        for (const p of catalogue[u].prompts) {
          same(await agent.getPrompt(prompts[`${u}/${p.name}`]!, promptArgs(p)), exposed(u, await direct[u].getPrompt({ name: p.name, arguments: promptArgs(p) })));
        }
      }
    });

    test("every prompt argument and template variable completes as it does directly", async () => {
      let compared = 0;
      for (const u of UPSTREAMS) {
        for (const p of catalogue[u].prompts) {
          for (const a of p.arguments ?? []) {
            const partial = (PROMPT_VALUES[a.name] ?? "1").slice(0, 1);
            const params = { argument: { name: a.name, value: partial }, context: { arguments: promptArgs(p) } };
            const got = await agent.complete({ ref: { type: "ref/prompt", name: prompts[`${u}/${p.name}`] }, ...params });
            const want = await direct[u].complete({ ref: { type: "ref/prompt", name: p.name }, ...params });
            expect(got.completion, `${u}/${p.name}/${a.name}`).toEqual(want.completion);
            compared += want.completion.values.length;
          }
        }
        for (const t of catalogue[u].resourceTemplates) {
          for (const variable of t.uriTemplate.match(/\{([^}]+)\}/g)!.map((v) => v.slice(1, -1))) {
            const params = { argument: { name: variable, value: "4" } };
            const got = await agent.complete({ ref: { type: "ref/resource", uri: expose(u, t.uriTemplate) }, ...params });
            const want = await direct[u].complete({ ref: { type: "ref/resource", uri: t.uriTemplate }, ...params });
            expect(got.completion, `${u} ${t.uriTemplate} ${variable}`).toEqual(want.completion);
            compared += want.completion.values.length;
          }
        }
      }
      // Not only empty answers: the completable prompt and the templates suggest values.
      expect(compared).toBeGreaterThan(4);
    });

    test("a resource link in a tool result is followed with resources/read, to its own upstream", async () => {
      for (const u of UPSTREAMS) {
        const links = (await agent.callTool(tools[`${u}/get-resource-links`]!, { count: 4 })).content.filter((c: Json) => c.type === "resource_link");
        expect(links).toHaveLength(4);
        for (const link of links) {
          expect(link.uri.startsWith(`${u}+demo://`), link.uri).toBe(true);
          same(await agent.readResource(link.uri), exposed(u, await direct[u].readResource({ uri: link.uri.slice(u.length + 1) })));
        }
      }
    });
  });

  test("the same URI on two upstreams is two resources: each upstream's session resource reads as that upstream wrote it", async () => {
    // No roots declared: the calls run on the upstreams' shared sessions, where resources/read goes.
    await using agent = await connectClient(new StreamableHTTPClientTransport(new URL(stack.mcpUrl("everything")), { requestInit: { headers: { authorization: `Bearer ${keys.legacy}` } } }));
    const uri = "demo://resource/session/same.gz";
    for (const u of UPSTREAMS) {
      const args = { name: "same.gz", data: `data:text/plain;base64,${b64(`written by ${u}`)}`, outputType: "resourceLink" };
      const { content } = (await agent.callTool({ name: tools[`${u}/gzip-file-as-resource`]!, arguments: args })) as Json;
      expect(content).toEqual([{ type: "resource_link", uri: expose(u, uri), name: "same.gz", mimeType: "application/gzip" }]);
      // Created at run time, so not selected: its link reads nothing until an administrator selects it.
      expect((await rpcError(agent.readResource({ uri: expose(u, uri) }))).code).toBe(-32602);
      // The upstream announced it (resources/list_changed): discovery lists it.
      await eventually(async () => ((await stack.admin.get(`/v1/upstreams/${u}`)).body.resources as Json[]).find((r) => r.definition.uri === uri), 10_000, 50);
    }
    const selected = await stack.admin.post("/v1/virtual-servers/everything/resources", { resources: UPSTREAMS.map((upstream) => ({ upstream, uri })) });
    expect(selected.status, JSON.stringify(selected.body)).toBeLessThan(300);
    for (const u of UPSTREAMS) {
      const read = await eventually(() => agent.readResource({ uri: expose(u, uri) }), 5_000, 50);
      expect(read.contents[0]!.uri).toBe(expose(u, uri));
      expect(gunzipSync(Buffer.from((read.contents[0] as Json).blob, "base64")).toString()).toBe(`written by ${u}`);
    }
  });
});
