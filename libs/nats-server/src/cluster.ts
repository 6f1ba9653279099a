import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Identity } from "./authorization.js";
import { freePorts } from "./ports.js";
import { roleEnv, writeAuthConf, type Credentials } from "./serverAuth.js";

/** The repository's cluster configuration: one file for every node, the differences come from the environment. */
export const CLUSTER_CONFIG_FILE = fileURLToPath(new URL("../../../deploy/nats/nats-cluster.conf", import.meta.url));

export interface NatsClusterOptions {
  /** Number of nodes; 3 by default (JetStream needs a majority: 3 nodes survive the loss of one). */
  size?: number;
  /** The node configuration; `deploy/nats/nats-cluster.conf` by default. */
  configFile?: string;
  /** nats-server executable; `nats-server` on PATH by default. */
  bin?: string;
  host?: string;
  /** How long to wait for a JetStream meta leader that sees every node. */
  readyTimeoutMs?: number;
  onLog?: (node: string, line: string) => void;
  /**
   * Every client must authenticate with a role's nkey and gets that role's permissions only
   * (default), exactly as with `startNatsServer`. `false` runs the nodes open to clients.
   */
  auth?: boolean;
  /** Where the roles' seeds are kept (created once, then reused); a folder of the cluster's by default. */
  credentialsDir?: string;
  /** Also create an `operator` identity allowed everything (tests that inspect or break the bus). */
  operator?: boolean;
}

export interface NatsClusterNode {
  /** The node's `server_name`, as stream info reports it in `cluster.leader` and `cluster.replicas`. */
  readonly name: string;
  readonly url: string;
  readonly port: number;
  readonly clusterPort: number;
  readonly monitorPort: number;
  readonly storeDir: string;
  readonly process: ChildProcess | undefined;
  readonly running: boolean;
  /** SIGTERM (a clean shutdown), then waits for the process to exit. */
  stop(): Promise<void>;
  /** SIGKILL: the node dies mid-write, as in a crash or an OOM kill. */
  kill(): Promise<void>;
  /** Starts it again on the same ports with the same store; resolves once it sees a meta leader. */
  restart(): Promise<void>;
}

