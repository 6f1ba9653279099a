import type { NatsServer } from "@manifold/nats-server";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { createServer, request, type IncomingMessage, type Server } from "node:http";
import { serveModernHttp } from "../fixtures/modern-upstream.mjs";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { connectClient, eventually } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

/**
 * An ordinary 2025 Streamable HTTP upstream with sessions, behind a proxy that refuses request
 * bodies over 64 KiB with an HTTP 413 page quoting the start of the request (as many error pages
 * do). Its tools work; nothing about it is hostile.
 */
async function startProxiedUpstream(): Promise<{ url: string; sessions: number; down: boolean; close(): Promise<void> }> {
  let sessions = 0;
  /** The proxy's upstream gone: every request answered 502, as nginx answers when it cannot connect. */
  let down = false;
  const read = (req: IncomingMessage) =>
    new Promise<string>((resolve) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => resolve(body));
    });
  const server: Server = createServer(async (req, res) => {
    if (req.method === "DELETE") return void res.writeHead(200).end();
    if (req.method !== "POST") return void res.writeHead(405).end();
    const text = await read(req);
    if (down) return void res.writeHead(502, { "content-type": "text/html" }).end("<html>502 Bad Gateway</html>");
    if (text.length > 64 * 1024) {
      res.writeHead(413, { "content-type": "text/html" });
      return void res.end(`<html>413 Request Entity Too Large: ${text.slice(0, 150)}</html>`);
    }
    const message = JSON.parse(text) as { id?: number; method: string; params?: { name?: string; uri?: string } };
    if (message.id === undefined) return void res.writeHead(202).end();
    const answer = (result: unknown, head: Record<string, string> = {}) => {
      res.writeHead(200, { "content-type": "application/json", ...head });
      res.end(JSON.stringify({ jsonrpc: "2.0", id: message.id, result }));
    };
    if (message.method === "initialize") {
      sessions++;
      return answer({ protocolVersion: "2025-06-18", capabilities: { tools: {}, resources: {} }, serverInfo: { name: "proxied", version: "1" } }, { "mcp-session-id": `s${sessions}` });
    }
    const schema = { type: "object", properties: { text: { type: "string" } } };
    const tools = ["store", "lookup", "slow", "page", "reset", "cut502"].map((name) => ({ name, inputSchema: schema }));
    if (message.method === "tools/list") return answer({ tools });
    // A document whose reads the firewall cuts too, and one it lets through.
    if (message.method === "resources/list") return answer({ resources: [{ uri: "doc://cut", name: "cut" }, { uri: "doc://kept", name: "kept" }] });
    if (message.method === "resources/templates/list") return answer({ resourceTemplates: [] });
    if (message.method === "resources/read" && message.params?.uri === "doc://cut") return void req.socket.destroy();
    if (message.method === "resources/read") return answer({ contents: [{ uri: "doc://kept", text: "kept" }] });
    // A proxy that gives up on a slow call (504), and one call answered with a page (200, not JSON): both quote the request.
    if (message.method === "tools/call" && message.params?.name === "slow") return void res.writeHead(504, { "content-type": "text/html" }).end(`<html>504 Gateway Time-out: ${text.slice(0, 150)}</html>`);
    if (message.method === "tools/call" && message.params?.name === "page") return void res.writeHead(200, { "content-type": "application/json" }).end(`${text.slice(60, 210)} <html>`);
    // A firewall (or a handler that dies on one request) that closes the connection of one call, unanswered.
    if (message.method === "tools/call" && message.params?.name === "reset") return void req.socket.destroy();
    // The same behind nginx: one request whose upstream connection was cut is answered 502 ("upstream prematurely closed connection").
    if (message.method === "tools/call" && message.params?.name === "cut502") return void res.writeHead(502, { "content-type": "text/html" }).end("<html>502 Bad Gateway</html>");
    if (message.method === "tools/call") return answer({ content: [{ type: "text", text: `${message.params?.name} ok` }] });
    if (message.method === "ping") return answer({});
    // A 2025 server: the era probe's `server/discover` (asked again after a failed connection) is not one of its methods.
    res.writeHead(200, { "content-type": "application/json" });
    return void res.end(JSON.stringify({ jsonrpc: "2.0", id: message.id, error: { code: -32601, message: "Method not found" } }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`,
    get sessions() {
      return sessions;
    },
    get down() {
      return down;
    },
    set down(value: boolean) {
      down = value;
    },
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

type Client = Awaited<ReturnType<typeof connectClient>>;
/**
 * Mallory calls `malloryCall` in a loop (each refused by the proxy with 413) while Alice calls
 * `aliceCall` for 3 s; returns what Alice's failed calls said.
 */
async function aliceDuringFlood(mallory: Client, malloryCall: { name: string; arguments: Record<string, unknown> }, alice: Client, aliceCall: { name: string; arguments: Record<string, unknown> }): Promise<string[]> {
  let stop = false;
  const flood = (async () => {
    while (!stop) await mallory.callTool(malloryCall).catch(() => undefined);
  })();
  const failures: string[] = [];
  for (const until = Date.now() + 3_000; Date.now() < until; ) {
    try {
      const result = await alice.callTool(aliceCall);
      if (result.isError) failures.push(JSON.stringify(result.content));
    } catch (error) {
      failures.push((error as Error).message);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  stop = true;
  await flood;
  return failures;
}

describe("attack: one consumer's refused calls take the shared upstream session from every other consumer", () => {
  let nats: NatsServer;
  let stack: Stack;
  let upstream: Awaited<ReturnType<typeof startProxiedUpstream>>;
  let keys: Record<string, string>;
  let names: Record<string, string>;

  beforeAll(async () => {
    nats = await startNats();
    [stack, upstream] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required" }), startProxiedUpstream()]);
    await registerUpstreams(stack, { name: "proxied", transport: { type: "streamable-http", url: upstream.url } });
    names = await createVirtualServer(
      stack,
      "shared",
      ["store", "lookup", "slow", "page", "reset", "cut502"].map((tool) => ({ upstream: "proxied", tool })),
      { resources: [{ upstream: "proxied", uri: "doc://cut" }] },
    );
    keys = await grantedConsumers(stack, "shared", ["mallory", "alice"]);
  });

  afterAll(async () => {
    await stack?.close();
    await upstream?.close();
    await nats?.stop();
  });

  const clientOf = (key: string) =>
    connectClient(new StreamableHTTPClientTransport(new URL(stack.mcpUrl("shared")), { requestInit: { headers: { authorization: `Bearer ${key}` } } }));

  test("alice's calls of another tool keep working while mallory sends oversized arguments to 'store'", async () => {
    await using mallory = await clientOf(keys.mallory!);
    await using alice = await clientOf(keys.alice!);
    expect((await alice.callTool({ name: names["proxied/lookup"]!, arguments: { text: "warm" } })).isError).toBeFalsy();
    const sessionsBefore = upstream.sessions;
    const big = "A".repeat(70 * 1024);
    const failures = await aliceDuringFlood(mallory, { name: names["proxied/store"]!, arguments: { text: `mallory-private-note ${big}` } }, alice, { name: names["proxied/lookup"]!, arguments: { text: "alice" } });
    expect(failures.filter((f) => f.includes("mallory-private-note")).length, "alice's errors quoting mallory's request").toBe(0);
    expect(failures.length, "alice's failed calls").toBe(0);
    // The shared session was never dropped for mallory's refusals.
    expect(upstream.sessions - sessionsBefore).toBe(0);
    // Mallory hears what happened to her call, without the upstream's page (which quoted her request),
    // once her budget is back: a 70 KB body costs 13 units (gatewayWideBodies.e2e), and the flood spent it.
    await new Promise((r) => setTimeout(r, 1_000));
    const refused = await mallory.callTool({ name: names["proxied/store"]!, arguments: { text: "A".repeat(70 * 1024) } }).then(
      (result) => JSON.stringify(result.content),
      (error: Error) => error.message,
    );
    expect(refused).toContain("answered HTTP 413");
    expect(refused).not.toContain("AAAA");
  });

  // Before: a 504 (a proxy timing out one slow call) or a 200 whose body is not JSON counted as the
  // upstream being down: each dropped the shared session and counted against the upstream's
  // breaker, which a few calls opened for every tenant, with the JSON parser's excerpt of
  // Mallory's answer as the reason every caller was shown. So did a call whose connection was
  // closed unanswered (2026-12-07, helper-201: 108 of Alice's calls failed in 3 s, "not connected"
  // then "circuit open", and the session was opened again 3 times).
  test.each(["slow", "page", "reset", "cut502"])("alice's calls keep working while mallory's calls of '%s' fail, and no error of hers quotes mallory", async (tool) => {
    await using mallory = await clientOf(keys.mallory!);
    await using alice = await clientOf(keys.alice!);
    expect((await alice.callTool({ name: names["proxied/lookup"]!, arguments: { text: "warm" } })).isError).toBeFalsy();
    const sessionsBefore = upstream.sessions;
    const failures = await aliceDuringFlood(mallory, { name: names[`proxied/${tool}`]!, arguments: { text: "mallory-private-note" } }, alice, { name: names["proxied/lookup"]!, arguments: { text: "alice" } });
    expect({ failures, sessionsDropped: upstream.sessions - sessionsBefore }).toEqual({ failures: [], sessionsDropped: 0 });
    const refused = await mallory.callTool({ name: names[`proxied/${tool}`]!, arguments: { text: "mallory-private-note" } }).then(
      (result) => JSON.stringify(result.content),
      (error: Error) => error.message,
    );
    expect(refused).toMatch(tool === "slow" ? /answered HTTP 504: a proxy gave up waiting for it|circuit open/ : tool === "reset" ? /closed the connection of this request before answering it|circuit open/ : tool === "cut502" ? /answered HTTP 502|circuit open/ : /answered with a body that is not JSON/);
    expect(refused).not.toContain("mallory-private-note");
  });

  // Before (2026-12-07, helper-201): each read the firewall cut dropped the shared session: 70 of
  // Alice's calls failed in 3 s ("not connected"), the session was opened twice and the upstream's
  // circuit opened.
  test("alice's calls keep working while the connections of mallory's reads of a resource are cut", async () => {
    await using mallory = await clientOf(keys.mallory!);
    await using alice = await clientOf(keys.alice!);
    const cut = (await mallory.listResources()).resources.find((r) => r.uri.endsWith("doc://cut"))!.uri;
    expect((await alice.callTool({ name: names["proxied/lookup"]!, arguments: { text: "warm" } })).isError).toBeFalsy();
    const sessionsBefore = upstream.sessions;
    let stop = false;
    const reads = (async () => {
      while (!stop) await mallory.readResource({ uri: cut }).catch(() => undefined);
    })();
    const failures: string[] = [];
    for (const until = Date.now() + 3_000; Date.now() < until; ) {
      await alice.callTool({ name: names["proxied/lookup"]!, arguments: { text: "alice" } }).then(
        (result) => void (result.isError && failures.push(JSON.stringify(result.content))),
        (error: Error) => void failures.push(error.message),
      );
    }
    stop = true;
    await reads;
    expect({ failures, sessionsDropped: upstream.sessions - sessionsBefore }).toEqual({ failures: [], sessionsDropped: 0 });
    expect(await mallory.readResource({ uri: cut }).then(() => "read", (error: Error) => error.message)).toMatch(/closed the connection of this request before answering it/);
  });

  // A 502 for one request is that request's; a proxy that answers every request 502 (its upstream
  // gone) is still the upstream's: the ping the failures ask for is answered 502 too. Last: the
  // upstream's session, dropped, is opened again only after its reconnection's back-off.
  test("a proxy whose upstream is gone answers everything 502: the upstream's circuit opens and its health is down", async () => {
    await using alice = await clientOf(keys.alice!);
    expect((await alice.callTool({ name: names["proxied/lookup"]!, arguments: { text: "warm" } })).isError).toBeFalsy();
    upstream.down = true;
    try {
      const said = await eventually(async () => {
        const error = await alice.callTool({ name: names["proxied/lookup"]!, arguments: { text: "alice" } }).then(() => "served", (e: Error) => e.message);
        return /upstream 'proxied' is unavailable \(circuit open/.test(error) ? error : undefined;
      }, 10_000, 50);
      expect(said).not.toContain("tool 'lookup'");
      expect((await stack.admin.get("/v1/upstreams/proxied")).body.health.status).toBe("down");
    } finally {
      upstream.down = false;
    }
    // Healed, it is served again within a breaker cooldown (5 s) and a handshake: its session is
    // tried again at least every cooldown (upstreamOutageRecovery.e2e measures it outage after outage).
    const healed = Date.now();
    await eventually(async () => ((await alice.callTool({ name: names["proxied/lookup"]!, arguments: { text: "alice" } })).isError ? undefined : true), 7_000, 50);
    expect(Date.now() - healed).toBeLessThanOrEqual(7_000);
  });
});

/** A reverse proxy in front of `target` that refuses bodies over 64 KiB with a 413 page (nginx-like), forwarding the rest. */
async function startProxy(target: string): Promise<{ url: string; close(): Promise<void> }> {
  const to = new URL(target);
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      if (body.length > 64 * 1024) {
        res.writeHead(413, { "content-type": "text/html" });
        return void res.end(`<html>413 Request Entity Too Large: ${body.subarray(0, 150).toString()}</html>`);
      }
      const out = request({ host: to.hostname, port: to.port, path: to.pathname, method: req.method, headers: { ...req.headers, host: to.host } }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      out.on("error", () => res.destroy());
      out.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}${to.pathname}`,
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

describe("attack: the same on a 2026-07-28 upstream (no session to lose, but one breaker)", () => {
  let nats: NatsServer;
  let stack: Stack;
  let modern: Awaited<ReturnType<typeof serveModernHttp>>;
  let proxy: Awaited<ReturnType<typeof startProxy>>;
  let keys: Record<string, string>;
  let names: Record<string, string>;

  beforeAll(async () => {
    nats = await startNats();
    [stack, modern] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required" }), serveModernHttp()]);
    proxy = await startProxy(modern.url);
    await registerUpstreams(stack, { name: "modern", transport: { type: "streamable-http", url: proxy.url } });
    names = await createVirtualServer(stack, "shared2026", [
      { upstream: "modern", tool: "echo" },
      { upstream: "modern", tool: "pid" },
    ]);
    keys = await grantedConsumers(stack, "shared2026", ["mallory", "alice"]);
  });

  afterAll(async () => {
    await stack?.close();
    await proxy?.close();
    await modern?.close();
    await nats?.stop();
  });

  test("alice's calls of 'pid' keep working while mallory sends oversized messages to 'echo'", async () => {
    const clientOf = (key: string) =>
      connectClient(new StreamableHTTPClientTransport(new URL(stack.mcpUrl("shared2026")), { requestInit: { headers: { authorization: `Bearer ${key}` } } }));
    await using mallory = await clientOf(keys.mallory!);
    await using alice = await clientOf(keys.alice!);
    expect((await alice.callTool({ name: names["modern/pid"]!, arguments: {} })).isError).toBeFalsy();
    const big = "A".repeat(70 * 1024);
    const failures = await aliceDuringFlood(mallory, { name: names["modern/echo"]!, arguments: { message: `mallory-private-note ${big}` } }, alice, { name: names["modern/pid"]!, arguments: {} });
    expect(failures.filter((f) => f.includes("mallory-private-note")).length, "alice's errors quoting mallory's request").toBe(0);
    expect(failures.length, "alice's failed calls").toBe(0);
  });
});
