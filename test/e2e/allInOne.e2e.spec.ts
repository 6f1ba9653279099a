import { freePort } from "@manifold/nats-server";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { AdminClient } from "../helpers/admin.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { connectClient } from "../helpers/mcp.js";
import { startRecordingUpstream } from "../fixtures/recordingUpstream.js";

const MAIN = new URL("../../tools/manifold/dist/main.js", import.meta.url).pathname;

/** Fresh ports for one start: picked just before it, since a port freed here can be taken again meanwhile. */
async function freshPorts(dataDir: string): Promise<Record<string, string>> {
  const [nats, gateway, registry, connector, demo] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  return {
    MANIFOLD_DATA_DIR: dataDir,
    MANIFOLD_NATS_PORT: String(nats),
    MANIFOLD_GATEWAY_PORT: String(gateway),
    MANIFOLD_REGISTRY_PORT: String(registry),
    MANIFOLD_CONNECTOR_PORT: String(connector),
    MANIFOLD_DEMO_UPSTREAM_PORT: String(demo),
  };
}

/**
 * `manifold up` as a user runs it, on free ports and a temporary data folder. Other test files
 * open connections meanwhile, and one may be given a port picked here before `up` binds it:
 * then `up` is started again on fresh ports, which is all a user would do.
 */
async function manifoldUp(dataDir: string, extra: Record<string, string> = {}): Promise<{ env: Record<string, string>; stop: () => Promise<number | null> }> {
  for (let attempt = 1; ; attempt++) {
    const env = { ...(await freshPorts(dataDir)), ...extra };
    try {
      return { env, ...(await startUp(env)) };
    } catch (error) {
      if (attempt === 3 || !/EADDRINUSE|address already in use/.test(String(error))) throw error;
    }
  }
}

async function startUp(env: Record<string, string>): Promise<{ stop: () => Promise<number | null> }> {
  const child: ChildProcess = spawn(process.execPath, [MAIN, "up"], { env: { ...process.env, ...env, LOG_LEVEL: "warn" }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`manifold up did not come up: ${output}`)), 45_000);
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

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "manifold-up-"));
  });
  afterAll(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  test("starts everything with a callable demo, and a full restart keeps every virtual server", async () => {
    const first = await manifoldUp(dataDir);
    let gatewayUrl = `http://127.0.0.1:${first.env.MANIFOLD_GATEWAY_PORT}`;
    let demoVersion: number;
    let extraTool: string;
    try {
      const admin = await adminOf(first.env);
      // Deny unless granted: without the demo agent's key the gateway refuses.
      expect((await fetch(`${gatewayUrl}/mcp/demo`, { method: "POST" })).status).toBe(401);
      await using agent = await connectAsDemo(`${gatewayUrl}/mcp/demo`);
      const { tools } = await agent.listTools();
      expect(tools).toHaveLength(5);
      const sum = tools.find((t) => t.name.startsWith("get-sum_"))!;
      expect((await agent.callTool({ name: sum.name, arguments: { a: 2, b: 40 } })).content).toEqual([
        { type: "text", text: "The sum of 2 and 40 is 42." },
      ]);
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
  });

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
});
