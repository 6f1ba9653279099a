import { freePort, portIsOpen } from "@manifold/nats-server";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterAll, beforeEach, describe, expect, test } from "vitest";
import { AdminClient } from "../helpers/admin.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { connectClient, eventually } from "../helpers/mcp.js";
import { startOtlpReceiver } from "../fixtures/otlpReceiver.js";
import { startRecordingUpstream } from "../fixtures/recordingUpstream.js";
import { everythingStdio } from "../helpers/upstreams.js";

const MAIN = new URL("../../tools/manifold/dist/main.js", import.meta.url).pathname;
const ROOT = new URL("../..", import.meta.url).pathname;

/** Every process below `pid`, with its command line, read from /proc. */
async function descendants(pid: number): Promise<{ pid: number; command: string }[]> {
  const table: { pid: number; ppid: number; command: string }[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    const command = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    // The command name in parentheses may hold spaces: the fields after it are fixed.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (fields.length > 2) table.push({ pid: Number(entry), ppid: Number(fields[1]), command: command.replaceAll("\0", " ") });
  }
  const found: { pid: number; command: string }[] = [];
  for (let frontier = [pid]; frontier.length > 0; ) {
    const children = table.filter((p) => frontier.includes(p.ppid));
    found.push(...children.map(({ pid, command }) => ({ pid, command })));
    frontier = children.map((c) => c.pid);
  }
  return found;
}
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
/** The addresses a TCP port listens on, read from /proc ("127.0.0.1", "0.0.0.0", "::" …). */
async function listeningAddresses(port: number): Promise<string[]> {
  const found: string[] = [];
  for (const [file, v6] of [["/proc/net/tcp", false], ["/proc/net/tcp6", true]] as const) {
    for (const line of (await readFile(file, "utf8").catch(() => "")).split("\n").slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      if (state !== "0A" || !local) continue; // 0A: LISTEN
      const [hex, portHex] = local.split(":");
      if (parseInt(portHex!, 16) !== port) continue;
      // /proc writes each 32-bit word of the address in host (little-endian) order.
      const words = hex!.match(/.{8}/g)!.map((w) => w.match(/../g)!.reverse().join(""));
      found.push(v6 ? (/^0+$/.test(hex!) ? "::" : words.join("")) : words[0]!.match(/../g)!.map((b) => parseInt(b, 16)).join("."));
    }
  }
  return found;
}
const portsOf = (env: Record<string, string>) =>
  ["MANIFOLD_NATS_PORT", "MANIFOLD_GATEWAY_PORT", "MANIFOLD_GATEWAY_METRICS_PORT", "MANIFOLD_REGISTRY_PORT", "MANIFOLD_REGISTRY_METRICS_PORT", "MANIFOLD_CONNECTOR_PORT", "MANIFOLD_DEMO_UPSTREAM_PORT"].map((k) => Number(env[k]));

/**
 * `npm start` as a supervisor runs it; resolves once `until` holds, with the npm process and
 * everything below it at that moment.
 */
async function npmStart(env: Record<string, string>, until: (output: string) => Promise<boolean>) {
  const npm = spawn("npm", ["start"], { cwd: ROOT, env: { ...process.env, ...env, LOG_LEVEL: "warn" }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  npm.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  npm.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => npm.once("exit", (code) => resolve(code)));
  await eventually(async () => ((await until(output)) ? true : undefined), 150_000, 50).catch((error: Error) => {
    throw new Error(`${error.message}: ${output}`);
  });
  return { npm, exited, tree: await descendants(npm.pid!), output: () => output };
}

/** Fresh ports for one start: picked just before it, since a port freed here can be taken again meanwhile. */
async function freshPorts(dataDir: string): Promise<Record<string, string>> {
  const [nats, gateway, gatewayMetrics, registry, registryMetrics, connector, demo] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort(), freePort(), freePort()]);
  return {
    MANIFOLD_DATA_DIR: dataDir,
    MANIFOLD_NATS_PORT: String(nats),
    MANIFOLD_GATEWAY_PORT: String(gateway),
    MANIFOLD_GATEWAY_METRICS_PORT: String(gatewayMetrics),
    MANIFOLD_REGISTRY_PORT: String(registry),
    MANIFOLD_REGISTRY_METRICS_PORT: String(registryMetrics),
    MANIFOLD_CONNECTOR_PORT: String(connector),
    MANIFOLD_DEMO_UPSTREAM_PORT: String(demo),
  };
}

