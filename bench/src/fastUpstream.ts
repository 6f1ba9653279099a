// A deliberately cheap Streamable HTTP MCP server for benchmarks: JSON responses only, an
// echo tool (plus `TOOLS` numbered tools for catalog-size scenarios), keep-alive. It speaks
// just enough of the protocol for the SDK client: initialize, notifications, tools/list,
// tools/call, ping. Usage: node fastUpstream.js <port> [tools]
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";

const port = Number(process.argv[2] ?? 0);
const extraTools = Number(process.argv[3] ?? 0);
const echo = { name: "echo", description: "Echoes its message", inputSchema: { type: "object", properties: { message: { type: "string" } } } };
const tools = [
  echo,
  ...Array.from({ length: extraTools }, (_, i) => ({
    name: `tool_${i}`,
    description: `Numbered tool ${i} for catalog-size benchmarks`,
    inputSchema: { type: "object", properties: { value: { type: "string", description: "any value" } }, required: ["value"] },
  })),
];

const server = createServer((req, res) => {
  if (req.method === "DELETE") return void res.writeHead(200).end();
  if (req.method !== "POST") return void res.writeHead(405, { allow: "POST, DELETE" }).end();
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const message = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { id?: number | string; method: string; params?: any };
    if (message.id === undefined) return void res.writeHead(202).end();
    const headers: Record<string, string> = { "content-type": "application/json" };
    let result: unknown;
    switch (message.method) {
      case "initialize":
        headers["mcp-session-id"] = randomUUID();
        result = {
          protocolVersion: message.params?.protocolVersion ?? "2025-06-18",
          capabilities: { tools: {} },
          serverInfo: { name: "fast-upstream", version: "1.0.0" },
        };
        break;
      case "tools/list":
        result = { tools };
        break;
      case "tools/call":
        result = { content: [{ type: "text", text: String(message.params?.arguments?.message ?? "") }] };
        break;
      default:
        result = {};
    }
    res.writeHead(200, headers).end(JSON.stringify({ jsonrpc: "2.0", id: message.id, result }));
  });
});
server.keepAliveTimeout = 60_000;
server.listen(port, "127.0.0.1", () => {
  const address = server.address();
  process.stdout.write(`listening ${typeof address === "object" && address ? address.port : port}\n`);
});
