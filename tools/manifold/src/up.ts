import { credentialPolicy, CredentialPolicyEnv, envAllowed, parseEnv, Port, StdioPolicyEnv } from "@manifold/contracts";
import { portIsOpen, type NatsServer } from "@manifold/nats-server";
import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join, relative, resolve } from "node:path";
import { z } from "zod";
import { adminCall } from "./adminClient.js";
import { startAllInOneNats } from "./allInOneBus.js";
import { DEMO_STDIO_COMMAND, DEMO_VIRTUAL_SERVER, EVERYTHING_BIN, demoCatalog } from "./demo.js";
import { serviceEntry, spawnService } from "./processes.js";
import { Supervisor } from "./supervisor.js";

const UpEnv = z.object({
  MANIFOLD_DATA_DIR: z.string().default(".manifold"),
  MANIFOLD_HOST: z.string().default("127.0.0.1"),
  MANIFOLD_NATS_PORT: Port.default(14222),
  MANIFOLD_GATEWAY_PORT: Port.default(8080),
  MANIFOLD_GATEWAY_METRICS_PORT: Port.default(9464),
  MANIFOLD_REGISTRY_PORT: Port.default(8081),
  MANIFOLD_REGISTRY_METRICS_PORT: Port.default(9465),
  MANIFOLD_CONNECTOR_PORT: Port.default(8082),
  MANIFOLD_DEMO_UPSTREAM_PORT: Port.default(13001),
  MANIFOLD_DEMO: z.enum(["on", "off"]).default("on"),
  LOG_LEVEL: z.string().default("info"),
  ...CredentialPolicyEnv,
  ...StdioPolicyEnv,
});

/**
 * What the services learn of this environment about credentials: the policy's own variables
 * (registry and connector enforce the same one) and, for the connector only, the variables
 * `env:` references may name. Nothing else is passed on.
 */
function credentialEnv(env: Record<string, string | undefined>, config: z.infer<typeof UpEnv>) {
  const names = ["MANIFOLD_SECRET_ENV_PREFIX", "MANIFOLD_SECRET_ENV_NAMES", "MANIFOLD_SECRETS_DIR"] as const;
  const policyEnv = Object.fromEntries(names.flatMap((name) => (env[name] === undefined ? [] : [[name, env[name]!]])));
  const policy = credentialPolicy(config);
  const secrets = Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined && envAllowed(e[0], policy)));
  return { policyEnv, secrets };
}

/**
 * The stdio commands registry and connector allow: those the operator lists and, with the demo
 * on, the demo's own, so the demo seeds without opening stdio to anything else. JSON, since the
 * paths of this checkout may hold spaces.
 */
const stdioEnv = (config: z.infer<typeof UpEnv>) => ({
  MANIFOLD_STDIO_COMMANDS: JSON.stringify([...config.MANIFOLD_STDIO_COMMANDS, ...(config.MANIFOLD_DEMO === "on" ? [DEMO_STDIO_COMMAND] : [])]),
});

async function adminToken(dataDir: string): Promise<string> {
  const file = join(dataDir, "admin-token");
  const existing = await readFile(file, "utf8").catch(() => undefined);
  if (existing?.trim()) return existing.trim();
  const token = randomBytes(24).toString("base64url");
  await writeFile(file, `${token}\n`, { mode: 0o600 });
  return token;
}

