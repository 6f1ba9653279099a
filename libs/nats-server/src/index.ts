import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ConnectorGroup, Identity } from "./authorization.js";
import type { Credential } from "./credentials.js";
import { freePort } from "./ports.js";
import { roleEnv, writeAuthConf } from "./serverAuth.js";
import { STALE_CLIENT_LINES } from "./staleClients.js";

export { freePort, freePorts, portIsOpen } from "./ports.js";
export { STALE_CLIENT_LINES } from "./staleClients.js";
export { renderAuthorization, deployedUsers, groupIdentity, nkeyVariable, parseConnectorGroup } from "./authorization.js";
export type { AuthUser, ConnectorGroup, CredentialRole, GroupIdentity, Identity } from "./authorization.js";
export { ensureCredentials } from "./credentials.js";
export type { Credential } from "./credentials.js";

export interface NatsTlsOptions {
  certFile: string;
  keyFile: string;
  /** CA of the server's certificate (given to clients) and, with `verify`, of clients' certificates. */
  caFile: string;
  /** Require a client certificate signed by `caFile`. */
  verify?: boolean;
}

export interface NatsServerOptions {
  /** Port to listen on; a free one when omitted. */
  port?: number;
  /** JetStream storage folder; a temporary one (removed on stop) when omitted. */
  storeDir?: string;
  /** nats-server executable; `NATS_SERVER_BIN` or `nats-server` on PATH by default. */
  bin?: string;
  host?: string;
  onLog?: (line: string) => void;
  /**
   * Every client must authenticate with a role's nkey and gets that role's permissions only
   * (default). `false` runs an open server, for tests of the transport itself.
   */
  auth?: boolean;
  /** Where the roles' seeds are kept (created once, then reused); `<storeDir>/credentials` by default. */
  credentialsDir?: string;
  /** Also create an `operator` identity allowed everything (tests that inspect or break the bus). */
  operator?: boolean;
  /** Connector identities limited to some upstreams (`env(groupIdentity(name))`), beside the roles'. */
  connectorGroups?: readonly ConnectorGroup[];
  /** Accept only TLS connections. */
  tls?: NatsTlsOptions;
  /** More lines for the server's config (the bench's instruction counts raise `write_deadline`). */
  extraConfig?: readonly string[];
}

export interface NatsServer extends AsyncDisposable {
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  readonly process: ChildProcess;
  /** Each role's (and connector group's) nkey (empty without auth). */
  readonly credentials: Partial<Record<Identity, Credential>>;
  /** What a service of `role` (or a connector group) connects with: `NATS_URL`, its seed file, the TLS CA. */
  env(role: Identity): Record<string, string>;
  stop(): Promise<void>;
}

/**
 * Starts a nats-server child process with JetStream and resolves once it accepts connections.
 * A port chosen here that another process binds first is chosen again (twice at most).
 */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  if (options.port !== undefined) return start(options, options.port);
  const host = options.host ?? "127.0.0.1";
  for (let attempt = 1; ; attempt++) {
    try {
      return await start(options, await freePort(host));
    } catch (error) {
      if (attempt === 3 || !/address already in use/.test(String(error))) throw error;
    }
  }
}

async function start(options: NatsServerOptions, port: number): Promise<NatsServer> {
  const host = options.host ?? "127.0.0.1";
  const temporary = options.storeDir === undefined;
  const storeDir = options.storeDir ?? (await mkdtemp(join(tmpdir(), "manifold-nats-")));
  await mkdir(storeDir, { recursive: true });
  const bin = options.bin ?? process.env.NATS_SERVER_BIN ?? "nats-server";
  const auth = options.auth ?? true;
  const credentials: Partial<Record<Identity, Credential>> = auth
    ? await writeAuthConf(storeDir, options.credentialsDir ?? join(storeDir, "credentials"), options.operator ?? false, options.connectorGroups)
    : {};
  const config = await writeServerConfig(storeDir, auth, options.tls, options.extraConfig);
  const child = spawn(bin, ["-js", "-sd", storeDir, "-a", host, "-p", String(port), "-c", config], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let output = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    output = (output + chunk).slice(-4096);
    if (options.onLog) for (const line of chunk.split("\n")) if (line) options.onLog(line);
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const spawnError = new Promise<never>((_, reject) => child.once("error", reject));

  const ready = (async () => {
    for (let i = 0; i < 200; i++) {
      if (child.exitCode !== null) throw new Error(`nats-server exited with ${child.exitCode}: ${output}`);
      if (output.includes("Server is ready")) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`nats-server did not become ready on port ${port}: ${output}`);
  })();
  try {
    await Promise.race([ready, spawnError]);
  } catch (error) {
    child.kill("SIGKILL");
    if (temporary) await rm(storeDir, { recursive: true, force: true });
    throw error;
  }

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    }
    if (temporary) await rm(storeDir, { recursive: true, force: true });
  };
  const url = `nats://${host}:${port}`;
  const env = (role: Identity) => roleEnv(url, credentials, role, options.tls?.caFile);
  return { url, port, storeDir, process: child, credentials, env, stop, [Symbol.asyncDispose]: stop };
}

/**
 * The server's config next to its store: how soon a stale client is dropped, as deployments set
 * it, an `include` of the `auth.conf` written there (as deployments include it) and TLS.
 */
async function writeServerConfig(dir: string, auth: boolean, tls: NatsTlsOptions | undefined, extra: readonly string[] = []): Promise<string> {
  const lines: string[] = [...STALE_CLIENT_LINES, ...extra];
  if (auth) lines.push("include ./auth.conf");
  if (tls) {
    lines.push(
      "tls {",
      `  cert_file: ${JSON.stringify(tls.certFile)}`,
      `  key_file: ${JSON.stringify(tls.keyFile)}`,
      `  ca_file: ${JSON.stringify(tls.caFile)}`,
      `  verify: ${tls.verify ? "true" : "false"}`,
      "}",
    );
  }
  const file = join(dir, "nats-server.conf");
  await writeFile(file, `${lines.join("\n")}\n`);
  return file;
}
export { CLUSTER_CONFIG_FILE, startNatsCluster } from "./cluster.js";
export type { NatsCluster, NatsClusterNode, NatsClusterOptions } from "./cluster.js";
