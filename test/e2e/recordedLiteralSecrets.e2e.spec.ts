import { RegistryStream, Subjects } from "@manifold/contracts";
import type { NatsServer } from "@manifold/nats-server";
import { jetstreamManager } from "@nats-io/jetstream";
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import { afterAll, beforeAll, expect, test } from "vitest";
import { listening } from "../helpers/listening.js";
import { appendEvent, appendRecorded } from "../helpers/recordedEvents.js";
import { eventually } from "../helpers/mcp.js";
import { registryEvents } from "../helpers/registryProcess.js";
import { connectAs, startNats, startStack, type Stack } from "../helpers/stack.js";

// The registry refuses literal secrets at registration now (literalSecrets.unit), but an event an
// older release stored holds them still, and events replay as written. Here such events are
// appended to the registry stream as that release did, and every place an operator or a log
// reader looks is searched for the secrets: they must be named there (which field), never shown.
// The connector still sends them, and an upstream refusing one may quote it back (into the health
// reason and a discovery's failure, which every admin and reader token reads, and the log): before,
// `legacy-echo`'s key, so quoted, was in 5 of the 18 sinks; the connector now withholds it as it
// does a resolved secret.

const hex = () => randomBytes(20).toString("hex");
const SECRETS = {
  fragment: hex(),
  pathParameter: hex(),
  jwt: `eyJhbGciOiJIUzI1NiJ9.${Buffer.from(JSON.stringify({ sub: hex() })).toString("base64url")}.${hex()}`,
  argument: hex(),
  command: hex(),
  issuer: hex(),
  jwksPassword: hex(),
  echoed: hex(),
};
const STDIO_FIXTURE = new URL("../fixtures/stdio-upstream.mjs", import.meta.url).pathname;

/**
 * A 2025 Streamable HTTP upstream at any path (the recorded URL's path parameter included), serving
 * one tool; sent an API key, it refuses the handshake quoting the key, as many do.
 */
const startUpstream = () =>
  listening(
    createServer(async (req, res) => {
      if (req.method !== "POST") return void res.writeHead(405).end();
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const message = JSON.parse(Buffer.concat(chunks).toString()) as { id?: number; method: string };
      if (message.id === undefined) return void res.writeHead(202).end();
      const key = req.headers["x-api-key"];
      if (key) return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ jsonrpc: "2.0", id: message.id, error: { code: -32001, message: `unknown API key ${String(key)}` } }));
      const result =
        message.method === "initialize" ? { protocolVersion: "2025-06-18", capabilities: { tools: {} }, serverInfo: { name: "legacy", version: "1" } }
        : message.method === "tools/list" ? { tools: [{ name: "ping", inputSchema: { type: "object" } }] }
        : {};
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ jsonrpc: "2.0", id: message.id, result }));
    }),
  );

let nats: NatsServer;
let stack: Stack;
let upstream: Awaited<ReturnType<typeof startUpstream>>;
const logs: string[] = [];

beforeAll(async () => {
  nats = await startNats();
  [stack, upstream] = await Promise.all([startStack(nats.url, { HEALTH_HEARTBEAT_MS: "300" }, { logs }), startUpstream()]);
  const url = new URL(upstream.url);
  await appendRecorded(nats, "legacy-http", {
    type: "streamable-http",
    url: `${url.origin}${url.pathname};jsessionid=${SECRETS.pathParameter}#access_token=${SECRETS.fragment}`,
    headers: { "X-Trace-Context": SECRETS.jwt, "X-Region": "eu-west-1" },
    secretHeaders: {},
    protocol: "2025",
  });
  await appendRecorded(nats, "legacy-echo", { type: "streamable-http", url: upstream.url, headers: { "X-Api-Key": SECRETS.echoed }, secretHeaders: {}, protocol: "2025" });
  await appendRecorded(nats, "legacy-stdio", { type: "stdio", command: process.execPath, args: [STDIO_FIXTURE, `--api-key=${SECRETS.argument}`], env: {}, secretEnv: {} });
  await appendRecorded(nats, "legacy-line", { type: "stdio", command: `${process.execPath} ${STDIO_FIXTURE} --token ${SECRETS.command}`, args: [], env: {}, secretEnv: {} });
  await appendEvent(nats, Subjects.identityProviderEvents("legacy-idp"), "identity-provider.registered", {
    name: "legacy-idp",
    issuer: `https://idp.example/?access_token=${SECRETS.issuer}`,
    audience: "manifold",
    jwksUrl: `https://ops:${SECRETS.jwksPassword}@127.0.0.1:1/jwks`,
    consumerClaim: "sub",
    groupsClaim: "groups",
    groups: [],
  });
  await eventually(async () => ((await stack.admin.get("/v1/identity-providers/legacy-idp")).status === 200 ? true : undefined), 15_000);
  // Replayed into the projection: each reads back once its connectors have reported on it.
  for (const name of ["legacy-http", "legacy-echo", "legacy-stdio", "legacy-line"]) {
    await eventually(async () => ((await stack.admin.get(`/v1/upstreams/${name}`)).body.health?.replicas?.length ? true : undefined), 15_000);
  }
});