async function waitForPort(port: number, host: string, what: string, timeoutMs = 20_000, signal?: AbortSignal): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    signal?.throwIfAborted();
    if (await portIsOpen(port, host)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not open port ${port}`);
}

/** Seeds the demo idempotently and returns the demo agent's API key (kept in the data folder). */
async function seed(registryUrl: string, token: string, httpUpstreamUrl: string, dataDir: string): Promise<string> {
  const { upstreams, virtualServer, consumer } = demoCatalog(httpUpstreamUrl);
  const call = async (method: string, path: string, body?: unknown) => {
    const json = await adminCall({ url: registryUrl, token }, method, path, body);
    if (json.discovery?.status === "failed") throw new Error(`discovery failed: ${json.discovery.error?.message}`);
    return json;
  };
  for (const { name, ...definition } of upstreams) {
    // The demo's upstreams follow this start's settings (another demo port, say): a restart converges, never conflicts.
    const known = await adminCall({ url: registryUrl, token }, "GET", `/v1/upstreams/${name}`).then(() => true, () => false);
    await (known ? call("PUT", `/v1/upstreams/${name}`, definition) : call("POST", "/v1/upstreams", { name, ...definition }));
  }
  await call("POST", "/v1/virtual-servers", virtualServer);
  await call("POST", "/v1/consumers", consumer);
  await call("POST", `/v1/virtual-servers/${virtualServer.name}/grants`, { grantId: consumer.name, subject: { consumer: consumer.name } });

  const keyFile = join(dataDir, "demo-key");
  const saved = (await readFile(keyFile, "utf8").catch(() => "")).trim();
  const keys = (await call("GET", `/v1/consumers/${consumer.name}`)).keys as { keyId: string }[];
  if (saved && keys.some((k) => saved.startsWith(`mk_${k.keyId}_`))) return saved;
  const { key } = await call("POST", `/v1/consumers/${consumer.name}/keys`, {});
  await writeFile(keyFile, `${key}\n`, { mode: 0o600 });
  return key;
}

/**
 * The standard OpenTelemetry variables given to `manifold up`, for every service. Each service
 * names itself (`manifold-gateway`, …): one OTEL_SERVICE_NAME for all would merge them.
 */
const otelEnv = (env: Record<string, string | undefined>) =>
  Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[0].startsWith("OTEL_") && e[0] !== "OTEL_SERVICE_NAME" && e[1] !== undefined));

/** Binds the demo upstream to MANIFOLD_HOST (see demoListen.ts). */
const DEMO_LISTEN = new URL("./demoListen.js", import.meta.url).href;
const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
/** How long a child may take to serve; generous, since a starved machine loads Node slowly. */
const READY_MS = 120_000;

/**
 * The all-in-one: nats-server (JetStream under the data folder), registry, connector,
 * gateway and a demo upstream as supervised child processes, seeded with a demo virtual server.
 * A child that dies is restarted (see `Supervisor`). SIGINT, SIGTERM or SIGHUP, also while still
 * starting, stops everything in reverse order and returns.
 */
export async function up(env: Record<string, string | undefined>): Promise<void> {
  const config = parseEnv(UpEnv, env);
  const host = config.MANIFOLD_HOST;
  const dataDir = resolve(config.MANIFOLD_DATA_DIR);
  const logDir = join(dataDir, "logs");
  const supervisor = new Supervisor((line) => console.error(line));
  let stopped: Promise<void> | undefined;
  const stop = () => (stopped ??= supervisor.stop());
  let signalled: NodeJS.Signals | undefined;
  let stopRequested!: () => void;
  const requested = new Promise<void>((resolveRequest) => (stopRequested = resolveRequest));
  for (const signal of SIGNALS) {
    process.on(signal, () => {
      if (signalled) return; // npm and a terminal may both deliver it: one stop
      signalled = signal;
      console.log(`\nmanifold: stopping (${signal})`);
      void stop();
      stopRequested();
    });
  }

  try {
    // The data folder, when this creates it, and its logs are the user's alone: the logs name every
    // consumer, upstream and failure, and were readable by every local user (0755, 0644).
    await mkdir(logDir, { recursive: true, mode: 0o700 });
    const token = await adminToken(dataDir);
    // Each port with the variable that moves it, so a refusal says what to set.
    const ports = (
      [
        ["nats-server", "MANIFOLD_NATS_PORT"],
        ["gateway", "MANIFOLD_GATEWAY_PORT"],
        ["gateway metrics", "MANIFOLD_GATEWAY_METRICS_PORT"],
        ["registry", "MANIFOLD_REGISTRY_PORT"],
        ["registry metrics", "MANIFOLD_REGISTRY_METRICS_PORT"],
        ["connector", "MANIFOLD_CONNECTOR_PORT"],
        ["demo upstream", "MANIFOLD_DEMO_UPSTREAM_PORT"],
      ] as const
    ).filter(([what]) => what !== "demo upstream" || config.MANIFOLD_DEMO === "on");
    for (const [what, variable] of ports) {
      const port = config[variable];
      if (await portIsOpen(port, host)) {
        throw new Error(`port ${port} (${what}) is already in use (another \`npm start\`?): stop what listens there, or set ${variable} to a free port`);
      }
    }

    // Each service's NATS URL and its own nkey seed file (the same files on every restart of nats-server).
    let busEnv!: NatsServer["env"];
    await supervisor.start({
      name: "nats-server",
      start: async () => {
        const nats = await startAllInOneNats(dataDir, config.MANIFOLD_NATS_PORT, host);
        busEnv = nats.env;
        const exited = new Promise<string>((done) => nats.process.once("exit", (code, signal) => done(signal ? `signal ${signal}` : `exit code ${code}`)));
        return { exited, ready: Promise.resolve(), stop: () => nats.stop() };
      },
    });
    const service = (name: string, entry: string, args: string[], childEnv: Record<string, string>, readyUrl: string | undefined, nodeArgs: string[] = []) => {
      const logFile = join(logDir, `${name}.log`);
      return supervisor.start({
        name,
        logFile,
        start: async (signal) => {
          const child = spawnService(name, entry, args, childEnv, logFile, nodeArgs);
          const ready = readyUrl ? child.ready(readyUrl, READY_MS, signal) : waitForPort(config.MANIFOLD_DEMO_UPSTREAM_PORT, host, name, READY_MS, signal);
          ready.catch(() => undefined);
          return { exited: child.exited, ready, stop: () => child.stop() };
        },
      });
    };
    // The admin token goes to the registry only; allowed secrets to the connector only.
    const { policyEnv, secrets } = credentialEnv(env, config);
    const commands = stdioEnv(config);
    const common = { LOG_LEVEL: config.LOG_LEVEL, ...otelEnv(env) };
    const demoUrl = `http://${host}:${config.MANIFOLD_DEMO_UPSTREAM_PORT}/mcp`;
    // Started side by side (each replays the stream itself): on a busy machine a Node process
    // takes seconds to load, and one after the other that added up.
    const services = [
      ["registry", { REGISTRY_HOST: host, REGISTRY_PORT: String(config.MANIFOLD_REGISTRY_PORT), REGISTRY_METRICS_PORT: String(config.MANIFOLD_REGISTRY_METRICS_PORT), MANIFOLD_ADMIN_TOKEN: token, ...policyEnv, ...commands }, config.MANIFOLD_REGISTRY_PORT],
      ["connector", { CONNECTOR_HOST: host, CONNECTOR_PORT: String(config.MANIFOLD_CONNECTOR_PORT), ...policyEnv, ...secrets, ...commands }, config.MANIFOLD_CONNECTOR_PORT],
      ["gateway", { GATEWAY_HOST: host, GATEWAY_PORT: String(config.MANIFOLD_GATEWAY_PORT), GATEWAY_METRICS_PORT: String(config.MANIFOLD_GATEWAY_METRICS_PORT) }, config.MANIFOLD_GATEWAY_PORT],
    ] as const;
    await Promise.all([
      config.MANIFOLD_DEMO === "on"
        ? service("demo-upstream", EVERYTHING_BIN, ["streamableHttp"], { PORT: String(config.MANIFOLD_DEMO_UPSTREAM_PORT), DEMO_UPSTREAM_HOST: host }, undefined, ["--import", DEMO_LISTEN])
        : undefined,
      ...services.map(([name, serviceEnv, port]) => service(name, serviceEntry(name), [], { ...common, ...busEnv(name), ...serviceEnv }, `http://${host}:${port}/readyz`)),
    ]);

    const registryUrl = `http://${host}:${config.MANIFOLD_REGISTRY_PORT}`;
    const gatewayUrl = `http://${host}:${config.MANIFOLD_GATEWAY_PORT}`;
    const demoKey = config.MANIFOLD_DEMO === "on" ? await seed(registryUrl, token, demoUrl, dataDir) : undefined;
    supervisor.signal.throwIfAborted();
    printBanner({ gatewayUrl, registryUrl, dataDir, demoKey });
  } catch (error) {
    await stop();
    // Stopped by a signal while starting: a clean stop, not a failure.
    if (signalled) return;
    throw error;
  }
  await requested;
  await stop();
}

