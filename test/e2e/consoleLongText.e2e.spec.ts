import { CommandType } from "@manifold/contracts";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startConsoleRegistry, type ConsoleRegistry } from "../helpers/consoleRegistry.js";

/** "Z" and 49 combining marks (U+0300…), repeated: ~900 KB of UTF-8, as an upstream may describe a tool. */
const ZALGO = ("Z" + Array.from({ length: 49 }, (_, i) => String.fromCodePoint(0x300 + i)).join("")).repeat(9_200);

/** As much of it as one discovery event carries twice (the definition and the drift's JSON Patch): ~400 KB. */
const GROWN = ZALGO.slice(0, 200_000);

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
    // A tool pinned with a short description that its upstream then rewrites as the ~900 KB one: a drift to review.
    await execute({ type: CommandType.registerUpstream, name: "grower", transport: { type: "streamable-http", url: "http://127.0.0.1:9/r", headers: {}, secretHeaders: {} }, options: {} });
    const grows = (description: string) => [{ name: "grows", description, inputSchema: { type: "object" as const } }];
    await execute({ type: CommandType.recordDiscovery, name: "grower", serverInfo: { name: "grower", version: "1.0.0" }, tools: grows("a short description") });
    // And one whose input schema then gains a property named with 100,000 of those characters (the drift's reason and path name it).
    await execute({ type: CommandType.registerUpstream, name: "widener", transport: { type: "streamable-http", url: "http://127.0.0.1:9/w", headers: {}, secretHeaders: {} }, options: {} });
    const widens = (properties: Record<string, object>) => [{ name: "widens", description: "a tool", inputSchema: { type: "object" as const, properties } }];
    await execute({ type: CommandType.recordDiscovery, name: "widener", serverInfo: { name: "widener", version: "1.0.0" }, tools: widens({}) });
    await execute({ type: CommandType.createVirtualServer, name: "review", naming: { policy: "bare", prefixes: {} }, driftPolicy: "pinned", tools: [{ upstream: "grower", tool: "grows" }, { upstream: "widener", tool: "widens" }] });
    await execute({ type: CommandType.recordDiscovery, name: "grower", serverInfo: { name: "grower", version: "1.1.0" }, tools: grows(GROWN) });
    await execute({ type: CommandType.recordDiscovery, name: "widener", serverInfo: { name: "widener", version: "1.1.0" }, tools: widens({ [GROWN.slice(0, 100_000)]: { type: "string" } }) });
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

  // attack (helper-205): the drift review bounded the pinned and live definitions (`Json`, 20,000 characters) but not
  // its changes table, whose Live cell laid out the whole new description: the review of this drift laid out all 200,000
  // characters of combining marks, each time the operator opened it.
  test("the drift review's changes table lays out a bounded part of it, and the whole on demand", async () => {
    const page = await signedIn();
    const card = page.getByTestId("drift-grows");
    const ms = await shown(page, "#/drift/review", () => card.getByRole("table", { name: "changes" }).waitFor());
    const changes = card.getByRole("table", { name: "changes" });
    const live = changes.locator("td.value").nth(1);
    const laidOut = (await changes.textContent())!.length;
    console.log(`[console long text] drift review of a description grown to ${GROWN.length} characters: ${ms} ms to show, ${laidOut} characters laid out in its changes table, ${(await card.textContent())!.length} in its card`);
    expect(laidOut).toBeLessThan(4_000);
    expect(await live.textContent()).toContain("more characters");
    await live.getByRole("button", { name: "Show all" }).click();
    await expect.poll(() => live.textContent().then((t) => t!.length), { timeout: 20_000 }).toBeGreaterThan(GROWN.length);
  }, 60_000);

  test("the drift review's reasons and changed paths lay out a bounded part of a property's 100,000-character name", async () => {
    const page = await signedIn();
    const card = page.getByTestId("drift-widens");
    await shown(page, "#/drift/review", () => card.getByRole("table", { name: "changes" }).waitFor());
    const reasons = (await card.getByRole("list", { name: "reasons" }).textContent())!.length;
    const path = (await card.getByRole("table", { name: "changes" }).locator("tbody td").first().textContent())!.length;
    console.log(`[console long text] drift review of a property named with 100,000 characters: reasons ${reasons} characters laid out, its path ${path}`);
    expect(reasons).toBeLessThan(4_000);
    expect(path).toBeLessThan(4_000);
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
