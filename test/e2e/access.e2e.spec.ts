import type { NatsConnection } from "@manifold/bus";
import { buildGateway, loadGatewayConfig, type Gateway } from "@manifold/gateway";
import type { NatsServer } from "@manifold/nats-server";
import { createLogger } from "@manifold/telemetry";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { connect, type AddressInfo, type Socket } from "node:net";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startIdentityProvider, type IdentityFixture } from "../fixtures/jwks.js";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { AdminClient, wholeVirtualServer } from "../helpers/admin.js";
import { createVirtualServer, registerUpstreams, rpcError } from "../helpers/catalog.js";
import { connectClient, eventually } from "../helpers/mcp.js";
import { busEnv, connectAs, startNats, startStack, type Stack } from "../helpers/stack.js";
import { modernRequest } from "../helpers/modernRequests.js";

const INIT = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } } };

describe("access control at the gateway", () => {
  let nats: NatsServer;
  let stack: Stack;
  let recording: RecordingUpstream;
  let idp: IdentityFixture;
  let names: Record<string, string>;
  let aliceKey: string;
  let bobKey: string;

  const agent = (token: string, url = stack.mcpUrl("secure")) =>
    connectClient(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
  const post = (authorization?: string, vs = "secure") =>
    fetch(stack.mcpUrl(vs), {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...(authorization ? { authorization } : {}) },
      body: JSON.stringify(INIT),
    });
  const issueKey = async (consumer: string) => (await stack.admin.post(`/v1/consumers/${consumer}/keys`, {})).body as { keyId: string; key: string };

  beforeAll(async () => {
    nats = await startNats();
    [stack, recording, idp] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required" }), startRecordingUpstream(), startIdentityProvider()]);
    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: recording.url } });
    names = await createVirtualServer(stack, "secure", [
      { upstream: "rec", tool: "echo" },
      { upstream: "rec", tool: "add" },
    ]);
    await createVirtualServer(stack, "other", [{ upstream: "rec", tool: "echo" }]);
    for (const [name, groups] of [["alice", ["data-team"]], ["bob", []], ["carol", []]] as const) {
      expect((await stack.admin.post("/v1/consumers", { name, groups })).status).toBe(201);
    }
    aliceKey = (await issueKey("alice")).key;
    bobKey = (await issueKey("bob")).key;
    expect((await stack.admin.post("/v1/virtual-servers/secure/grants", { grantId: "alice", subject: { consumer: "alice" } })).status).toBe(201);
    expect(
      (await stack.admin.post("/v1/virtual-servers/secure/grants", { grantId: "bob", subject: { consumer: "bob" }, deniedTools: [names["rec/add"]] }))
        .status,
    ).toBe(201);
    // corp's tokens may claim the platform group (a provider asserts only the groups it is registered for: groupClaims.e2e).
    await stack.admin.post("/v1/identity-providers", { name: "corp", issuer: idp.issuer, audience: "manifold", jwksUrl: idp.jwksUrl, groups: ["platform"] });
    await stack.admin.post("/v1/virtual-servers/other/grants", { grantId: "team", subject: { group: "platform" } });
  });

  afterAll(async () => {
    await stack?.close();
    await Promise.all([recording?.close(), idp?.close()]);
    await nats?.stop();
  });

  test("no credentials: 401 with WWW-Authenticate and a JSON-RPC envelope", async () => {
    const res = await post();
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe('Bearer realm="manifold"');
    // Refused on its headers, before the body (and its id) is read.
    expect(await res.json()).toMatchObject({ jsonrpc: "2.0", id: null, error: { code: -32041, data: { code: "unauthorized" } } });
  });

  test.each([
    ["a malformed key", "Bearer mk_nope"],
    ["an unknown key", `Bearer mk_aaaaaaaaaaaa_${"A".repeat(43)}`],
    ["a non-Bearer scheme", "Basic YWxpY2U6c2VjcmV0"],
    ["garbage", "Bearer not-a-token"],
  ])("%s: 401 naming the problem", async (_what, authorization) => {
    const res = await post(authorization);
    expect(res.status).toBe(401);
    const body = (await res.json()) as { error: { message: string; data: { code: string } } };
    expect(body.error.data.code).toBe("unauthorized");
    expect(body.error.message.length).toBeGreaterThan(10);
  });

  test("valid key without a grant and unknown virtual server: the same 404", async () => {
    const carol = (await issueKey("carol")).key;
    const ungranted = await post(`Bearer ${carol}`);
    const missing = await post(`Bearer ${aliceKey}`, "nowhere");
    const bodies = (await Promise.all([ungranted.json(), missing.json()])) as { error: { message: string; data: { code: string } } }[];
    expect([ungranted.status, missing.status]).toEqual([404, 404]);
    expect(bodies.map((b) => b.error.data.code)).toEqual(["unknown_virtual_server", "unknown_virtual_server"]);
    expect(bodies[0]!.error.message.replace("secure", "X")).toBe(bodies[1]!.error.message.replace("nowhere", "X"));
  });

  test("a denied tool is invisible and refused, and nothing reaches the upstream", async () => {
    await using alice = await agent(aliceKey);
    await using bob = await agent(bobKey);
    expect((await alice.listTools()).tools.map((t) => t.name).sort()).toEqual([names["rec/add"], names["rec/echo"]].sort());
    expect((await bob.listTools()).tools.map((t) => t.name)).toEqual([names["rec/echo"]]);
    const before = recording.calls.length;
    const error = await rpcError(bob.callTool({ name: names["rec/add"]!, arguments: { a: 1, b: 2 } }));
    expect(error.code).toBe(-32602);
    expect(recording.calls.length).toBe(before);
    expect((await alice.callTool({ name: names["rec/add"]!, arguments: { a: 1, b: 2 } })).structuredContent).toEqual({ sum: 3 });
  });

  test("a session cannot be used by another principal", async () => {
    await using alice = await agent(aliceKey);
    const sessionId = (alice.transport as StreamableHTTPClientTransport).sessionId!;
    const res = await fetch(stack.mcpUrl("secure"), {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${bobKey}`, "mcp-session-id": sessionId },
      body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list" }),
    });
    expect(res.status).toBe(404);
  });

  test("attack: two identity providers' subjects are never one principal, even when an issuer has a fragment", async () => {
    // Issuer `<corp>#1` with subject `2`, and corp's subject `1#2`, were both `sub:<corp>#1#2`: one
    // principal, sharing sessions, tasks and budgets.
    const frag = await stack.admin.post("/v1/identity-providers", { name: "corp-frag", issuer: `${idp.issuer}#1`, audience: "manifold", jwksUrl: idp.jwksUrl, groups: ["platform"] });
    expect(frag.status).toBe(201);
    const owner = await idp.sign({ sub: "2", groups: ["platform"] }, { issuer: `${idp.issuer}#1` });
    const intruder = await idp.sign({ sub: "1#2", groups: ["platform"] });
    const opened = await eventually(async () => {
      const res = await post(`Bearer ${owner}`, "other");
      return res.status === 200 ? res : undefined;
    }, 2_000);
    const sessionId = opened.headers.get("mcp-session-id")!;
    const use = (token: string) =>
      fetch(stack.mcpUrl("other"), {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${token}`, "mcp-session-id": sessionId, "mcp-protocol-version": "2025-06-18" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list" }),
      });
    expect((await use(owner)).status).toBe(200);
    expect((await use(intruder)).status).toBe(404);
  });

  test("a revoked key stops working on the gateway within a second, without a restart", async () => {
    const { keyId, key } = await issueKey("alice");
    await using client = await agent(key);
    await client.listTools();
    const revokedAt = Date.now();
    expect((await stack.admin.delete(`/v1/consumers/alice/keys/${keyId}`)).status).toBe(204);
    await eventually(async () => ((await post(`Bearer ${key}`)).status === 401 ? true : undefined), 1_000);
    expect(Date.now() - revokedAt).toBeLessThan(1_000);
    expect((await post(`Bearer ${aliceKey}`)).status).toBe(200);
  });

  test("a consumer's groups change in place: its key and open session gain and lose group grants at once", async () => {
    await stack.admin.post("/v1/consumers", { name: "erin", groups: ["platform"] });
    const { keyId, key } = await issueKey("erin");
    await using erin = await agent(key, stack.mcpUrl("other"));
    const echo = (await erin.listTools()).tools[0]!.name;
    expect((await erin.callTool({ name: echo, arguments: { message: "a" } })).isError).toBeFalsy();

    const { headers } = await stack.admin.get("/v1/consumers/erin");
    const moved = await stack.admin.request("PUT", "/v1/consumers/erin", { groups: ["data-team"] }, { "if-match": headers.get("etag")! });
    expect(moved.status).toBe(200);
    expect(moved.body).toMatchObject({ name: "erin", groups: ["data-team"], keys: [{ keyId }] });
    // Losing a grant reaches every replica within moments; gaining one is usable at once (the gateway catches up before refusing).
    const refused = await eventually(async () => {
      const error = await erin.callTool({ name: echo, arguments: { message: "b" } }).then(() => undefined, (e: Error) => e);
      return error?.message.includes('"code":"unknown_virtual_server"') ? error : undefined;
    }, 1_000);
    expect(refused.message).toContain("virtual server 'other' is not available to this caller");

    await stack.admin.request("PUT", "/v1/consumers/erin", { groups: ["data-team", "platform"] });
    expect((await erin.callTool({ name: echo, arguments: { message: "c" } })).content).toEqual([{ type: "text", text: "echo: c" }]);
  });

  test("an agent key never opens the admin API", async () => {
    const res = await new AdminClient(stack.admin.baseUrl, aliceKey).get("/v1/upstreams");
    expect(res.status).toBe(401);
  });

  test("JWTs from a registered issuer map to a consumer by claim (once it names the issuer), or to groups", async () => {
    expect((await stack.admin.request("PUT", "/v1/consumers/alice", { groups: ["data-team"], identityProviders: ["corp"] })).status).toBe(200);
    await using asAlice = await agent(await idp.sign({ sub: "alice" }));
    expect((await asAlice.listTools()).tools).toHaveLength(2);
    await using team = await agent(await idp.sign({ sub: "someone", groups: ["platform"] }), stack.mcpUrl("other"));
    expect((await team.callTool({ name: (await team.listTools()).tools[0]!.name, arguments: { message: "hi" } })).content).toEqual([
      { type: "text", text: "echo: hi" },
    ]);
    expect((await post(`Bearer ${await idp.sign({ sub: "someone", groups: ["platform"] })}`)).status).toBe(404);
  });

  test.each([
    ["expired", () => idp.sign({ sub: "alice" }, { expiresIn: Math.floor(Date.now() / 1000) - 60 })],
    ["for another audience", () => idp.sign({ sub: "alice" }, { audience: "someone-else" })],
    ["signed by an unpublished key", () => idp.forge({ sub: "alice" }, "manifold")],
  ])("a JWT %s is refused with 401", async (_what, token) => {
    const res = await post(`Bearer ${await token()}`);
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toContain('error="invalid_token"');
  });

  test("rate limits per consumer hold across gateway replicas: 429 with Retry-After", async () => {
    await stack.admin.post("/v1/consumers", { name: "dave" });
    const dave = (await issueKey("dave")).key;
    await stack.admin.post("/v1/virtual-servers/secure/grants", { grantId: "dave", subject: { consumer: "dave" }, rateLimitPerMinute: 4 });
    const logger = createLogger({ component: "gateway-2", level: "silent" });
    const nc: NatsConnection = await connectAs(nats, "gateway", "gateway-2");
    const second: Gateway = await buildGateway({ config: loadGatewayConfig({ ...busEnv(nats, "gateway"), LOG_LEVEL: "silent" }), logger, nc });
    try {
      await second.follower.caughtUp;
      await second.app.listen({ port: 0, host: "127.0.0.1" });
      const secondUrl = `http://127.0.0.1:${(second.app.server.address() as AddressInfo).port}/mcp/secure`;
      await using one = await agent(dave);
      await using two = await agent(dave, secondUrl);
      const call = (client: typeof one) => client.callTool({ name: names["rec/echo"]!, arguments: { message: "x" } });
      // Limits count in fixed one-minute windows: five calls straddling a minute's end would be
      // counted in two windows. Start well inside one.
      const intoMinute = Date.now() % 60_000;
      if (intoMinute > 45_000) await new Promise((r) => setTimeout(r, 60_000 - intoMinute + 200));
      await call(one);
      await call(two);
      await call(one);
      await call(two);
      // The SDK client reports the HTTP 429 itself, with our JSON-RPC envelope in its message.
      const limited = (await call(two).catch((e: unknown) => e)) as { code: number; message: string };
      expect(limited.code).toBe(429);
      expect(limited.message).toContain("rate limit of 4 calls per minute");
      const res = await fetch(secondUrl, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          authorization: `Bearer ${dave}`,
          "mcp-session-id": (two.transport as StreamableHTTPClientTransport).sessionId!,
        },
        body: JSON.stringify({ jsonrpc: "2.0", id: 9, method: "tools/call", params: { name: names["rec/echo"], arguments: { message: "x" } } }),
      });
      expect(res.status).toBe(429);
      expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
      expect(((await res.json()) as { id: number; error: { code: number } }).error.code).toBe(-32029);
    } finally {
      await second.close();
      await nc.close();
    }
  });

  test("a burst of one consumer's concurrent calls under its rate limit is served in full, not refused as contended", async () => {
    await stack.admin.post("/v1/consumers", { name: "frank" });
    const frank = (await issueKey("frank")).key;
    await stack.admin.post("/v1/virtual-servers/secure/grants", { grantId: "frank", subject: { consumer: "frank" }, rateLimitPerMinute: 1_000 });
    const intoMinute = Date.now() % 60_000;
    if (intoMinute > 50_000) await new Promise((r) => setTimeout(r, 60_000 - intoMinute + 200));
    // Racing each other for the same counter, 152 of 400 such calls were refused "contended".
    const answers = await Promise.all(Array.from({ length: 150 }, () => modernRequest(stack.mcpUrl("secure"), frank, "tools/call", { name: names["rec/echo"], arguments: { message: "burst" } })));
    const refused = answers.filter((a) => a.error !== undefined).map((a) => a.error!.message);
    expect(refused, refused.slice(0, 3).join("; ")).toEqual([]);
  });

  test("attack: a JSON-RPC batch of tools/call counts every call against the rate limit", async () => {
    await stack.admin.post("/v1/consumers", { name: "erin" });
    const erin = (await issueKey("erin")).key;
    await stack.admin.post("/v1/virtual-servers/secure/grants", { grantId: "erin", subject: { consumer: "erin" }, rateLimitPerMinute: 3 });
    const intoMinute = Date.now() % 60_000;
    if (intoMinute > 45_000) await new Promise((r) => setTimeout(r, 60_000 - intoMinute + 200));
    // 2025-03-26 is the revision with batches: the 1.x transport takes up to 100 messages in one POST.
    const headers: Record<string, string> = { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${erin}` };
    const init = await fetch(stack.mcpUrl("secure"), { method: "POST", headers, body: JSON.stringify({ ...INIT, params: { ...INIT.params, protocolVersion: "2025-03-26" } }) });
    expect(init.status).toBe(200);
    await init.text();
    const session = { ...headers, "mcp-session-id": init.headers.get("mcp-session-id")!, "mcp-protocol-version": "2025-03-26" };
    await fetch(stack.mcpUrl("secure"), { method: "POST", headers: session, body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }) });
    const batch = (n: number, from: number) =>
      JSON.stringify(Array.from({ length: n }, (_, i) => ({ jsonrpc: "2.0", id: from + i, method: "tools/call", params: { name: names["rec/echo"], arguments: { message: `b${i}` } } })));
    const before = recording.calls.length;

    // Ten calls under a limit of three can never fit: refused whole (not to be retried), and none reaches the upstream.
    const tooMany = await fetch(stack.mcpUrl("secure"), { method: "POST", headers: session, body: batch(10, 1) });
    expect(tooMany.status).toBe(400);
    expect(((await tooMany.json()) as { error: { data: { code: string }; message: string } }).error).toMatchObject({ data: { code: "invalid_request" }, message: expect.stringContaining("can never fit") });
    expect(recording.calls.length).toBe(before);

    // Two within it are served, and spend two of the three.
    const two = await fetch(stack.mcpUrl("secure"), { method: "POST", headers: session, body: batch(2, 20) });
    expect(two.status).toBe(200);
    await two.text();
    expect(recording.calls.length).toBe(before + 2);
    const pair = await fetch(stack.mcpUrl("secure"), { method: "POST", headers: session, body: batch(2, 30) });
    expect(pair.status).toBe(429);
    await pair.text();
    expect(recording.calls.length).toBe(before + 2);
  });

  test("attack: one caller cannot hold every subscriptions/listen stream of a replica (per caller, then per replica)", async () => {
    const logger = createLogger({ component: "gateway-3", level: "silent" });
    const nc: NatsConnection = await connectAs(nats, "gateway", "gateway-3");
    const limits = { GATEWAY_MAX_LISTENS_PER_PRINCIPAL: "3", GATEWAY_MAX_LISTENS: "5" };
    const third: Gateway = await buildGateway({ config: loadGatewayConfig({ ...busEnv(nats, "gateway"), LOG_LEVEL: "silent", ...limits }), logger, nc });
    const open: AbortController[] = [];
    try {
      await third.follower.caughtUp;
      await third.app.listen({ port: 0, host: "127.0.0.1" });
      const url = `http://127.0.0.1:${(third.app.server.address() as AddressInfo).port}/mcp/secure`;
      const meta = { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": { name: "t", version: "1" }, "io.modelcontextprotocol/clientCapabilities": {} };
      const listen = async (key: string) => {
        const stop = new AbortController();
        const res = await fetch(url, {
          method: "POST",
          signal: stop.signal,
          headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${key}`, "mcp-protocol-version": "2026-07-28", "mcp-method": "subscriptions/listen" },
          body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "subscriptions/listen", params: { notifications: { toolsListChanged: true }, _meta: meta } }),
        });
        if (res.status !== 200 || !(res.headers.get("content-type") ?? "").includes("text/event-stream")) {
          return { status: res.status, error: ((await res.json()) as { error: { code: number; data: { code: string } } }).error };
        }
        open.push(stop);
        return { status: res.status, stop };
      };
      for (let i = 0; i < 3; i++) expect((await listen(aliceKey)).status).toBe(200);
      // The caller's fourth is refused, precisely; another caller is not affected.
      expect(await listen(aliceKey)).toMatchObject({ status: 429, error: { code: -31031, data: { code: "too_many_streams" } } });
      expect((await listen(bobKey)).status).toBe(200);
      expect((await listen(bobKey)).status).toBe(200);
      // The replica's own bound: full is full, for everyone.
      expect(await listen(bobKey)).toMatchObject({ status: 503, error: { data: { code: "at_capacity" } } });
      // A closed stream gives its place back.
      open.shift()!.abort();
      await eventually(async () => ((await listen(aliceKey)).status === 200 ? true : undefined), 3_000, 100);
    } finally {
      for (const stop of open) stop.abort();
      await third.close();
      await nc.close();
    }
  });

  // attack (helper-95): each listen stream kept its whole request for its life (the admission
  // recheck's closure, the request's body), 400 KB of resource URIs it never subscribed to: 100 streams, +40 MiB.
  test("attack: an open listen stream keeps what its admission needs, not its request's resource URIs", async () => {
    setFlagsFromString("--expose_gc");
    const gc = runInNewContext("gc") as () => void;
    const url = new URL(stack.mcpUrl("secure"));
    const meta = { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": { name: "t", version: "1" }, "io.modelcontextprotocol/clientCapabilities": {} };
    const sockets: Socket[] = [];
    const heads: string[] = [];
    // Raw sockets: once written, the request's bytes are the gateway's alone to keep (built apart,
    // so no listener left on a socket shares a closure with them).
    const request = (n: number) => {
      const uris = Array.from({ length: 100 }, (_, i) => `secure+att://never/${String(n).padStart(4, "0")}${String(i).padStart(3, "0")}${"u".repeat(3_900)}`);
      const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "subscriptions/listen", params: { notifications: { toolsListChanged: true, resourceSubscriptions: uris }, _meta: meta } });
      const headers = { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${aliceKey}`, "mcp-protocol-version": "2026-07-28", "mcp-method": "subscriptions/listen", "content-length": String(Buffer.byteLength(body)) };
      return Buffer.from(`POST ${url.pathname} HTTP/1.1\r\nhost: ${url.host}\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("")}\r\n${body}`);
    };
    const listen = (bytes: Buffer) =>
      new Promise<void>((resolve) => {
        const socket = connect(Number(url.port), url.hostname);
        socket.write(bytes);
        socket.once("data", (chunk: Buffer) => {
          heads.push(chunk.toString("latin1").split("\r\n")[0]!);
          resolve();
        });
        socket.on("error", () => undefined);
        sockets.push(socket);
      });
    try {
      gc();
      const before = process.memoryUsage().heapUsed;
      // Paced: a listen of 100 URIs costs 110 of a caller's 1,000 request units a second, and its
      // ~400 KB body about 96 more (its width): at 150 ms apart the 20th could be refused (429).
      for (let n = 0; n < 20; n++) {
        await listen(request(n));
        await new Promise((r) => setTimeout(r, 300));
      }
      await new Promise((r) => setTimeout(r, 300));
      gc();
      const heldMiB = (process.memoryUsage().heapUsed - before) / 2 ** 20;
      expect([...new Set(heads)]).toEqual(["HTTP/1.1 200 OK"]);
      // Before: ~8 MiB for 20 streams (400 KB each). Now what a stream holds besides its request.
      expect(heldMiB, `20 open listen streams held ${heldMiB.toFixed(1)} MiB`).toBeLessThan(4);
    } finally {
      for (const socket of sockets) socket.destroy();
    }
  });

  test("attack: one caller cannot hold unbounded calls in flight on a replica; others are served, and finished calls give their places back", async () => {
    // An answer holds memory until its client has read it: without a bound, one consumer's calls
    // (400 at once were accepted) held as many answers as it asked for.
    names = { ...names, ...(await createVirtualServer(stack, "busy", [{ upstream: "rec", tool: "slow" }])) };
    for (const consumer of ["alice", "bob"]) {
      expect((await stack.admin.post("/v1/virtual-servers/busy/grants", { grantId: consumer, subject: { consumer } })).status).toBe(201);
    }
    const logger = createLogger({ component: "gateway-4", level: "silent" });
    const nc: NatsConnection = await connectAs(nats, "gateway", "gateway-4");
    const fourth: Gateway = await buildGateway({ config: loadGatewayConfig({ ...busEnv(nats, "gateway"), LOG_LEVEL: "silent", GATEWAY_MAX_CALLS_PER_PRINCIPAL: "3" }), logger, nc });
    try {
      await fourth.follower.caughtUp;
      await fourth.app.listen({ port: 0, host: "127.0.0.1" });
      const url = `http://127.0.0.1:${(fourth.app.server.address() as AddressInfo).port}/mcp/busy`;
      const slow = (key: string, ms: number) => modernRequest(url, key, "tools/call", { name: names["rec/slow"], arguments: { ms } });
      const held = [slow(aliceKey, 1_500), slow(aliceKey, 1_500), slow(aliceKey, 1_500)];
      await eventually(() => (recording.calls.filter((c) => c.tool === "slow").length >= 3 ? true : undefined), 3_000, 20);
      const refused = await slow(aliceKey, 10);
      expect(refused).toMatchObject({ status: 429, error: { code: -31032, data: { code: "too_many_calls" } } });
      expect(refused.error!.message).toContain("consumer 'alice' already has 3 calls in flight on this gateway replica (at most 3)");
      // Another caller is not affected.
      expect((await slow(bobKey, 10)).result).toMatchObject({ content: [{ type: "text" }] });
      // Once the held calls have answered, their places are free again.
      for (const answer of await Promise.all(held)) expect(answer.result).toMatchObject({ content: [{ type: "text" }] });
      expect((await slow(aliceKey, 10)).result).toMatchObject({ content: [{ type: "text" }] });
    } finally {
      await fourth.close();
      await nc.close();
    }
  });

  test("a changed tool set reaches connected sessions as notifications/tools/list_changed within a second", async () => {
    await using alice = await agent(aliceKey);
    const changed = new Promise<number>((resolve) => alice.setNotificationHandler(ToolListChangedNotificationSchema, () => resolve(Date.now())));
    const sent = Date.now();
    await stack.admin.post("/v1/virtual-servers/secure/tools", { tools: [{ upstream: "rec", tool: "fail" }] });
    expect((await changed) - sent).toBeLessThan(1_000);
    expect((await alice.listTools()).tools.map((t) => t.name)).toContain((await wholeVirtualServer(stack.admin, "secure")).tools.find((t: { tool: string }) => t.tool === "fail").exposedName);
  });
});
