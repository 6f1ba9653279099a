import type { NatsServer } from "@manifold/nats-server";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { wholeVirtualServer } from "../helpers/admin.js";
import { connectHttp } from "../helpers/mcp.js";
import { ADMIN_TOKEN, startNats, startStack, type Stack } from "../helpers/stack.js";

const run = promisify(execFile);
const CLI = new URL("../../tools/manifold/dist/main.js", import.meta.url).pathname;

/** What a stack serves and holds, without versions (which differ between two logs). */
async function snapshot(stack: Stack) {
  const list = async (kind: string) => (await stack.admin.get(`/v1/${kind}`)).body.items.map(({ version: _v, ...rest }: { version?: number }) => rest);
  const mcp: Record<string, unknown> = {};
  for (const path of ["app", "staging/app", "prod/app"]) {
    await using client = await connectHttp(`${stack.gatewayUrl}/mcp/${path}`);
    mcp[path] = (await client.listTools()).tools.map((t) => ({ name: t.name, description: t.description })).sort((a, b) => a.name.localeCompare(b.name));
  }
  return {
    mcp,
    // Lists show summaries: each virtual server's whole view is compared (its view, and what it holds
    // from its paged routes), with every environment's pins.
    virtualServers: await Promise.all(
      (await list("virtual-servers")).map(async ({ name }: { name: string }) => {
        const { version: _v, ...vs } = await wholeVirtualServer(stack.admin, name);
        const pins: Record<string, unknown> = {};
        for (const env of Object.keys(vs.environments)) {
          for (const kind of ["tools", "prompts", "resources", "resourceTemplates"]) pins[`${env} ${kind}`] = (await stack.admin.get(`/v1/virtual-servers/${name}/environments/${env}?kind=${kind}`)).body.items;
        }
        return { ...vs, pins };
      }),
    ),
    environments: await list("environments"),
    consumers: (await list("consumers")).map(({ keys: _keys, ...c }: { keys?: unknown }) => c),
    identityProviders: await list("identity-providers"),
    upstreams: (await list("upstreams")).map((u: { name: string; transport: unknown; options: unknown }) => ({ name: u.name, transport: u.transport, options: u.options })),
  };
}

