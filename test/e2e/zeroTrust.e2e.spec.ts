import type { NatsServer } from "@manifold/nats-server";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startIdentityProvider, type IdentityFixture } from "../fixtures/jwks.js";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, registerUpstreams, rpcError } from "../helpers/catalog.js";
import { connectClient } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";
import { wholeVirtualServer } from "../helpers/admin.js";

const INIT = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } } };
const HEADER = "X-Manifold-Upstream-Headers";
const RENAMED = "sec-renamed-echo";

/** JSON with every non-ASCII character escaped: what an agent can put in a header, whatever the value decodes to. */
const asciiJson = (value: unknown) => JSON.stringify(value).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);

type RpcBody = { jsonrpc: string; id: unknown; error: { code: number; message: string; data: Record<string, unknown> } };

describe("zero trust: grants bind to tools, tokens to consumers that opted in, and callers learn nothing outside their grant", () => {
  let nats: NatsServer;
  let stack: Stack;
  let rec: RecordingUpstream;
  let hidden: RecordingUpstream;
  let idp: IdentityFixture;
  let names: Record<string, string>;
  const keys: Record<string, string> = {};
  const logs: string[] = [];

  const url = (vs: string, environment?: string) => (environment ? `${stack.gatewayUrl}/mcp/${environment}/${vs}` : stack.mcpUrl(vs));
  const agent = (token: string, target = url("ren")) =>
    connectClient(new StreamableHTTPClientTransport(new URL(target), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
  const post = (target: string, authorization: string | undefined, headers: Record<string, string> = {}, body: unknown = INIT) =>
    fetch(target, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...(authorization ? { authorization } : {}), ...headers },
      body: JSON.stringify(body),
    });
  const grant = async (consumer: string, deniedTools: unknown[] = [], vs = "ren") =>
    expect((await stack.admin.post(`/v1/virtual-servers/${vs}/grants`, { grantId: consumer, subject: { consumer }, deniedTools })).status).toBe(201);
  const consumer = async (name: string) => {
    expect((await stack.admin.post("/v1/consumers", { name })).status).toBe(201);
    keys[name] = ((await stack.admin.post(`/v1/consumers/${name}/keys`, {})).body as { key: string }).key;
  };

  beforeAll(async () => {
    nats = await startNats();
    [stack, rec, hidden, idp] = await Promise.all([
      startStack(nats.url, { GATEWAY_AUTH: "required" }, { logs }),
      startRecordingUpstream("rec"),
      startRecordingUpstream("hidden"),
      startIdentityProvider(),
    ]);
    await registerUpstreams(
      stack,
      { name: "rec", transport: { type: "streamable-http", url: rec.url } },
      { name: "rec-staging", transport: { type: "streamable-http", url: rec.url } },
      { name: "hidden", transport: { type: "streamable-http", url: hidden.url } },
    );
    names = await createVirtualServer(stack, "ren", [
      { upstream: "rec", tool: "echo" },
      { upstream: "rec", tool: "add" },
    ]);
    await createVirtualServer(stack, "theirs", [{ upstream: "hidden", tool: "echo" }]);
    for (const name of ["c-old", "c-new", "c-alias", "c-id", "c-all", "free", "demo-agent"]) await consumer(name);

    // Denied by its name before the rename …
    await grant("c-old", [names["rec/echo"]]);
    const renamed = await stack.admin.post(`/v1/virtual-servers/ren/tools/${names["rec/echo"]}/rename`, { newName: RENAMED, keepDeprecatedAlias: true });
    expect(renamed.status, JSON.stringify(renamed.body)).toBeLessThan(300);
    // … by the new name, by the old name that is now a deprecated alias, and by identity after it.
    await grant("c-new", [RENAMED]);
    await grant("c-alias", [names["rec/echo"]]);
    await grant("c-id", [{ upstream: "rec", tool: "echo" }]);
    await grant("c-all", [RENAMED, names["rec/add"]]);
    await grant("free");
    await grant("demo-agent");
    // Promotion: staging binds the logical upstream to another registration; grants follow the tool there too.
    expect((await stack.admin.request("PUT", "/v1/environments/staging", { bindings: { rec: "rec-staging" } })).status).toBeLessThan(300);
    expect((await stack.admin.post("/v1/virtual-servers/ren/promote", { from: "default", to: "staging" })).status).toBeLessThan(300);
    await stack.admin.post("/v1/identity-providers", { name: "corp", issuer: idp.issuer, audience: "manifold", jwksUrl: idp.jwksUrl });
  });

  afterAll(async () => {
    await stack?.close();
    await Promise.all([rec?.close(), hidden?.close(), idp?.close()]);
    await nats?.stop();
  });

  describe("finding 2: renaming never widens a grant", () => {
    test("the grant records the identity, whatever name the admin used", async () => {
      const body = await wholeVirtualServer(stack.admin, "ren");
      const denied = Object.fromEntries((body.grants as { grantId: string; deniedTools: unknown[] }[]).map((g) => [g.grantId, g.deniedTools]));
      for (const c of ["c-old", "c-new", "c-alias", "c-id"]) expect(denied[c]).toEqual([{ upstream: "rec", tool: "echo" }]);
    });

    // (denied via old name before the rename / new name / deprecated alias / identity) × (default, promoted) × (called via each name, and listed)
    test.each(["c-old", "c-new", "c-alias", "c-id"])("%s: neither name is listed or callable, in the default and a promoted environment", async (who) => {
      for (const environment of [undefined, "staging"]) {
        await using client = await agent(keys[who]!, url("ren", environment));
        const listed = (await client.listTools()).tools.map((t) => t.name);
        expect(listed).toEqual([names["rec/add"]]);
        const before = rec.calls.length;
        for (const name of [RENAMED, names["rec/echo"]!]) {
          const error = await rpcError(client.callTool({ name, arguments: { message: "leak" } }));
          expect(error.code).toBe(-32602);
          expect(error.data).toMatchObject({ code: "unknown_tool", tool: name });
        }
        expect(rec.calls.length).toBe(before);
      }
    });

    test("control: a caller without denials reaches the tool by both names, in both environments", async () => {
      for (const environment of [undefined, "staging"]) {
        await using client = await agent(keys.free!, url("ren", environment));
        expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual([names["rec/add"], RENAMED].sort());
        for (const name of [RENAMED, names["rec/echo"]!]) {
          expect((await client.callTool({ name, arguments: { message: "ok" } })).content).toEqual([{ type: "text", text: "echo: ok" }]);
        }
      }
    });

    test("a description override or a second rename changes nothing", async () => {
      expect((await stack.admin.request("PATCH", `/v1/virtual-servers/ren/tools/${RENAMED}`, { description: "harmless" })).status).toBeLessThan(300);
      await using client = await agent(keys["c-new"]!);
      expect((await client.listTools()).tools.map((t) => t.name)).toEqual([names["rec/add"]]);
      expect((await rpcError(client.callTool({ name: RENAMED, arguments: { message: "x" } }))).code).toBe(-32602);
    });
  });

  describe("finding 6: strict JWT", () => {
    const now = () => Math.floor(Date.now() / 1000);
    const unsigned = (claims: Record<string, unknown>) =>
      `${Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url")}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.`;

    test("a token acts as a consumer only once the consumer names its identity provider", async () => {
      const token = await idp.sign({ sub: "demo-agent" });
      // Before opting in the token is just a subject of 'corp' without a grant: the virtual server is not there for it.
      expect((await post(url("ren"), `Bearer ${token}`)).status).toBe(404);
      const updated = await stack.admin.request("PUT", "/v1/consumers/demo-agent", { identityProviders: ["corp"] });
      expect(updated.status).toBe(200);
      expect(updated.body).toMatchObject({ name: "demo-agent", identityProviders: ["corp"] });
      expect((await post(url("ren"), `Bearer ${await idp.sign({ sub: "demo-agent" })}`)).status).toBe(200);
      // The API key keeps working either way.
      expect((await post(url("ren"), `Bearer ${keys["demo-agent"]}`)).status).toBe(200);
    });

    test.each([
      ["without exp", () => idp.signExactly({ iss: idp.issuer, aud: "manifold", sub: "demo-agent", iat: now() }), "'exp'"],
      ["without sub", () => idp.signExactly({ iss: idp.issuer, aud: "manifold", iat: now(), exp: now() + 300 }), "'sub'"],
      ["living 30 days", () => idp.sign({ sub: "demo-agent" }, { expiresIn: "30d" }), "lives longer"],
      ["not valid before a time to come", () => idp.sign({ sub: "demo-agent", nbf: now() + 600 }), "'nbf'"],
      ["issued in the future", () => idp.signExactly({ iss: idp.issuer, aud: "manifold", sub: "demo-agent", iat: now() + 600, exp: now() + 900 }), "future"],
    ])("a token %s is a 401 with a JSON-RPC body", async (_what, token, expected) => {
      const res = await post(url("ren"), `Bearer ${await token()}`);
      expect(res.status).toBe(401);
      const body = (await res.json()) as RpcBody;
      expect(body.error).toMatchObject({ code: -32041, data: { code: "unauthorized" } });
      expect(body.error.message).toContain(expected);
    });

    test.each([
      ["a € in its issuer", { iss: "https://€.example/", sub: "demo-agent" }],
      ["CR/LF in its issuer", { iss: "https://x.example/\r\nSet-Cookie: a=b", sub: "demo-agent" }],
      ["a registered issuer but no signature", { iss: "", sub: "demo-agent", aud: "manifold", exp: 9_999_999_999 }],
    ])("an unsigned token with %s: 401, a valid WWW-Authenticate, nothing logged as an error", async (_what, claims) => {
      const linesBefore = logs.length;
      const res = await post(url("ren"), `Bearer ${unsigned({ ...claims, iss: claims.iss || idp.issuer })}`);
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toMatch(/^Bearer realm="manifold", error="invalid_token", error_description="[\x20-\x7e]*"$/);
      expect(((await res.json()) as RpcBody).error.data.code).toBe("unauthorized");
      const logged = logs.slice(linesBefore).join("\n");
      expect(logged).not.toContain('"level":50');
      expect(logged).not.toContain("stack");
    });
  });

  describe("finding 8: nothing outside the caller's virtual server and grant can be told apart from nothing", () => {
    const refusal = async (res: Response) => ({ status: res.status, body: (await res.json()) as RpcBody });

    test("pass-through headers for an upstream elsewhere, unknown, or all of whose tools are denied: one answer", async () => {
      const ask = (who: string, upstream: string) => post(url("ren"), `Bearer ${keys[who]}`, { [HEADER]: JSON.stringify({ [upstream]: { Authorization: "Bearer t" } }) });
      const elsewhere = await refusal(await ask("free", "hidden"));
      const unknown = await refusal(await ask("free", "ghost"));
      const allDenied = await refusal(await ask("c-all", "rec"));
      for (const [answer, name] of [[elsewhere, "hidden"], [unknown, "ghost"], [allDenied, "rec"]] as const) {
        expect(answer.status).toBe(400);
        expect(answer.body.error).toMatchObject({ code: -32602, data: { code: "invalid_upstream_headers", upstream: name } });
        expect(answer.body.error.message.replace(`'${name}'`, "'X'")).toBe(unknown.body.error.message.replace("'ghost'", "'X'"));
      }
      expect((await ask("free", "rec")).status).toBe(200);
    });

    test("environments and virtual servers: absent, not promoted, not granted all answer alike", async () => {
      const answers = await Promise.all(
        [url("theirs"), url("ghost"), url("theirs", "staging"), url("ren", "nowhere"), url("theirs", "nowhere")].map(async (target) => refusal(await post(target, `Bearer ${keys.free}`))),
      );
      for (const answer of answers) {
        expect(answer.status).toBe(404);
        expect(answer.body.error.data).toEqual({ code: "unknown_virtual_server" });
        expect(answer.body.error.message).toMatch(
          /^virtual server '[a-z-]+' is not available to this caller( in environment '[a-z-]+')?: it does not exist, is not served in that environment, or no grant admits the caller$/,
        );
      }
    });

    test("a denied tool and a tool that does not exist answer alike", async () => {
      await using client = await agent(keys["c-id"]!);
      const denied = await rpcError(client.callTool({ name: RENAMED, arguments: {} }));
      const missing = await rpcError(client.callTool({ name: "no-such-tool", arguments: {} }));
      expect(denied.message.replace(RENAMED, "X")).toBe(missing.message.replace("no-such-tool", "X"));
      expect(denied.code).toBe(missing.code);
    });
  });

  describe("pass-through header values are checked once, at the gateway", () => {
    test.each([
      ["CR/LF", "Bearer a\r\nX-Injected: 1"],
      ["NUL", "Bearer a\u0000b"],
      ["a character beyond one byte", "Bearer €"],
    ])("a value with %s on tools/call: invalid params naming upstream and header, nothing reaches the bus", async (_what, value) => {
      await using client = await agent(keys.free!);
      const sessionId = (client.transport as StreamableHTTPClientTransport).sessionId!;
      const before = rec.calls.length;
      const res = await post(
        url("ren"),
        `Bearer ${keys.free}`,
        { "mcp-session-id": sessionId, "mcp-protocol-version": "2025-06-18", [HEADER]: asciiJson({ rec: { Authorization: value } }) },
        { jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: names["rec/add"], arguments: { a: 1, b: 2 } } },
      );
      expect(res.status).toBe(400);
      const body = (await res.json()) as RpcBody;
      expect(body).toMatchObject({ jsonrpc: "2.0", id: 7, error: { code: -32602, data: { code: "invalid_upstream_headers", upstream: "rec", header: "Authorization" } } });
      expect(body.error.message).not.toContain("Bearer");
      expect(rec.calls.length).toBe(before);
    });
  });
});
