import { serviceEntry, spawnService, type ServiceName, type ServiceProcess } from "@manifold/cli";
import { freePort, type NatsServer } from "@manifold/nats-server";
import { jetstreamManager } from "@nats-io/jetstream";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startAuthorizationServer, type AuthorizationServerFixture } from "../fixtures/authorizationServer.js";
import { startOAuthUpstream, type OAuthUpstream } from "../fixtures/oauthUpstream.js";
import { startOtlpReceiver, type OtlpReceiver } from "../fixtures/otlpReceiver.js";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { AdminClient } from "../helpers/admin.js";
import { connectClient, eventually } from "../helpers/mcp.js";
import { ADMIN_TOKEN, busEnv, connectAs, startNats } from "../helpers/stack.js";
import { vaultClient } from "../helpers/vaultStack.js";
import { Browser } from "../helpers/connectLink.js";
import { TEST_STDIO_COMMANDS } from "../helpers/upstreams.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";

const STDIO_FIXTURE = new URL("../fixtures/stdio-upstream.mjs", import.meta.url).pathname;
/** Every planted value holds this: no log line, answer, stream, metric or span may. */
const PLANT = `PLANT${randomBytes(4).toString("hex")}`;
const HEADER = "X-Manifold-Upstream-Headers";
/** The token vault's key: random bytes (it cannot hold the plant), searched for by value. */
const VAULT_KEY = randomBytes(32).toString("base64");
const asciiJson = (value: unknown) => JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);

