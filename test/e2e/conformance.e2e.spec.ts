import type { NatsServer } from "@manifold/nats-server";
import { readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startConformanceServer, type ConformanceServer } from "../fixtures/conformanceServer.js";
import { registerUpstreams } from "../helpers/catalog.js";
import { passing, REVISIONS, runConformance, type Revision, type ScenarioOutcome } from "../helpers/conformance.js";
import { eventually } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

/** The contract: scenarios that must pass, per target and revision (data, so widening it after a change is one edit). */
const expected = JSON.parse(readFileSync(new URL("../fixtures/conformance.expected.json", import.meta.url), "utf8")) as Record<"direct" | "manifold", Record<Revision, string[]>>;
/**
 * The rows of docs/protocol.md's Conformance section: `| \`scenario\` | revision | reason |`, where
 * the scenario `*` stands for every scenario of that revision.
 */
const conformanceDoc = /\n## Conformance\n([\s\S]*?)(?:\n## |$)/.exec(readFileSync(new URL("../../docs/protocol.md", import.meta.url), "utf8"))?.[1] ?? "";
const explained = (scenario: string, revision: string) =>
  conformanceDoc.split("\n").some((line) => (line.startsWith(`| \`${scenario}\` |`) || line.startsWith("| `*` |")) && line.split("|")[2]?.trim() === revision && line.split("|")[3]?.trim());
/** Per-scenario check counts of every run, for the docs and for whoever updates the expected lists. */
const RESULTS_FILE = "bench-results/conformance.json";

/**
 * The MCP conformance suite's server scenarios, each revision at its own wire, against our
 * fixture directly and through a virtual server of Manifold that selects all its tools. The
 * suite sends no credentials: the gateway runs with authentication on and admits it through
 * an anonymous grant (GATEWAY_ALLOW_ANONYMOUS=true), as an operator would have to.
 */
describe("MCP conformance suite", () => {
  let nats: NatsServer;
  let stack: Stack;
  let fixture: ConformanceServer;
  const results: Record<string, Record<string, ScenarioOutcome>> = {};

  beforeAll(async () => {
    nats = await startNats();
    [stack, fixture] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", GATEWAY_ALLOW_ANONYMOUS: "true" }), startConformanceServer()]);
    await registerUpstreams(stack, { name: "fixture", transport: { type: "streamable-http", url: fixture.url } });
    const upstream = (await stack.admin.get("/v1/upstreams/fixture")).body;
    const tools = upstream.tools.map((t: { name: string }) => ({ upstream: "fixture", tool: t.name }));
    const prompts = upstream.prompts.map((p: { definition: { name: string } }) => ({ upstream: "fixture", prompt: p.definition.name }));
    const resources = [
      ...upstream.resources.map((r: { definition: { uri: string } }) => ({ upstream: "fixture", uri: r.definition.uri })),
      ...upstream.resourceTemplates.map((t: { definition: { uriTemplate: string } }) => ({ upstream: "fixture", uriTemplate: t.definition.uriTemplate })),
    ];
    // The suite calls tools and prompts by their own names and reads its own URIs: the virtual server exposes them unchanged.
    const created = await stack.admin.post("/v1/virtual-servers", { name: "conformance", tools, prompts, resources, naming: { policy: "bare" } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect((await stack.admin.post("/v1/virtual-servers/conformance/grants", { grantId: "suite", subject: { anonymous: true } })).status).toBe(201);
    await eventually(async () => ((await fetch(stack.mcpUrl("conformance"), { method: "DELETE" })).status !== 401 ? true : undefined));
  });

  afterAll(async () => {
    await mkdir("bench-results", { recursive: true });
    await writeFile(RESULTS_FILE, `${JSON.stringify(results, null, 2)}\n`);
    await stack?.close();
    await fixture?.close();
    await nats?.stop();
  });

  for (const revision of REVISIONS) {
    test(`${revision}, directly against the fixture: every scenario the fixture claims passes`, async () => {
      const outcomes = (results[`direct ${revision}`] = await runConformance(fixture.url, revision));
      expect(passing(outcomes)).toEqual(expect.arrayContaining(expected.direct[revision]));
    });

    test(`${revision}, through a virtual server: at least the listed scenarios pass, and the docs explain every one that passes only directly`, async () => {
      const outcomes = (results[`manifold ${revision}`] = await runConformance(stack.mcpUrl("conformance"), revision));
      expect(passing(outcomes)).toEqual(expect.arrayContaining(expected.manifold[revision]));
      const differing = expected.direct[revision].filter((s) => !expected.manifold[revision].includes(s));
      expect(differing.filter((s) => !explained(s, revision))).toEqual([]);
    });
  }
});
