import type { NatsServer } from "@manifold/nats-server";
import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from "@modelcontextprotocol/client";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { registerUpstreams, rpcError } from "../helpers/catalog.js";
import { connectClient, eventually } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";
import { everythingStdio } from "../helpers/upstreams.js";
import { wholeVirtualServer } from "../helpers/admin.js";

type Json = Record<string, any>;
const FEATURES = "pipe+demo://resource/static/document/features.md";
const TEXT_TEMPLATE = "pipe+demo://resource/dynamic/text/{resourceId}";
const BLOB_TEMPLATE = "pipe+demo://resource/dynamic/blob/{resourceId}";

/** What the suite asks of an agent, whichever SDK generation and era it speaks. */
interface Agent {
  capabilities(): Json | undefined;
  listPrompts(): Promise<{ prompts: Json[] }>;
  listResources(): Promise<{ resources: Json[] }>;
  listResourceTemplates(): Promise<{ resourceTemplates: Json[] }>;
  getPrompt(name: string, args?: Record<string, string>): Promise<{ messages: Json[] }>;
  readResource(uri: string): Promise<{ contents: Json[] }>;
  complete(params: Json): Promise<{ completion: { values: string[] } }>;
  close(): Promise<void>;
}
const AGENTS = {
  "1.32.2 client (2025-11-25)": async (url: string, key: string, onSubscribe?: (subscribe: (uri: string) => Promise<unknown>) => void): Promise<Agent> => {
    const c = await connectClient(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${key}` } } }));
    onSubscribe?.((uri) => c.subscribeResource({ uri }));
    return {
      capabilities: () => c.getServerCapabilities(),
      listPrompts: () => c.listPrompts(),
      listResources: () => c.listResources(),
      listResourceTemplates: () => c.listResourceTemplates(),
      getPrompt: (name, args) => c.getPrompt({ name, ...(args ? { arguments: args } : {}) }),
      readResource: (uri) => c.readResource({ uri }),
      complete: (params) => c.complete(params as never),
      close: () => c.close(),
    };
  },
  "2.4.0 client pinned to 2026-07-28": async (url: string, key: string): Promise<Agent> => {
    const c = new ModernClient({ name: "item-grants", version: "1.0.0" }, { versionNegotiation: { mode: { pin: "2026-07-28" } } });
    await c.connect(new ModernTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${key}` } } }));
    return {
      capabilities: () => c.getServerCapabilities(),
      listPrompts: () => c.listPrompts() as never,
      listResources: () => c.listResources() as never,
      listResourceTemplates: () => c.listResourceTemplates() as never,
      getPrompt: (name, args) => c.getPrompt({ name, ...(args ? { arguments: args } : {}) }) as never,
      readResource: (uri) => c.readResource({ uri }, { cacheMode: "bypass" }) as never,
      complete: (params) => c.complete(params as never) as never,
      close: () => c.close(),
    };
  },
};

/** A refusal with the name it was about replaced: a denied item's must equal a non-existent one's. */
const shape = (error: { code: number; message: string; data?: unknown }, name: string) =>
  JSON.parse(JSON.stringify({ code: error.code, message: error.message, data: error.data ?? null }).split(JSON.stringify(name).slice(1, -1)).join("<name>"));

/** A stack that requires credentials, server-everything over stdio as `pipe`, virtual server `vault`, and consumers `denied` and `free` with a key each. */
async function startVault(selection: Json) {
  const nats = await startNats();
  const stack = await startStack(nats.url, { GATEWAY_AUTH: "required" });
  await registerUpstreams(stack, { name: "pipe", transport: everythingStdio() });
  const created = await stack.admin.post("/v1/virtual-servers", { name: "vault", ...selection });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const keys: Record<string, string> = {};
  for (const name of ["denied", "free"]) {
    expect((await stack.admin.post("/v1/consumers", { name })).status).toBe(201);
    keys[name] = (await stack.admin.post(`/v1/consumers/${name}/keys`, {})).body.key;
  }
  return { nats, stack, vault: created.body as Json, keys };
}

