import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, expect, test } from "vitest";
import { request as httpRequest } from "node:http";
import { startRegistry } from "../helpers/registryOnly.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// attack2: what the gateway's public port tells someone without credentials. /healthz and /readyz are
// for probes (not even Host-checked); /readyz also says the registry stream's sequence, a count of every
// admin change (consumers, keys issued and revoked, grants, upstreams), moving as each one happens.

let nats: NatsServer;
let stack: Stack;
beforeAll(async () => {
  nats = await startNats();
  stack = await startStack(nats.url, { GATEWAY_AUTH: "required" });
});
afterAll(async () => {
  await stack?.close();
  await nats?.stop();
});

test("the public /readyz says nothing about the catalog's changes to a caller without credentials", async () => {
  const read = async () => (await (await fetch(`${stack.gatewayUrl}/readyz`, { headers: { host: "evil.example" } })).json()) as Record<string, unknown>;
  const before = await read();
  // An admin issues a key and revokes it: nothing an anonymous caller may see.
  await stack.admin.post("/v1/consumers", { name: "alice" });
  const issued = await stack.admin.post("/v1/consumers/alice/keys", {});
  await stack.admin.delete(`/v1/consumers/alice/keys/${issued.body.id ?? issued.body.keyId ?? "x"}`);
  await new Promise((r) => setTimeout(r, 300));
  const after = await read();
  expect(after, `an anonymous GET /readyz read ${JSON.stringify(before)} then ${JSON.stringify(after)} around a consumer created and a key issued and revoked`).toEqual(before);
}, 60_000);

// The same of the registry's admin port, which serves the console to operators' browsers: before, its
// /readyz said the sequence and its /metrics (no token asked) every series, the sequence among them.
test("the registry's admin port says nothing about the catalog's changes without the admin token; its metrics listener does", async () => {
  const admin = stack.admin.baseUrl;
  const ready = async () => (await (await fetch(`${admin}/readyz`)).json()) as Record<string, unknown>;
  const before = await ready();
  await stack.admin.post("/v1/consumers", { name: "bob" });
  expect(await ready()).toEqual(before);
  expect(before).toEqual({ status: "ready" });
  expect((await fetch(`${admin}/metrics`)).status).toBe(404);
  const port = (stack.registry.metricsApp.server.address() as { port: number }).port;
  expect(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).toMatch(/^manifold_projection_sequence(\{[^}]*\})? [1-9]\d*$/m);
});

// review (console attacker): the admin API's answers, a key shown once among them, carried no
// caching or sniffing rules: a shared cache or a browser's disk could keep an issued key.
test("the admin API's answers are never cached nor sniffed; the console's files keep their own rules", async () => {
  await stack.admin.post("/v1/consumers", { name: "carol" });
  const issued = await stack.admin.post("/v1/consumers/carol/keys", {});
  expect(issued.status).toBe(201);
  for (const res of [issued, await stack.admin.get("/v1/upstreams"), await stack.admin.get("/v1/nothing-here")]) {
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
  }
});

/** A GET with the headers as given (fetch would write its own Host): the status and the JSON body, if any. */
function get(base: string, path: string, headers: Record<string, string>): Promise<{ status: number; body: any }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: hostname, port, path, headers }, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
      res.on("end", () => {
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          body = text;
        }
        resolve({ status: res.statusCode!, body });
      });
    });
    req.on("error", reject).end();
  });
}

// attack (DNS rebinding): a page whose own name was made to resolve to 127.0.0.1 reaches a registry
// bound to loopback as its own origin. Before, the admin port answered any Host: that page loaded the
// console, and any route a token was not asked for. Now the admin port answers loopback names only
// (or `REGISTRY_ALLOWED_HOSTS`), and browser origins other than its own only if listed.
test("attack: the admin port refuses a DNS-rebinding page's host and a foreign origin, the console's files included; the probes answer any host", async () => {
  const admin = stack.admin.baseUrl;
  const port = new URL(admin).port;
  const token = { authorization: `Bearer ${stack.admin.token}` };
  const rebound = { host: `rebound.example:${port}` };
  for (const path of ["/console/", "/console/config.json", "/openapi.json", "/v1/upstreams"]) {
    const res = await get(admin, path, { ...rebound, ...token });
    expect(res.status, path).toBe(403);
    expect(res.body.error).toMatchObject({ code: "host_not_allowed", message: expect.stringContaining("REGISTRY_ALLOWED_HOSTS") });
  }
  for (const probe of ["/healthz", "/readyz"]) expect((await get(admin, probe, rebound)).status).toBe(200);
  const foreign = await get(admin, "/v1/upstreams", { ...token, origin: "http://evil.example" });
  expect(foreign.status).toBe(403);
  expect(foreign.body.error.code).toBe("origin_not_allowed");
  // The console calls its own origin, and the CLI sends none; any loopback name will do.
  expect((await get(admin, "/v1/upstreams", { ...token, origin: `http://127.0.0.1:${port}` })).status).toBe(200);
  expect((await get(admin, "/v1/upstreams", { ...token, host: `localhost:${port}` })).status).toBe(200);
  expect((await stack.admin.get("/v1/upstreams")).status).toBe(200);
});

test("REGISTRY_ALLOWED_HOSTS names the hosts the admin port answers (behind a proxy, its public name)", async () => {
  await using registry = await startRegistry(nats.url, { REGISTRY_ALLOWED_HOSTS: "admin.example", REGISTRY_ALLOWED_ORIGINS: "https://console.example" });
  const admin = registry.admin.baseUrl;
  const token = { authorization: `Bearer ${registry.admin.token}` };
  expect((await get(admin, "/v1/upstreams", { ...token, host: "admin.example" })).status).toBe(200);
  expect((await get(admin, "/v1/upstreams", { ...token, host: "admin.example", origin: "https://console.example" })).status).toBe(200);
  expect((await get(admin, "/v1/upstreams", { ...token, host: "admin.example", origin: "https://other.example" })).status).toBe(403);
  expect((await get(admin, "/v1/upstreams", { ...token, host: "127.0.0.1" })).status).toBe(403);
});
