// A deliberately cheap MCP server for benchmarks: an echo tool (plus `TOOLS` numbered tools for
// catalog-size scenarios), over Streamable HTTP (JSON responses only, keep-alive) or, with
// `--stdio`, over stdio (for peers that wrap a stdio server, such as mcp-proxy). It speaks just
// enough of both eras: 2025 (initialize, notifications, tools/list, tools/call, ping) and
// 2026-07-28 (server/discover, and any request whose `_meta` carries that version, sessionless,
// with `resultType`). Usage: node fastUpstream.js <port> [tools] | node fastUpstream.js --stdio
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { createInterface } from "node:readline";

const MODERN = "2026-07-28";
const stdio = process.argv[2] === "--stdio";
const port = Number(process.argv[2] ?? 0);
const extraTools = stdio ? 0 : Number(process.argv[3] ?? 0);
const echo = { name: "echo", description: "Echoes its message", inputSchema: { type: "object", properties: { message: { type: "string" } } } };
const tools = [
  echo,
  ...Array.from({ length: extraTools }, (_, i) => ({
    name: `tool_${i}`,
    description: `Numbered tool ${i} for catalog-size benchmarks`,
    inputSchema: { type: "object", properties: { value: { type: "string", description: "any value" } }, required: ["value"] },
  })),
];
const capabilities = { tools: {} };
const serverInfo = { name: "fast-upstream", version: "1.0.0" };

interface Message {
  id?: number | string;
  method: string;
  params?: any;
}

/** The result of one request, and whether it starts a 2025 session. */
function answer(message: Message): { result: unknown; opensSession: boolean } {
  const modern = message.method === "server/discover" || message.params?._meta?.["io.modelcontextprotocol/protocolVersion"] === MODERN;
  let result: Record<string, unknown>;
  switch (message.method) {
    case "initialize":
      return { result: { protocolVersion: message.params?.protocolVersion ?? "2025-06-18", capabilities, serverInfo }, opensSession: true };
    case "server/discover":
      result = { supportedVersions: [MODERN], capabilities, _meta: { "io.modelcontextprotocol/serverInfo": serverInfo } };
      break;
    case "tools/list":
      result = modern ? { tools, ttlMs: 60_000, cacheScope: "public" } : { tools };
      break;
    case "tools/call":
      result = { content: [{ type: "text", text: String(message.params?.arguments?.message ?? "") }] };
      break;
    default:
      result = {};
  }
  return { result: modern ? { resultType: "complete", ...result } : result, opensSession: false };
}

if (stdio) {
  const lines = createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    if (!line.trim()) return;
    const message = JSON.parse(line) as Message;
    if (message.id === undefined) return;
    process.stdout.write(`${JSON.stringify({ jsonrpc: "2.0", id: message.id, result: answer(message).result })}\n`);
  });
} else {
  const server = createServer((req, res) => {
    if (req.method === "DELETE") return void res.writeHead(200).end();
    if (req.method !== "POST") return void res.writeHead(405, { allow: "POST, DELETE" }).end();
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const message = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Message;
      if (message.id === undefined) return void res.writeHead(202).end();
      const { result, opensSession } = answer(message);
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (opensSession) headers["mcp-session-id"] = randomUUID();
      res.writeHead(200, headers).end(JSON.stringify({ jsonrpc: "2.0", id: message.id, result }));
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(port, "127.0.0.1", () => {
    const address = server.address();
    process.stdout.write(`listening ${typeof address === "object" && address ? address.port : port}\n`);
  });
}
