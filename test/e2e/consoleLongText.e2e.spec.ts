import { CommandType } from "@manifold/contracts";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startConsoleRegistry, type ConsoleRegistry } from "../helpers/consoleRegistry.js";

/** "Z" and 49 combining marks (U+0300…), repeated: ~900 KB of UTF-8, as an upstream may describe a tool. */
const ZALGO = ("Z" + Array.from({ length: 49 }, (_, i) => String.fromCodePoint(0x300 + i)).join("")).repeat(9_200);

/**
 * One tool description an upstream chose to be ~900 KB of combining marks (helper-167): the
 * console laid all of it out wherever it showed the description (~1.9 s a page, the tab busy
 * meanwhile). What a description shows is now bounded, with the rest on demand.
 */
describe("operator console, a tool description of ~900 KB of combining marks", () => {
  let ui: ConsoleRegistry;

  beforeAll(async () => {
    ui = await startConsoleRegistry();
    const { execute } = ui.registry.registry;
    await execute({ type: CommandType.registerUpstream, name: "glyphs", transport: { type: "streamable-http", url: "http://127.0.0.1:9/g", headers: {}, secretHeaders: {} }, options: {} });
    const tools = [
      { name: "zalgo", description: ZALGO, inputSchema: { type: "object" as const } },
      { name: "plain", description: "a plain tool", inputSchema: { type: "object" as const } },
    ];
    await execute({ type: CommandType.recordDiscovery, name: "glyphs", serverInfo: { name: "glyphs", version: "1.0.0" }, tools });
    await execute({ type: CommandType.createVirtualServer, name: "desk", naming: { policy: "bare", prefixes: {} }, driftPolicy: "pinned", tools: [{ upstream: "glyphs", tool: "zalgo" }, { upstream: "glyphs", tool: "plain" }] });
  }, 120_000);
  afterAll(async () => {
    await ui?.close();
  });
  const signedIn = () => ui.signedIn();

  /** Milliseconds from navigating to `route` until `ready` is shown, laid out and painted. */
  async function shown(page: Page, route: string, ready: () => Promise<void>): Promise<number> {
    const started = Date.now();
    await page.goto(`${ui.registry.admin.baseUrl}/console/${route}`);
    await ready();
    await page.evaluate("new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))");
    return Date.now() - started;
  }

  test("the upstream's tools table lays out a bounded part of it, and the whole on demand", async () => {
    const page = await signedIn();
    const ms = await shown(page, "#/upstreams/glyphs", () => page.getByRole("cell", { name: "plain", exact: true }).waitFor());
    const cell = page.getByTestId("tools").locator("tr", { hasText: "zalgo" }).locator("td.description");
    const laidOut = (await cell.textContent())!.length;
    console.log(`[console long text] upstream page with a ${ZALGO.length}-character description: ${ms} ms to show, ${laidOut} characters laid out`);
    expect(laidOut).toBeLessThan(4_000);
    expect(await cell.textContent()).toContain(`${(ZALGO.length - 2_000).toLocaleString("en-US")} more characters`);
    // The layout each visit paid, bounded (now) and whole (before; now on "Show all"): the page's
    // description cells laid out again at another width, timed in the page.
    const relayout = (width: number) =>
      page.evaluate<number>(`(() => {
        const started = performance.now();
        for (const td of document.querySelectorAll("td.description")) td.style.width = "${width}px";
        void document.body.offsetHeight;
        return Math.round(performance.now() - started);
      })()`);
    const bounded = await relayout(401);
    await cell.getByRole("button", { name: "Show all" }).click();
    await expect.poll(() => cell.textContent().then((t) => t!.length), { timeout: 20_000 }).toBe(ZALGO.length);
    const whole = await relayout(402);
    console.log(`[console long text] the description cells laid out: ${bounded} ms bounded, ${whole} ms whole`);
    expect(bounded).toBeLessThan(whole);
  }, 60_000);

  test("the virtual server's tools table lays out a bounded part of it", async () => {
    const page = await signedIn();
    const ms = await shown(page, "#/virtual-servers/desk", () => page.getByRole("cell", { name: "a plain tool", exact: true }).waitFor());
    const laidOut = (await page.locator("tr", { hasText: "zalgo" }).locator("td.description").textContent())!.length;
    console.log(`[console long text] virtual server page: ${ms} ms to show, ${laidOut} characters laid out`);
    expect(laidOut).toBeLessThan(4_000);
  }, 60_000);

  test("the upstream's history lays out a bounded part of the discovery that holds it", async () => {
    const page = await signedIn();
    await shown(page, "#/history/upstreams/glyphs", () => page.getByTestId("history").locator("li").nth(1).waitFor());
    const discovery = page.getByTestId("history").locator("li", { hasText: /discover/i });
    await discovery.locator("summary").click();
    const laidOut = (await discovery.locator("pre.json").textContent())!.length;
    console.log(`[console long text] history, the discovery's data: ${laidOut} characters laid out`);
    expect(laidOut).toBeLessThan(22_000);
    await discovery.getByRole("button", { name: "Show all" }).click();
    await expect.poll(() => discovery.locator("pre.json").textContent().then((t) => t!.length), { timeout: 20_000 }).toBeGreaterThan(ZALGO.length);
  }, 60_000);

  // Bounded before this change too: the registry's tool search answers 300 characters of a description.
  test("the tool picker's search result lays out a bounded part of it", async () => {
    const page = await signedIn();
    const ms = await shown(page, "#/virtual-servers", async () => {
      await page.getByLabel("Search tools").fill("zalgo");
      await page.getByLabel(/^zalgo on glyphs/).waitFor();
    });
    const laidOut = (await page.getByRole("list", { name: "matching tools" }).locator(".description").first().textContent())!.length;
    console.log(`[console long text] tool picker: ${ms} ms to show, ${laidOut} characters laid out`);
    expect(laidOut).toBeLessThan(4_000);
  }, 60_000);
});