describe("export is complete: a registry rebuilt from it on another NATS serves the same endpoints", () => {
  let natsA: NatsServer;
  let natsB: NatsServer;
  let origin: Stack;
  let rebuilt: Stack;
  let dev: RecordingUpstream;
  let staging: RecordingUpstream;
  let dir: string;
  const cli = async (stack: Stack, ...args: string[]) =>
    (await run(process.execPath, [CLI, ...args], { env: { ...process.env, MANIFOLD_REGISTRY_URL: stack.admin.baseUrl, MANIFOLD_ADMIN_TOKEN: ADMIN_TOKEN } })).stdout;

  beforeAll(async () => {
    [natsA, natsB, dev, staging] = await Promise.all([startNats(), startNats(), startRecordingUpstream("dev"), startRecordingUpstream("staging")]);
    // The origin runs 2 page reads at once per admin token (4 by default): an export must stay within it.
    [origin, rebuilt] = await Promise.all([startStack(natsA.url, { REGISTRY_MAX_PAGE_READS_PER_ADMIN: "2" }), startStack(natsB.url)]);
    dir = await mkdtemp(join(tmpdir(), "manifold-export-"));

    // The origin's state, made the way an operator would: one API call at a time.
    const ok = async (res: Promise<{ status: number; body: any }>) => {
      const { status, body } = await res;
      expect(status, JSON.stringify(body)).toBeLessThan(300);
      return body;
    };
    const a = origin.admin;
    await ok(a.post("/v1/upstreams", { name: "tracker", transport: { type: "streamable-http", url: dev.url } }));
    await ok(a.post("/v1/upstreams", { name: "tracker-staging", transport: { type: "streamable-http", url: staging.url } }));
    await ok(a.request("PUT", "/v1/environments/staging", { bindings: { tracker: "tracker-staging" } }));
    await ok(a.request("PUT", "/v1/environments/prod", { bindings: { tracker: "tracker-staging" } }));
    await ok(a.post("/v1/consumers", { name: "bot", groups: ["billing"] }));
    await ok(a.post("/v1/identity-providers", { name: "corp", issuer: "https://idp.example", audience: "manifold", jwksUrl: "https://idp.example/jwks" }));
    expect((await a.get("/v1/identity-providers/corp")).body).toMatchObject({ name: "corp", issuer: "https://idp.example" });
    expect((await a.get("/v1/identity-providers/constructor")).status).toBe(404);
    await ok(
      a.post("/v1/virtual-servers", {
        name: "app",
        naming: { policy: "prefix", prefixes: { tracker: "tr" } },
        driftPolicy: "auto-compatible",
        tools: [
          { upstream: "tracker", tool: "echo" },
          { upstream: "tracker", tool: "add" },
        ],
      }),
    );
    await ok(a.post("/v1/virtual-servers/app/tools/tr_add/rename", { newName: "plus", keepDeprecatedAlias: true }));
    await ok(a.post("/v1/virtual-servers/app/tools/plus/rename", { newName: "sum", keepDeprecatedAlias: true }));
    await ok(a.request("PATCH", "/v1/virtual-servers/app/tools/tr_echo", { description: "Says it back" }));
    await ok(a.request("PUT", "/v1/virtual-servers/app/audit", { recordValues: true, redactFields: ["secret"] }));
    // Interactions changed after creation, under If-Match like every update: a stale version is refused.
    const { version } = await ok(a.get("/v1/virtual-servers/app"));
    const stale = await a.request("PUT", "/v1/virtual-servers/app/interactions", { elicitation: false, roots: true }, { "if-match": `"${version - 1}"` });
    expect(stale.status).toBe(409);
    expect(stale.body.error.code).toBe("version_conflict");
    await ok(a.request("PUT", "/v1/virtual-servers/app/interactions", { elicitation: false, roots: true }, { "if-match": `"${version}"` }));
    await ok(a.post("/v1/virtual-servers/app/grants", { grantId: "billing", subject: { group: "billing" }, environment: "staging", rateLimitPerMinute: 60 }));
    await ok(a.post("/v1/virtual-servers/app/promote", { from: "default", to: "staging" }));
    await ok(a.post("/v1/virtual-servers/app/promote", { from: "staging", to: "prod" }));
    // Selected in the default environment after the promotions: staging and prod do not serve it.
    await ok(a.post("/v1/virtual-servers/app/tools", { tools: [{ upstream: "tracker", tool: "fail" }] }));
    // Promoted while it had no tools, then given one: staging serves none of them, and is served still.
    await ok(a.post("/v1/virtual-servers", { name: "quiet", tools: [] }));
    await ok(a.post("/v1/virtual-servers/quiet/promote", { from: "default", to: "staging" }));
    await ok(a.post("/v1/virtual-servers/quiet/tools", { tools: [{ upstream: "tracker", tool: "echo" }] }));
  });

  afterAll(async () => {
    await Promise.all([origin?.close(), rebuilt?.close()]);
    await Promise.all([natsA?.stop(), natsB?.stop(), dev?.close(), staging?.close()]);
    await rm(dir, { recursive: true, force: true });
  });

  test("export → an empty registry → apply: the same objects, the same tools on every /mcp endpoint, and the same export", async () => {
    const file = join(dir, "origin.yaml");
    await cli(origin, "export", "-o", file);
    const text = await readFile(file, "utf8");
    expect(text).toContain("promotions:");
    expect(text).toContain("deprecatedAliases:");
    expect(text).toContain("recordValues: true");
    expect(text).toMatch(/interactions:\n\s+elicitation: false\n\s+sampling: false\n\s+roots: true/);
    expect(await cli(origin, "apply", "-f", file, "--dry-run")).toBe("no changes\n");

    expect(await cli(rebuilt, "apply", "-f", file)).toMatch(/changes applied/);
    const [before, after] = await Promise.all([snapshot(origin), snapshot(rebuilt)]);
    expect((before.mcp as Record<string, { name: string }[]>)["prod/app"]!.map((t) => t.name)).toEqual(["sum", "tr_echo"]);
    expect((before.mcp as Record<string, { name: string }[]>)["app"]!.map((t) => t.name)).toEqual(["sum", "tr_echo", "tr_fail"]);
    expect(after).toEqual(before);

    // Old names keep working on the rebuilt registry too.
    await using client = await connectHttp(rebuilt.mcpUrl("app"));
    const result = await client.callTool({ name: "tr_add", arguments: { a: 2, b: 3 } });
    expect(result.isError).toBeFalsy();

    const again = join(dir, "rebuilt.yaml");
    await cli(rebuilt, "export", "-o", again);
    expect(await readFile(again, "utf8")).toBe(text);
    expect(await cli(rebuilt, "apply", "-f", file)).toBe("no changes\n");
    // Five CLI processes and two stacks: on a loaded two-core machine each process can take many seconds to start.
  }, 300_000);

  /**
   * An export reads every virtual server's history, and the registry runs a few page reads at once
   * per admin token (`REGISTRY_MAX_PAGE_READS_PER_ADMIN`, here 2): read all at once, some were still
   * refused after the CLI's retries, and the export failed.
   */
  test("an export of 150 virtual servers reads their histories within the registry's page-read bound", async () => {
    const added = Array.from({ length: 150 }, (_, i) => `many-${i}`);
    for (const name of added) expect((await origin.admin.post("/v1/virtual-servers", { name, tools: [] })).status).toBe(201);
    const file = join(dir, "many.yaml");
    await cli(origin, "export", "-o", file);
    const text = await readFile(file, "utf8");
    for (const name of added) expect(text).toContain(`name: ${name}\n`);
  }, 120_000);
});
