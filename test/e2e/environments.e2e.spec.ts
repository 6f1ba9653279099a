import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startMutableUpstream, type MutableUpstream } from "../fixtures/mutableUpstream.js";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, registerUpstreams, rpcError } from "../helpers/catalog.js";
import { everythingStdio } from "../helpers/upstreams.js";
import { connectHttp, eventually } from "../helpers/mcp.js";
import { ADMIN_TOKEN, startNats, startStack, type Stack } from "../helpers/stack.js";
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);
const CLI = new URL("../../tools/manifold/dist/main.js", import.meta.url).pathname;

describe("one virtual server across environments", () => {
  let nats: NatsServer;
  let stack: Stack;
  let dev: RecordingUpstream;
  let staging: RecordingUpstream;
  let prod: MutableUpstream;
  let names: Record<string, string>;

  beforeAll(async () => {
    nats = await startNats();
    [stack, dev, staging] = await Promise.all([startStack(nats.url), startRecordingUpstream("dev"), startRecordingUpstream("staging")]);
    // Production runs a newer build whose echo has another description.
    prod = await startMutableUpstream([{ name: "echo", description: "Echoes its message (v2)", inputSchema: { type: "object", properties: { message: { type: "string" } }, required: ["message"] } }]);
    await registerUpstreams(
      stack,
      { name: "tracker", transport: { type: "streamable-http", url: dev.url } },
      { name: "tracker-staging", transport: { type: "streamable-http", url: staging.url } },
      { name: "tracker-prod", transport: { type: "streamable-http", url: prod.url } },
    );
    names = await createVirtualServer(stack, "app", [{ upstream: "tracker", tool: "echo" }]);
    expect((await stack.admin.request("PUT", "/v1/environments/staging", { bindings: { tracker: "tracker-staging" } })).status).toBe(200);
    expect((await stack.admin.request("PUT", "/v1/environments/prod", { bindings: { tracker: "tracker-prod" } })).status).toBe(200);
  });

  afterAll(async () => {
    await stack?.close();
    await Promise.all([dev?.close(), staging?.close(), prod?.close()]);
    await nats?.stop();
  });

  test("an environment serves nothing until promoted to", async () => {
    const res = await fetch(`${stack.gatewayUrl}/mcp/staging/app`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } } }),
    });
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { message: string } }).error.message).toContain("environment 'staging'");
  });

  test("promoted, the same tool names reach each environment's own upstream", async () => {
    expect((await stack.admin.post("/v1/virtual-servers/app/promote", { from: "default", to: "staging" })).status).toBe(200);
    await using inDev = await connectHttp(stack.mcpUrl("app"));
    await using inStaging = await connectHttp(`${stack.gatewayUrl}/mcp/staging/app`);
    const devTools = (await inDev.listTools()).tools;
    const stagingTools = (await inStaging.listTools()).tools;
    expect(stagingTools.map((t) => t.name)).toEqual(devTools.map((t) => t.name));
    await inStaging.callTool({ name: names["tracker/echo"]!, arguments: { message: "to staging" } });
    expect(staging.calls.at(-1)?.arguments).toEqual({ message: "to staging" });
    expect(dev.calls.some((c) => (c.arguments as { message?: string }).message === "to staging")).toBe(false);
  });

  test("promotion to prod is refused with the diff when prod's definitions differ, and forced when asked", async () => {
    const env = { ...process.env, MANIFOLD_REGISTRY_URL: stack.admin.baseUrl, MANIFOLD_ADMIN_TOKEN: ADMIN_TOKEN };
    const cli = await execFileAsync(process.execPath, [CLI, "promote", "app", "--from", "staging", "--to", "prod"], { env }).catch((e: { stdout: string; stderr: string }) => e);
    expect(cli.stdout).toContain(`${names["tracker/echo"]}  description-changed  (tracker-prod/echo)`);
    expect(cli.stderr).toContain("promote with force");
    const refused = await stack.admin.post("/v1/virtual-servers/app/promote", { from: "staging", to: "prod" });
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe("definitions_differ");
    expect(refused.body.error.data.differences[0]).toMatchObject({
      exposedName: names["tracker/echo"],
      upstream: "tracker-prod",
      classification: "description-changed",
      diff: expect.arrayContaining([{ op: "replace", path: "/description", value: "Echoes its message (v2)" }]),
    });
    expect((await stack.admin.post("/v1/virtual-servers/app/promote", { from: "staging", to: "prod", force: true })).status).toBe(200);
    await using inProd = await connectHttp(`${stack.gatewayUrl}/mcp/prod/app`);
    const [tool] = (await inProd.listTools()).tools;
    // Prod serves the promoted pin (staging's definition), under the same name.
    expect(tool).toMatchObject({ name: names["tracker/echo"], description: "Echoes its message" });
    expect((await inProd.callTool({ name: names["tracker/echo"]!, arguments: { message: "to prod" } })).content).toEqual([
      { type: "text", text: `echo: ${JSON.stringify({ message: "to prod" })}` },
    ]);
    const audit = await stack.admin.get("/v1/audit?virtualServer=app");
    expect(audit.status).toBe(200);
  });

  test("drift is reviewed per environment: prod's is listed and accepted in prod, and only prod's agents see the new definition", async () => {
    const echo = names["tracker/echo"]!;
    const drift = async (query: string) => (await stack.admin.get(`/v1/virtual-servers/app/drift${query}`)).body;
    expect((await drift("")).items).toEqual([]);
    const inProdDrift = await drift("?environment=prod");
    expect(inProdDrift).toMatchObject({ environment: "prod", items: [{ exposedName: echo, upstream: "tracker-prod", classification: "description-changed" }] });
    expect((await drift("?environment=qa")).error).toEqual({ code: "not_found", message: "environment 'qa' does not exist" });
    const env = { ...process.env, MANIFOLD_REGISTRY_URL: stack.admin.baseUrl, MANIFOLD_ADMIN_TOKEN: ADMIN_TOKEN };
    const cli = await execFileAsync(process.execPath, [CLI, "drift", "app", "--environment", "prod"], { env });
    expect(cli.stdout).toContain(`${echo}  description-changed  (tracker-prod/echo)`);

    await using inProd = await connectHttp(`${stack.gatewayUrl}/mcp/prod/app`);
    await using inDev = await connectHttp(stack.mcpUrl("app"));
    const accepted = await execFileAsync(process.execPath, [CLI, "accept", "app", echo, "-e", "prod"], { env });
    expect(accepted.stdout).toBe(`accepted drift of ${echo} on app in prod\n`);
    expect((await drift("?environment=prod")).items).toEqual([]);
    await eventually(async () => ((await inProd.listTools()).tools[0]?.description === "Echoes its message (v2)" ? true : undefined), 1_000);
    expect((await inDev.listTools()).tools[0]?.description).toBe("Echoes its message");

    // auto-compatible adopts a compatible change in prod without review, and in prod only.
    expect((await stack.admin.request("PUT", "/v1/virtual-servers/app/drift-policy", { policy: "auto-compatible" })).status).toBe(200);
    await prod.change([
      {
        name: "echo",
        description: "Echoes its message (v2)",
        inputSchema: { type: "object", properties: { message: { type: "string" }, loud: { type: "boolean" } }, required: ["message"] },
      },
    ]);
    const adopted = await eventually(async () => {
      const [tool] = (await inProd.listTools()).tools;
      return tool?.inputSchema.properties && "loud" in tool.inputSchema.properties ? tool : undefined;
    }, 5_000);
    expect(adopted.name).toBe(echo);
    expect((await inDev.listTools()).tools[0]?.inputSchema.properties).not.toHaveProperty("loud");
    expect((await drift("?environment=prod")).items).toEqual([]);
    const repinned = (await stack.admin.get("/v1/virtual-servers/app/history")).body.items.filter((e: { type: string }) => e.type.endsWith("-repinned"));
    expect(repinned).toMatchObject([
      { type: "virtual-server.tool-repinned", actor: "admin:admin", data: { environment: "prod" } },
      { type: "virtual-server.tools-repinned", actor: "registry", data: { environment: "prod", tools: [{ exposedName: echo }] } },
    ]);
  });

  test("an environment deleted and created again serves nothing of its previous life until promoted to again", async () => {
    expect((await stack.admin.request("DELETE", "/v1/environments/staging")).status).toBe(204);
    // Made again, bound elsewhere: before, staging's old pins were served at once, to the new binding.
    expect((await stack.admin.request("PUT", "/v1/environments/staging", { bindings: { tracker: "tracker-prod" } })).status).toBe(200);
    const initialize = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } } });
    const res = await fetch(`${stack.gatewayUrl}/mcp/staging/app`, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream" }, body: initialize });
    expect(res.status).toBe(404);
    const app = (await stack.admin.get("/v1/virtual-servers/app")).body as { environments: Record<string, unknown> };
    expect(Object.keys(app.environments)).toEqual(["prod"]);
  });
});

