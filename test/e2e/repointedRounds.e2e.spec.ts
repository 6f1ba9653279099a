import type { NatsServer } from "@manifold/nats-server";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { declaring, modernRequest } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

const KEY_ENV = { GATEWAY_REQUEST_STATE_KEY: "env:MANIFOLD_SECRET_STATE_KEY", MANIFOLD_SECRET_STATE_KEY: "r".repeat(48) };
const FORM = { elicitation: { form: {} } };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Attack (helper-104): a call of `ask-then-wait` (say, "confirm the transfer?") is paused for its
 * agent's answer; meanwhile the admin denies that tool to the caller and gives its exposed name to
 * another, granted tool (`echo`: the old one renamed away without a deprecated alias, the other
 * renamed into its place). The answers are meant to reach the held call only while the caller may
 * still call its tool; the retry looked the route up by exposed name alone, found `echo` (granted),
 * and sent the answers to the held call of the denied `ask-then-wait`, which ran.
 */
describe("a paused round resumes only the tool it was paused on", () => {
  let nats: NatsServer;
  let stack: Stack;
  let rec: RecordingUpstream;
  const keys: Record<string, string> = {};

  /** A virtual server of its own per test: `ask-then-wait` and `echo`, the caller granted both. */
  const setUp = async (vs: string, consumer: string) => {
    const names = await createVirtualServer(stack, vs, [
      { upstream: "rec", tool: "ask-then-wait" },
      { upstream: "rec", tool: "echo" },
    ]);
    Object.assign(keys, await grantedConsumers(stack, vs, [consumer]));
    return { names, url: stack.mcpUrl(vs) };
  };

  /** Denies `ask-then-wait` to the consumer, and hands its exposed name to `echo`; waits until a new call of the name runs `echo`. */
  const repoint = async (vs: string, consumer: string, names: Record<string, string>, url: string) => {
    const ask = names["rec/ask-then-wait"]!;
    let res = await stack.admin.post(`/v1/virtual-servers/${vs}/grants`, { grantId: `${consumer}-narrow`, subject: { consumer }, deniedTools: [{ upstream: "rec", tool: "ask-then-wait" }] });
    expect(res.status, JSON.stringify(res.body)).toBeLessThan(300);
    expect((await stack.admin.request("DELETE", `/v1/virtual-servers/${vs}/grants/${consumer}`)).status).toBe(204);
    res = await stack.admin.post(`/v1/virtual-servers/${vs}/tools/${ask}/rename`, { newName: `${ask}_old`, keepDeprecatedAlias: false });
    expect(res.status, JSON.stringify(res.body)).toBeLessThan(300);
    res = await stack.admin.post(`/v1/virtual-servers/${vs}/tools/${names["rec/echo"]}/rename`, { newName: ask, keepDeprecatedAlias: false });
    expect(res.status, JSON.stringify(res.body)).toBeLessThan(300);
    for (let i = 0; i < 200; i++) {
      const probe = await modernRequest(url, keys[consumer]!, "tools/call", { name: ask, arguments: { message: "probe" } }, declaring({}, false));
      if (probe.result?.content?.[0]?.text?.includes("probe")) return;
      await sleep(10);
    }
    throw new Error("the re-pointed name never reached echo");
  };

  beforeAll(async () => {
    nats = await startNats();
    [stack, rec] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", ...KEY_ENV }), startRecordingUpstream("rec")]);
    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: rec.url } });
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    await rec?.close();
    await nats?.stop();
  });

  test("attack, 2026-07-28 agent: a retry after the name was given to another tool does not resume the denied tool's held call", async () => {
    const { names, url } = await setUp("pay26", "erin");
    const ask = names["rec/ask-then-wait"]!;
    const args = { ms: 10, tag: "repointed-modern" };
    const started = await modernRequest(url, keys.erin!, "tools/call", { name: ask, arguments: args }, declaring(FORM, false));
    expect(started.result?.resultType, JSON.stringify(started)).toBe("input_required");
    const key = Object.keys(started.result!.inputRequests as Record<string, unknown>)[0]!;
    await repoint("pay26", "erin", names, url);
    const retried = await modernRequest(url, keys.erin!, "tools/call", { name: ask, arguments: args, requestState: started.result!.requestState, inputResponses: { [key]: { action: "accept", content: {} } } }, declaring(FORM, false));
    const acted = rec.calls.filter((c) => (c.arguments as { tag?: string }).tag === "repointed-modern");
    // Before: the retry completed ("waited 10 ms": ask-then-wait's answer) and the upstream acted on the answer.
    expect({ acted: acted.length, answer: retried.result?.content ?? retried.error?.data?.code }, JSON.stringify(retried)).toEqual({ acted: 0, answer: "invalid_request_state" });
  }, 60_000);

  test("attack, 2025 agent: the answer given after the name was given to another tool does not resume the denied tool", async () => {
    const { names, url } = await setUp("pay25", "dave");
    const dave = new Client({ name: "dave", version: "1" }, { capabilities: FORM });
    await dave.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${keys.dave}` } } }));
    dave.setRequestHandler(ElicitRequestSchema, async () => {
      await repoint("pay25", "dave", names, url);
      return { action: "accept", content: {} };
    });
    try {
      const outcome = await dave.callTool({ name: names["rec/ask-then-wait"]!, arguments: { ms: 10, tag: "repointed-legacy" } }).then(
        (r) => `completed: ${JSON.stringify(r.content)}`,
        (e: { message: string }) => `refused: ${e.message}`,
      );
      const acted = rec.calls.filter((c) => (c.arguments as { tag?: string }).tag === "repointed-legacy");
      expect({ refused: outcome.startsWith("refused"), acted: acted.length }, outcome).toEqual({ refused: true, acted: 0 });
    } finally {
      await dave.close();
    }
  }, 60_000);
});
