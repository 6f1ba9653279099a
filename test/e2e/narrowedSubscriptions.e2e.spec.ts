import type { NatsServer } from "@manifold/nats-server";
import { ResourceUpdatedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { connectWithKey, eventually } from "../helpers/mcp.js";
import { rawSession } from "../helpers/itemStreams.js";
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
    keys = await grantedConsumers(stack, "vault", ["eve", "free", "mallory", "steady"]);
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

  // helper-159: an update that came while the session had no GET stream was checked against the
  // grant as it came and kept, and told on the next stream with no look at the grant again: a
  // grant narrowed in between still delivered it.
  test("an update kept for a session without a stream is not told once the grant denies its resource", async () => {
    const url = stack.mcpUrl("vault");
    // Two sessions without a stream: mallory's grant is narrowed before it opens one, steady's is not.
    const [mallory, steady] = await Promise.all([rawSession(url, keys.mallory!), rawSession(url, keys.steady!)]);
    for (const session of [mallory, steady]) expect((await session("resources/subscribe", { uri: FEATURES })).status).toBe(200);
    const free = await connectWithKey(url, keys.free!);
    const heard: number[] = [];
    free.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void (n.params.uri === FEATURES && heard.push(Date.now())));
    await free.subscribeResource({ uri: FEATURES });
    await free.callTool({ name: toggle, arguments: {} });
    // The update that reached `free` reached mallory's session too, which has no stream: it is kept.
    await eventually(async () => (heard.length > 0 ? true : undefined), 15_000, 100);
    await free.callTool({ name: toggle, arguments: {} });
    expect((await stack.admin.request("DELETE", "/v1/virtual-servers/vault/grants/mallory")).status).toBeLessThan(300);
    expect((await stack.admin.post("/v1/virtual-servers/vault/grants", { grantId: "mallory", subject: { consumer: "mallory" }, deniedResources: [FEATURES] })).status).toBe(201);
    await eventually(async () => ((await mallory("resources/read", { uri: FEATURES })).error ? true : undefined), 5_000, 50);
    // Now both open their stream.
    const toldOnStream = async (headers: Record<string, string>) => {
      const closing = new AbortController();
      const stream = await fetch(url, { method: "GET", signal: closing.signal, headers: { ...headers, accept: "text/event-stream" } });
      expect(stream.status).toBe(200);
      let text = "";
      const reader = stream.body!.getReader();
      const reading = (async () => {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return;
          text += Buffer.from(value).toString();
        }
      })().catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      closing.abort();
      await reading;
      return text.split("\n").filter((line) => line.startsWith("data:") && line.includes("notifications/resources/updated")).length;
    };
    const [toldMallory, toldSteady] = await Promise.all([toldOnStream(mallory.headers), toldOnStream(steady.headers)]);
    console.log(`[measure] kept updates told on the stream each session opened: mallory (grant narrowed since) ${toldMallory}, steady ${toldSteady}`);
    expect(toldSteady).toBe(1);
    expect(toldMallory).toBe(0);
    await free.close();
  }, 60_000);
});
