import { CommandType } from "@manifold/contracts";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startConsoleRegistry, type ConsoleRegistry } from "../helpers/consoleRegistry.js";
import type { RegistryOnly } from "../helpers/registryOnly.js";
import { ADMIN_TOKEN } from "../helpers/stack.js";

const UPSTREAMS = Number(process.env.CONSOLE_SCALE_UPSTREAMS ?? 1_000);
const TOOLS = 20;
/** Generous for a shared two-core CI machine; the figure measured is printed (docs/console.md). */
const FIRST_RENDER_BUDGET_MS = 10_000;

const toolsOf = (u: number) =>
  Array.from({ length: TOOLS }, (_, t) => ({
    name: `tool_${t}`,
    description: `Tool ${t} of upstream ${u}: does one thing well`,
    inputSchema: { type: "object" as const, properties: { id: { type: "string" }, limit: { type: "integer" } }, required: ["id"] },
  }));

/**
 * The catalog page with 1,000 upstreams × 20 tools: the registry's command path records them
 * (registration, then the discovery a connector would report), and the page must render its
 * first rows quickly, paged, with every upstream reachable by filter.
 */
describe("operator console at catalog scale", () => {
  let ui: ConsoleRegistry;
  let registry: RegistryOnly;

  beforeAll(async () => {
    ui = await startConsoleRegistry();
    registry = ui.registry;
    const { execute } = registry.registry;
    const seed = async (u: number) => {
      const name = `upstream-${String(u).padStart(4, "0")}`;
      await execute({ type: CommandType.registerUpstream, name, transport: { type: "streamable-http", url: `http://127.0.0.1:9/${u}`, headers: {}, secretHeaders: {} }, options: {} });
      await execute({ type: CommandType.recordDiscovery, name, serverInfo: { name: `server-${u}`, version: "1.0.0" }, tools: toolsOf(u) });
    };
    const started = Date.now();
    // Sixteen upstreams at a time: each is its own aggregate, so their appends do not conflict.
    for (let u = 0; u < UPSTREAMS; u += 16) await Promise.all(Array.from({ length: Math.min(16, UPSTREAMS - u) }, (_, i) => seed(u + i)));
    console.log(`[console scale] seeded ${UPSTREAMS} upstreams × ${TOOLS} tools in ${Date.now() - started} ms`);
  }, 180_000);
  afterAll(async () => {
    await ui?.close();
  });

  /** `<prefix>-0000`… virtual servers, sixteen at a time, each exposing tool_0 of one upstream. */
  async function createServers(prefix: string, count: number): Promise<void> {
    const { execute } = registry.registry;
    const name = (n: number) => String(n).padStart(4, "0");
    for (let v = 0; v < count; v += 16) {
      await Promise.all(
        Array.from({ length: Math.min(16, count - v) }, (_, i) =>
          execute({ type: CommandType.createVirtualServer, name: `${prefix}-${name(v + i)}`, naming: { policy: "suffix", prefixes: {} }, driftPolicy: "pinned", tools: [{ upstream: `upstream-${name((v + i) % UPSTREAMS)}`, tool: "tool_0" }] }),
        ),
      );
    }
  }

  test("the catalog page renders its first page within budget, and a filter finds the last upstream", async () => {
    const url = `${registry.admin.baseUrl}/console/`;
    // Signed in before the measured load, as after a sign-in: the token in this tab's session storage.
    const page = await ui.signedIn();
    const api = await fetch(`${registry.admin.baseUrl}/v1/upstreams`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    const bytes = (await api.arrayBuffer()).byteLength;

    const started = Date.now();
    await page.goto(`${url}#/upstreams`);
    await page.getByRole("link", { name: "upstream-0000" }).waitFor();
    const firstRender = Date.now() - started;
    const navigation = JSON.parse((await page.evaluate(`JSON.stringify(performance.getEntriesByType("navigation")[0])`)) as string);
    console.log(
      `[console scale] ${UPSTREAMS}×${TOOLS}: first page of /v1/upstreams ${(bytes / 1024).toFixed(1)} KiB; first render of the catalog page ${firstRender} ms after navigation (DOMContentLoaded at ${Math.round(navigation.domContentLoadedEventEnd)} ms)`,
    );
    expect(firstRender).toBeLessThan(FIRST_RENDER_BUDGET_MS);
    // Paged: 50 rows in the DOM, not a thousand.
    expect(await page.locator("[data-testid=upstreams] tbody tr").count()).toBe(50);
    expect(await page.getByRole("navigation", { name: "pages" }).textContent()).toContain(`Page 1 of ${Math.ceil(UPSTREAMS / 50)}`);
    const last = `upstream-${String(UPSTREAMS - 1).padStart(4, "0")}`;
    await page.getByLabel("Filter upstreams").fill(last);
    await page.getByRole("link", { name: last }).waitFor();
    expect(await page.locator("[data-testid=upstreams] tbody tr").count()).toBe(1);
    expect(await page.locator("[data-testid=upstreams] tbody").textContent()).toContain(String(TOOLS));
  });

  test("the virtual servers page is paged by the registry, and the builder finds a tool of the last upstream by search", async () => {
    const servers = 120;
    await createServers("vs", servers);
    const page = await ui.signedIn("#/virtual-servers");
    await page.getByRole("link", { name: "vs-0000" }).waitFor();
    const rows = page.locator("[data-testid=virtual-servers] tbody tr");
    expect(await rows.count()).toBe(50);
    const pager = page.getByRole("navigation", { name: "pages" });
    expect(await pager.textContent()).toContain(`Page 1 of 3 (${servers})`);
    await pager.getByRole("button", { name: "Next" }).click();
    await page.getByRole("link", { name: "vs-0050" }).waitFor();
    expect(await pager.textContent()).toContain("Page 2 of 3");
    await pager.getByRole("button", { name: "Previous" }).click();
    await page.getByRole("link", { name: "vs-0000" }).waitFor();
    await page.getByLabel("Filter virtual servers").fill("vs-0119");
    await page.getByRole("link", { name: "vs-0119" }).waitFor();
    await expect.poll(() => rows.count()).toBe(1);

    // The picker asks the registry: no upstream's definitions are in the page until searched for.
    const last = `upstream-${String(UPSTREAMS - 1).padStart(4, "0")}`;
    await page.getByLabel("Search tools").fill(last);
    await page.getByLabel(new RegExp(`^tool_${TOOLS - 1} on ${last}`)).waitFor();
    expect(await page.getByRole("list", { name: "matching tools" }).locator("li").count()).toBe(TOOLS);
  });

  // Last: its 520 virtual servers would fill the page above's first pages.
  test("the drift page offers 500 virtual servers at once and finds any other by name", async () => {
    await createServers("drift", 520);
    const page = await ui.signedIn("#/drift");
    const select = page.getByLabel("Virtual server", { exact: true });
    await expect.poll(() => select.locator("option").count(), { timeout: 10_000 }).toBe(500);
    expect(await select.locator("option").first().textContent()).toBe("drift-0000");
    // Past the first 500: found by typing part of its name, offered and chosen.
    await page.getByLabel("Find virtual server").fill("drift-0519");
    await expect.poll(() => select.locator("option").count(), { timeout: 10_000 }).toBe(1);
    expect(await select.inputValue()).toBe("drift-0519");
    await expect.poll(() => page.getByTestId("no-drift").textContent()).toBe("No pending drift in default.");
  });

  // Last: one more upstream would change the catalog page's counts above.
  test("attack: an upstream that lists 6,500 tools (what fits in one bus message) has them shown a page at a time", async () => {
    const FLOOD = 6_500;
    await registry.registry.execute({ type: CommandType.registerUpstream, name: "flood", transport: { type: "streamable-http", url: "http://127.0.0.1:9/", headers: {}, secretHeaders: {} }, options: {} });
    const tools = Array.from({ length: FLOOD }, (_, t) => ({ name: `t${t}`, inputSchema: { type: "object" as const } }));
    await registry.registry.execute({ type: CommandType.recordDiscovery, name: "flood", serverInfo: { name: "flood", version: "1.0.0" }, tools });
    const page = await ui.signedIn();
    const started = Date.now();
    await page.goto(`${registry.admin.baseUrl}/console/#/upstreams/flood`);
    const rows = page.locator("[data-testid=tools] tbody tr");
    await rows.first().waitFor();
    // Measured: 1,344 ms and 6,500 rows in the DOM before; 457 ms and 50 rows after.
    console.log(`[console scale] an upstream's ${FLOOD} tools: first render ${Date.now() - started} ms, ${await rows.count()} rows in the DOM`);
    expect(await rows.count()).toBe(50);
    await page.getByRole("navigation", { name: "pages" }).getByRole("button", { name: "Next" }).click();
    await page.getByRole("cell", { name: "t50", exact: true }).waitFor();
    expect(await page.getByRole("navigation", { name: "pages" }).textContent()).toContain(`Page 2 of ${FLOOD / 50} (${FLOOD})`);
  });
});
