import type { NatsServer } from "@manifold/nats-server";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { connectClient, connectHttp, type DisposableClient } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";
import { EVERYTHING_BIN, everythingStdio, spawnEverything, type SpawnedUpstream } from "../helpers/upstreams.js";

// Run with the seam's fast path on and off: the two must answer alike (GATEWAY_FAST_PATH).
describe.each(["on", "off"] as const)("a virtual server over real upstreams (fast path %s)", (fastPath) => {
  let nats: NatsServer;
  let stack: Stack;
  let everythingHttp: SpawnedUpstream;
  let recording: RecordingUpstream;
  let agent: DisposableClient;
  let exposed: Record<string, string>;

  beforeAll(async () => {
    nats = await startNats();
    [stack, everythingHttp, recording] = await Promise.all([
      startStack(nats.url, { GATEWAY_FAST_PATH: fastPath }),
      spawnEverything("streamableHttp"),
      startRecordingUpstream(),
    ]);
    for (const [name, transport] of [
      ["everything-stdio", everythingStdio()],
      ["everything-http", { type: "streamable-http", url: everythingHttp.url }],
      ["recording", { type: "streamable-http", url: recording.url }],
    ] as const) {
      const registered = await stack.admin.post("/v1/upstreams", { name, transport });
      expect(registered.status, JSON.stringify(registered.body)).toBe(201);
      expect(registered.body.discovery.status).toBe("ok");
    }
    const created = await stack.admin.post("/v1/virtual-servers", {
      name: "demo",
      description: "curated subset",
      tools: [
        { upstream: "everything-stdio", tool: "echo" },
        { upstream: "everything-stdio", tool: "get-sum" },
        { upstream: "everything-http", tool: "echo" },
        { upstream: "recording", tool: "add" },
        { upstream: "recording", tool: "fail" },
      ],
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    exposed = Object.fromEntries(
      created.body.tools.map((t: { upstream: string; tool: string; exposedName: string }) => [`${t.upstream}/${t.tool}`, t.exposedName]),
    );
    agent = await connectHttp(stack.mcpUrl("demo"));
  });

  afterAll(async () => {
    await agent?.close();
    await stack?.close();
    await Promise.all([everythingHttp?.stop(), recording?.close()]);
    await nats?.stop();
  });

  test("tools/list shows exactly the selected tools, under exposed names, with pinned definitions", async () => {
    const { tools } = await agent.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(Object.values(exposed).sort());
    for (const name of tools.map((t) => t.name)) expect(name).toMatch(/^[A-Za-z0-9_-]{1,64}$/);

    const upstream = await stack.admin.get("/v1/upstreams/recording");
    const pinnedAdd = upstream.body.tools.find((t: { name: string }) => t.name === "add").definition;
    const servedAdd = tools.find((t) => t.name === exposed["recording/add"]);
    expect(servedAdd).toEqual({ ...pinnedAdd, name: exposed["recording/add"] });
  });

  test("two upstreams exposing the same tool name both work under distinct names", async () => {
    const stdioEcho = exposed["everything-stdio/echo"]!;
    const httpEcho = exposed["everything-http/echo"]!;
    expect(stdioEcho).not.toBe(httpEcho);
    expect(stdioEcho.startsWith("echo_")).toBe(true);
    expect(httpEcho.startsWith("echo_")).toBe(true);
    const [a, b] = await Promise.all([
      agent.callTool({ name: stdioEcho, arguments: { message: "via stdio" } }),
      agent.callTool({ name: httpEcho, arguments: { message: "via http" } }),
    ]);
    expect(a.content).toEqual([{ type: "text", text: "Echo: via stdio" }]);
    expect(b.content).toEqual([{ type: "text", text: "Echo: via http" }]);
  });

  test("tools/call returns exactly what a direct call to the upstream returns", async () => {
    await using direct = await connectClient(new StdioClientTransport({ command: process.execPath, args: [EVERYTHING_BIN, "stdio"], stderr: "ignore" }));
    const args = { a: 19, b: 23 };
    const viaManifold = await agent.callTool({ name: exposed["everything-stdio/get-sum"]!, arguments: args });
    const directly = await direct.callTool({ name: "get-sum", arguments: args });
    expect(viaManifold).toEqual(directly);

    await using directRecording = await connectHttp(recording.url);
    const structured = await agent.callTool({ name: exposed["recording/add"]!, arguments: { a: 2, b: 3 } });
    expect(structured).toEqual(await directRecording.callTool({ name: "add", arguments: { a: 2, b: 3 } }));
    expect(structured.structuredContent).toEqual({ sum: 5 });
  });

  test("a tool result with isError passes through as a normal result", async () => {
    const result = await agent.callTool({ name: exposed["recording/fail"]!, arguments: {} });
    expect(result).toEqual({ content: [{ type: "text", text: "it failed" }], isError: true });
  });

  test("a tool that was not selected is invisible and calling it is -32602 naming the tool, never a call upstream", async () => {
    const before = recording.calls.length;
    for (const name of ["hidden", "add", "echo", "nope_abcdef"]) {
      const error = await agent.callTool({ name, arguments: {} }).then(
        () => undefined,
        (e: unknown) => e as { code: number; message: string; data: { code: string; tool: string } },
      );
      expect(error?.code).toBe(-32602);
      expect(error?.message).toContain(`'${name}'`);
      expect(error?.data).toMatchObject({ code: "unknown_tool", tool: name });
    }
    expect(recording.calls.length).toBe(before);
  });

  test("a virtual server created at run time is callable through the gateway within 1 s", async ({ annotate }) => {
    const created = await stack.admin.post("/v1/virtual-servers", {
      name: "late",
      tools: [{ upstream: "recording", tool: "echo" }],
    });
    expect(created.status).toBe(201);
    const answeredAt = performance.now();
    await using late = await connectHttp(stack.mcpUrl("late"));
    const result = await late.callTool({ name: created.body.tools[0].exposedName, arguments: { message: "hi" } });
    const elapsed = performance.now() - answeredAt;
    expect(result.content).toEqual([{ type: "text", text: "echo: hi" }]);
    expect(elapsed).toBeLessThan(1_000);
    await annotate(`admin API answer → first successful call through the gateway: ${elapsed.toFixed(1)} ms`);
  });

  test("a registered upstream's tools are discovered with content hashes", async () => {
    const { body } = await stack.admin.get("/v1/upstreams/everything-http");
    expect(body.serverInfo.name).toBeTruthy();
    const names = body.tools.map((t: { name: string }) => t.name);
    expect(names).toContain("echo");
    for (const tool of body.tools) expect(tool.hash).toMatch(/^sha256:[0-9a-f]{64}$/);
  });
});
