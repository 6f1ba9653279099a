import { deepText, type Random } from "./random.js";
import type { HttpCase } from "./exchange.js";

export interface McpTarget {
  virtualServer: string;
  key: string;
  session: string;
  tools: string[];
  upstream: string;
  bodyLimit: number;
}

const ACCEPT = "application/json, text/event-stream";

/** Hostile MCP requests, one per call, covering the kinds the gateway must answer without failing. */
export function mcpCase(r: Random, t: McpTarget): HttpCase {
  // Ids are mostly unique: a repeated id in flight in the session is (correctly) refused, which would hide the rest.
  const rpc = (method: string, params?: unknown, id: unknown = r.int(1, 1e12)) => ({ jsonrpc: "2.0", id, method, ...(params === undefined ? {} : { params }) });
  const path = `/mcp/${t.virtualServer}`;
  const headers: Record<string, string> = {
    authorization: `Bearer ${t.key}`,
    "content-type": "application/json",
    accept: ACCEPT,
    "mcp-protocol-version": "2025-06-18",
    "mcp-session-id": t.session,
  };
  const post = (kind: string, body: unknown, extra: Record<string, string> = {}): HttpCase => ({
    kind,
    method: "POST",
    path,
    headers: { ...headers, ...extra },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const tool = () => (r.chance(0.8) ? r.pick(t.tools) : r.string());
  const kind = r.int(0, 20);
  switch (kind) {
    case 0: {
      const valid = JSON.stringify(rpc("tools/call", { name: tool(), arguments: r.json() }));
      const broken = r.pick([valid.slice(0, r.int(0, valid.length - 1)), valid.replace(/"/g, "'"), r.string(r.int(1, 200)), "\u0000", "{", "[1,]", "NaN", '{"a":1}}', "\ufeff{}"]);
      return post("invalid-json", broken);
    }
    case 1:
      return post("wrong-shape", r.pick([null, 1, "x", true, {}, { jsonrpc: "2.0" }, { jsonrpc: "1.0", id: 1, method: "ping" }, { jsonrpc: "2.0", id: 1, method: 5 }, { jsonrpc: "2.0", id: {}, method: "ping" }, { jsonrpc: "2.0", id: 1, method: "tools/call", params: "x" }, { jsonrpc: "2.0", id: 1, result: {} }, { jsonrpc: "2.0", id: 1, error: { code: "x" } }, r.json()]));
    case 2:
      return post("batch", Array.from({ length: r.int(0, 20) }, (_v, i) => (r.chance(0.7) ? rpc(r.pick(["ping", "tools/list", "tools/call", "initialize", r.string()]), r.json(2), r.chance(0.3) ? 1 : i) : r.json(2))));
    case 3:
      return post("huge-id", rpc("ping", undefined, r.pick([r.string(r.int(1_000, 50_000)), 1e308, -0, 2 ** 64, 1.5, r.int(-1e15, 1e15), null, [], { a: 1 }, true])));
    case 4: {
      const depth = r.pick([60, 65, 200, 3_000, 5_000, 50_000]);
      const deep = deepText(depth, r.chance(0.5));
      const body = r.pick([
        `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"${t.tools[0]}","arguments":{"x":${deep}}}}`,
        `{"jsonrpc":"2.0","id":1,"method":"ping","params":${deep}}`,
        `[${deep}]`,
        deep,
      ]);
      return post("deep-nesting", body.length > t.bodyLimit ? deepText(3_000, true) : body);
    }
    case 5: {
      const size = r.pick([10_000, 100_000, t.bodyLimit - 200, t.bodyLimit + 10]);
      return post("giant-string", rpc("tools/call", { name: t.tools[0], arguments: { message: "g".repeat(Math.max(0, size)) } }));
    }
    case 6: {
      const type = r.pick(["text/plain", "application/xml", "multipart/form-data; boundary=x", "application/json; charset=latin1", "application/x-www-form-urlencoded", "application/jsonx", "", "*/*", "application/json, text/plain"]);
      const c = post("content-type", rpc("tools/list"), { "content-type": type });
      if (type === "") delete c.headers["content-type"];
      return c;
    }
    case 7:
      return post("bad-session", rpc("tools/list"), { "mcp-session-id": r.pick([r.token(), r.token(300), "00000000-0000-0000-0000-000000000000", t.session.toUpperCase(), `${t.session} `, "../../etc"]) });
    case 8: {
      const method = r.pick(["HEAD", "PUT", "PATCH", "OPTIONS", "TRACE", "PROPFIND", "GET", "DELETE"]);
      // Never the live session: DELETE would end it, GET would open its (endless) notification stream.
      const sessionHeaders: Record<string, string> = method === "DELETE" || method === "GET" ? { "mcp-session-id": r.token() } : {};
      return { kind: "odd-method", method, path, headers: { ...headers, ...sessionHeaders }, ...(r.chance(0.5) && method !== "GET" && method !== "HEAD" ? { body: "{}" } : {}) };
    }
    case 9: {
      const poison = r.pick(['{"__proto__":{"admin":true}}', '{"constructor":{"prototype":{"admin":true}}}', '{"prototype":1}', '{"a":{"__proto__":[]}}']);
      return post("prototype-keys", r.pick([
        `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"${t.tools[0]}","arguments":${poison}}}`,
        `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":${poison}}`,
        `{"jsonrpc":"2.0","id":1,"method":"ping","__proto__":{"x":1}}`,
        `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"${t.tools[0]}","arguments":{"message":"m"},"_meta":${poison}}}`,
      ]));
    }
    case 10:
      return post("schema-violation", rpc("tools/call", r.pick([{ name: tool(), arguments: r.json() }, { name: r.json(), arguments: {} }, { arguments: [] }, { name: tool(), arguments: { message: r.json() } }, { name: tool(), arguments: { a: r.json(), b: "2" } }, {}])));
    case 11:
      return post("oversized", rpc("ping", { pad: "o".repeat(t.bodyLimit + r.int(1, 100_000)) }));
    case 12: {
      const value = r.pick([
        "not json",
        "[]",
        "null",
        JSON.stringify({ [t.upstream]: { authorization: r.string() } }),
        JSON.stringify({ [t.upstream]: { [r.token()]: r.token() } }),
        JSON.stringify({ ghost: { a: "b" } }),
        JSON.stringify({ [t.upstream]: r.json() }),
        JSON.stringify({ [t.upstream]: { "x-tenant": "v".repeat(r.int(1, 20_000)) } }),
        deepText(200, false),
      ]);
      // Header values must be Latin-1 without controls: JSON escapes carry the rest.
      return post("upstream-headers", rpc("tools/call", { name: t.tools[0], arguments: { message: "h" } }), { "x-manifold-upstream-headers": value.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`) });
    }
    case 13: {
      const name = r.pick([encodeURIComponent(r.string(r.int(1, 80))), r.token(r.int(64, 300)), "%", "%zz", "..", "%2e%2e", "a".repeat(1_500), t.virtualServer.toUpperCase(), `${t.virtualServer}%00`]);
      const query = r.chance(0.5) ? `?${r.token(r.int(1, 200))}` : "";
      const env = r.chance(0.3) ? `${r.pick(["prod", encodeURIComponent(r.string(10)), "..", "x".repeat(200)])}/` : "";
      return { kind: "hostile-name", method: r.pick(["POST", "GET", "DELETE"]), path: `/mcp/${env}${name}${query}`, headers, body: JSON.stringify(rpc("initialize", { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "f", version: "1" } })) };
    }
    case 14: {
      const authorization = r.pick(["", "Bearer", "Bearer ", `Bearer ${r.token()}`, `Basic ${r.token()}`, `Bearer mk_${r.token(40)}`, `bearer ${t.key}`, `Bearer ${t.key}x`, `Bearer ${"k".repeat(8_000)}`, "Bearer a.b.c"]);
      return post("credentials", rpc("tools/list"), { authorization });
    }
    case 15:
      return post("protocol-headers", rpc(r.pick(["ping", "tools/list", "tools/call"]), { name: t.tools[0], arguments: { message: "p" } }), {
        accept: r.pick(["text/html", "application/json", "text/event-stream", "*/*", ACCEPT]),
        "mcp-protocol-version": r.pick(["1999-01-01", "2025-03-26", "2025-06-18", r.token(), ""]),
      });
    case 16:
      return post("notifications", r.pick([{ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: r.json(1) } }, { jsonrpc: "2.0", method: "notifications/initialized" }, { jsonrpc: "2.0", method: r.string() }, { jsonrpc: "2.0", method: "notifications/progress", params: r.json() }]));
    case 17:
      return post("without-session", rpc(r.pick(["initialize", "tools/list", "ping"]), r.chance(0.5) ? { protocolVersion: r.string(), capabilities: r.json(), clientInfo: r.json() } : r.json()), { "mcp-session-id": "" });
    case 18: {
      const extra = r.pick<Record<string, string>>([{ "x-padding": "p".repeat(20_000) }, Object.fromEntries(Array.from({ length: 200 }, (_v, i) => [`x-h${i}`, "v".repeat(100)])), { host: `evil${r.int(0, 9)}.example` }, { origin: r.pick(["http://evil.example", "null", r.token()]) }]);
      return post("edge-headers", rpc("ping"), extra);
    }
    case 19: {
      // MCP 2026-07-28 (stateless): envelopes, mirrored headers and revisions bent every way.
      // Never subscriptions/listen: its answer is an endless stream.
      const method = r.pick(["tools/list", "tools/call", "server/discover", "ping", "initialize", "resources/read", r.string(20)]);
      const envelope = r.pick<unknown>([
        { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {} },
        { "io.modelcontextprotocol/protocolVersion": r.pick(["2099-01-01", "2025-06-18", r.string(12), 7]), "io.modelcontextprotocol/clientCapabilities": r.json(2) },
        { "io.modelcontextprotocol/protocolVersion": "2026-07-28" },
        { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}, traceparent: r.pick(["00-zz", r.string(60), `00-${"a".repeat(32)}-${"b".repeat(16)}-01`]) },
        r.json(3),
      ]);
      const name = tool();
      const params = r.chance(0.9) ? { name, arguments: r.chance(0.7) ? { message: r.string(10) } : r.json(), _meta: envelope } : r.json();
      const modern: Record<string, string> = {
        "mcp-session-id": "",
        "mcp-protocol-version": r.pick(["2026-07-28", "2026-07-28", "2099-01-01", "2025-06-18", "", r.token()]),
        "mcp-method": r.pick([method, method, "tools/call", "", r.token()]),
        "mcp-name": r.pick([name, name, "", "=?base64?%%%?=", `=?base64?${Buffer.from(name).toString("base64")}?=`, r.token()]),
      };
      const c = post("modern", rpc(method, params, r.chance(0.1) ? undefined : r.int(1, 1e12)), modern);
      for (const [header, value] of Object.entries(c.headers)) if (value === "") delete c.headers[header];
      return c;
    }
    default:
      // Well-formed requests mixed in: the fuzz must not break what works.
      return post("valid", r.chance(0.5) ? rpc("tools/list", undefined, r.int(1, 1e9)) : rpc("tools/call", { name: t.tools[0], arguments: { message: r.string(20) } }, r.token(20)));
  }
}