function printBanner({ gatewayUrl, registryUrl, dataDir, demoKey }: { gatewayUrl: string; registryUrl: string; dataDir: string; demoKey: string | undefined }) {
  const demo = demoKey !== undefined;
  const rel = relative(process.cwd(), dataDir) || ".";
  const endpoint = `${gatewayUrl}/mcp/${DEMO_VIRTUAL_SERVER}`;
  const lines = [
    "",
    "Manifold is up.",
    "",
    ...(demo
      ? [`  MCP endpoint (virtual server '${DEMO_VIRTUAL_SERVER}'):  ${endpoint}`, `  Demo agent's API key:  ${demoKey}   (also in ${rel}/demo-key)`]
      : []),
    `  Gateway:    ${gatewayUrl}/mcp/<virtual-server>`,
    `  Admin API:  ${registryUrl}/v1   (bearer token in ${rel}/admin-token, OpenAPI at ${registryUrl}/openapi.json)`,
    `  Console:    ${registryUrl}/console/   (sign in with the admin token in ${rel}/admin-token)`,
    `  Data:       ${rel}/nats (JetStream), logs in ${rel}/logs/`,
    "",
  ];
  if (demo) {
    lines.push(
      "Client config (Claude Code, VS Code, Cursor: Streamable HTTP):",
      JSON.stringify({ mcpServers: { "manifold-demo": { type: "http", url: endpoint, headers: { Authorization: `Bearer ${demoKey}` } } } }, null, 2),
      "",
      "Clients that only speak stdio (Claude Desktop):",
      JSON.stringify(
        { mcpServers: { "manifold-demo": { command: "npx", args: ["-y", "mcp-remote", endpoint, "--header", `Authorization: Bearer ${demoKey}`] } } },
        null,
        2,
      ),
      "",
    );
  }
  lines.push("Stop with Ctrl-C; everything registered stays in the data folder.");
  console.log(lines.join("\n"));
}
