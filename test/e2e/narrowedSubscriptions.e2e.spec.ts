import type { NatsServer } from "@manifold/nats-server";
import { ResourceUpdatedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { connectWithKey, eventually } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";
import { everythingStdio } from "../helpers/upstreams.js";

const FEATURES = "pipe+demo://resource/static/document/features.md";

// attack (tasks and subscriptions review, helper-102): a 2025 session's subscriptions were filtered with the
// denials the session opened with. After eve's grant was narrowed to deny the resource (reads refused, the list
// empty), her session went on hearing when it changed: 3 updates in the next 16 s.
describe("a 2025 session's resource updates follow its caller's grant as it is now", () => {
  let nats: NatsServer;
  let stack: Stack;
  let keys: Record<string, string>;
  let toggle = "";

  beforeAll(async () => {
    nats = await startNats();
    stack = await startStack(nats.url, { GATEWAY_AUTH: "required" });
    await registerUpstreams(stack, { name: "pipe", transport: everythingStdio() });
    const created = await stack.admin.post("/v1/virtual-servers", {
      name: "vault",
      tools: [{ upstream: "pipe", tool: "toggle-subscriber-updates" }],
      resources: [{ upstream: "pipe", uri: "demo://resource/static/document/features.md" }],
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    toggle = created.body.tools[0].exposedName;
    keys = await grantedConsumers(stack, "vault", ["eve", "free"]);
  });
  afterAll(async () => {
    await stack?.close();
    await nats?.stop();
  });

  test("a grant narrowed to deny a subscribed resource stops its updates on the open session", async () => {
    const connect = (key: string) => connectWithKey(stack.mcpUrl("vault"), key);
    const [eve, free] = await Promise.all([connect(keys.eve!), connect(keys.free!)]);
    const heard: number[] = [];
    eve.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void (n.params.uri === FEATURES && heard.push(Date.now())));
    await eve.subscribeResource({ uri: FEATURES });
    // server-everything then reports an update of each subscribed resource every few seconds.
    await free.callTool({ name: toggle, arguments: {} });
    await eventually(async () => (heard.length > 0 ? true : undefined), 15_000, 100);
    expect((await stack.admin.request("DELETE", "/v1/virtual-servers/vault/grants/eve")).status).toBeLessThan(300);
    expect((await stack.admin.post("/v1/virtual-servers/vault/grants", { grantId: "eve", subject: { consumer: "eve" }, deniedResources: [FEATURES] })).status).toBe(201);
    await eventually(async () => ((await eve.readResource({ uri: FEATURES }).then(() => "read", () => "refused")) === "refused" ? true : undefined), 5_000, 50);
    const narrowedAt = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 11_000));
    expect(heard.filter((at) => at > narrowedAt)).toEqual([]);
    await free.callTool({ name: toggle, arguments: {} });
    await Promise.all([eve.close(), free.close()]);
  }, 60_000);
});