export interface NatsCluster extends AsyncDisposable {
  readonly nodes: readonly NatsClusterNode[];
  /** Every node's client URL, comma-separated, as services take it in `NATS_URL`. */
  readonly urls: string;
  /** Each role's nkey (empty without auth); every node knows the same ones. */
  readonly credentials: Credentials;
  /** What a service of `role` connects with: every node's URL in `NATS_URL`, its seed file. */
  env(role: Identity): Record<string, string>;
  node(name: string): NatsClusterNode;
  /** Resolves once a JetStream meta leader sees every running node as current. */
  ready(timeoutMs?: number): Promise<void>;
  /** Stops every node and removes their stores. */
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface JetStreamReport {
  meta_cluster?: { leader?: string; cluster_size?: number; replicas?: { name: string; current?: boolean; offline?: boolean }[] };
}

async function jetStreamReport(host: string, monitorPort: number): Promise<JetStreamReport | undefined> {
  try {
    const response = await fetch(`http://${host}:${monitorPort}/jsz`, { signal: AbortSignal.timeout(1_000) });
    return response.ok ? ((await response.json()) as JetStreamReport) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Starts a JetStream cluster of `size` nats-server processes on free ports, each with its own
 * store, all running the same configuration file, and resolves once JetStream has a meta leader
 * that sees every node. Nodes can be stopped, killed and restarted one by one.
 */
export async function startNatsCluster(options: NatsClusterOptions = {}): Promise<NatsCluster> {
  const size = options.size ?? 3;
  const host = options.host ?? "127.0.0.1";
  const configFile = options.configFile ?? CLUSTER_CONFIG_FILE;
  const bin = options.bin ?? "nats-server";
  const root = await mkdtemp(join(tmpdir(), "manifold-nats-cluster-"));
  const ports = await freePorts(size * 3, host);
  const specs = Array.from({ length: size }, (_, i) => ({
    name: `nats-${i + 1}`,
    port: ports[i * 3]!,
    clusterPort: ports[i * 3 + 1]!,
    monitorPort: ports[i * 3 + 2]!,
    storeDir: join(root, `nats-${i + 1}`),
  }));
  // The config runs from the cluster's folder, so its `include ./auth.conf` finds the one rendered
  // there for this cluster's keys (an open cluster gets an empty one).
  const config = join(root, "nats-cluster.conf");
  await copyFile(configFile, config);
  const auth = options.auth ?? true;
  const credentials: Credentials = auth
    ? await writeAuthConf(root, options.credentialsDir ?? join(root, "credentials"), options.operator ?? false)
    : (await writeFile(join(root, "auth.conf"), "# Open to clients: no authorization.\n"), {});
  // Routes always authenticate: a process that reaches a cluster port cannot join as a node and
  // read every subject. nats-server 2.9 sends only the credentials in a route's URL.
  // nats-server parses a variable's value as config: a leading digit would make it a number.
  const route = { user: "route", password: `p${randomBytes(24).toString("hex")}` };
  const routes = `[${specs.map((s) => `nats-route://${route.user}:${route.password}@${host}:${s.clusterPort}`).join(", ")}]`;

  const nodes = specs.map((spec): NatsClusterNode & { start(): Promise<void> } => {
    let child: ChildProcess | undefined;
    let exited: Promise<void> = Promise.resolve();
    const running = () => child !== undefined && child.exitCode === null && child.signalCode === null;

    const start = async () => {
      await mkdir(spec.storeDir, { recursive: true });
      const env = {
        PATH: process.env.PATH ?? "",
        NATS_SERVER_NAME: spec.name,
        NATS_LISTEN: `${host}:${spec.port}`,
        NATS_MONITOR_LISTEN: `${host}:${spec.monitorPort}`,
        NATS_CLUSTER_LISTEN: `${host}:${spec.clusterPort}`,
        NATS_ROUTES: routes,
        NATS_CLUSTER_USER: route.user,
        NATS_CLUSTER_PASSWORD: route.password,
        NATS_STORE_DIR: JSON.stringify(spec.storeDir),
      };
      const proc = spawn(bin, ["-c", config], { env, stdio: ["ignore", "ignore", "pipe"] });
      child = proc;
      exited = new Promise((resolve) => proc.once("exit", () => resolve()));
      let output = "";
      proc.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
        output = (output + chunk).slice(-4096);
        if (options.onLog) for (const line of chunk.split("\n")) if (line) options.onLog(spec.name, line);
      });
      let spawnError: Error | undefined;
      proc.once("error", (error) => (spawnError = error));
      for (let i = 0; i < 400 && !output.includes("Server is ready"); i++) {
        if (spawnError) throw spawnError;
        if (proc.exitCode !== null) throw new Error(`${spec.name} exited with ${proc.exitCode}: ${output}`);
        await sleep(25);
      }
      if (!output.includes("Server is ready")) {
        proc.kill("SIGKILL");
        throw new Error(`${spec.name} did not become ready on port ${spec.port}: ${output}`);
      }
    };
    const signal = async (name: NodeJS.Signals) => {
      if (!running()) return;
      child!.kill(name);
      const timer = setTimeout(() => child?.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    };

    return {
      ...spec,
      url: `nats://${host}:${spec.port}`,
      get process() {
        return child;
      },
      get running() {
        return running();
      },
      start,
      stop: () => signal("SIGTERM"),
      kill: () => signal("SIGKILL"),
      restart: async () => {
        await signal("SIGTERM");
        await start();
        await waitFor(async () => Boolean((await jetStreamReport(host, spec.monitorPort))?.meta_cluster?.leader), 30_000, `${spec.name} to see a meta leader`);
      },
    };
  });

  const stop = async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    await rm(root, { recursive: true, force: true });
  };

  const ready = async (timeoutMs = options.readyTimeoutMs ?? 30_000) => {
    const running = nodes.filter((n) => n.running);
    await waitFor(
      async () => {
        const reports = await Promise.all(running.map((n) => jetStreamReport(host, n.monitorPort)));
        const leader = reports[0]?.meta_cluster?.leader;
        if (!leader || reports.some((r) => r?.meta_cluster?.leader !== leader)) return false;
        const leaderNode = running.find((n) => n.name === leader);
        if (!leaderNode) return false;
        // The leader's report lists its peers; a stream with N replicas is placed only on current ones.
        const peers = (await jetStreamReport(host, leaderNode.monitorPort))?.meta_cluster?.replicas ?? [];
        return running.every((n) => n.name === leader || peers.some((p) => p.name === n.name && p.current && !p.offline));
      },
      timeoutMs,
      "a JetStream meta leader that sees every node",
    );
  };

  try {
    await Promise.all(nodes.map((n) => n.start()));
    await ready();
  } catch (error) {
    await stop();
    throw error;
  }
  const urls = nodes.map((n) => n.url).join(",");
  return {
    nodes,
    urls,
    credentials,
    env: (role) => roleEnv(urls, credentials, role),
    node: (name) => {
      const found = nodes.find((n) => n.name === name);
      if (!found) throw new Error(`no node named ${name}`);
      return found;
    },
    ready,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

async function waitFor(probe: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}
