import { RegistryStream } from "@manifold/contracts";
import type { NatsServer } from "@manifold/nats-server";
import { jetstreamManager } from "@nats-io/jetstream";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, registerUpstreams, rpcError } from "../helpers/catalog.js";
import { connectHttp, eventually, type DisposableClient } from "../helpers/mcp.js";
import { connectAs, startNats, startStack, type Stack } from "../helpers/stack.js";
import { spawnEverything, type SpawnedUpstream } from "../helpers/upstreams.js";

const STDIO_FIXTURE = new URL("../fixtures/stdio-upstream.mjs", import.meta.url).pathname;
const STDIO_SECRET = "stdio-secret-value-41f1";
const FILE_SECRET = "file-secret-value-93ad";

describe("connector transports and credentials", () => {
  let nats: NatsServer;
  let stack: Stack;
  let sse: SpawnedUpstream;
  let recording: RecordingUpstream;
  let agent: DisposableClient;
  let names: Record<string, string>;
  let secretDir: string;
  const logs: string[] = [];

  beforeAll(async () => {
    nats = await startNats();
    secretDir = await mkdtemp(join(tmpdir(), "manifold-secret-"));
    await writeFile(join(secretDir, "token"), `Bearer ${FILE_SECRET}\n`);
    [stack, sse, recording] = await Promise.all([
      startStack(nats.url, { MANIFOLD_SECRETS_DIR: secretDir }, { secretsEnv: { MANIFOLD_SECRET_FIXTURE: STDIO_SECRET }, logs }),
      spawnEverything("sse"),
      startRecordingUpstream(),
    ]);
    await registerUpstreams(
      stack,
      { name: "everything-sse", transport: { type: "sse", url: sse.url } },
      {
        name: "stdio-fixture",
        transport: { type: "stdio", command: process.execPath, args: [STDIO_FIXTURE], secretEnv: { FIXTURE_TOKEN: "env:MANIFOLD_SECRET_FIXTURE" } },
      },
      {
        name: "recording",
        transport: { type: "streamable-http", url: recording.url, headers: { "X-Team": "platform" }, secretHeaders: { Authorization: `file:${join(secretDir, "token")}` } },
      },
    );
    names = await createVirtualServer(stack, "transports", [
      { upstream: "everything-sse", tool: "echo" },
      { upstream: "stdio-fixture", tool: "echo" },
      { upstream: "stdio-fixture", tool: "pid" },
      { upstream: "stdio-fixture", tool: "env" },
      { upstream: "stdio-fixture", tool: "crash" },
      { upstream: "recording", tool: "echo" },
    ]);
    agent = await connectHttp(stack.mcpUrl("transports"));
  });

  afterAll(async () => {
    await agent?.close();
    await stack?.close();
    await Promise.all([sse?.stop(), recording?.close()]);
    await nats?.stop();
    await rm(secretDir, { recursive: true, force: true });
  });

  test("calls a real upstream over legacy HTTP+SSE", async () => {
    const result = await agent.callTool({ name: names["everything-sse/echo"]!, arguments: { message: "over sse" } });
    expect(result.content).toEqual([{ type: "text", text: "Echo: over sse" }]);
  });

  test("restarts a stdio upstream that exits, and logs its stderr under its name", async () => {
    const pid = async () => ((await agent.callTool({ name: names["stdio-fixture/pid"]!, arguments: {} })).content as { text: string }[])[0]!.text;
    const before = await pid();
    const crash = await rpcError(agent.callTool({ name: names["stdio-fixture/crash"]!, arguments: {} }));
    expect(crash.code).toBe(-32010);
    expect(crash.data.code).toBe("upstream_unavailable");
    expect(crash.message).toContain("stdio-fixture");
    const after = await eventually(async () => {
      const current = await pid();
      return current !== before ? current : undefined;
    }, 10_000, 100);
    expect(Number(after)).toBeGreaterThan(0);
    const stderrLines = logs.map((l) => JSON.parse(l)).filter((l) => l.upstream === "stdio-fixture" && l.stream === "stderr");
    expect(stderrLines.map((l) => l.msg)).toEqual(expect.arrayContaining(["stdio fixture ready", "crashing on request"]));
  });

  test("resolves credential references at run time: env: for stdio, file: for HTTP headers", async () => {
    // The fixture answers with the value it was started with; the connector withholds exactly the
    // value it resolved from the agent, so the whole answer reads `[redacted]`: resolved, and kept back.
    const env = await agent.callTool({ name: names["stdio-fixture/env"]!, arguments: { name: "FIXTURE_TOKEN" } });
    expect(env.content).toEqual([{ type: "text", text: "[redacted]" }]);
    const unset = await agent.callTool({ name: names["stdio-fixture/env"]!, arguments: { name: "FIXTURE_UNSET" } });
    expect(unset.content).toEqual([{ type: "text", text: "<unset>" }]);
    await agent.callTool({ name: names["recording/echo"]!, arguments: { message: "auth" } });
    const seen = recording.calls.at(-1)!.headers;
    expect(seen.authorization).toBe(`Bearer ${FILE_SECRET}`);
    expect(seen["x-team"]).toBe("platform");
  });

  test("keeps secrets out of the event log, the admin API and the logs", async () => {
    const nc = await connectAs(nats, "operator", "inspector");
    try {
      const jsm = await jetstreamManager(nc);
      const { last_seq } = (await jsm.streams.info(RegistryStream.name)).state;
      let log = "";
      for (let seq = 1; seq <= last_seq; seq++) log += (await jsm.streams.getMessage(RegistryStream.name, { seq }))?.string() ?? "";
      expect(log).toContain("env:MANIFOLD_SECRET_FIXTURE");
      for (const secret of [STDIO_SECRET, FILE_SECRET]) {
        expect(log).not.toContain(secret);
        expect(JSON.stringify((await stack.admin.get("/v1/upstreams")).body)).not.toContain(secret);
        expect(logs.filter((line) => line.includes(secret))).toEqual([]);
      }
    } finally {
      await nc.close();
    }
  });

  test("refuses a literal credential in plain headers or env, naming the field", async () => {
    const header = await stack.admin.post("/v1/upstreams", {
      name: "literal-header",
      transport: { type: "streamable-http", url: recording.url, headers: { Authorization: "Bearer oops" } },
    });
    expect(header.status).toBe(400);
    expect(header.body.error.message).toContain("Authorization");
    expect(header.body.error.message).toContain("secretHeaders");
    const env = await stack.admin.post("/v1/upstreams", {
      name: "literal-env",
      transport: { type: "stdio", command: "node", env: { API_TOKEN: "oops" } },
    });
    expect(env.status).toBe(400);
    expect(env.body.error.message).toContain("API_TOKEN");
  });

  test("a missing credential reference is a clear error on the upstream's health, not a crash", async () => {
    await stack.admin.post("/v1/upstreams", {
      name: "missing-secret",
      transport: { type: "streamable-http", url: recording.url, secretHeaders: { Authorization: "env:MANIFOLD_SECRET_NOT_SET_ANYWHERE" } },
    });
    const health = await eventually(async () => {
      const { body } = await stack.admin.get("/v1/upstreams/missing-secret");
      return body.health?.status === "down" ? body.health : undefined;
    });
    expect(health.replicas[0].reason).toContain("env:MANIFOLD_SECRET_NOT_SET_ANYWHERE");
    // The connector keeps serving everything else.
    const result = await agent.callTool({ name: names["recording/echo"]!, arguments: { message: "still here" } });
    expect(result.content).toEqual([{ type: "text", text: "echo: still here" }]);
  });
});
