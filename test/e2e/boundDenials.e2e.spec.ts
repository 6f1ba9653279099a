import type { NatsServer } from "@manifold/nats-server";
import type { Prompt, Tool } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startMutableUpstream, type MutableUpstream } from "../fixtures/mutableUpstream.js";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { registerUpstreams } from "../helpers/catalog.js";
import { connectWithKey } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

const note: Tool = { name: "note", description: "Takes a note", inputSchema: { type: "object" } };
const summary: Prompt = { name: "summary", description: "Summarises" };

// attack (registry review, helper-103): a grant denies `a/echo`; an environment binds the logical
// upstream `b` to `a`, and `b/echo` is promoted there. A route carried only the identities of the
// environment's own selections, so `b/echo` in that environment ran `a`'s denied tool (upstream `a`
// recorded the call), and a prompt denied as `pa/summary` was served as `pb/summary`. A pull request
// adding one binding changed what a grant that nobody touched allowed.
describe("a denial binds to the concrete tool or prompt, however an environment reaches it", () => {
  let nats: NatsServer;
  let stack: Stack;
  let a: RecordingUpstream;
  let b: RecordingUpstream;
  let pa: MutableUpstream;
  let pb: MutableUpstream;
  let key = "";
  let echo = "";
  let prompt = "";

  beforeAll(async () => {
    nats = await startNats();
    [stack, a, b, pa, pb] = await Promise.all([
      startStack(nats.url, { GATEWAY_AUTH: "required" }),
      startRecordingUpstream("a"),
      startRecordingUpstream("b"),
      startMutableUpstream([note], "1.0.0", [summary]),
      startMutableUpstream([note], "1.0.0", [summary]),
    ]);
    await registerUpstreams(
      stack,
      { name: "a", transport: { type: "streamable-http", url: a.url } },
      { name: "b", transport: { type: "streamable-http", url: b.url } },
      { name: "pa", transport: { type: "streamable-http", url: pa.url } },
      { name: "pb", transport: { type: "streamable-http", url: pb.url } },
    );
    // Only b's tool and pb's prompt are selected; a's and pa's are denied all the same (a denial may precede a selection).
    const created = await stack.admin.post("/v1/virtual-servers", { name: "app", tools: [{ upstream: "b", tool: "echo" }], prompts: [{ upstream: "pb", prompt: "summary" }] });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    echo = created.body.tools[0].exposedName;
    prompt = created.body.prompts[0].exposedName;
    expect((await stack.admin.post("/v1/consumers", { name: "c" })).status).toBe(201);
    key = (await stack.admin.post("/v1/consumers/c/keys", {})).body.key;
    const grant = await stack.admin.post("/v1/virtual-servers/app/grants", {
      grantId: "c",
      subject: { consumer: "c" },
      deniedTools: [{ upstream: "a", tool: "echo" }],
      deniedPrompts: [{ upstream: "pa", prompt: "summary" }],
    });
    expect(grant.status, JSON.stringify(grant.body)).toBe(201);
    expect((await stack.admin.request("PUT", "/v1/environments/prod", { bindings: { b: "a", pb: "pa" } })).status).toBeLessThan(300);
    expect((await stack.admin.post("/v1/virtual-servers/app/promote", { from: "default", to: "prod" })).status).toBe(200);
  });
  afterAll(async () => {
    await stack?.close();
    await Promise.all([a?.close(), b?.close(), pa?.close(), pb?.close()]);
    await nats?.stop();
  });

  const connect = (url: string) => connectWithKey(url, key);

  test("in the default environment, b's tool and pb's prompt are the caller's", async () => {
    const client = await connect(stack.mcpUrl("app"));
    expect((await client.listTools()).tools.map((t) => t.name)).toEqual([echo]);
    expect((await client.callTool({ name: echo, arguments: { message: "hi" } })).isError).toBeFalsy();
    expect(b.calls.length).toBe(1);
    expect((await client.listPrompts()).prompts.map((p) => p.name)).toEqual([prompt]);
    await client.close();
  });

  test("where b is bound to a, the same names reach a's denied tool and pa's denied prompt: neither is listed nor served", async () => {
    const client = await connect(`${stack.gatewayUrl}/mcp/prod/app`);
    expect((await client.listTools()).tools).toEqual([]);
    const called = await client.callTool({ name: echo, arguments: { message: "reached a" } }).then(
      () => "served",
      (error: Error) => error.message,
    );
    expect(called).toContain("unknown tool");
    expect(a.calls).toEqual([]);
    // Nothing to list: no prompts capability either (-32601), as for a caller granted no prompt.
    const listed = await client.listPrompts().then((r) => r.prompts.map((p) => p.name), (error: Error) => error.message);
    expect(JSON.stringify(listed)).not.toContain(prompt);
    const got = await client.getPrompt({ name: prompt }).then(
      () => "served",
      (error: Error) => error.message,
    );
    expect(got).not.toBe("served");
    await client.close();
  });
});
