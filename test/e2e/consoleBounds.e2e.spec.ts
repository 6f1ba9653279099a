import { CommandType } from "@manifold/contracts";
import type { Page, Route } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startConsoleRegistry, type ConsoleRegistry } from "../helpers/consoleRegistry.js";

/** Past one page of 500 (the registry holds at most 1,000 environments). */
const ENVIRONMENTS = 520;
/** As long as a search over a large catalog may take: long enough that typing outruns it. */
const SEARCH_MS = 150;

/**
 * The console's bounded answers as an operator meets them (helper-145): the environment selects
 * read one page of 500, so the others could not be chosen; the tool picker sent a search a
 * keystroke, each left running, and an admin's reads at once are bounded (429 `too_many_reads`).
 */
describe("operator console past one page, and within the admin's reads", () => {
  let ui: ConsoleRegistry;

  beforeAll(async () => {
    ui = await startConsoleRegistry();
    const { execute } = ui.registry.registry;
    await execute({ type: CommandType.registerUpstream, name: "tracker", transport: { type: "streamable-http", url: "http://127.0.0.1:9/t", headers: {}, secretHeaders: {} }, options: {} });
    const tools = ["find_issue", "file_issue", "close_issue"].map((name) => ({ name, description: `${name} in the tracker`, inputSchema: { type: "object" as const } }));
    await execute({ type: CommandType.recordDiscovery, name: "tracker", serverInfo: { name: "tracker", version: "1.0.0" }, tools });
    await execute({ type: CommandType.createVirtualServer, name: "desk", naming: { policy: "bare", prefixes: {} }, driftPolicy: "pinned", tools: [{ upstream: "tracker", tool: "find_issue" }] });
    for (let e = 0; e < ENVIRONMENTS; e++) await execute({ type: CommandType.setEnvironment, name: `env-${String(e).padStart(4, "0")}`, bindings: {} });
  }, 120_000);
  afterAll(async () => {
    await ui?.close();
  });
  const signedIn = (route: string) => ui.signedIn(route);

  /** The tool searches the page sends, each answered by the registry after `SEARCH_MS`, or by `answer` when it says so; how many ran at once. */
  async function watchedSearches(page: Page, answer: (q: string, nth: number) => Parameters<Route["fulfill"]>[0] | undefined = () => undefined) {
    const seen = { sent: [] as string[], running: 0, most: 0 };
    await page.route("**/v1/upstream-tools?**", async (route) => {
      const q = new URL(route.request().url()).searchParams.get("q") ?? "";
      seen.sent.push(q);
      seen.most = Math.max(seen.most, ++seen.running);
      try {
        await new Promise((resolve) => setTimeout(resolve, SEARCH_MS));
        const refusal = answer(q, seen.sent.filter((s) => s === q).length);
        await route.fulfill(refusal ?? { response: await route.fetch() });
      } finally {
        seen.running--;
      }
    });
    return seen;
  }

  test(`the drift page and the promotion form offer every one of ${ENVIRONMENTS + 1} environments`, async () => {
    const last = `env-${String(ENVIRONMENTS - 1).padStart(4, "0")}`;
    const page = await signedIn("#/drift/desk");
    const environment = page.getByLabel("Environment", { exact: true });
    await expect.poll(() => environment.locator("option").count(), { timeout: 10_000 }).toBe(ENVIRONMENTS + 1);
    await environment.selectOption(last);
    await expect.poll(() => page.getByTestId("no-drift").textContent()).toBe(`No pending drift in ${last}.`);

    await page.goto(`${ui.registry.admin.baseUrl}/console/#/virtual-servers/desk`);
    const to = page.getByLabel("Promote to");
    await expect.poll(() => to.locator("option").count(), { timeout: 10_000 }).toBe(ENVIRONMENTS + 1); // "choose…" and each but the default
    expect(await page.getByLabel("Promote from").locator("option").count()).toBe(ENVIRONMENTS + 1);
    expect(await to.locator("option").last().textContent()).toBe(last);
  });

  test("typed fast, the tool picker sends one search at a time, the latest, and shows its answer", async () => {
    const page = await signedIn("#/virtual-servers");
    const seen = await watchedSearches(page);
    const field = page.getByLabel("Search tools");
    await field.waitFor();
    await field.pressSequentially("find_issue", { delay: 40 });
    await page.getByLabel(/^find_issue on tracker/).waitFor();
    await expect.poll(() => page.getByRole("list", { name: "matching tools" }).locator("li").count()).toBe(1);
    console.log(`[console bounds] typing "find_issue" sent ${seen.sent.length} searches (${JSON.stringify(seen.sent)}), at most ${seen.most} at once`);
    expect(seen.most).toBe(1);
    expect(seen.sent.at(-1)).toBe("find_issue");
    // One a keystroke before (10); now one when typing pauses or the running one ends (2–5 seen), with room for a slow machine.
    expect(seen.sent.length).toBeLessThan(8);
    expect(await page.getByRole("alert").count()).toBe(0);
  });

  test("a search refused 429 too_many_reads or 503 at_capacity is sent again after its Retry-After; another error is shown", async () => {
    const page = await signedIn("#/virtual-servers");
    const seen = await watchedSearches(page, (q, nth) => {
      const refused = (status: number, code: string) => ({ status, headers: { "retry-after": "1", "content-type": "application/json" }, body: JSON.stringify({ error: { code, message: `refused ${q}` } }) });
      if (q === "file_issue" && nth === 1) return refused(429, "too_many_reads");
      if (q === "find_issue" && nth === 1) return refused(503, "at_capacity");
      if (q === "close_issue") return refused(500, "internal_error");
      return undefined;
    });
    const field = page.getByLabel("Search tools");
    await field.waitFor();
    const matching = page.getByRole("list", { name: "matching tools" }).locator("li");
    await expect.poll(() => matching.count()).toBe(3);
    await field.fill("file_issue");
    await expect.poll(() => matching.count(), { timeout: 10_000 }).toBe(1);
    expect(await matching.textContent()).toMatch(/^file_issue on tracker/);
    expect(seen.sent.filter((q) => q === "file_issue")).toHaveLength(2);
    expect(await page.getByRole("alert").count()).toBe(0);

    // Another admin's reads filled the registry's: the same, not an error shown.
    await field.fill("find_issue");
    await expect.poll(() => matching.textContent(), { timeout: 10_000 }).toMatch(/^find_issue on tracker/);
    expect(seen.sent.filter((q) => q === "find_issue")).toHaveLength(2);
    expect(await page.getByRole("alert").count()).toBe(0);

    await field.fill("close_issue");
    await expect.poll(() => page.getByRole("alert").textContent()).toBe("internal_error refused close_issue");
    expect(seen.sent.filter((q) => q === "close_issue")).toHaveLength(1);
  });
});
