import type { NatsConnection } from "@manifold/bus";
import { auditSubject, CommandType } from "@manifold/contracts";
import type { NatsServer } from "@manifold/nats-server";
import { jetstream } from "@nats-io/jetstream";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ADMIN_TOKEN, connectAs, startNats, startStack, type Stack } from "../helpers/stack.js";

const CLI = new URL("../../tools/manifold/dist/main.js", import.meta.url).pathname;

/** The `manifold` CLI against a real registry: how it is pointed at one, and what it reads back. */
describe("manifold CLI: target, audit paging, environments", () => {
  let nats: NatsServer;
  let stack: Stack;
  let gateway: NatsConnection;
  let dir: string;
  const run = (args: string[], env: Record<string, string> = {}) =>
    promisify(execFile)(process.execPath, [CLI, ...args], { env: { ...process.env, MANIFOLD_REGISTRY_URL: stack.admin.baseUrl, MANIFOLD_ADMIN_TOKEN: ADMIN_TOKEN, ...env } });
  /** The CLI's failure: its exit code and what it printed. */
  const failure = (args: string[], env: Record<string, string>) =>
    run(args, env).then(
      () => expect.unreachable("the command succeeded"),
      (error: { code: number; stdout: string; stderr: string }) => error,
    );

  beforeAll(async () => {
    nats = await startNats();
    stack = await startStack(nats.url);
    gateway = await connectAs(nats, "gateway", "cli-audit");
    dir = await mkdtemp(join(tmpdir(), "manifold-cli-"));
  });
  afterAll(async () => {
    await gateway?.close();
    await stack?.close();
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("attack: a registry URL carrying a password, or a token with a line break, is refused by name and never printed", async () => {
    const withPassword = new URL(stack.admin.baseUrl);
    withPassword.username = "admin";
    withPassword.password = "hunter2-in-the-url";
    const url = await failure(["get", "upstreams"], { MANIFOLD_REGISTRY_URL: withPassword.href });
    expect(url.code).toBe(1);
    expect(url.stderr).toContain("MANIFOLD_REGISTRY_URL must not carry a user name or password");
    // Before: fetch's refusal quoted the whole URL, and the CLI printed it.
    expect(url.stderr + url.stdout).not.toContain("hunter2");

    const token = await failure(["get", "upstreams"], { MANIFOLD_ADMIN_TOKEN: `${ADMIN_TOKEN}\nsecond-line-of-token` });
    expect(token.stderr).toContain("holds a space, line break or other character a header cannot carry");
    expect(token.stderr + token.stdout).not.toContain("second-line-of-token");
    expect(token.stderr).not.toContain(ADMIN_TOKEN);
  });

  test("a registry URL with a trailing slash is the same registry", async () => {
    // Before: every path was joined to `//v1/…`, which the registry does not route (404).
    expect((await run(["get", "upstreams"], { MANIFOLD_REGISTRY_URL: `${stack.admin.baseUrl}/` })).stdout).toBe("");
  });

  test("get lists every page of a list, in name order", async () => {
    // 1,200 consumers: three pages of the CLI's 500 (the registry's most a page).
    const names = Array.from({ length: 1_200 }, (_, i) => `paged-${String(i).padStart(4, "0")}`);
    for (let i = 0; i < names.length; i += 50) await Promise.all(names.slice(i, i + 50).map((name) => stack.registry.execute({ type: CommandType.createConsumer, name, groups: [], identityProviders: [] })));
    const listed = (await run(["get", "consumers"])).stdout.trim().split("\n").map((line) => line.split(" ")[0]);
    expect(listed.filter((name) => name!.startsWith("paged-"))).toEqual(names);
  });

  test("create environment puts one under the name in its file, and refuses one that exists", async () => {
    const file = join(dir, "qa.yaml");
    await writeFile(file, "name: qa\nbindings: {}\n");
    // Before: POST /v1/environments, a route the API does not have (404).
    expect((await run(["create", "environment", "-f", file])).stdout).toBe("created environment qa\n");
    expect((await stack.admin.get("/v1/environments/qa")).body).toMatchObject({ name: "qa", bindings: {} });
    expect((await failure(["create", "environment", "-f", file], {})).stderr).toContain("environment 'qa' already exists");
  });

  test("audit query reads on past the registry's pages to --limit, and says when more is left", async () => {
    const js = jetstream(gateway);
    const record = (i: number) =>
      JSON.stringify({ at: new Date().toISOString(), consumer: `consumer:c${i}`, virtualServer: "paged", environment: "default", exposedTool: "t", tool: "t", upstream: "u", durationMs: 1, outcome: "ok", argumentBytes: 0, resultBytes: 0 });
    for (let i = 0; i < 1_050; i += 150) await Promise.all(Array.from({ length: 150 }, (_, j) => js.publish(auditSubject("paged"), record(i + j))));

    const lines = (stdout: string) => stdout.trim().split("\n").map((l) => JSON.parse(l) as { consumer: string; sequence: number });
    // Before: 1,200 was sent to the registry as one page's limit (at most 1,000: refused), and without
    // --limit the first page was printed as if it were all.
    const all = await run(["audit", "query", "--virtual-server", "paged", "--limit", "1200", "--json"]);
    const printed = lines(all.stdout);
    expect(printed).toHaveLength(1_050);
    expect(new Set(printed.map((r) => r.sequence)).size).toBe(1_050);
    expect(printed.at(-1)!.consumer).toBe("consumer:c1049");
    expect(all.stderr).toBe("");

    const first = await run(["audit", "query", "--virtual-server", "paged", "--json"]);
    expect(lines(first.stdout)).toHaveLength(100);
    expect(first.stderr).toMatch(/^… more after #\d+: raise --limit, or narrow the query\n$/);
  });
});
