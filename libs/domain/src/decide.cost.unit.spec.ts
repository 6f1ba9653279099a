import { CommandType, type NewEvent, type RegistryCommand, type RegistryEvent } from "@manifold/contracts";
import { beforeAll, describe, expect, test } from "vitest";
import { decide } from "./decide.js";
import { http, meta, SUFFIX } from "./decideFixtures.spec.js";
import { iterationSteps } from "../../../test/helpers/iterationSteps.js";
import { CatalogProjection } from "./projection.js";

/**
 * What one admin command costs the registry (decide) and every node (evolve, at each replay too),
 * on a large but allowed catalog. A grant's denied prompt identities were each found by scanning
 * every prompt of the selection and of every environment, in decide and again in every node's
 * evolve: 1,000 of them over 10,000 prompts promoted to 1,000 environments held the registry 65 s.
 */
const PROMPTS = 2_000;
// 48,000 prompts promoted: within `RegistryLimits.environmentPinsPerVirtualServer`.
const ENVIRONMENTS = 24;
const TOOLS = 2_000;

let catalog: CatalogProjection;
let sequence = 0;
const apply = (events: NewEvent[]) => events.forEach((event) => catalog.apply({ ...event, meta } as RegistryEvent, ++sequence));
const run = (command: RegistryCommand) => apply(decide(command, catalog));

beforeAll(() => {
  catalog = new CatalogProjection();
  const prompts = Array.from({ length: PROMPTS }, (_, i) => ({ name: `p${i}` }));
  const tools = Array.from({ length: TOOLS }, (_, i) => ({ name: `t${i}`, inputSchema: { type: "object" as const } }));
  run({ type: CommandType.registerUpstream, name: "u", transport: http, options: {} });
  run({ type: CommandType.recordDiscovery, name: "u", serverInfo: { name: "s", version: "1" }, tools, prompts });
  run({ type: CommandType.createVirtualServer, name: "vs", naming: SUFFIX, tools: [], prompts: [], resources: [], driftPolicy: "pinned" });
  for (let i = 0; i < PROMPTS; i += 1_000) {
    run({ type: CommandType.selectItems, name: "vs", prompts: prompts.slice(i, i + 1_000).map((p) => ({ upstream: "u", prompt: p.name })), resources: [] });
  }
  for (let e = 0; e < ENVIRONMENTS; e++) {
    run({ type: CommandType.setEnvironment, name: `e${e}`, bindings: {} });
    apply(decide({ type: CommandType.promote, name: "vs", from: "default", to: `e${e}`, force: false }, catalog));
  }
  // Selected after every promotion: no environment serves them yet.
  run({ type: CommandType.selectTools, name: "vs", tools: tools.map((t) => ({ upstream: "u", tool: t.name })) });
}, 60_000);

