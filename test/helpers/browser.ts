import { chromium, type Browser, type Page } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";

/** Debian's Chromium (the test command installs it when missing); CHROMIUM_BIN overrides. */
const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";
/** When set (`pnpm run screenshots`), the console suite saves its pages there as PNGs. */
const SCREENSHOTS = process.env.CONSOLE_SCREENSHOTS;

export interface HeadlessBrowser extends AsyncDisposable {
  readonly browser: Browser;
  /** A fresh page (its own context: no shared storage) at 1280×800. */
  page(): Promise<Page>;
  close(): Promise<void>;
}

/** Headless Chromium kept off the network: only the pages a test opens are fetched. */
export async function startBrowser(): Promise<HeadlessBrowser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // As root Chromium needs --no-sandbox; the rest stop it dialling out for updates and field trials.
    args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage"],
  });
  const close = () => browser.close();
  return {
    browser,
    async page() {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      const page = await context.newPage();
      // A failing browser test says why: the page's errors and refused requests reach the test log.
      page.on("pageerror", (error) => console.error(`[browser] ${error.message}`));
      page.on("console", (message) => message.type() === "error" && console.error(`[browser] ${message.text()}`));
      return page;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Saves the page as `<name>.png` in the screenshot folder, when one is asked for. */
export async function screenshot(page: Page, name: string, fullPage = false): Promise<void> {
  if (!SCREENSHOTS) return;
  const dir = resolve(SCREENSHOTS);
  mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: join(dir, `${name}.png`), fullPage });
}