describe("secrets never leave through errors, logs, health, streams, metrics or spans", () => {
  let nats: NatsServer;
  let receiver: OtlpReceiver;
  let recording: RecordingUpstream;
  let admin: AdminClient;
  let dir: string;
  let secrets: string;
  let gatewayUrl: string;
  let as: AuthorizationServerFixture;
  let oauthUpstream: OAuthUpstream;
  const ports = {} as Record<ServiceName, number>;
  let metricsPort = 0;
  let registryMetricsPort = 0;
  const services: ServiceProcess[] = [];
  /** Everything an operator, an agent or another system can read, collected as text. */
  const seen: { where: string; text: string }[] = [];

  const bad = {
    "h-env-multiline": { type: "streamable-http", secretHeaders: { Authorization: "env:MANIFOLD_SECRET_ML" } },
    "h-env-crlf": { type: "streamable-http", secretHeaders: { "X-Api-Key": "env:MANIFOLD_SECRET_CRLF" } },
    "h-env-nonascii": { type: "streamable-http", secretHeaders: { Authorization: "env:MANIFOLD_SECRET_NA" } },
    "h-file-multiline": { type: "streamable-http", secretHeaders: { Authorization: "file:SECRETS/multiline" } },
    "h-file-nul": { type: "sse", secretHeaders: { Authorization: "file:SECRETS/nul" } },
    "s-file-nul": { type: "stdio", secretEnv: { TOKEN: "file:SECRETS/nul" } },
    "h-file-symlink": { type: "streamable-http", secretHeaders: { Authorization: "file:SECRETS/escape" } },
  } as const;

  beforeAll(async () => {
    [nats, receiver, recording] = await Promise.all([startNats(), startOtlpReceiver(), startRecordingUpstream()]);
    dir = await mkdtemp(join(tmpdir(), "manifold-hygiene-"));
    secrets = join(dir, "secrets");
    await mkdir(secrets);
    await writeFile(join(secrets, "multiline"), `Bearer ${PLANT}-file-ml\nsecond line\n`);
    await writeFile(join(secrets, "nul"), `Bearer ${PLANT}-file-nul\u0000tail`);
    await writeFile(join(dir, "outside"), `Bearer ${PLANT}-outside`);
    await symlink(join(dir, "outside"), join(secrets, "escape"));
    const common = {
      LOG_LEVEL: "debug",
      GATEWAY_AUTH: "off",
      MANIFOLD_SECRETS_DIR: secrets,
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_BSP_SCHEDULE_DELAY: "100",
      HEALTH_HEARTBEAT_MS: "300",
      MANIFOLD_STDIO_COMMANDS: TEST_STDIO_COMMANDS,
    };
    const own: Record<ServiceName, Record<string, string>> = {
      registry: { MANIFOLD_ADMIN_TOKEN: ADMIN_TOKEN },
      connector: {
        MANIFOLD_SECRET_ML: `Bearer ${PLANT}-env-ml\nline two`,
        MANIFOLD_SECRET_CRLF: `${PLANT}-env-crlf\r\nX-Evil: 1`,
        MANIFOLD_SECRET_NA: `Bearer ${PLANT}-env-na秘密`,
      },
      // Authentication on (the vault acts per consumer), the credential-free agents below admitted by an anonymous grant.
      gateway: {
        GATEWAY_AUTH: "required",
        GATEWAY_ALLOW_ANONYMOUS: "true",
        GATEWAY_VAULT_KEYS: "k1=env:MANIFOLD_SECRET_VAULT_KEY",
        MANIFOLD_SECRET_VAULT_KEY: VAULT_KEY,
        MANIFOLD_SECRET_DOCS_CLIENT: `${PLANT}-client-secret`,
        GATEWAY_OAUTH_ALLOW_HTTP: "true",
        // Tokens live 600 s: one older than 2 s is refreshed, so a refresh happens below.
        GATEWAY_VAULT_REFRESH_MARGIN_S: "598",
      },
    };
    const portVar = { registry: "REGISTRY_PORT", connector: "CONNECTOR_PORT", gateway: "GATEWAY_PORT" } as const;
    for (const name of ["registry", "connector", "gateway"] as const) ports[name] = await freePort();
    // The gateway's and the registry's metrics have a listener of their own, never the public or admin port.
    metricsPort = await freePort();
    own.gateway!.GATEWAY_METRICS_PORT = String(metricsPort);
    registryMetricsPort = await freePort();
    own.registry!.REGISTRY_METRICS_PORT = String(registryMetricsPort);
    gatewayUrl = `http://127.0.0.1:${ports.gateway}`;
    own.gateway!.GATEWAY_PUBLIC_URL = gatewayUrl;
    as = await startAuthorizationServer({
      clients: [vaultClient(gatewayUrl, ["docs"], { secret: `${PLANT}-client-secret` })],
    });
    oauthUpstream = await startOAuthUpstream(as.issuer, as.jwksUrl);
    for (const name of ["registry", "connector", "gateway"] as const) {
      const service = spawnService(name, serviceEntry(name), [], { ...common, ...busEnv(nats, name), ...own[name], [portVar[name]]: String(ports[name]) }, join(dir, `${name}.log`));
      services.push(service);
      await service.ready(`http://127.0.0.1:${ports[name]}/readyz`);
    }
    admin = new AdminClient(`http://127.0.0.1:${ports.registry}`, ADMIN_TOKEN);
  });

  afterAll(async () => {
    for (const service of services.reverse()) await service.stop();
    await Promise.all([receiver?.close(), recording?.close(), as?.close(), oauthUpstream?.close()]);
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("planted values in every credential path reach no log, answer, stream, metric, span or agent error", async () => {
    for (const [name, spec] of Object.entries(bad)) {
      const refs = JSON.parse(JSON.stringify(spec).replaceAll("SECRETS", secrets));
      const transport = spec.type === "stdio" ? { ...refs, command: process.execPath, args: [STDIO_FIXTURE] } : { ...refs, url: recording.url };
      const res = await admin.post("/v1/upstreams", { name, transport });
      expect(res.status, JSON.stringify(res.body)).toBeLessThan(300);
      seen.push({ where: `register ${name}`, text: JSON.stringify(res.body) });
    }
    expect((await admin.post("/v1/upstreams", { name: "rec", transport: { type: "streamable-http", url: recording.url } })).body.discovery.status).toBe("ok");
    expect((await admin.post("/v1/virtual-servers", { name: "hygiene", tools: [{ upstream: "rec", tool: "echo" }] })).status).toBe(201);
    expect((await admin.post("/v1/virtual-servers/hygiene/grants", { grantId: "anyone", subject: { anonymous: true } })).status).toBe(201);

    // Each bad reference leaves its upstream down, with a reason that names the reference.
    for (const name of Object.keys(bad)) {
      const health = await eventually(async () => {
        const h = (await admin.get(`/v1/upstreams/${name}`)).body.health;
        return h?.status === "down" && h.replicas[0]?.reason ? h : undefined;
      }, 15_000, 100);
      expect(health.replicas[0].reason).toMatch(/credential reference|secrets directory/);
    }

    // Pass-through values: refused ones, and a valid one that reaches the upstream (and only the upstream).
    const endpoint = `${gatewayUrl}/mcp/hygiene`;
    for (const value of [`Bearer ${PLANT}-pt-nul\u0000x`, `Bearer ${PLANT}-pt-crlf\r\nX-Evil: 1`, `Bearer ${PLANT}-pt-na秘密`]) {
      const res = await fetch(endpoint, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream", [HEADER]: asciiJson({ rec: { Authorization: value } }) },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "x", version: "1" } } }),
      });
      expect(res.status).toBe(400);
      seen.push({ where: "agent error", text: await res.text() });
    }
    {
      await using agent = await connectClient(
        new StreamableHTTPClientTransport(new URL(endpoint), { requestInit: { headers: { [HEADER]: JSON.stringify({ rec: { Authorization: `Bearer ${PLANT}-pt-valid` } }) } } }),
      );
      const result = await agent.callTool({ name: (await agent.listTools()).tools[0]!.name, arguments: { message: "hi" } });
      expect(result.content).toEqual([{ type: "text", text: "echo: hi" }]);
      expect(recording.calls.at(-1)!.headers.authorization).toBe(`Bearer ${PLANT}-pt-valid`);
    }

    // The token vault: consent (code + PKCE verifier + client secret at the token endpoint), a call
    // with the stored token, a refresh, a disconnect (revocation). Every secret that crossed the
    // authorization server's token endpoint is searched for below, with the vault key.
    {
      const docs = { type: "streamable-http", url: oauthUpstream.url, auth: { type: "oauth", clientId: "manifold", clientSecret: "env:MANIFOLD_SECRET_DOCS_CLIENT" } };
      expect((await admin.post("/v1/upstreams", { name: "docs", transport: docs })).status).toBe(201);
      expect((await admin.post("/v1/virtual-servers", { name: "vault", tools: [{ upstream: "docs", tool: "whoami" }] })).status).toBe(201);
      expect((await admin.post("/v1/consumers", { name: "alice" })).status).toBe(201);
      const key = (await admin.post("/v1/consumers/alice/keys", {})).body.key as string;
      expect((await admin.post("/v1/virtual-servers/vault/grants", { grantId: "alice", subject: { consumer: "alice" } })).status).toBe(201);
      const call = async () => {
        const client = new Client({ name: "agent", version: "1" });
        await client.connect(new StreamableHTTPClientTransport(new URL(`${gatewayUrl}/mcp/vault`), { requestInit: { headers: { authorization: `Bearer ${key}` } } }));
        try {
          return await client.callTool({ name: (await client.listTools()).tools[0]!.name, arguments: {} }).then(
            (result) => JSON.stringify(result),
            (error: { data?: { elicitations?: { url: string }[] } }) => error,
          );
        } finally {
          await client.close();
        }
      };
      const refusal = (await call()) as { data: { elicitations: { url: string }[] } };
      seen.push({ where: "consent answer", text: JSON.stringify(refusal) });
      const browser = new Browser();
      const confirmation = await browser.open(refusal.data.elicitations[0]!.url);
      seen.push({ where: "connect page", text: confirmation.text });
      const back = await as.authorize(await browser.openAndConfirm(refusal.data.elicitations[0]!.url), "alice@docs", `${gatewayUrl}/oauth/callback`);
      const landing = await browser.fetch(back);
      seen.push({ where: "callback page", text: `${landing.status} ${JSON.stringify([...landing.headers])} ${await landing.text()}` });
      expect(await call()).toContain("acting for alice@docs");
      await new Promise((r) => setTimeout(r, 2_100));
      expect(await call()).toContain("acting for alice@docs");
      const list = await fetch(`${gatewayUrl}/oauth/connections`, { headers: { authorization: `Bearer ${key}` } });
      seen.push({ where: "GET /oauth/connections", text: await list.text() });
      const gone = await fetch(`${gatewayUrl}/oauth/connections/docs`, { method: "DELETE", headers: { authorization: `Bearer ${key}` } });
      expect(gone.status).toBe(204);
      // code, verifier, two access tokens, one or two refresh tokens, the client secret.
      expect(as.secretsSeen.size).toBeGreaterThanOrEqual(5);
    }

    // The admin API.
    for (const path of ["/v1/upstreams", "/v1/audit", ...Object.keys(bad).flatMap((n) => [`/v1/upstreams/${n}`, `/v1/upstreams/${n}/history`])]) {
      seen.push({ where: `GET ${path}`, text: JSON.stringify((await admin.get(path)).body) });
    }
    // Metrics of every service.
    for (const name of ["registry", "connector", "gateway"] as const) {
      seen.push({ where: `${name} /metrics`, text: await (await fetch(`http://127.0.0.1:${{ gateway: metricsPort, registry: registryMetricsPort, connector: ports.connector }[name]}/metrics`)).text() });
    }
    // Every stream on the bus: registry, health, audit, and the KV buckets.
    const nc = await connectAs(nats, "operator", "inspector");
    try {
      const jsm = await jetstreamManager(nc);
      for await (const info of jsm.streams.list()) {
        for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
          const msg = await jsm.streams.getMessage(info.config.name, { seq }).catch(() => undefined);
          if (msg) seen.push({ where: `stream ${info.config.name}#${seq}`, text: msg.string() + JSON.stringify(msg.header ? [...msg.header] : []) });
        }
      }
    } finally {
      await nc.close();
    }
    // Exported spans, once the exporters have flushed.
    await new Promise((r) => setTimeout(r, 1_000));
    expect(receiver.spans.length).toBeGreaterThan(0);
    seen.push({ where: "spans", text: JSON.stringify(receiver.spans) });
    // Every log line of every service.
    for (const name of ["registry", "connector", "gateway"] as const) {
      seen.push({ where: `${name}.log`, text: await readFile(join(dir, `${name}.log`), "utf8") });
    }

    expect(seen.filter((s) => s.where.startsWith("stream MANIFOLD_HEALTH")).length).toBeGreaterThan(0);
    const planted = [PLANT, VAULT_KEY, ...as.secretsSeen];
    const hits = seen.flatMap((s) =>
      planted.filter((p) => s.text.includes(p)).map((p) => `${s.where}: …${s.text.slice(Math.max(0, s.text.indexOf(p) - 200), s.text.indexOf(p) + 60)}…`),
    );
    expect(hits).toEqual([]);
    // Figures for the record: how many places were searched, for how many distinct secrets.
    console.info(`secret hygiene: ${planted.length} planted or observed secrets searched in ${seen.length} locations`);
  });

  test("references outside the operator's policy are refused at registration, naming the field", async () => {
    const cases = [
      [{ "X-Exfil": "env:MANIFOLD_ADMIN_TOKEN" }, "transport.secretHeaders.X-Exfil"],
      [{ Authorization: "env:HOME" }, "transport.secretHeaders.Authorization"],
      [{ Authorization: `file:${join(dir, "outside")}` }, "transport.secretHeaders.Authorization"],
      [{ Authorization: `file:${secrets}/../outside` }, "transport.secretHeaders.Authorization"],
    ] as const;
    for (const [secretHeaders, field] of cases) {
      const res = await admin.post("/v1/upstreams", { name: "exfil", transport: { type: "streamable-http", url: recording.url, secretHeaders } });
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(res.body.error.code).toBe("invalid_request");
      expect(res.body.error.message).toContain(field);
    }
    expect((await admin.get("/v1/upstreams/exfil")).status).toBe(404);
  });

  test("literal secrets are refused through the admin API, naming the field and the reference mechanism", async () => {
    const literal = `${PLANT}-literal`;
    const cases = [
      [{ type: "streamable-http", url: `http://user:${literal}@127.0.0.1:1/mcp` }, "/transport/url"],
      [{ type: "streamable-http", url: `http://127.0.0.1:1/mcp?api_key=${literal}` }, "/transport/url"],
      [{ type: "streamable-http", url: `http://127.0.0.1:1/mcp#access_token=${literal}` }, "/transport/url"],
      [{ type: "streamable-http", url: "http://127.0.0.1:1/mcp", headers: { "X-Auth": literal } }, "/transport/headers/X-Auth"],
      [{ type: "streamable-http", url: "http://127.0.0.1:1/mcp", headers: { "X-Jwt-Assertion": `eyJhbGciOiJSUzI1NiJ9.${literal}.c2lnbmF0dXJl` } }, "/transport/headers/X-Jwt-Assertion"],
      [{ type: "stdio", command: "node", args: ["server.js", `--api-key=${literal}`] }, "/transport/args/1"],
      [{ type: "stdio", command: "node", args: ["--token", literal] }, "/transport/args/0"],
      [{ type: "stdio", command: `node server.js --api-key=${literal}` }, "/transport/command"],
      [{ type: "stdio", command: "node", env: { GITHUB_TOKEN: literal } }, "/transport/env/GITHUB_TOKEN"],
    ] as const;
    for (const [transport, path] of cases) {
      const res = await admin.post("/v1/upstreams", { name: "literal", transport });
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(res.body.error.data.issues.map((i: { path: string }) => i.path)).toContain(path);
      expect(res.body.error.message).toContain("env:NAME or file:/path");
      expect(JSON.stringify(res.body)).not.toContain(literal);
    }
    const log = await readFile(join(dir, "registry.log"), "utf8");
    expect(log).not.toContain(literal);
  });
});
