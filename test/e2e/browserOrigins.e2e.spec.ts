import type { NatsServer } from "@manifold/nats-server";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { startBrowser, type HeadlessBrowser } from "../helpers/browser.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

/** A blank page at its own origin: where a browser agent's script runs. */
async function startPage(): Promise<{ server: Server; origin: string }> {
  const server = createServer((_req, res) => res.writeHead(200, { "content-type": "text/html" }).end("<!doctype html><title>agent</title>"));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** What a page's script got: the answers it could read, or the error the browser gave it. */
interface Seen {
  error?: string;
  session?: string | null;
  tools?: string[];
  text?: string;
  unauthorized?: { status: number; challenge: string | null };
  metadataStatus?: number;
}

/**
 * The MCP exchanges a browser agent makes, run in the page: 2025 (initialize, reading the session
 * from `Mcp-Session-Id`, then tools/list), 2026-07-28 (a tools/call with `Mcp-Method`/`Mcp-Name`),
 * a request without credentials (reading `WWW-Authenticate`, where OAuth discovery starts) and the
 * protected resource's metadata URL (a route beside the MCP endpoints). Each custom header makes
 * the browser ask first (a preflight).
 */
async function runAgent(args: { url: string; metadataUrl: string; key: string; tool: string }): Promise<Seen> {
  const accept = "application/json, text/event-stream";
  const json = async (res: Response) => {
    const text = await res.text();
    return text.startsWith("event:") ? JSON.parse(text.split("\n").find((l) => l.startsWith("data:"))!.slice(5)) : JSON.parse(text);
  };
  try {
    const seen: Seen = {};
    const auth = { authorization: `Bearer ${args.key}`, "content-type": "application/json", accept };
    const init = await fetch(args.url, {
      method: "POST",
      headers: { ...auth, "mcp-protocol-version": "2025-06-18" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "page", version: "1" } } }),
    });
    await init.text();
    seen.session = init.headers.get("mcp-session-id");
    const legacy = { ...auth, "mcp-protocol-version": "2025-06-18", "mcp-session-id": seen.session ?? "" };
    await fetch(args.url, { method: "POST", headers: legacy, body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }) });
    const list = await json(await fetch(args.url, { method: "POST", headers: legacy, body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list" }) }));
    seen.tools = list.result.tools.map((t: { name: string }) => t.name);
    const meta = { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": { name: "page", version: "1" }, "io.modelcontextprotocol/clientCapabilities": {} };
    const call = await fetch(args.url, {
      method: "POST",
      headers: { ...auth, "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": args.tool },
      body: JSON.stringify({ jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: args.tool, arguments: { message: "from a page" }, _meta: meta } }),
    });
    seen.text = (await json(call)).result.content[0].text;
    const anonymous = await fetch(args.url, { method: "POST", headers: { "content-type": "application/json", accept }, body: JSON.stringify({ jsonrpc: "2.0", id: 4, method: "tools/list" }) });
    await anonymous.text();
    seen.unauthorized = { status: anonymous.status, challenge: anonymous.headers.get("www-authenticate") };
    const metadata = await fetch(args.metadataUrl);
    await metadata.text();
    seen.metadataStatus = metadata.status;
    return seen;
  } catch (error) {
    return { error: String(error) };
  }
}

/**
 * Browser agents on the origins an operator lists in `GATEWAY_ALLOWED_ORIGINS`. Before, a listed
 * origin passed the Origin check but could not use the gateway: a preflight was answered 405 and no
 * answer carried `Access-Control-Allow-Origin`, so the browser gave the page only a network error
 * (the setting could admit no browser at all). Origins not listed stay refused.
 */
describe("browser agents on allowed origins (CORS)", () => {
  let nats: NatsServer;
  let stack: Stack;
  let upstream: RecordingUpstream;
  let browser: HeadlessBrowser;
  let allowed: { server: Server; origin: string };
  let foreign: { server: Server; origin: string };
  let key: string;
  let tool: string;

  beforeAll(async () => {
    [nats, upstream, browser, allowed, foreign] = await Promise.all([startNats(), startRecordingUpstream(), startBrowser(), startPage(), startPage()]);
    stack = await startStack(nats.url, { GATEWAY_AUTH: "required", GATEWAY_ALLOWED_ORIGINS: allowed.origin });
    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: upstream.url } });
    tool = (await createVirtualServer(stack, "web", [{ upstream: "rec", tool: "echo" }]))["rec/echo"]!;
    ({ agent: key } = (await grantedConsumers(stack, "web", ["agent"])) as { agent: string });
  });

  afterAll(async () => {
    await browser?.close();
    await stack?.close();
    await upstream?.close();
    await nats?.stop();
    allowed?.server.close();
    foreign?.server.close();
  });

  const agentAt = async (origin: string) => {
    const page = await browser.page();
    await page.goto(`${origin}/`);
    const { origin: gateway } = new URL(stack.gatewayUrl);
    const seen = await page.evaluate(runAgent, { url: stack.mcpUrl("web"), metadataUrl: `${gateway}/.well-known/oauth-protected-resource/mcp/web`, key, tool });
    await page.context().close();
    return seen;
  };

  test("a page of a listed origin speaks both eras, reads the session id, the challenge and the metadata route's answer", async () => {
    const seen = await agentAt(allowed.origin);
    expect(seen.error).toBeUndefined();
    expect(seen.session).toMatch(/\S/);
    expect(seen.tools).toEqual([tool]);
    expect(seen.text).toBe("echo: from a page");
    expect(seen.unauthorized?.status).toBe(401);
    expect(seen.unauthorized?.challenge).toMatch(/^Bearer /);
    // No authorization server is registered here: what matters is that the page may read the answer at all.
    expect(seen.metadataStatus).toBe(404);
  });

  test("attack: a page of an origin not listed gets nothing, its preflight refused 403", async () => {
    const calls = upstream.calls.length;
    const seen = await agentAt(foreign.origin);
    expect(seen.error).toMatch(/TypeError/);
    expect(upstream.calls.length).toBe(calls);
    const preflight = await fetch(stack.mcpUrl("web"), { method: "OPTIONS", headers: { origin: foreign.origin, "access-control-request-method": "POST" } });
    expect(preflight.status).toBe(403);
    expect(preflight.headers.get("access-control-allow-origin")).toBeNull();
  });

  test("a preflight is answered for the listed origin alone; clients that are not browsers see no CORS headers", async () => {
    const preflight = await fetch(stack.mcpUrl("web"), {
      method: "OPTIONS",
      headers: { origin: allowed.origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type, mcp-protocol-version, mcp-method, mcp-name" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe(allowed.origin);
    expect(preflight.headers.get("access-control-allow-methods")).toBe("GET, POST, DELETE");
    expect(preflight.headers.get("access-control-allow-headers")).toBe("authorization, content-type, mcp-protocol-version, mcp-method, mcp-name");
    expect(preflight.headers.get("access-control-allow-credentials")).toBeNull();
    expect(preflight.headers.get("vary")).toMatch(/origin/i);
    // A header list that is not a list of header names is not echoed (the browser then refuses the request).
    const odd = await fetch(stack.mcpUrl("web"), { method: "OPTIONS", headers: { origin: allowed.origin, "access-control-request-method": "POST", "access-control-request-headers": "a b; c" } });
    expect(odd.status).toBe(204);
    expect(odd.headers.get("access-control-allow-headers")).toBeNull();
    // An OPTIONS that is no preflight is what it was: not served on an MCP endpoint.
    expect((await fetch(stack.mcpUrl("web"), { method: "OPTIONS" })).status).toBe(405);
    const plain = await fetch(stack.mcpUrl("web"), { method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/list" }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list", params: { _meta: { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": { name: "cli", version: "1" }, "io.modelcontextprotocol/clientCapabilities": {} } } }) });
    await plain.text();
    expect(plain.status).toBe(200);
    expect([...plain.headers.keys()].filter((h) => h.startsWith("access-control-"))).toEqual([]);
  });
});
