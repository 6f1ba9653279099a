import type { NatsServer } from "@manifold/nats-server";
import type { Page } from "playwright-core";
import { startBrowser, type HeadlessBrowser } from "./browser.js";
import { startRegistry, type RegistryOnly } from "./registryOnly.js";
import { ADMIN_TOKEN, startNats } from "./stack.js";

/** A registry (its admin port serving the console) on its own nats-server, and a headless browser. */
export interface ConsoleRegistry extends AsyncDisposable {
  readonly nats: NatsServer;
  readonly registry: RegistryOnly;
  readonly browser: HeadlessBrowser;
  /** A page signed in (the token in this tab's session storage, read as the console loads), at `route` when given. */
  signedIn(route?: string): Promise<Page>;
  close(): Promise<void>;
}

export async function startConsoleRegistry(): Promise<ConsoleRegistry> {
  const nats = await startNats();
  const [registry, browser] = await Promise.all([startRegistry(nats.url), startBrowser()]);
  const close = async () => {
    await browser.close();
    await registry.close();
    await nats.stop();
  };
  return {
    nats,
    registry,
    browser,
    async signedIn(route) {
      const page = await browser.page();
      await page.goto(`${registry.admin.baseUrl}/console/`);
      await page.evaluate(`sessionStorage.setItem("manifold.adminToken", ${JSON.stringify(ADMIN_TOKEN)})`);
      await page.goto("about:blank");
      if (route !== undefined) await page.goto(`${registry.admin.baseUrl}/console/${route}`);
      return page;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
