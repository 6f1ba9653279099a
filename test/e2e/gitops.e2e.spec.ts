import type { NatsServer } from "@manifold/nats-server";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { EventType, RegistryStream } from "@manifold/contracts";
import { jetstreamManager } from "@nats-io/jetstream";
import { connectHttp } from "../helpers/mcp.js";
import { ADMIN_TOKEN, connectAs, startNats, startStack, type Stack } from "../helpers/stack.js";
import { wholeVirtualServer } from "../helpers/admin.js";

const run = promisify(execFile);
const CLI = new URL("../../tools/manifold/dist/main.js", import.meta.url).pathname;

describe("declarative configuration: apply, dry run, export", () => {
  let nats: NatsServer;
  let stack: Stack;
  let recording: RecordingUpstream;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const manifold = async (...args: string[]) => (await run(process.execPath, [CLI, ...args], { env })).stdout;

  const desired = (url: string, extraTool = "") => `# The catalog, as a platform team keeps it in git.
upstreams:
  - name: tracker
    description: Issue tracker
    transport:
      type: streamable-http
      url: ${url}
    options:
      callTimeoutMs: 30000
identityProviders:
  - { name: corp, issuer: "https://id.corp.example", audience: manifold, jwksUrl: "https://id.corp.example/jwks", consumerClaim: sub, groupsClaim: groups, groups: [] }
consumers:
  - name: billing-bot
    groups: [billing]
    identityProviders: [corp]
virtualServers:
  - name: billing
    description: Tools for the billing agent
    naming: { policy: prefix, prefixes: { tracker: tr } }
    tools:
      - { upstream: tracker, tool: echo }
      - { upstream: tracker, tool: add, alias: sum }${extraTool}
    grants:
      - { grantId: billing-team, subject: { group: billing }, rateLimitPerMinute: 600 }
      - { grantId: bot, subject: { consumer: billing-bot }, deniedTools: [sum] }
`;

  beforeAll(async () => {
    nats = await startNats();
    [stack, recording] = await Promise.all([startStack(nats.url), startRecordingUpstream()]);
    dir = await mkdtemp(join(tmpdir(), "manifold-gitops-"));
    env = { ...process.env, MANIFOLD_REGISTRY_URL: stack.admin.baseUrl, MANIFOLD_ADMIN_TOKEN: ADMIN_TOKEN };
  });

  afterAll(async () => {
    await stack?.close();
    await recording?.close();
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test("--dry-run prints the plan and changes nothing; apply applies it; a second apply is a no-op", async () => {
    const file = join(dir, "manifold.yaml");
    await writeFile(file, desired(recording.url));
    const plan = await manifold("apply", "-f", file, "--dry-run");
    expect(plan.split("\n").filter((l) => l.startsWith("would "))).toEqual([
      "would create upstream tracker",
      // A consumer may trust only a provider that exists: providers go first.
      "would create identity-provider corp",
      "would create consumer billing-bot",
      "would create virtual-server billing",
      "would update virtual-server billing: grant billing-team",
      "would update virtual-server billing: grant bot",
    ]);
    expect((await stack.admin.get("/v1/upstreams")).body.items).toEqual([]);

    expect(await manifold("apply", "-f", file)).toContain("6 changes applied");
    const vs = await wholeVirtualServer(stack.admin, "billing");
    expect(vs.tools.map((t: { exposedName: string }) => t.exposedName).sort()).toEqual(["sum", "tr_echo"]);
    // A tool denied by its alias in the file is stored by identity; the file still applies as a no-op below.
    // The registry shows every list of denied things, empty ones too.
    const none = { deniedPrompts: [], deniedResources: [] };
    expect(vs.grants).toEqual([
      { grantId: "billing-team", subject: { group: "billing" }, deniedTools: [], rateLimitPerMinute: 600, ...none },
      { grantId: "bot", subject: { consumer: "billing-bot" }, deniedTools: [{ upstream: "tracker", tool: "add" }], ...none },
    ]);
    expect((await stack.admin.get("/v1/consumers/billing-bot")).body.identityProviders).toEqual(["corp"]);
    expect((await stack.admin.get("/v1/upstreams/tracker")).body.options).toEqual({ callTimeoutMs: 30000 });

    expect(await manifold("apply", "-f", file)).toBe("no changes\n");
  });

  test("export writes the registry back as a file that applies as a no-op", async () => {
    const exported = join(dir, "exported.yaml");
    await manifold("export", "-o", exported);
    const text = await readFile(exported, "utf8");
    expect(text).toContain("alias: sum");
    expect(text).not.toContain("alias: tr_echo");
    expect(await manifold("apply", "-f", exported, "--dry-run")).toBe("no changes\n");
  });

  test("a changed file plans exactly the difference", async () => {
    const file = join(dir, "changed.yaml");
    await writeFile(
      file,
      desired(recording.url, "\n      - { upstream: tracker, tool: fail }")
        .replace("Tools for the billing agent", "Billing tools")
        .replace("groups: [billing]", "groups: [billing, finance]")
        .replace("    naming: { policy: prefix", "    interactions: { sampling: true }\n    naming: { policy: prefix")
        .replace("{ upstream: tracker, tool: echo }", "{ upstream: tracker, tool: echo, description: Repeats a message }"),
    );
    const plan = await manifold("apply", "-f", file, "--dry-run");
    expect(plan).toContain("would update virtual-server billing: description");
    expect(plan).toContain("would update virtual-server billing: select tracker/fail");
    expect(plan).toContain("would update virtual-server billing: describe tracker/echo");
    expect(plan).toContain("would update consumer billing-bot");
    expect(plan).toContain("would update virtual-server billing: interactions");
    expect(plan).toContain("5 changes planned (dry run)");
    expect(await manifold("apply", "-f", file)).toContain("5 changes applied");
    expect((await stack.admin.get("/v1/virtual-servers/billing")).body.interactions).toEqual({ elicitation: true, sampling: true, roots: false });
    expect((await stack.admin.get("/v1/consumers/billing-bot")).body.groups).toEqual(["billing", "finance"]);
    const echo = (await wholeVirtualServer(stack.admin, "billing")).tools.find((t: { tool: string }) => t.tool === "echo");
    expect(echo.descriptionOverride).toBe("Repeats a message");
    expect(await manifold("apply", "-f", file)).toBe("no changes\n");
  });

  test("an alias taken out of the file renames the tool back to the naming policy's name, and putting it back renames it again", async () => {
    const file = join(dir, "no-alias.yaml");
    // Described in the same change: the description goes to the name the tool has once renamed.
    await writeFile(file, desired(recording.url).replace("{ upstream: tracker, tool: add, alias: sum }", "{ upstream: tracker, tool: add, description: Adds two numbers }").replace("deniedTools: [sum]", "deniedTools: [tr_add]"));
    // Before: skipped, and reported as no changes, while the registry kept serving the alias.
    expect(await manifold("apply", "-f", file, "--dry-run")).toContain("would update virtual-server billing: rename sum to tr_add");
    await manifold("apply", "-f", file);
    const names = async () => ((await wholeVirtualServer(stack.admin, "billing")).tools as { exposedName: string }[]).map((t) => t.exposedName).sort();
    expect(await names()).toEqual(["tr_add", "tr_echo"]);
    const add = (await wholeVirtualServer(stack.admin, "billing")).tools.find((t: { exposedName: string }) => t.exposedName === "tr_add");
    expect(add.descriptionOverride).toBe("Adds two numbers");
    expect(await manifold("apply", "-f", file)).toBe("no changes\n");
    const original = join(dir, "with-alias.yaml");
    await writeFile(original, desired(recording.url));
    await manifold("apply", "-f", original);
    expect(await names()).toEqual(["sum", "tr_echo"]);
  });

  test("a grant change the registry refuses leaves the grant as it was, not revoked", async () => {
    const file = join(dir, "typo.yaml");
    await writeFile(file, desired(recording.url).replace("deniedTools: [sum]", "deniedTools: [sum, no-such-tool]"));
    const before = (await wholeVirtualServer(stack.admin, "billing")).grants.find((g: { grantId: string }) => g.grantId === "bot");
    await expect(manifold("apply", "-f", file)).rejects.toThrow(/no-such-tool/);
    // Before: the old grant was deleted to make way for the new one, and stayed deleted.
    const after = (await wholeVirtualServer(stack.admin, "billing")).grants.find((g: { grantId: string }) => g.grantId === "bot");
    expect(after).toEqual(before);
  });

  // attack (helper-94): the file's new tool was selected before its grant was replaced; the grant,
  // refused for a typo, was restored as it was, and its subject called the new tool it was to be denied.
  test("a grant denying a tool the file does not serve stops the apply before anything changes", async () => {
    const file = join(dir, "new-tool-typo.yaml");
    const adding = desired(recording.url).replace("{ upstream: tracker, tool: echo }", "{ upstream: tracker, tool: echo }\n      - { upstream: tracker, tool: fail, alias: fresh }");
    await writeFile(file, adding.replace("deniedTools: [sum]", "deniedTools: [sum, fresh, frsh]"));
    await expect(manifold("apply", "-f", file)).rejects.toThrow(/denies 'frsh'/);
    const served = ((await wholeVirtualServer(stack.admin, "billing")).tools as { exposedName: string }[]).map((t) => t.exposedName);
    expect(served).not.toContain("fresh");
  });

  // attack (review): within one apply the file's new tool was selected first and the grant denying
  // it replaced after, so for that moment the grant's subject could call it. Now the grant goes first,
  // by identity: at no point of the registry's log is the new tool selected and not denied.
  test("a grant that denies a tool the file newly selects denies it before the tool is selected", async () => {
    await manifold("apply", "-f", join(dir, "with-alias.yaml"));
    const observer = await connectAs(nats, "operator", "gitops-observer");
    try {
      const jsm = await jetstreamManager(observer);
      const from = (await jsm.streams.info(RegistryStream.name)).state.last_seq;
      const file = join(dir, "new-denied-tool.yaml");
      const adding = desired(recording.url).replace("{ upstream: tracker, tool: echo }", "{ upstream: tracker, tool: echo }\n      - { upstream: tracker, tool: fail, alias: fresh }");
      await writeFile(file, adding.replace("deniedTools: [sum]", "deniedTools: [sum, fresh]"));
      await manifold("apply", "-f", file);
      const to = (await jsm.streams.info(RegistryStream.name)).state.last_seq;
      const events: { type: string; data: any }[] = [];
      for (let seq = from + 1; seq <= to; seq++) events.push((await jsm.streams.getMessage(RegistryStream.name, { seq }))!.json());
      const denied = events.findIndex((e) => e.type === EventType.virtualServerAccessGranted && e.data.grant.grantId === "bot" && e.data.grant.deniedTools.some((t: { tool: string }) => t.tool === "fail"));
      const selected = events.findIndex((e) => e.type === EventType.virtualServerToolsSelected && e.data.tools.some((t: { tool: string }) => t.tool === "fail"));
      expect(selected, JSON.stringify(events.map((e) => e.type))).toBeGreaterThanOrEqual(0);
      expect(denied).toBeGreaterThanOrEqual(0);
      expect(denied, "the grant's event comes before the selection's").toBeLessThan(selected);
      expect(await manifold("apply", "-f", file)).toBe("no changes\n");
    } finally {
      await observer.close();
      await manifold("apply", "-f", join(dir, "with-alias.yaml"));
    }
  });

  test("a denied name that means another tool in an environment: apply records both and then converges", async () => {
    const original = join(dir, "with-alias.yaml");
    await writeFile(original, desired(recording.url));
    await manifold("apply", "-f", original);
    // prod keeps `sum` as `add`; the selection then drops `add`, and selects `fail` as `sum`.
    expect((await stack.admin.request("PUT", "/v1/environments/prod-gitops", { bindings: {} })).status).toBeLessThan(300);
    expect((await stack.admin.post("/v1/virtual-servers/billing/promote", { from: "default", to: "prod-gitops" })).status).toBe(200);
    const dropped = desired(recording.url).replace("\n      - { upstream: tracker, tool: add, alias: sum }", "");
    const first = join(dir, "dropped.yaml");
    await writeFile(first, dropped);
    await manifold("apply", "-f", first);
    const file = join(dir, "reused-alias.yaml");
    await writeFile(file, dropped.replace("{ upstream: tracker, tool: echo }", "{ upstream: tracker, tool: echo }\n      - { upstream: tracker, tool: fail, alias: sum }"));
    await manifold("apply", "-f", file);
    const bot = async () => (await wholeVirtualServer(stack.admin, "billing")).grants.find((g: { grantId: string }) => g.grantId === "bot");
    expect((await bot()).deniedTools).toEqual([
      { upstream: "tracker", tool: "add" },
      { upstream: "tracker", tool: "fail" },
    ]);
    // Before: the plan resolved `sum` to the selection's tool alone, never matched the registry, and
    // revoked and granted `bot` again on every apply.
    expect(await manifold("apply", "-f", file)).toBe("no changes\n");
    await manifold("apply", "-f", first);
    await manifold("apply", "-f", original);
  });

  test("create, get and delete single objects", async () => {
    const body = join(dir, "consumer.yaml");
    await writeFile(body, "name: ops-bot\ngroups: [ops]\n");
    expect(await manifold("create", "consumer", "-f", body)).toBe("created consumer ops-bot\n");
    expect(await manifold("get", "consumers")).toContain("ops-bot");
    expect(JSON.parse(await manifold("get", "consumer", "ops-bot")).groups).toEqual(["ops"]);
    expect(await manifold("delete", "consumer", "ops-bot")).toBe("deleted consumer ops-bot\n");
    const history = (await manifold("history", "consumer", "ops-bot")).trim().split("\n");
    expect(history).toHaveLength(2);
    expect(history[0]).toMatch(/^\d{4}-\d\d-\d\dT\S+ {2}admin:admin {2}consumer\.created {2}\(#\d+\)$/);
    expect(history[1]).toContain("admin:admin  consumer.deleted");
    const missing = (await run(process.execPath, [CLI, "get", "consumer", "ops-bot"], { env }).catch((e: { stderr: string }) => e)) as { stderr: string };
    expect(missing.stderr).toContain("404 not_found consumer 'ops-bot' does not exist");
  });

  test("prune everything, then re-apply the previous file (a git revert): every object is created again and serves", async () => {
    const previous = join(dir, "changed.yaml");
    const empty = join(dir, "empty.yaml");
    await writeFile(empty, "upstreams: []\n");
    const pruned = await manifold("apply", "-f", empty, "--prune");
    expect(pruned).toContain("delete virtual-server billing");
    expect(pruned).toContain("delete consumer billing-bot");
    expect(pruned).toContain("delete upstream tracker");
    expect((await stack.admin.get("/v1/upstreams")).body.items).toEqual([]);

    expect(await manifold("apply", "-f", previous)).toMatch(/\d+ changes applied/);
    expect(await manifold("apply", "-f", previous)).toBe("no changes\n");
    expect((await stack.admin.get("/v1/consumers/billing-bot")).body.groups).toEqual(["billing", "finance"]);
    const vs = await wholeVirtualServer(stack.admin, "billing");
    expect(vs.tools.map((t: { exposedName: string }) => t.exposedName).sort()).toEqual(["sum", "tr_echo", "tr_fail"]);
    await using client = await connectHttp(stack.mcpUrl("billing"));
    const result = await client.callTool({ name: "sum", arguments: { a: 2, b: 3 } });
    expect(result.isError).toBeFalsy();
    // Four CLI processes: on a loaded two-core machine each can take many seconds to start.
  }, 180_000);

  test("an invalid file is refused naming the line and the field", async () => {
    const file = join(dir, "invalid.yaml");
    await writeFile(file, desired(recording.url).replace("type: streamable-http", "type: carrier-pigeon").replace("tool: add, alias: sum", "tool: add, alias: 'not valid!'"));
    const failure = (await run(process.execPath, [CLI, "apply", "-f", file], { env }).catch((e: { stderr: string }) => e)) as { stderr: string };
    expect(failure.stderr).toMatch(/invalid\.yaml:6: upstreams\[0\]\.transport\.type: /);
    expect(failure.stderr).toMatch(/invalid\.yaml:22: virtualServers\[0\]\.tools\[1\]\.alias: must be 1-64 characters/);
    const broken = join(dir, "broken.yaml");
    await writeFile(broken, "upstreams:\n  - name: [unclosed\n");
    const parse = (await run(process.execPath, [CLI, "apply", "-f", broken], { env }).catch((e: { stderr: string }) => e)) as { stderr: string };
    expect(parse.stderr).toMatch(/broken\.yaml:\d+: /);
  });
});
