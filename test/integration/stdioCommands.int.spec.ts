import { describe, expect, test } from "vitest";
import { startRegistry, useRegistryOnly } from "../helpers/registryOnly.js";
import { EVERYTHING_BIN } from "../helpers/upstreams.js";

// An admin token used to be as strong as the connector's OS user: any command a stdio
// registration named ran there. The registry now refuses what MANIFOLD_STDIO_COMMANDS does not list.
const STDIO_FIXTURE = new URL("../fixtures/stdio-upstream.mjs", import.meta.url).pathname;
const listed = { type: "stdio", command: process.execPath, args: [STDIO_FIXTURE] };

describe("the registry runs only the stdio commands the operator lists", () => {
  const r = useRegistryOnly();

  const refusal = async (transport: Record<string, unknown>, path: string, method: "POST" | "PUT" = "POST", name = "attack") => {
    const res = method === "POST" ? await r.admin.post("/v1/upstreams", { name, transport }) : await r.admin.request("PUT", `/v1/upstreams/${name}`, { transport });
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.error.code).toBe("invalid_request");
    expect(res.body.error.data.issues.map((i: { path: string }) => i.path)).toEqual([path]);
    expect(res.body.error.message).toContain("MANIFOLD_STDIO_COMMANDS");
    return res.body.error.message as string;
  };

  test.each([
    ["a shell", { type: "stdio", command: "/bin/sh", args: ["-c", "id"] }, "/transport/command"],
    ["the listed interpreter with another script", { type: "stdio", command: process.execPath, args: ["/tmp/x.js"] }, "/transport/args"],
    ["the listed interpreter evaluating code", { type: "stdio", command: process.execPath, args: ["-e", "process.exit(7)"] }, "/transport/args"],
    ["the listed interpreter with a preload before its script", { type: "stdio", command: process.execPath, args: ["--require", "/tmp/x.js", STDIO_FIXTURE] }, "/transport/args"],
    ["the interpreter by a bare name", { type: "stdio", command: "node", args: [STDIO_FIXTURE] }, "/transport/command"],
    ["NODE_OPTIONS on a listed command", { ...listed, env: { NODE_OPTIONS: "--require /tmp/x.js" } }, "/transport/env/NODE_OPTIONS"],
    ["LD_PRELOAD by reference on a listed command", { ...listed, secretEnv: { LD_PRELOAD: "env:MANIFOLD_SECRET_PRELOAD" } }, "/transport/secretEnv/LD_PRELOAD"],
    ["a working directory on a listed command", { ...listed, cwd: "/tmp" }, "/transport/cwd"],
  ])("%s is refused with 400 naming the field, and nothing is recorded", async (_what, transport, path) => {
    const message = await refusal(transport, path);
    expect(message).not.toContain("/tmp/x.js");
    expect((await r.admin.get("/v1/upstreams/attack")).status).toBe(404);
  });

  test("a listed command is registered; turning it into a shell by an update is refused and changes nothing", async () => {
    const res = await r.admin.post("/v1/upstreams", { name: "fixture", transport: listed });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const everything = await r.admin.post("/v1/upstreams", { name: "everything", transport: { type: "stdio", command: process.execPath, args: [EVERYTHING_BIN, "stdio"] } });
    expect(everything.status, JSON.stringify(everything.body)).toBe(201);

    await refusal({ type: "stdio", command: "/bin/sh", args: ["-c", "id"] }, "/transport/command", "PUT", "fixture");
    await refusal({ ...listed, env: { NODE_OPTIONS: "--require /tmp/x.js" } }, "/transport/env/NODE_OPTIONS", "PUT", "fixture");
    const after = await r.admin.get("/v1/upstreams/fixture");
    expect(after.body.transport).toMatchObject({ command: process.execPath, args: [STDIO_FIXTURE], env: {} });
    expect(after.body.version).toBe(res.body.version);
  });

  test("with MANIFOLD_STDIO_COMMANDS empty (as when unset) no stdio upstream is registered, HTTP ones still are", async () => {
    await using bare = await startRegistry(r.nats.url, { MANIFOLD_STDIO_COMMANDS: "" });
    const res = await bare.admin.post("/v1/upstreams", { name: "fixture-2", transport: listed });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toBe("invalid body: transport.command: no stdio upstream may run here: MANIFOLD_STDIO_COMMANDS lists no command");
    expect((await bare.admin.post("/v1/upstreams", { name: "http", transport: { type: "streamable-http", url: "http://127.0.0.1:1/mcp" } })).status).toBe(201);
  });
});