/**
 * `manifold up` as a user runs it, on free ports and a temporary data folder. Other test files
 * open connections meanwhile, and one may be given a port picked here before `up` binds it:
 * then `up` is started again on fresh ports, which is all a user would do.
 */
async function manifoldUp(dataDir: string, extraEnv: Record<string, string> = {}): Promise<{ env: Record<string, string>; stop: () => Promise<number | null>; pid: number; output: () => string }> {
  for (let attempt = 1; ; attempt++) {
    const env = { ...(await freshPorts(dataDir)), ...extraEnv };
    try {
      return { env, ...(await startUp(env)) };
    } catch (error) {
      if (attempt === 3 || !/EADDRINUSE|address already in use/.test(String(error))) throw error;
    }
  }
}

async function startUp(env: Record<string, string>): Promise<{ stop: () => Promise<number | null>; pid: number; output: () => string }> {
  const child: ChildProcess = spawn(process.execPath, [MAIN, "up"], { env: { ...process.env, ...env, LOG_LEVEL: "warn" }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`manifold up did not come up: ${output}`)), 150_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes("Manifold is up.")) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`manifold up exited with ${code}: ${output}`));
    });
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    pid: child.pid!,
    output: () => output,
    stop: async () => {
      child.kill("SIGINT");
      return exited;
    },
  };
}

