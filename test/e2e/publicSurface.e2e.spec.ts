import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, expect, test } from "vitest";
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