afterAll(async () => {
  await stack?.close();
  await upstream?.close();
  await nats?.stop();
});

test("attack: literal secrets in events recorded before the checks are shown by no admin read and no log after replay", async () => {
  const sinks: Record<string, string> = {};
  // Discovered again through the recorded URL and header: the registration works as it did.
  const discovered = await stack.admin.post("/v1/upstreams/legacy-http/discover", {});
  sinks["POST /v1/upstreams/legacy-http/discover"] = JSON.stringify(discovered.body);
  // Its key quoted back by the upstream that refuses it: in the discovery's failure and the health reason.
  sinks["POST /v1/upstreams/legacy-echo/discover"] = JSON.stringify((await stack.admin.post("/v1/upstreams/legacy-echo/discover", {})).body);
  for (const path of ["/v1/identity-providers", "/v1/identity-providers/legacy-idp", "/v1/identity-providers/legacy-idp/history", "/v1/upstreams", ...["legacy-http", "legacy-echo", "legacy-stdio", "legacy-line"].flatMap((n) => [`/v1/upstreams/${n}`, `/v1/upstreams/${n}/history`])]) {
    sinks[`GET ${path}`] = JSON.stringify((await stack.admin.get(path)).body);
  }
  sinks.logs = logs.join("\n");
  // Every stream on the bus but the registry's own (which keeps the events as written): health reports, audit, the KV buckets.
  const nc = await connectAs(nats, "operator", "inspector");
  try {
    const jsm = await jetstreamManager(nc);
    for await (const info of jsm.streams.list()) {
      if (info.config.name === RegistryStream.name) continue;
      let text = "";
      for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) text += (await jsm.streams.getMessage(info.config.name, { seq }).catch(() => undefined))?.string() ?? "";
      sinks[`stream ${info.config.name}`] = text;
    }
  } finally {
    await nc.close();
  }
  const where = Object.entries(sinks).flatMap(([sink, text]) => Object.entries(SECRETS).flatMap(([secret, value]) => (text.includes(value) ? [`${sink}: ${secret}`] : [])));
  console.info(`recorded literal secrets: ${Object.keys(SECRETS).length} searched in ${Object.keys(sinks).length} sinks (${logs.length} log lines); found ${where.length}: ${where.join("; ")}`);
  expect(where).toEqual([]);
  // The events are kept and still served: the HTTP upstream's tool was discovered through the recorded URL and header.
  const http = (await stack.admin.get("/v1/upstreams/legacy-http")).body;
  expect(http.transport.headers["X-Region"]).toBe("eu-west-1");
  expect(http.tools.map((t: { name: string }) => t.name)).toEqual(["ping"]);
  // The connector's refusal of the recorded command line names its program alone.
  expect(JSON.stringify((await stack.admin.get("/v1/upstreams/legacy-line")).body.health)).toContain("[redacted]");
  // The refusal of the recorded key is told, its quote withheld.
  const echo = (await stack.admin.get("/v1/upstreams/legacy-echo")).body;
  expect(JSON.stringify(echo.health)).toContain("unknown API key [redacted]");
  expect(echo.literalSecrets).toEqual(["transport.headers.X-Api-Key"]);
  // The stored events are kept as written.
  expect((await registryEvents(nats)).filter((e) => e.type === "upstream.registered" && JSON.stringify(e).includes(SECRETS.fragment))).toHaveLength(1);
  // The read names each field that holds one, never its value.
  expect(http.literalSecrets).toEqual(expect.arrayContaining([expect.stringContaining("transport.url"), expect.stringContaining("transport.headers.X-Trace-Context")]));
  expect((await stack.admin.get("/v1/identity-providers/legacy-idp")).body.literalSecrets).toEqual(["issuer", "jwksUrl"]);
  expect((await stack.admin.get("/v1/upstreams/legacy-stdio")).body.literalSecrets).toEqual([expect.stringContaining("transport.args.1")]);
});