describe("the all-in-one start command", () => {
  let dataDir: string;
  const connectAsDemo = async (url: string) => {
    const key = (await readFile(join(dataDir, "demo-key"), "utf8")).trim();
    return connectClient(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${key}` } } }));
  };
  const adminOf = async (env: Record<string, string>) =>
    new AdminClient(`http://127.0.0.1:${env.MANIFOLD_REGISTRY_PORT}`, (await readFile(join(dataDir, "admin-token"), "utf8")).trim());

  // Each test (and each retried attempt) starts from an empty data folder, as a first start does.
  const dataDirs: string[] = [];
  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "manifold-up-"));
    dataDirs.push(dataDir);
  });
  afterAll(async () => {
    await Promise.all(dataDirs.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  test("starts everything with a callable demo, and a full restart keeps every virtual server", async () => {
    // A data folder the start creates, as `.manifold` is on a first `npm start`.
    dataDir = join(dataDir, ".manifold");
    const first = await manifoldUp(dataDir);
    let gatewayUrl = `http://127.0.0.1:${first.env.MANIFOLD_GATEWAY_PORT}`;
    let demoVersion: number;
    let extraTool: string;
    try {
      // It and its logs are the user's alone (0755 and 0644 let every local user read the services' logs).
      const logs = join(dataDir, "logs");
      const paths = [dataDir, logs, ...(await readdir(logs)).map((f) => join(logs, f))];
      const modes = await Promise.all(paths.map(async (path) => [path, (await stat(path)).mode & 0o077] as const));
      expect(modes.filter(([, others]) => others !== 0)).toEqual([]);
      const admin = await adminOf(first.env);
      // Everything it opens, the demo upstream too (server-everything listens on every interface
      // by itself: its URL-fetching tool was open to the network), listens on MANIFOLD_HOST only.
      for (const port of portsOf(first.env)) expect({ port, addresses: await listeningAddresses(port) }).toEqual({ port, addresses: ["127.0.0.1"] });
      // Deny unless granted: without the demo agent's key the gateway refuses.
      expect((await fetch(`${gatewayUrl}/mcp/demo`, { method: "POST" })).status).toBe(401);
      await using agent = await connectAsDemo(`${gatewayUrl}/mcp/demo`);
      const { tools } = await agent.listTools();
      expect(tools).toHaveLength(5);
      const sum = tools.find((t) => t.name.startsWith("get-sum_"))!;
      expect((await agent.callTool({ name: sum.name, arguments: { a: 2, b: 40 } })).content).toEqual([
        { type: "text", text: "The sum of 2 and 40 is 42." },
      ]);
      // The demo's stdio command is the only one listed (the get-sum above runs on it).
      const shell = await admin.post("/v1/upstreams", { name: "shell", transport: { type: "stdio", command: "/bin/sh", args: ["-c", "id"] } });
      expect(shell.status).toBe(400);
      expect(shell.body.error.message).toContain("MANIFOLD_STDIO_COMMANDS");
      demoVersion = (await admin.get("/v1/virtual-servers/demo")).body.version;
      const extra = await admin.post("/v1/virtual-servers", { name: "extra", tools: [{ upstream: "everything-http", tool: "get-sum" }] });
      expect(extra.status).toBe(201);
      extraTool = extra.body.tools[0].exposedName;
      await admin.post("/v1/virtual-servers/extra/grants", { grantId: "demo", subject: { consumer: "demo-agent" } });
    } finally {
      expect(await first.stop()).toBe(0);
    }

    const second = await manifoldUp(dataDir);
    gatewayUrl = `http://127.0.0.1:${second.env.MANIFOLD_GATEWAY_PORT}`;
    const admin = await adminOf(second.env);
    try {
      // Re-seeding on start appended nothing: the demo is at the version it had.
      expect((await admin.get("/v1/virtual-servers/demo")).body.version).toBe(demoVersion);
      await using agent = await connectAsDemo(`${gatewayUrl}/mcp/extra`);
      expect((await agent.listTools()).tools.map((t) => t.name)).toEqual([extraTool]);
      const result = await agent.callTool({ name: extraTool, arguments: { a: 1, b: 1 } });
      expect(result.content).toEqual([{ type: "text", text: "The sum of 1 and 1 is 2." }]);
    } finally {
      expect(await second.stop()).toBe(0);
    }
  }, 400_000);

  test("the README's env: reference works under the all-in-one; the admin token and other variables are not resolvable", async () => {
    const upDir = await mkdtemp(join(tmpdir(), "manifold-up-secrets-"));
    await using recording = await startRecordingUpstream("tracker");
    const up = await manifoldUp(upDir, { MANIFOLD_DEMO: "off", MANIFOLD_SECRET_TRACKER_TOKEN: "Bearer tracker-secret-4411", OTHER_TOKEN: "not-for-upstreams" });
    try {
      const admin = new AdminClient(`http://127.0.0.1:${up.env.MANIFOLD_REGISTRY_PORT}`, (await readFile(join(upDir, "admin-token"), "utf8")).trim());
      const tracker = await admin.post("/v1/upstreams", {
        name: "tracker",
        transport: { type: "streamable-http", url: recording.url, secretHeaders: { Authorization: "env:MANIFOLD_SECRET_TRACKER_TOKEN" } },
      });
      expect(tracker.body.discovery?.status, JSON.stringify(tracker.body)).toBe("ok");
      // Without the demo no stdio command is listed, the demo's own included.
      const stdio = await admin.post("/v1/upstreams", { name: "stdio", transport: everythingStdio() });
      expect(stdio.body.error?.message, JSON.stringify(stdio.body)).toContain("MANIFOLD_STDIO_COMMANDS lists no command");
      expect(recording.calls).toEqual([]);
      expect((await admin.post("/v1/virtual-servers", { name: "tracking", tools: [{ upstream: "tracker", tool: "echo" }] })).status).toBe(201);
      await admin.post("/v1/consumers", { name: "bot" });
      const key = (await admin.post("/v1/consumers/bot/keys", {})).body.key;
      await admin.post("/v1/virtual-servers/tracking/grants", { grantId: "bot", subject: { consumer: "bot" } });
      await using agent = await connectClient(
        new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${up.env.MANIFOLD_GATEWAY_PORT}/mcp/tracking`), { requestInit: { headers: { authorization: `Bearer ${key}` } } }),
      );
      await agent.callTool({ name: (await agent.listTools()).tools[0]!.name, arguments: { message: "hi" } });
      expect(recording.calls.at(-1)!.headers.authorization).toBe("Bearer tracker-secret-4411");
      for (const ref of ["env:MANIFOLD_ADMIN_TOKEN", "env:OTHER_TOKEN", `file:${join(upDir, "admin-token")}`]) {
        const exfil = await admin.post("/v1/upstreams", { name: "exfil", transport: { type: "streamable-http", url: recording.url, secretHeaders: { "X-Exfil": ref } } });
        expect(exfil.status, ref).toBe(400);
        expect(exfil.body.error.message).toContain("transport.secretHeaders.X-Exfil");
      }
    } finally {
      expect(await up.stop()).toBe(0);
      await rm(upDir, { recursive: true, force: true });
    }
  });

  test("a gateway killed with -9 is restarted and serves again; OTEL_* given to the launcher reach every service", async () => {
    await using receiver = await startOtlpReceiver();
    const up = await manifoldUp(dataDir, { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: "100" });
    try {
      const gatewayUrl = `http://127.0.0.1:${up.env.MANIFOLD_GATEWAY_PORT}`;
      const call = async () => {
        await using agent = await connectAsDemo(`${gatewayUrl}/mcp/demo`);
        const sum = (await agent.listTools()).tools.find((t) => t.name.startsWith("get-sum_"))!;
        return (await agent.callTool({ name: sum.name, arguments: { a: 2, b: 3 } })).content;
      };
      expect(await call()).toEqual([{ type: "text", text: "The sum of 2 and 3 is 5." }]);
      const services = await eventually(() => {
        const names = new Set(receiver.spans.map((s) => s.service));
        return names.has("manifold-gateway") && names.has("manifold-connector") ? names : undefined;
      }, 10_000, 100);
      expect([...services]).toEqual(expect.arrayContaining(["manifold-gateway", "manifold-connector"]));

      const gateway = (await descendants(up.pid)).find((p) => p.command.includes("gateway/dist/main.js"))!;
      process.kill(gateway.pid, "SIGKILL");
      await eventually(() => (up.output().includes("gateway is back") ? true : undefined), 20_000, 100);
      expect(up.output()).toMatch(/gateway exited unexpectedly \(signal SIGKILL\); restarting it in \d+ ms/);
      expect(await call()).toEqual([{ type: "text", text: "The sum of 2 and 3 is 5." }]);
    } finally {
      expect(await up.stop()).toBe(0);
    }
    expect((await descendants(up.pid)).length).toBe(0);
  }, 300_000);

  // A second `npm start`, or anything else on a default port, is the first thing a new user meets:
  // the refusal must name the variable that moves that port, not leave them to search the README.
  test("a port already in use stops the start before anything runs, naming the variable that moves it", async () => {
    const env = await freshPorts(dataDir);
    const taken = createServer();
    await new Promise<void>((listening) => taken.listen(Number(env.MANIFOLD_GATEWAY_PORT), "127.0.0.1", listening));
    try {
      const child = spawn(process.execPath, [MAIN, "up"], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
      let output = "";
      child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
      child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
      const code = await new Promise<number | null>((exited) => child.once("exit", exited));
      expect(code).not.toBe(0);
      expect(output).toContain(`port ${env.MANIFOLD_GATEWAY_PORT} (gateway) is already in use`);
      expect(output).toContain("MANIFOLD_GATEWAY_PORT");
      expect(await portIsOpen(Number(env.MANIFOLD_NATS_PORT))).toBe(false);
    } finally {
      await new Promise((closed) => taken.close(closed));
    }
  }, 60_000);

  // npm forwards SIGINT/SIGTERM to its child and dies on SIGHUP: both must stop every process.
  for (const [signal, when] of [["SIGTERM", "once up"], ["SIGHUP", "while starting"]] as const) {
    test(`${signal} to the npm start process ${when} stops every process below it and frees the ports`, async () => {
      const dir = await mkdtemp(join(tmpdir(), "manifold-npm-"));
      try {
        const env = await freshPorts(dir);
        const started = await npmStart(env, async (output) =>
          when === "once up" ? output.includes("Manifold is up.") : await portIsOpen(Number(env.MANIFOLD_REGISTRY_PORT)),
        );
        if (when === "while starting") expect(started.output()).not.toContain("Manifold is up.");
        const names = started.tree.map((p) => p.command).join("\n");
        expect(names).toContain("bootstrap.mjs");
        expect(names).toContain("nats-server");
        const signalledAt = Date.now();
        started.npm.kill(signal);
        await started.exited;
        await eventually(() => (started.tree.every((p) => !alive(p.pid)) ? true : undefined), 15_000, 50).catch(() => {
          throw new Error(`still running: ${started.tree.filter((p) => alive(p.pid)).map((p) => p.command).join("; ")}`);
        });
        expect(Date.now() - signalledAt).toBeLessThan(15_000);
        for (const port of portsOf(env)) expect(await portIsOpen(port)).toBe(false);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }, 300_000);
  }
});