describe.each(Object.entries(AGENTS))("grants deny prompts and resources by identity, agent: %s", (_kind, connect) => {
  let nats: NatsServer;
  let stack: Stack;
  let prompts: Record<string, string>;
  let keys: Record<string, string>;
  const agents: Agent[] = [];
  const agent = async (consumer: string) => {
    const a = await connect(stack.mcpUrl("vault"), keys[consumer]!);
    agents.push(a);
    return a;
  };

  beforeAll(async () => {
    let vault: Json;
    ({ nats, stack, vault, keys } = await startVault({
      prompts: ["simple-prompt", "args-prompt", "completable-prompt"].map((prompt) => ({ upstream: "pipe", prompt })),
      resources: [
        { upstream: "pipe", uri: "demo://resource/static/document/features.md" },
        { upstream: "pipe", uri: "demo://resource/static/document/architecture.md" },
        { upstream: "pipe", uriTemplate: "demo://resource/dynamic/text/{resourceId}" },
        { upstream: "pipe", uriTemplate: "demo://resource/dynamic/blob/{resourceId}" },
      ],
    }));
    prompts = Object.fromEntries(vault.prompts.map((p: Json) => [p.prompt, p.exposedName]));
    // Denied by exposed name, exposed URI, exposed URI a template expands to, and identity: recorded as identities.
    const granted = await stack.admin.post("/v1/virtual-servers/vault/grants", {
      grantId: "denied",
      subject: { consumer: "denied" },
      deniedPrompts: [prompts["completable-prompt"]],
      deniedResources: [FEATURES, "pipe+demo://resource/dynamic/blob/1", { upstream: "pipe", uriTemplate: "demo://resource/dynamic/text/{resourceId}" }],
    });
    expect(granted.status, JSON.stringify(granted.body)).toBe(201);
    expect(granted.body).toMatchObject({
      deniedPrompts: [{ upstream: "pipe", prompt: "completable-prompt" }],
      deniedResources: [
        { upstream: "pipe", uriTemplate: "demo://resource/dynamic/text/{resourceId}" },
        { upstream: "pipe", uri: "demo://resource/dynamic/blob/1" },
        { upstream: "pipe", uri: "demo://resource/static/document/features.md" },
      ],
    });
    expect((await stack.admin.post("/v1/virtual-servers/vault/grants", { grantId: "free", subject: { consumer: "free" } })).status).toBe(201);
  });

  afterAll(async () => {
    await Promise.all(agents.map((a) => a.close().catch(() => undefined)));
    await stack?.close();
    await nats?.stop();
  });

  test("a denied prompt, resource and template are not listed to their subject; another consumer sees them all", async () => {
    const [denied, free] = [await agent("denied"), await agent("free")];
    expect((await free.listPrompts()).prompts.map((p) => p.name).sort()).toEqual(Object.values(prompts).sort());
    expect((await denied.listPrompts()).prompts.map((p) => p.name).sort()).toEqual([prompts["args-prompt"], prompts["simple-prompt"]].sort());
    expect((await free.listResources()).resources.map((r) => r.uri)).toContain(FEATURES);
    expect((await denied.listResources()).resources.map((r) => r.uri)).toEqual(["pipe+demo://resource/static/document/architecture.md"]);
    expect((await free.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate).sort()).toEqual([BLOB_TEMPLATE, TEXT_TEMPLATE]);
    // The blob template is closed to it too: one of its URIs is denied (see the next test).
    expect((await denied.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate)).toEqual([]);
    // Still served what it was not denied: capabilities stay, since something of each kind is left.
    expect(denied.capabilities()).toMatchObject({ prompts: {}, resources: {}, completions: {} });
  });

  test("denied items are unreachable with the same answer as items that do not exist; the other consumer reaches them", async () => {
    const [denied, free] = [await agent("denied"), await agent("free")];
    const prompt = prompts["completable-prompt"]!;
    const args = { department: "Engineering", name: "Alice" };
    expect((await free.getPrompt(prompt, args)).messages.length).toBeGreaterThan(0);
    const ghostPrompt = "ghost-prompt-x";
    expect(shape(await rpcError(denied.getPrompt(prompt, args)), prompt)).toEqual(shape(await rpcError(denied.getPrompt(ghostPrompt, args)), ghostPrompt));
    const completion = (name: string) => ({ ref: { type: "ref/prompt", name }, argument: { name: "department", value: "Eng" } });
    expect((await free.complete(completion(prompt))).completion.values).toEqual(["Engineering"]);
    expect(shape(await rpcError(denied.complete(completion(prompt))), prompt)).toEqual(shape(await rpcError(denied.complete(completion(ghostPrompt))), ghostPrompt));

    // A denied resource, a denied template's expansion, a denied URI of a template and the rest of
    // that template: each like a URI never exposed. The upstream serves blob 1 under other spellings
    // too (01, 1.0, 0x1, +1), which once read the denied resource: a URI cannot be denied alone inside
    // a template, so denying one closes the template to the grant's subject.
    const ghostUri = "pipe+demo://resource/static/document/ghost.md";
    const never = shape(await rpcError(denied.readResource(ghostUri)), ghostUri);
    const blob = (id: string) => `pipe+demo://resource/dynamic/blob/${id}`;
    for (const uri of [FEATURES, "pipe+demo://resource/dynamic/text/3", blob("1"), blob("01"), blob("1.0"), blob("0x1"), blob("+1"), blob("2")]) {
      expect((await free.readResource(uri)).contents[0]!.uri, uri).toBe(uri);
      expect(shape(await rpcError(denied.readResource(uri)), uri), uri).toEqual(never);
    }
    const templateCompletion = (uri: string) => ({ ref: { type: "ref/resource", uri }, argument: { name: "resourceId", value: "4" } });
    expect((await free.complete(templateCompletion(TEXT_TEMPLATE))).completion.values).toEqual(["4"]);
    const ghostTemplate = "pipe+demo://resource/dynamic/ghost/{resourceId}";
    expect(shape(await rpcError(denied.complete(templateCompletion(TEXT_TEMPLATE))), TEXT_TEMPLATE)).toEqual(shape(await rpcError(denied.complete(templateCompletion(ghostTemplate))), ghostTemplate));
  });

  test("re-aliasing the denied prompt does not widen the grant: the new name is denied too", async () => {
    const old = prompts["completable-prompt"]!;
    expect((await stack.admin.post("/v1/virtual-servers/vault/prompts/remove", { exposedNames: [old] })).status).toBe(200);
    const reselected = await stack.admin.post("/v1/virtual-servers/vault/prompts", { prompts: [{ upstream: "pipe", prompt: "completable-prompt", alias: `fresh-${old.length}` }] });
    expect(reselected.status, JSON.stringify(reselected.body)).toBe(200);
    prompts["completable-prompt"] = `fresh-${old.length}`;
    const [denied, free] = [await agent("denied"), await agent("free")];
    expect((await free.listPrompts()).prompts.map((p) => p.name)).toContain(`fresh-${old.length}`);
    expect((await denied.listPrompts()).prompts.map((p) => p.name)).not.toContain(`fresh-${old.length}`);
    expect((await rpcError(denied.getPrompt(`fresh-${old.length}`, { department: "Engineering", name: "Alice" }))).code).toBe(-32602);
    // The grant as recorded never changed.
    expect((await wholeVirtualServer(stack.admin, "vault")).grants.find((g: Json) => g.grantId === "denied").deniedPrompts).toEqual([{ upstream: "pipe", prompt: "completable-prompt" }]);
  });

  test("promoted into an environment, the same identities stay denied there", async () => {
    expect((await stack.admin.request("PUT", "/v1/environments/staging", { bindings: {} })).status).toBe(200);
    expect((await stack.admin.post("/v1/virtual-servers/vault/promote", { from: "default", to: "staging" })).status).toBe(200);
    const inStaging = async (consumer: string) => {
      const a = await connect(`${stack.gatewayUrl}/mcp/staging/vault`, keys[consumer]!);
      agents.push(a);
      return a;
    };
    const [denied, free] = [await inStaging("denied"), await inStaging("free")];
    expect((await free.listPrompts()).prompts.map((p) => p.name)).toContain(prompts["completable-prompt"]);
    expect((await denied.listPrompts()).prompts.map((p) => p.name)).not.toContain(prompts["completable-prompt"]);
    expect((await free.readResource(FEATURES)).contents[0]!.uri).toBe(FEATURES);
    expect((await rpcError(denied.readResource(FEATURES))).code).toBe(-32602);
  });
});

