import { CommandType } from "@manifold/contracts";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startConsoleRegistry, type ConsoleRegistry } from "../helpers/consoleRegistry.js";

/**
 * A tool whose `x-mcp-header` annotations a 2026-07-28 client may not mirror is published without
 * them (`publishedInputSchema`); the upstream's page says which and why, on the tool's row
 * (helper-190). Before, nothing told the operator that agents saw another schema than the upstream's.
 */
describe("operator console, tools published without some x-mcp-header annotations", () => {
  let ui: ConsoleRegistry;

  beforeAll(async () => {
    ui = await startConsoleRegistry();
    const { execute } = ui.registry.registry;
    await execute({ type: CommandType.registerUpstream, name: "hdr", transport: { type: "streamable-http", url: "http://127.0.0.1:9/h", headers: {}, secretHeaders: {} }, options: {} });
    const tools = [
      { name: "measure", inputSchema: { type: "object" as const, properties: { n: { type: "number", "x-mcp-header": "N" }, region: { type: "string", "x-mcp-header": "Region" } } } },
      { name: "fine", inputSchema: { type: "object" as const, properties: { region: { type: "string", "x-mcp-header": "Region" } } } },
    ];
    await execute({ type: CommandType.recordDiscovery, name: "hdr", serverInfo: { name: "hdr", version: "1.0.0" }, tools });
  }, 120_000);
  afterAll(async () => {
    await ui?.close();
  });

  test("the tool's row names the annotation left out and why; a tool without one says nothing", async () => {
    const page = await ui.signedIn();
    await page.goto(`${ui.registry.admin.baseUrl}/console/#/upstreams/hdr`);
    await page.getByRole("cell", { name: "fine", exact: true }).waitFor();
    const row = (tool: string) => page.getByTestId("tools").locator("tr", { has: page.getByRole("cell", { name: tool, exact: true }) });
    const measure = await row("measure").textContent();
    console.log(`[console param headers] measure's row: ${measure}`);
    expect(measure).toContain("Published without x-mcp-header N on n: on a parameter of type number");
    expect(await row("fine").textContent()).not.toContain("Published without");
  });
});
