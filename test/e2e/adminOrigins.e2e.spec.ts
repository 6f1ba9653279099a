import type { NatsServer } from "@manifold/nats-server";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startBrowser, type HeadlessBrowser } from "../helpers/browser.js";
import { startRegistry, type RegistryOnly } from "../helpers/registryOnly.js";
import { startNats } from "../helpers/stack.js";

/** A blank page at its own origin: an operator's tool that calls the admin API from a browser. */
async function startPage(): Promise<{ server: Server; origin: string }> {
  const server = createServer((_req, res) => res.writeHead(200, { "content-type": "text/html" }).end("<!doctype html><title>ops</title>"));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** What a page's script got from the admin API: each answer's status and the headers it could read, or the browser's error. */
interface Seen {
  error?: string;
  created?: number;
  etag?: string | null;
  stale?: number;
  deleted?: number;
  limited?: { status: number; retryAfter: string | null };
}

/** An admin's round from a page: create (JSON body, bearer token), read the version (ETag), delete with a stale If-Match, then with the right one. */
async function runAdmin(args: { base: string; token: string; name: string }): Promise<Seen> {
  try {
    const auth = { authorization: `Bearer ${args.token}` };
    const seen: Seen = {};
    const created = await fetch(`${args.base}/v1/consumers`, { method: "POST", headers: { ...auth, "content-type": "application/json" }, body: JSON.stringify({ name: args.name }) });
    await created.text();
    seen.created = created.status;
    const read = await fetch(`${args.base}/v1/consumers/${args.name}`, { headers: auth });
    await read.text();
    seen.etag = read.headers.get("etag");
    const stale = await fetch(`${args.base}/v1/consumers/${args.name}`, { method: "DELETE", headers: { ...auth, "if-match": '"999"' } });
    await stale.text();
    seen.stale = stale.status;
    const deleted = await fetch(`${args.base}/v1/consumers/${args.name}`, { method: "DELETE", headers: { ...auth, "if-match": seen.etag ?? "" } });
    await deleted.text();
    seen.deleted = deleted.status;
    return seen;
  } catch (error) {
    return { error: String(error) };
  }
}

/**
 * Browser tools on the origins an operator lists in `REGISTRY_ALLOWED_ORIGINS`. Before, a listed
 * origin passed the admin port's Origin check but could not use the API: its preflight was answered
 * 404 and no answer carried `Access-Control-Allow-Origin`, so the browser gave the page only a
 * network error. Origins not listed stay refused (403).
 */
describe("admin tools on allowed origins (CORS)", () => {
  let nats: NatsServer;
  let registry: RegistryOnly;
  let browser: HeadlessBrowser;
  let allowed: { server: Server; origin: string };
  let foreign: { server: Server; origin: string };

  beforeAll(async () => {
    [nats, browser, allowed, foreign] = await Promise.all([startNats(), startBrowser(), startPage(), startPage()]);
    registry = await startRegistry(nats.url, { REGISTRY_ALLOWED_ORIGINS: allowed.origin });
  });

  afterAll(async () => {
    await browser?.close();
    await registry?.close();
    await nats?.stop();
    allowed?.server.close();
    foreign?.server.close();
  });

  const adminAt = async (origin: string, name: string) => {
    const page = await browser.page();
    await page.goto(`${origin}/`);
    const seen = await page.evaluate(runAdmin, { base: registry.admin.baseUrl, token: registry.admin.token, name });
    await page.context().close();
    return seen;
  };

  test("a page of a listed origin creates, reads the version of and deletes a consumer", async () => {
    const seen = await adminAt(allowed.origin, "from-a-page");
    expect(seen).toEqual({ created: 201, etag: expect.stringMatching(/^"\d+"$/), stale: 409, deleted: 204 });
  });

  test("attack: a page of an origin not listed gets nothing, its preflight refused 403, nothing created", async () => {
    const seen = await adminAt(foreign.origin, "from-elsewhere");
    expect(seen.error).toMatch(/TypeError/);
    expect((await registry.admin.get("/v1/consumers/from-elsewhere")).status).toBe(404);
    const preflight = await fetch(`${registry.admin.baseUrl}/v1/consumers`, { method: "OPTIONS", headers: { origin: foreign.origin, "access-control-request-method": "POST" } });
    expect(preflight.status).toBe(403);
    expect(preflight.headers.get("access-control-allow-origin")).toBeNull();
  });

  test("a preflight names the admin API's methods; the null origin and clients that are not browsers see no CORS headers", async () => {
    const preflight = await fetch(`${registry.admin.baseUrl}/v1/consumers/x`, {
      method: "OPTIONS",
      headers: { origin: allowed.origin, "access-control-request-method": "PATCH", "access-control-request-headers": "authorization, content-type, if-match, idempotency-key" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe(allowed.origin);
    expect(preflight.headers.get("access-control-allow-methods")).toBe("GET, POST, PUT, PATCH, DELETE");
    expect(preflight.headers.get("access-control-allow-headers")).toBe("authorization, content-type, if-match, idempotency-key");
    expect(preflight.headers.get("access-control-allow-credentials")).toBeNull();
    const answer = await fetch(`${registry.admin.baseUrl}/v1/upstreams`, { headers: { origin: allowed.origin, authorization: `Bearer ${registry.admin.token}` } });
    expect(answer.headers.get("access-control-expose-headers")).toBe("ETag, Retry-After, WWW-Authenticate");
    for (const headers of [{ authorization: `Bearer ${registry.admin.token}` }, { authorization: `Bearer ${registry.admin.token}`, origin: "null" }] as Record<string, string>[]) {
      const plain = await fetch(`${registry.admin.baseUrl}/v1/upstreams`, { headers });
      await plain.text();
      expect([...plain.headers.keys()].filter((h) => h.startsWith("access-control-"))).toEqual([]);
    }
  });
});
