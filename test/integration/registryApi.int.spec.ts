import type { NatsConnection } from "@manifold/bus";
import { startNatsServer, type NatsServer } from "@manifold/nats-server";
import { buildRegistry, loadRegistryConfig, type Registry } from "@manifold/registry";
import { createLogger } from "@manifold/telemetry";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { AdminClient } from "../helpers/admin.js";
import { ADMIN_TOKEN, connectAs } from "../helpers/stack.js";

const logger = createLogger({ component: "test", level: "silent" });
const CI_TOKEN = "ci-pipeline-token-0123456789";
const config = (natsUrl: string) =>
  loadRegistryConfig({
    NATS_URL: natsUrl,
    MANIFOLD_ADMIN_TOKEN: ADMIN_TOKEN,
    MANIFOLD_ADMIN_TOKENS: `ci=${CI_TOKEN}`,
    DISCOVERY_TIMEOUT_MS: "200",
    LOG_LEVEL: "silent",
  });
const upstream = (name: string, url = "http://127.0.0.1:9/mcp") => ({ name, transport: { type: "streamable-http", url } });

describe("the registry's admin API and projection on a real nats-server", () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let registry: Registry;
  let admin: AdminClient;

  const start = async () => {
    registry = await buildRegistry({ config: config(nats.url), logger, nc });
    await registry.follower.caughtUp;
    await registry.app.listen({ port: 0, host: "127.0.0.1" });
    admin = new AdminClient(`http://127.0.0.1:${(registry.app.server.address() as AddressInfo).port}`, ADMIN_TOKEN);
  };

  beforeEach(async () => {
    nats = await startNatsServer();
    nc = await connectAs(nats, "registry", "test");
    await start();
  });
  afterEach(async () => {
    await registry.close();
    await nc.close();
    await nats.stop();
  });

  test("replays the projection after a restart of the registry", async () => {
    await admin.post("/v1/upstreams", upstream("a"));
    await admin.post("/v1/upstreams", upstream("b"));
    await admin.delete("/v1/upstreams/a");
    const before = (await admin.get("/v1/upstreams")).body;
    await registry.close();
    await start();
    expect((await admin.get("/v1/upstreams")).body).toEqual(before);
    expect(before.items.map((u: { name: string }) => u.name)).toEqual(["b"]);
  });

  test("registering reports a failed discovery without losing the registration", async () => {
    const res = await admin.post("/v1/upstreams", upstream("a"));
    expect(res.status).toBe(201);
    expect(res.body.discovery).toEqual({ status: "failed", error: { code: "upstream_unavailable", message: "no connector is serving upstream 'a'" } });
    expect((await admin.get("/v1/upstreams/a")).status).toBe(200);
  });

  test("exposes versions as ETags and rejects a stale If-Match with 409 naming the current version", async () => {
    const created = await admin.post("/v1/upstreams", upstream("a"));
    expect(created.headers.get("etag")).toBe('"1"');
    const stale = await admin.delete("/v1/upstreams/a", { "if-match": '"0"' });
    expect(stale.status).toBe(409);
    expect(stale.body.error).toMatchObject({ code: "version_conflict", data: { expectedVersion: 0, currentVersion: 1 } });
    expect((await admin.delete("/v1/upstreams/a", { "if-match": '"1"' })).status).toBe(204);
  });

  test("PUT /v1/consumers/:name changes groups in place, keeps keys, honours If-Match and names what is wrong", async () => {
    expect((await admin.post("/v1/consumers", { name: "bot", groups: ["ops"] })).status).toBe(201);
    const { keyId } = (await admin.post("/v1/consumers/bot/keys", {})).body;
    const stale = await admin.request("PUT", "/v1/consumers/bot", { groups: ["billing"] }, { "if-match": '"1"' });
    expect(stale.status).toBe(409);
    expect(stale.body.error).toMatchObject({ code: "version_conflict", data: { expectedVersion: 1, currentVersion: 2 } });
    const updated = await admin.request("PUT", "/v1/consumers/bot", { description: "the ops bot", groups: ["billing"] }, { "if-match": '"2"' });
    expect(updated.status).toBe(200);
    expect(updated.headers.get("etag")).toBe('"3"');
    expect(updated.body).toEqual({ name: "bot", description: "the ops bot", groups: ["billing"], identityProviders: [], version: 3, keys: [{ keyId }] });
    const unchanged = await admin.request("PUT", "/v1/consumers/bot", { description: "the ops bot", groups: ["billing"] });
    expect(unchanged.headers.get("etag")).toBe('"3"');
    expect((await admin.request("PUT", "/v1/consumers/ghost", { groups: [] })).body.error).toEqual({ code: "not_found", message: "consumer 'ghost' does not exist" });
    const bad = await admin.request("PUT", "/v1/consumers/bot", { groups: ["Not A Group!"] });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toContain("groups");
  });

  test("each change records which admin token made it; an object's history, also once deleted, lists them in pages without key secrets", async () => {
    const ci = new AdminClient(admin.baseUrl, CI_TOKEN);
    await admin.post("/v1/consumers", { name: "bot", groups: ["ops"] });
    const { keyId } = (await ci.post("/v1/consumers/bot/keys", {})).body;
    await ci.request("PUT", "/v1/consumers/bot", { groups: ["billing"] });
    await admin.delete("/v1/consumers/bot");

    const history = await admin.get("/v1/consumers/bot/history");
    expect(history.status).toBe(200);
    expect(history.body.items.map((e: { type: string; actor: string }) => `${e.actor} ${e.type}`)).toEqual([
      "admin:admin consumer.created",
      "admin:ci consumer.key-issued",
      "admin:ci consumer.updated",
      "admin:admin consumer.deleted",
    ]);
    expect(history.body.items[1].data).toEqual({ name: "bot", key: { keyId } });
    expect(JSON.stringify(history.body)).not.toMatch(/digest|salt/);
    expect(history.body.items[0]).toMatchObject({ sequence: expect.any(Number), at: expect.any(String), commandId: expect.any(String) });

    const first = (await admin.get("/v1/consumers/bot/history?limit=3")).body;
    expect(first.items).toHaveLength(3);
    const rest = (await admin.get(`/v1/consumers/bot/history?after=${first.next}`)).body;
    expect(rest).toEqual({ items: [history.body.items[3]] });
    expect((await admin.get("/v1/virtual-servers/never-existed/history")).body).toEqual({ items: [] });
    expect((await new AdminClient(admin.baseUrl, `${CI_TOKEN}x`).get("/v1/consumers")).status).toBe(401);
  });

  test("re-sending an identical registration is a no-op answered with 200", async () => {
    expect((await admin.post("/v1/upstreams", upstream("a"))).status).toBe(201);
    const again = await admin.post("/v1/upstreams", upstream("a"));
    expect(again.status).toBe(200);
    expect(again.body.version).toBe(1);
    const different = await admin.post("/v1/upstreams", upstream("a", "http://127.0.0.1:10/mcp"));
    expect(different.status).toBe(409);
    expect(different.body.error.code).toBe("already_exists");
  });

  test("rejects invalid bodies with 400 naming the field, and unknown objects with 404", async () => {
    const bad = await admin.post("/v1/upstreams", { name: "Bad Name!", transport: { type: "carrier-pigeon" } });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe("invalid_request");
    expect(bad.body.error.message).toContain("name");
    const malformed = await admin.request("POST", "/v1/upstreams", "{not json", { "content-type": "application/json" });
    expect(malformed.status).toBe(400);
    // As docs/errors.md says: a body that is not JSON is a parse error, not an invalid request.
    expect(malformed.body.error.code).toBe("parse_error");
    expect((await admin.get("/v1/virtual-servers/ghost")).body.error).toEqual({ code: "not_found", message: "virtual server 'ghost' does not exist" });
  });

  test("refuses every admin route without the admin token", async () => {
    const anonymous = new AdminClient(admin.baseUrl, "not-the-admin-token");
    const res = await anonymous.get("/v1/upstreams");
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toContain("Bearer");
    expect(res.body.error.code).toBe("unauthorized");
    const bare = await fetch(`${admin.baseUrl}/v1/upstreams`);
    expect(bare.status).toBe(401);
  });

  test("serves an OpenAPI document generated from the schemas", async () => {
    const res = await fetch(`${admin.baseUrl}/openapi.json`);
    const doc = (await res.json()) as { openapi: string; paths: Record<string, unknown> };
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/v1/upstreams", "/v1/virtual-servers", "/v1/virtual-servers/{name}/interactions"]));
    // Prompts and resources are selected, removed and reviewed through their own routes.
    const items = ["prompts", "prompts/remove", "resources", "resources/remove", "resource-drift/accept", "resource-drift/reject"].map((p) => `/v1/virtual-servers/{name}/${p}`);
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(items));
    // Grants deny prompts and resources; an environment's item drift is decided with `?environment=`.
    const paths = doc.paths as Record<string, Record<string, any>>;
    const grantBody = paths["/v1/virtual-servers/{name}/grants"]!.post.requestBody.content["application/json"].schema;
    expect(Object.keys(grantBody.properties)).toEqual(expect.arrayContaining(["deniedTools", "deniedPrompts", "deniedResources"]));
    expect(paths["/v1/virtual-servers/{name}/resource-drift/accept"]!.post.parameters.map((p: { name: string }) => p.name)).toContain("environment");
    // Lists are paged, an environment's pins and the tool search have their own routes.
    const query = (path: string) => paths[path]!.get.parameters.filter((p: { in: string }) => p.in === "query").map((p: { name: string }) => p.name);
    for (const list of ["/v1/upstreams", "/v1/virtual-servers", "/v1/consumers", "/v1/environments", "/v1/identity-providers"]) expect(query(list)).toEqual(expect.arrayContaining(["limit", "after", "q"]));
    // What a virtual server holds is paged under it; its view counts it.
    for (const held of ["tools", "prompts", "resources", "resource-templates", "grants", "aliases"]) expect(query(`/v1/virtual-servers/{name}/${held}`)).toEqual(expect.arrayContaining(["limit", "after", "q"]));
    expect(query("/v1/virtual-servers/{name}/environments/{environment}")).toEqual(expect.arrayContaining(["kind", "limit", "after"]));
    expect(query("/v1/upstream-tools")).toEqual(expect.arrayContaining(["q", "limit"]));
  });
});
