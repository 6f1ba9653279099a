import type { NatsServer } from "@manifold/nats-server";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { serveModernTasksHttp } from "../fixtures/modern-tasks-upstream.mjs";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { declaring, modernRequest } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

const KEY_ENV = { GATEWAY_REQUEST_STATE_KEY: "env:MANIFOLD_SECRET_STATE_KEY", MANIFOLD_SECRET_STATE_KEY: "r".repeat(48) };
const FORM = { elicitation: { form: {} } };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Attack: the admin deletes consumer "alice" and later creates a different consumer under the same
 * name (another team, another key). Everything the gateway binds to a caller is bound to the
 * principal id `consumer:<name>`, a name, not to what the consumer is: the old consumer's 2025
 * session, its task handles and its paused rounds all open for the new "alice". Safe behaviour:
 * a deleted consumer's sessions, handles and rounds die with it; a new consumer of the same name
 * starts with nothing (the principal carries the consumer's creation, e.g. its event sequence).
 */
describe("a consumer re-created under a deleted one's name is someone else", () => {
  let nats: NatsServer;
  let stack: Stack;
  let rec: RecordingUpstream;
  let modern: Awaited<ReturnType<typeof serveModernTasksHttp>>;
  let names: Record<string, string>;
  let url: string;

  const consumerWithKey = async (name: string) => {
    expect((await stack.admin.post("/v1/consumers", { name })).status).toBe(201);
    const key = (await stack.admin.post(`/v1/consumers/${name}/keys`, {})).body.key as string;
    expect((await stack.admin.post("/v1/virtual-servers/desk/grants", { grantId: name, subject: { consumer: name } })).status).toBe(201);
    return key;
  };

  beforeAll(async () => {
    nats = await startNats();
    [stack, rec, modern] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", ...KEY_ENV }), startRecordingUpstream("rec"), serveModernTasksHttp()]);
    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: rec.url } }, { name: "modern", transport: { type: "streamable-http", url: modern.url } });
    names = await createVirtualServer(stack, "desk", [
      { upstream: "rec", tool: "echo" },
      { upstream: "rec", tool: "ask-then-wait" },
      { upstream: "modern", tool: "research" },
    ]);
    url = stack.mcpUrl("desk");
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    await rec?.close();
    await modern?.close();
    await nats?.stop();
  });

  test("the old alice's session, task handle and paused round are refused to the new alice", async () => {
    const oldKey = await consumerWithKey("alice");
    // The old alice: a 2025 session, a task of a 2026-07-28 agent, and a call paused for her input.
    const old = new Client({ name: "old-alice", version: "1" });
    const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${oldKey}` } } });
    await old.connect(transport);
    const sessionId = transport.sessionId!;
    const task = await modernRequest(url, oldKey, "tools/call", { name: names["modern/research"], arguments: { topic: "old-alice-private", ms: 100 } });
    const handle = task.result!.taskId as string;
    const args = { ms: 10, tag: "old-alice-round" };
    const paused = await modernRequest(url, oldKey, "tools/call", { name: names["rec/ask-then-wait"], arguments: args }, declaring(FORM, false));
    expect(paused.result?.resultType, JSON.stringify(paused)).toBe("input_required");
    const question = Object.keys(paused.result!.inputRequests as Record<string, unknown>)[0]!;

    // The admin deletes alice; her key is dead at once.
    expect((await stack.admin.request("DELETE", "/v1/consumers/alice")).status).toBe(204);
    await sleep(100);
    expect((await modernRequest(url, oldKey, "tools/list", {}, declaring({}, false))).status).toBe(401);
    // Her grant went with her: a grant names a consumer by name, and the name is free again.
    const grants = (await stack.admin.get("/v1/virtual-servers/desk/grants")).body as { items: unknown[]; total: number };
    expect(Array.isArray(grants.items)).toBe(true);
    expect(JSON.stringify(grants.items)).not.toContain('"alice"');
    // Someone else is given the name.
    const newKey = await consumerWithKey("alice");
    const inherited: string[] = [];

    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${newKey}`, "mcp-session-id": sessionId, "mcp-protocol-version": "2025-06-18" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 9, method: "tools/call", params: { name: names["rec/echo"], arguments: { message: "in the old session" } } }),
    });
    const body = await res.text();
    if (res.status === 200 && body.includes("echo: in the old session")) inherited.push(`the old 2025 session ${sessionId.slice(0, 8)}… serves the new key (HTTP ${res.status})`);

    const got = await modernRequest(url, newKey, "tasks/get", { taskId: handle });
    if (got.result) inherited.push(`the old task handle opens: ${JSON.stringify({ status: got.result.status, result: got.result.result })}`);

    const resumed = await modernRequest(
      url,
      newKey,
      "tools/call",
      { name: names["rec/ask-then-wait"], arguments: args, requestState: paused.result!.requestState, inputResponses: { [question]: { action: "accept", content: {} } } },
      declaring(FORM, false),
    );
    if (resumed.result) inherited.push(`the old paused round resumes: ${JSON.stringify(resumed.result.content)}; the upstream acted on the new alice's answer ${rec.calls.filter((c) => (c.arguments as { tag?: string }).tag === "old-alice-round").length} time(s)`);

    await old.close().catch(() => undefined);
    expect(inherited, `a new consumer under a deleted one's name inherited: ${inherited.join("; ")}`).toEqual([]);
  }, 60_000);
});