describe("prompts, resources and templates across environments", () => {
  let nats: NatsServer;
  let stack: Stack;
  let writer: MutableUpstream;
  let writerStaging: MutableUpstream;
  let prompt: string;
  const draft = { name: "draft", description: "Drafts a reply", arguments: [{ name: "topic", required: true }] };
  const draftV2 = { ...draft, arguments: [...draft.arguments, { name: "tone" }] };
  const FEATURES = "pipe+demo://resource/static/document/features.md";
  const TEMPLATE = "pipe+demo://resource/dynamic/text/{resourceId}";
  const stagingUrl = () => `${stack.gatewayUrl}/mcp/staging/desk`;

  beforeAll(async () => {
    nats = await startNats();
    [stack, writer, writerStaging] = await Promise.all([startStack(nats.url), startMutableUpstream([], "1.0.0", [draft]), startMutableUpstream([], "1.0.0", [draft])]);
    await registerUpstreams(
      stack,
      { name: "writer", transport: { type: "streamable-http", url: writer.url } },
      { name: "writer-staging", transport: { type: "streamable-http", url: writerStaging.url } },
      { name: "pipe", transport: everythingStdio() },
      { name: "pipe-staging", transport: everythingStdio() },
    );
    const created = await stack.admin.post("/v1/virtual-servers", {
      name: "desk",
      prompts: [{ upstream: "writer", prompt: "draft" }],
      resources: [
        { upstream: "pipe", uri: "demo://resource/static/document/features.md" },
        { upstream: "pipe", uriTemplate: "demo://resource/dynamic/text/{resourceId}" },
      ],
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    prompt = created.body.prompts[0].exposedName;
    expect((await stack.admin.request("PUT", "/v1/environments/staging", { bindings: { writer: "writer-staging", pipe: "pipe-staging" } })).status).toBe(200);
  });

  afterAll(async () => {
    await stack?.close();
    await Promise.all([writer?.close(), writerStaging?.close()]);
    await nats?.stop();
  });

  test("promotion pins them in the environment, which serves them under the same names from its own upstreams", async () => {
    const promoted = await stack.admin.post("/v1/virtual-servers/desk/promote", { from: "default", to: "staging" });
    expect(promoted.status, JSON.stringify(promoted.body)).toBe(200);
    // The view counts what staging pins; the pins are on their own route.
    expect(promoted.body.environments.staging).toEqual({ tools: 0, prompts: 1, resources: 1, resourceTemplates: 1 });
    const pins = async (kind: string) => (await stack.admin.get(`/v1/virtual-servers/desk/environments/staging?kind=${kind}`)).body.items;
    expect(await pins("prompts")).toMatchObject([{ exposedName: prompt, upstream: "writer", prompt: "draft" }]);
    expect(await pins("resources")).toMatchObject([{ exposedUri: FEATURES }]);
    expect(await pins("resourceTemplates")).toMatchObject([{ exposedUriTemplate: TEMPLATE }]);
    await using inDefault = await connectHttp(stack.mcpUrl("desk"));
    await using inStaging = await connectHttp(stagingUrl());
    for (const agent of [inDefault, inStaging]) {
      expect((await agent.listPrompts()).prompts.map((p) => p.name)).toEqual([prompt]);
      expect((await agent.listResources()).resources.map((r) => r.uri)).toEqual([FEATURES]);
      expect((await agent.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate)).toEqual([TEMPLATE]);
      expect((await agent.readResource({ uri: "pipe+demo://resource/dynamic/text/5" })).contents[0]).toMatchObject({ uri: "pipe+demo://resource/dynamic/text/5" });
      expect((await agent.getPrompt({ name: prompt, arguments: { topic: "x" } })).messages[0]!.content).toMatchObject({ text: 'draft: {"topic":"x"}' });
    }
  });

  test("a change of the environment's upstream is drift there only, served from the pin until accepted there", async () => {
    await writerStaging.changePrompts([draftV2]);
    // Prompts', resources' and templates' drift is paged apart from the tools' (`driftScale.int`).
    const drift = async (query: string) => (await stack.admin.get(`/v1/virtual-servers/desk/drift/items${query}`)).body;
    const pending = await eventually(async () => ((await drift("?environment=staging")).items as { key: string }[]).find((d) => d.key === prompt), 10_000, 50);
    expect(pending).toMatchObject({ kind: "prompt", upstream: "writer-staging", original: "draft", classification: "compatible" });
    expect((await drift("")).items).toEqual([]);
    await using inDefault = await connectHttp(stack.mcpUrl("desk"));
    await using inStaging = await connectHttp(stagingUrl());
    expect((await inStaging.listPrompts()).prompts[0]!.arguments).toEqual(draft.arguments);
    // Accepting without the environment finds nothing pending in the default one.
    expect((await stack.admin.post(`/v1/virtual-servers/desk/drift/${prompt}/accept`, {})).status).toBe(404);
    const env = { ...process.env, MANIFOLD_REGISTRY_URL: stack.admin.baseUrl, MANIFOLD_ADMIN_TOKEN: ADMIN_TOKEN };
    expect((await execFileAsync(process.execPath, [CLI, "accept", "desk", prompt, "-e", "staging"], { env })).stdout).toBe(`accepted drift of ${prompt} on desk in staging\n`);
    expect((await drift("?environment=staging")).items).toEqual([]);
    await eventually(async () => ((await inStaging.listPrompts()).prompts[0]!.arguments?.length === 2 ? true : undefined), 2_000);
    expect((await inDefault.listPrompts()).prompts[0]!.arguments).toEqual(draft.arguments);
  });

  test("auto-compatible adopts a compatible change of the environment's prompt there, and there only", async () => {
    expect((await stack.admin.request("PUT", "/v1/virtual-servers/desk/drift-policy", { policy: "auto-compatible" })).status).toBe(200);
    await writerStaging.changePrompts([{ ...draftV2, arguments: [...draftV2.arguments, { name: "length" }] }]);
    await using inDefault = await connectHttp(stack.mcpUrl("desk"));
    await using inStaging = await connectHttp(stagingUrl());
    await eventually(async () => ((await inStaging.listPrompts()).prompts[0]!.arguments?.length === 3 ? true : undefined), 10_000, 50);
    expect((await inDefault.listPrompts()).prompts[0]!.arguments).toEqual(draft.arguments);
    const repinned = (await stack.admin.get("/v1/virtual-servers/desk/history")).body.items.filter((e: { type: string }) => e.type.endsWith("-repinned"));
    expect(repinned).toMatchObject([
      { type: "virtual-server.item-repinned", actor: "admin:admin", data: { kind: "prompt", key: prompt, environment: "staging" } },
      { type: "virtual-server.items-repinned", actor: "registry", data: { environment: "staging", items: [{ kind: "prompt", key: prompt }] } },
    ]);
    expect((await stack.admin.request("PUT", "/v1/virtual-servers/desk/drift-policy", { policy: "pinned" })).status).toBe(200);
  });

  test("changing the default selection leaves the environment's pins alone; each reaches its own upstream", async () => {
    expect((await stack.admin.post("/v1/virtual-servers/desk/resources/remove", { uris: [FEATURES] })).status).toBe(200);
    await using inDefault = await connectHttp(stack.mcpUrl("desk"));
    await using inStaging = await connectHttp(stagingUrl());
    expect((await inDefault.listResources()).resources).toEqual([]);
    expect((await rpcError(inDefault.readResource({ uri: FEATURES }))).code).toBe(-32602);
    expect((await inStaging.listResources()).resources.map((r) => r.uri)).toEqual([FEATURES]);
    expect((await inStaging.readResource({ uri: FEATURES })).contents[0]).toMatchObject({ uri: FEATURES });
    // With the default environment's upstream gone, staging's prompt still answers: it is routed to writer-staging.
    await writer.close();
    expect((await rpcError(inDefault.getPrompt({ name: prompt, arguments: { topic: "x" } }))).data).toMatchObject({ code: expect.stringMatching(/^upstream_/) });
    expect((await inStaging.getPrompt({ name: prompt, arguments: { topic: "x", tone: "dry" } })).messages[0]!.content).toMatchObject({ text: 'draft: {"topic":"x","tone":"dry"}' });
  });
});
