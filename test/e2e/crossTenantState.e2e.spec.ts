import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { serveModernHttp } from "../fixtures/modern-upstream.mjs";
import { KEY_ENV } from "../helpers/askStack.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { MODERN, modernRequest } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// attack (helper-212, 2026-12-07): mallory holds a valid key for the virtual server alice uses and
// aims at what outlives one request of alice's: a round's requestState (used on another tool),
// her request ids (a cancellation naming them, both eras) and her progress token (the same one,
// at once). Each held before this file was written; it keeps them so.

const ELICITS = { elicitation: { form: {} } };
const LEGACY = "2025-06-18";

describe("mallory reaches none of alice's state on a shared virtual server", () => {
  let nats: NatsServer;
  let stack: Stack;
  let modern: Awaited<ReturnType<typeof serveModernHttp>>;
  let names: Record<string, string>;
  let keys: Record<string, string>;

  beforeAll(async () => {
    nats = await startNats();
    [stack, modern] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", ...KEY_ENV }), serveModernHttp()]);
    await registerUpstreams(stack, { name: "modern", transport: { type: "streamable-http", url: modern.url } });
    names = await createVirtualServer(stack, "shared", ["ask", "echo", "slow", "progress"].map((tool) => ({ upstream: "modern", tool })));
    keys = await grantedConsumers(stack, "shared", ["alice"]);
    // Mallory may not call echo: a state of hers must not reach it either.
    await stack.admin.post("/v1/consumers", { name: "mallory" });
    keys.mallory = (await stack.admin.post("/v1/consumers/mallory/keys", {})).body.key;
    const granted = await stack.admin.post("/v1/virtual-servers/shared/grants", { grantId: "mallory", subject: { consumer: "mallory" }, deniedTools: [names["modern/echo"]] });
    expect(granted.status, JSON.stringify(granted.body)).toBe(201);
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    await modern?.close();
    await nats?.stop();
  });

  const call = (who: string, name: string, params: Record<string, unknown> = {}, capabilities: Record<string, unknown> = ELICITS) =>
    modernRequest(stack.mcpUrl("shared"), keys[who], "tools/call", { name, arguments: {}, ...params }, capabilities);

  test("a requestState minted for one tool resumes no other: named on a granted or a denied tool it is refused, and the round is still its own tool's", async () => {
    const started = await call("mallory", names["modern/ask"]!);
    expect(started.result?.resultType, JSON.stringify(started)).toBe("input_required");
    const requestState = started.result!.requestState as string;
    const inputResponses = { who: { action: "accept", content: { name: "Mallory" } } };
    for (const other of [names["modern/slow"]!, names["modern/echo"]!]) {
      const moved = await call("mallory", other, { arguments: {}, requestState, inputResponses });
      expect(moved.error?.code, JSON.stringify(moved)).toBe(-32602);
      expect(moved.error?.data?.reason, JSON.stringify(moved)).toBe("invalid_request_state");
      expect(JSON.stringify(moved)).not.toContain("Mallory");
    }
    // Neither attempt spent or resumed the round: its own tool's retry completes it.
    const answered = await call("mallory", names["modern/ask"]!, { requestState, inputResponses });
    expect(answered.result?.content?.[0]?.text, JSON.stringify(answered)).toBe('answered: {"action":"accept","content":{"name":"Mallory"}}');
  });

  test("2026-07-28: mallory's notifications/cancelled naming alice's request id cancels nothing", async () => {
    const running = call("alice", names["modern/slow"]!, { arguments: { ms: 1_500 } }, {});
    await new Promise((resolve) => setTimeout(resolve, 300));
    // modernRequest numbers every request 1, alice's call too.
    const res = await fetch(stack.mcpUrl("shared"), {
      method: "POST",
      headers: { authorization: `Bearer ${keys.mallory}`, "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": MODERN, "mcp-method": "notifications/cancelled" },
      body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 1, _meta: { "io.modelcontextprotocol/protocolVersion": MODERN } } }),
    });
    await res.text();
    const done = await running;
    // A cancelled call would answer "cancelled" (the fixture's abort) or the gateway's cancellation error.
    expect(done.result?.content?.[0]?.text, JSON.stringify(done)).toBe("slow done");
  });

  describe("2025 sessions", () => {
    const headers = (key: string, session?: string) => ({
      authorization: `Bearer ${key}`,
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "mcp-protocol-version": LEGACY,
      ...(session ? { "mcp-session-id": session } : {}),
    });
    const post = async (key: string, session: string | undefined, body: unknown) => {
      const res = await fetch(stack.mcpUrl("shared"), { method: "POST", headers: headers(key, session), body: JSON.stringify(body) });
      return { status: res.status, session: res.headers.get("mcp-session-id"), text: await res.text() };
    };
    const open = async (key: string) => {
      const init = await post(key, undefined, { jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: LEGACY, capabilities: {}, clientInfo: { name: "a", version: "1" } } });
      await post(key, init.session!, { jsonrpc: "2.0", method: "notifications/initialized" });
      return init.session!;
    };

    test("mallory's notifications/cancelled on her session, naming alice's request id, cancels nothing; alice's session id is not hers to use", async () => {
      const [alice, mallory] = await Promise.all([open(keys.alice!), open(keys.mallory!)]);
      const running = post(keys.alice!, alice, { jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: names["modern/slow"], arguments: { ms: 1_500 } } });
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect((await post(keys.mallory!, mallory, { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 7 } })).status).toBe(202);
      // With alice's session id and her own key: an unknown session, nothing cancelled.
      expect((await post(keys.mallory!, alice, { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 7 } })).status).toBe(404);
      const done = await running;
      expect(done.text).toContain("slow done");
      // Control: alice's own cancellation of a call like it is heard.
      const own = post(keys.alice!, alice, { jsonrpc: "2.0", id: 8, method: "tools/call", params: { name: names["modern/slow"], arguments: { ms: 1_500 } } });
      await new Promise((resolve) => setTimeout(resolve, 300));
      await post(keys.alice!, alice, { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 8 } });
      expect((await own).text).not.toContain("slow done");
    });

    test("the same progress token at once: each caller hears its own call's progress only", async () => {
      const sessions = await Promise.all([open(keys.alice!), open(keys.mallory!)]);
      const answers = await Promise.all(
        sessions.map((session, i) =>
          post(i === 0 ? keys.alice! : keys.mallory!, session, { jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: names["modern/progress"], arguments: { steps: i === 0 ? 4 : 6 }, _meta: { progressToken: "shared-token" } } }),
        ),
      );
      const progressOf = (text: string) => text.split("\n").filter((l) => l.startsWith("data:") && l.includes("notifications/progress")).map((l) => JSON.parse(l.slice(5)).params);
      const [alices, mallorys] = answers.map((a) => progressOf(a.text));
      expect(alices!.map((p) => p.total), answers[0]!.text).toEqual([4, 4, 4, 4]);
      expect(mallorys!.map((p) => p.total), answers[1]!.text).toEqual([6, 6, 6, 6, 6, 6]);
      expect([...alices!, ...mallorys!].every((p) => p.progressToken === "shared-token")).toBe(true);
    });
  });

  test("2026-07-28: the same progress token at once: each caller hears its own call's progress only", async () => {
    const [alice, mallory] = await Promise.all([
      call("alice", names["modern/progress"]!, { arguments: { steps: 4 }, _meta: { progressToken: "shared-token" } }, {}),
      call("mallory", names["modern/progress"]!, { arguments: { steps: 6 }, _meta: { progressToken: "shared-token" } }, {}),
    ]);
    const totals = (a: typeof alice) => a.messages.filter((m) => m.method === "notifications/progress").map((m) => m.params.total);
    expect(totals(alice), JSON.stringify(alice.messages)).toEqual([4, 4, 4, 4]);
    expect(totals(mallory), JSON.stringify(mallory.messages)).toEqual([6, 6, 6, 6, 6, 6]);
  });
});
