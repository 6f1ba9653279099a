import { EventType, type NewEvent, type RegistryEvent } from "@manifold/contracts";
import { CatalogProjection, definitionHash, exposedToolName, pinDefinition } from "@manifold/domain";
import { expect, test } from "vitest";
import { iterationSteps } from "../../../test/helpers/iterationSteps.js";
import type { CallDeps } from "./callDeps.js";
import { GatewayCatalog } from "./catalog.js";
import { TaskHandles } from "./taskHandles.js";
import { mayHearTask, taskBinding } from "./tasks.js";

const meta = { commandId: "c", at: "2026-12-07T00:00:00.000Z" };
const tools = Array.from({ length: 2_000 }, (_, i) => pinDefinition({ name: `tool${i}`, inputSchema: { type: "object" } }));
const pin = (tool: (typeof tools)[number]) => ({ hash: definitionHash(tool), definition: tool });
const events: NewEvent[] = [
  { type: EventType.upstreamRegistered, version: 1, data: { name: "up", transport: { type: "streamable-http", url: "http://a.example/mcp", headers: {}, secretHeaders: {} }, options: {} } },
  { type: EventType.upstreamToolsDiscovered, version: 1, data: { name: "up", serverInfo: { name: "srv", version: "1" }, tools: tools.map(pin), changes: [] } },
  {
    type: EventType.virtualServerCreated,
    version: 1,
    data: { name: "vs", tools: tools.map((t) => ({ exposedName: exposedToolName("up", t.name), upstream: "up", tool: t.name, ...pin(t) })), driftPolicy: "pinned", naming: { policy: "suffix", prefixes: {} } },
  },
];

test("whether a caller may hear of a task finds its tool by identity, not by reading every tool of the virtual server: the work does not grow with the catalog", () => {
  const projection = new CatalogProjection();
  events.forEach((event, i) => projection.apply({ ...event, meta } as RegistryEvent, i + 1));
  const catalog = new GatewayCatalog(projection, 1_000, "all");
  const taskHandles = new TaskHandles(Buffer.alloc(32, 7));
  let denied = new Set<string>();
  const deps = { catalog, taskHandles, accessNow: () => ({ denied, deniedItems: new Set<string>(), rateLimitPerMinute: undefined }) } as unknown as CallDeps;
  const call = { virtualServer: "vs", environment: "default", principal: { id: "consumer:alice#1", consumer: "alice", groups: [] } };
  const handle = (tool: string) => taskHandles.seal({ upstream: "up", tool, replica: "r", connection: "c", taskId: "t" }, taskBinding(call));
  catalog.view("vs");

  let heard = false;
  const steps = iterationSteps(() => (heard = mayHearTask(deps, call, handle("tool1999"))));
  expect(heard).toBe(true);
  // Before, every route of the view was copied and searched on each task request and status notice (2,001 steps here).
  expect(steps).toBeLessThanOrEqual(4);
  expect(mayHearTask(deps, call, handle("gone"))).toBe(false);
  denied = new Set(["up/tool1999"]);
  expect(mayHearTask(deps, call, handle("tool1999"))).toBe(false);
});