describe("one admin command's cost does not grow with the catalog's other parts", () => {
  test("attack: a grant denying 1,000 prompt identities is decided and folded in milliseconds", () => {
    const deniedPrompts = Array.from({ length: 1_000 }, (_, i) => ({ upstream: "u", prompt: `p${i}` }));
    const command: RegistryCommand = { type: CommandType.grantAccess, name: "vs", grant: { grantId: "g1", subject: { group: "ops" }, deniedTools: [], deniedPrompts } };
    let events: NewEvent[] = [];
    const decided = iterationSteps(() => (events = decide(command, catalog)));
    const folded = iterationSteps(() => apply(events));
    expect(events).toHaveLength(1);
    expect(catalog.virtualServer("vs")?.grants.get("g1")?.deniedPrompts).toHaveLength(1_000);
    // Before: each identity read every prompt of the selection and of every environment (50,000
    // here), in decide and again in every node's fold: 0.46 s each in this catalog. Now a lookup
    // or two per identity (1,003 and 1,005 steps).
    expect(decided).toBeLessThanOrEqual(2 * deniedPrompts.length + 100);
    expect(folded).toBeLessThanOrEqual(2 * deniedPrompts.length + 100);
  });

  test("attack: 1,000 denied prompts that name nothing are refused in milliseconds", () => {
    const deniedPrompts = Array.from({ length: 1_000 }, (_, i) => ({ upstream: "u", prompt: `nothing-${i}` }));
    const command: RegistryCommand = { type: CommandType.grantAccess, name: "vs", grant: { grantId: "g2", subject: { group: "ops" }, deniedTools: [], deniedPrompts } };
    expect(() => decide(command, catalog)).toThrow(/has no prompt/);
    const refusing = () => {
      try {
        decide(command, catalog);
      } catch {
        // Refused, as above: only the work it took counts here.
      }
    };
    // Looked up in the selection and in each environment: 50,053 steps, against 50 million when
    // each identity read every prompt of each.
    expect(iterationSteps(refusing)).toBeLessThanOrEqual(deniedPrompts.length * (2 * ENVIRONMENTS + 4));
  });

  test("a rename copies only the environments that serve the name", () => {
    const before = catalog.virtualServer("vs")!;
    const exposedName = [...before.tools.keys()][0]!;
    const steps = iterationSteps(() => run({ type: CommandType.renameTool, name: "vs", exposedName, newName: "first", keepDeprecatedAlias: true }));
    const after = catalog.virtualServer("vs")!;
    expect(after.tools.has("first")).toBe(true);
    for (const [environment, pins] of after.environments) expect(pins).toBe(before.environments.get(environment));
    // Before: every environment's pins were copied (the check above failed), 48,000 pins here.
    // Now the selection is read once (2,054 steps).
    expect(steps).toBeLessThanOrEqual(2 * TOOLS);
  });
});

describe("what an upstream's tool list costs the registry", () => {
  // 10,000 tools: the most a virtual server selects, and an event of ~2 MB with their hashes, over
  // the bus's default message (1 MiB).
  const LISTED = 10_000;
  const maxEventBytes = 1024 * 1024 - 4 * 1024;
  const listOf = (revision: number) => Array.from({ length: LISTED }, (_, i) => ({ name: `t${i}`, description: `revision ${revision}`, inputSchema: { type: "object" as const, properties: { a: { type: "string" } } } }));
  const record = (revision: number): Extract<RegistryCommand, { type: typeof CommandType.recordDiscovery }> => ({ type: CommandType.recordDiscovery, name: "big", serverInfo: { name: "s", version: String(revision) }, tools: listOf(revision), maxEventBytes });

  test("attack: a list no bus message holds, every tool changed, is refused without classifying each tool's drift", () => {
    catalog.apply({ ...decide({ type: CommandType.registerUpstream, name: "big", transport: http, options: {} }, catalog)[0]!, meta } as RegistryEvent, ++sequence);
    // Recorded once without a size bound (as on a bus carrying larger messages), then changed.
    apply(decide({ ...record(0), maxEventBytes: undefined }, catalog));
    const [event] = decide(record(1), catalog);
    // Refused by the store, naming its size: its changes counted, not listed.
    expect(event!.data).toMatchObject({ changes: [], changesOmitted: LISTED });
    // Before, the drift of all 10,000 tools was classified (270–285 ms; 390,015 steps, as the same
    // list costs now where no bound is set); now the lists' hashes are compared (30,015 steps).
    expect(iterationSteps(() => decide(record(1), catalog))).toBeLessThanOrEqual(4 * LISTED);
  });

  test("the first recording of a list lists no changes (none is classified)", () => {
    catalog.apply({ ...decide({ type: CommandType.registerUpstream, name: "first", transport: http, options: {} }, catalog)[0]!, meta } as RegistryEvent, ++sequence);
    const command = { ...record(0), name: "first", maxEventBytes: undefined };
    const [event] = decide(command, catalog);
    expect(event!.data).toMatchObject({ changes: [] });
    expect(event!.data).not.toHaveProperty("changesOmitted");
  });
});