describe("a subject denied a resource hears nothing of it: resources/subscribe (2025-11-25) and listen streams (2026-07-28)", () => {
  let nats: NatsServer;
  let stack: Stack;
  let toggle: string;
  let keys: Record<string, string>;
  const ARCHITECTURE = "pipe+demo://resource/static/document/architecture.md";

  beforeAll(async () => {
    let vault: Json;
    ({ nats, stack, vault, keys } = await startVault({
      tools: [{ upstream: "pipe", tool: "toggle-subscriber-updates" }],
      resources: [{ upstream: "pipe", uri: "demo://resource/static/document/features.md" }, { upstream: "pipe", uri: "demo://resource/static/document/architecture.md" }],
    }));
    toggle = vault.tools[0].exposedName;
    expect((await stack.admin.post("/v1/virtual-servers/vault/grants", { grantId: "d", subject: { consumer: "denied" }, deniedResources: [FEATURES] })).status).toBe(201);
    expect((await stack.admin.post("/v1/virtual-servers/vault/grants", { grantId: "f", subject: { consumer: "free" } })).status).toBe(201);
  });
  afterAll(async () => {
    await stack?.close();
    await nats?.stop();
  });

  test("subscribing to the denied URI is refused like an unknown one; the allowed one subscribes", async () => {
    let subscribe!: (uri: string) => Promise<unknown>;
    const a = await AGENTS["1.32.2 client (2025-11-25)"](stack.mcpUrl("vault"), keys.denied!, (s) => (subscribe = s));
    try {
      const ghost = "pipe+demo://resource/static/document/ghost.md";
      expect(shape(await rpcError(subscribe(FEATURES)), FEATURES)).toEqual(shape(await rpcError(subscribe(ghost)), ghost));
      await expect(subscribe(ARCHITECTURE)).resolves.toEqual({});
    } finally {
      await a.close();
    }
  });

  test("a listen stream acknowledges only the resources it will hear of: not a denied URI, nor an unknown one", async () => {
    const c = new ModernClient({ name: "ack", version: "1.0.0" }, { versionNegotiation: { mode: { pin: "2026-07-28" } } });
    await c.connect(new ModernTransport(new URL(stack.mcpUrl("vault")), { requestInit: { headers: { authorization: `Bearer ${keys.denied}` } } }));
    try {
      const ghost = "pipe+demo://resource/static/document/ghost.md";
      const subscription = await c.listen({ resourceSubscriptions: [FEATURES, ghost, ARCHITECTURE] });
      expect(subscription.honoredFilter.resourceSubscriptions).toEqual([ARCHITECTURE]);
      await subscription.close();
    } finally {
      await c.close();
    }
  });

  test("a listen stream of the denied subject hears no update of the denied URI, while the other consumer's stream does", async () => {
    const listen = async (consumer: string) => {
      const c = new ModernClient({ name: `listen-${consumer}`, version: "1.0.0" }, { versionNegotiation: { mode: { pin: "2026-07-28" } } });
      await c.connect(new ModernTransport(new URL(stack.mcpUrl("vault")), { requestInit: { headers: { authorization: `Bearer ${keys[consumer]}` } } }));
      const heard: string[] = [];
      c.setNotificationHandler("notifications/resources/updated", (n) => void heard.push(n.params.uri));
      await c.listen({ resourceSubscriptions: [FEATURES] });
      return { c, heard };
    };
    const [denied, free] = [await listen("denied"), await listen("free")];
    try {
      // server-everything sends an update of each subscribed URI at once, then every 5 s, while toggled on.
      await free.c.callTool({ name: toggle, arguments: {} });
      await eventually(() => (free.heard.length > 0 ? true : undefined), 8_000, 50);
      expect(free.heard[0]).toBe(FEATURES);
      // Both streams would hear one fan-out at the same moment: a while later, the denied one has still heard nothing.
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(denied.heard).toEqual([]);
      await free.c.callTool({ name: toggle, arguments: {} });
    } finally {
      await Promise.all([denied.c.close(), free.c.close()]);
    }
  });
});
