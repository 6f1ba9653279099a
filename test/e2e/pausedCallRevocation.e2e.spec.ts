import type { NatsServer } from "@manifold/nats-server";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { declaring, modernRequest } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

const KEY_ENV = { GATEWAY_REQUEST_STATE_KEY: "env:MANIFOLD_SECRET_STATE_KEY", MANIFOLD_SECRET_STATE_KEY: "p".repeat(48) };
const FORM = { elicitation: { form: {} } };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Attack: a call is paused for its agent's input (the upstream asks before it acts, e.g. "confirm
 * the transfer?"); meanwhile the admin denies the tool in the agent's grant. `resumeRound` is
 * meant to re-check the route ("a tool denied or deselected since the round began is not
 * resumed"), but a 2025 call resumes with the access admitted for the *original* request
 * (`call.access` captured when tools/call arrived), so the agent's answer goes upstream and the
 * denied tool completes. A 2026-07-28 retry is a new request with fresh access (control).
 */
describe("a call paused for input is not resumed once its tool is denied", () => {
  let nats: NatsServer;
  let stack: Stack;
  let rec: RecordingUpstream;
  let names: Record<string, string>;
  const keys: Record<string, string> = {};
  let url: string;

  const deny = async (consumer: string) => {
    const res = await stack.admin.post("/v1/virtual-servers/pay/grants", { grantId: `${consumer}-narrow`, subject: { consumer }, deniedTools: [{ upstream: "rec", tool: "ask-then-wait" }] });
    expect(res.status, JSON.stringify(res.body)).toBeLessThan(300);
    expect((await stack.admin.request("DELETE", `/v1/virtual-servers/pay/grants/${consumer}`)).status).toBe(204);
    const at = Date.now();
    for (let i = 0; i < 200; i++) {
      const probe = await modernRequest(url, keys[consumer]!, "tools/call", { name: names["rec/ask-then-wait"], arguments: { ms: 1, tag: "probe" } }, declaring({}, false));
      if (probe.error?.data?.code === "unknown_tool") return at;
      await sleep(10);
    }
    throw new Error("the denial never took effect for new calls");
  };

  beforeAll(async () => {
    nats = await startNats();
    [stack, rec] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", ...KEY_ENV }), startRecordingUpstream("rec")]);
    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: rec.url } });
    names = await createVirtualServer(stack, "pay", [
      { upstream: "rec", tool: "ask-then-wait" },
      { upstream: "rec", tool: "echo" },
    ]);
    url = stack.mcpUrl("pay");
    Object.assign(keys, await grantedConsumers(stack, "pay", ["dave", "erin"]));
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    await rec?.close();
    await nats?.stop();
  });

  test("2025 agent (SDK 1.x, elicitation mid-call): the answer given after the tool was denied does not reach the upstream, the call does not complete", async () => {
    const dave = new Client({ name: "dave", version: "1" }, { capabilities: FORM });
    await dave.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${keys.dave}` } } }));
    let deniedAt = 0;
    dave.setRequestHandler(ElicitRequestSchema, async () => {
      // The agent's user takes a moment; the admin revokes the tool meanwhile.
      deniedAt = await deny("dave");
      return { action: "accept", content: {} };
    });
    try {
      const outcome = await dave.callTool({ name: names["rec/ask-then-wait"]!, arguments: { ms: 10, tag: "transfer" } }).then(
        (r) => `completed: ${JSON.stringify(r.content)}`,
        (e: { message: string }) => `refused: ${e.message}`,
      );
      const acted = rec.calls.filter((c) => c.tool === "ask-then-wait" && (c.arguments as { tag: string }).tag === "transfer");
      expect(
        { completed: outcome.startsWith("completed"), upstreamActedOnAnswer: acted.length },
        `the 2025 call of the denied tool resumed ${Date.now() - deniedAt} ms after the denial: ${outcome}; the upstream acted on the answer ${acted.length} time(s) (${JSON.stringify(acted.map((c) => c.arguments))})`,
      ).toEqual({ completed: false, upstreamActedOnAnswer: 0 });
    } finally {
      await dave.close();
    }
  }, 60_000);

  test("attack: a 2026-07-28 call resumed by its retry is cancelled upstream when its consumer is deleted", async () => {
    Object.assign(keys, await grantedConsumers(stack, "pay", ["fran"]));
    const args = { ms: 20_000, tag: "held-modern" };
    const started = await modernRequest(url, keys.fran!, "tools/call", { name: names["rec/ask-then-wait"], arguments: args }, declaring(FORM, false));
    expect(started.result?.resultType, JSON.stringify(started)).toBe("input_required");
    const key = Object.keys(started.result!.inputRequests as Record<string, unknown>)[0]!;
    const retry = { name: names["rec/ask-then-wait"], arguments: args, requestState: started.result!.requestState, inputResponses: { [key]: { action: "accept", content: {} } } };
    const retried = modernRequest(url, keys.fran!, "tools/call", retry, declaring(FORM, false)).catch(() => undefined);
    // The answers reached the held call and the upstream works on (20 s).
    await sleep(1_000);
    const deletedAt = Date.now();
    expect((await stack.admin.request("DELETE", "/v1/virtual-servers/pay/grants/fran")).status).toBe(204);
    expect((await stack.admin.request("DELETE", "/v1/consumers/fran")).status).toBe(204);
    // Before: the resumed call was nobody's running call, and the upstream worked on for its 20 s.
    for (let i = 0; i < 60 && !rec.cancelled.includes("held-modern"); i++) await sleep(50);
    expect(rec.cancelled).toContain("held-modern");
    expect(Date.now() - deletedAt).toBeLessThan(3_000);
    await retried;
  }, 60_000);

  test("control, 2026-07-28 agent: a retry with requestState after the tool was denied is refused", async () => {
    const args = { ms: 10, tag: "transfer-modern" };
    const started = await modernRequest(url, keys.erin!, "tools/call", { name: names["rec/ask-then-wait"], arguments: args }, declaring(FORM, false));
    expect(started.result?.resultType, JSON.stringify(started)).toBe("input_required");
    const key = Object.keys(started.result!.inputRequests as Record<string, unknown>)[0]!;
    await deny("erin");
    const retried = await modernRequest(
      url,
      keys.erin!,
      "tools/call",
      { name: names["rec/ask-then-wait"], arguments: args, requestState: started.result!.requestState, inputResponses: { [key]: { action: "accept", content: {} } } },
      declaring(FORM, false),
    );
    expect(retried.error?.data?.code, JSON.stringify(retried)).toBe("unknown_tool");
    expect(rec.calls.filter((c) => (c.arguments as { tag?: string }).tag === "transfer-modern")).toEqual([]);
  }, 60_000);
});
