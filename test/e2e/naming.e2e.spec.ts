import type { NatsServer } from "@manifold/nats-server";
import { ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { registerUpstreams } from "../helpers/catalog.js";
import { connectHttp, eventually } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

describe("names agents can rely on", () => {
  let nats: NatsServer;
  let stack: Stack;
  let a: RecordingUpstream;
  let b: RecordingUpstream;

  beforeAll(async () => {
    nats = await startNats();
    [stack, a, b] = await Promise.all([startStack(nats.url), startRecordingUpstream("a"), startRecordingUpstream("b")]);
    await registerUpstreams(
      stack,
      { name: "github", transport: { type: "streamable-http", url: a.url } },
      { name: "gitlab", transport: { type: "streamable-http", url: b.url } },
    );
  });

  afterAll(async () => {
    await stack?.close();
    await Promise.all([a?.close(), b?.close()]);
    await nats?.stop();
  });

  test("prefix naming, an alias with its own description, and a bare collision refused", async () => {
    const created = await stack.admin.post("/v1/virtual-servers", {
      name: "code",
      naming: { policy: "prefix", prefixes: { github: "gh" } },
      tools: [
        { upstream: "github", tool: "echo" },
        { upstream: "gitlab", tool: "echo" },
        { upstream: "github", tool: "add", alias: "sum", description: "Adds two numbers for the billing team" },
      ],
    });
    expect(created.status).toBe(201);
    await using agent = await connectHttp(stack.mcpUrl("code"));
    const { tools } = await agent.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(["gh_echo", "gitlab_echo", "sum"]);
    expect(tools.find((t) => t.name === "sum")!.description).toBe("Adds two numbers for the billing team");
    expect((await agent.callTool({ name: "sum", arguments: { a: 1, b: 2 } })).structuredContent).toEqual({ sum: 3 });

    const bare = await stack.admin.post("/v1/virtual-servers", {
      name: "bare",
      naming: { policy: "bare" },
      tools: [{ upstream: "github", tool: "echo" }, { upstream: "gitlab", tool: "echo" }],
    });
    expect(bare.status).toBe(409);
    expect(bare.body.error.message).toMatch(/'echo'.*'github'.*'gitlab'|'echo'.*'gitlab'.*'github'/);
  });

  test("a rename notifies clients; the old name keeps working as a deprecated alias but is not listed", async () => {
    await using agent = await connectHttp(stack.mcpUrl("code"));
    let notified = false;
    agent.setNotificationHandler(ToolListChangedNotificationSchema, () => void (notified = true));
    const renamed = await stack.admin.post("/v1/virtual-servers/code/tools/gh_echo/rename", { newName: "github_echo" });
    expect(renamed.status).toBe(200);
    expect(renamed.body.deprecatedAlias).toEqual({ alias: "gh_echo", current: "github_echo" });
    await eventually(() => (notified ? true : undefined));
    expect((await agent.listTools()).tools.map((t) => t.name).sort()).toEqual(["github_echo", "gitlab_echo", "sum"]);
    expect((await agent.callTool({ name: "gh_echo", arguments: { message: "old" } })).content).toEqual([{ type: "text", text: "echo: old" }]);
    expect((await agent.callTool({ name: "github_echo", arguments: { message: "new" } })).content).toEqual([{ type: "text", text: "echo: new" }]);
  });
});
