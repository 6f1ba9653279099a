import type { NatsServer } from "@manifold/nats-server";
import { startNats } from "../helpers/stack.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { AdminClient, wholeVirtualServer } from "../helpers/admin.js";
import { startRegistry, type RegistryOnly } from "../helpers/registryOnly.js";

const CI_TOKEN = "ci-pipeline-token-0123456789";
const key = (name: string) => ({ "idempotency-key": `${name}-${Math.random().toString(36).slice(2)}` });

describe("Idempotency-Key on two registry replicas of one real nats-server", () => {
  let nats: NatsServer;
  let a: RegistryOnly;
  let b: RegistryOnly;
  const env = { MANIFOLD_ADMIN_TOKENS: `ci=${CI_TOKEN}` };
  const historyOf = async (path: string) => (await a.admin.get(`${path}/history`)).body.items as { type: string }[];

  beforeAll(async () => {
    nats = await startNats();
    [a, b] = await Promise.all([startRegistry(nats.url, env), startRegistry(nats.url, env)]);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await nats?.stop();
  });

  test("the same key and body is answered as the first time, on either replica, and stored once", async () => {
    const k = key("create");
    const first = await a.admin.post("/v1/consumers", { name: "same", groups: ["ops"] }, k);
    expect(first.status).toBe(201);
    const retry = await a.admin.post("/v1/consumers", { groups: ["ops"], name: "same" }, k);
    const elsewhere = await b.admin.post("/v1/consumers", { name: "same", groups: ["ops"] }, k);
    for (const again of [retry, elsewhere]) {
      expect(again.status).toBe(201);
      expect(again.headers.get("etag")).toBe(first.headers.get("etag"));
      expect(again.body).toEqual(first.body);
    }
    expect(await historyOf("/v1/consumers/same")).toHaveLength(1);

    const d = key("delete");
    expect((await a.admin.delete("/v1/consumers/same", d)).status).toBe(204);
    expect((await b.admin.delete("/v1/consumers/same", d)).status).toBe(204);
    expect((await a.admin.delete("/v1/consumers/same", d)).status).toBe(204);
    expect(await historyOf("/v1/consumers/same")).toHaveLength(2);
  });

  test("the same key with another body is 422 idempotency_key_reused and changes nothing", async () => {
    const k = key("reused");
    expect((await a.admin.post("/v1/consumers", { name: "first", groups: [] }, k)).status).toBe(201);
    for (const replica of [a, b]) {
      const other = await replica.admin.post("/v1/consumers", { name: "second", groups: [] }, k);
      expect(other.status).toBe(422);
      expect(other.body.error).toMatchObject({ code: "idempotency_key_reused", data: { header: "Idempotency-Key" } });
      expect(other.body.error.message).toContain(k["idempotency-key"]);
    }
    // Another route, another method: also another request.
    expect((await a.admin.request("PUT", "/v1/consumers/first", { groups: ["x"] }, k)).status).toBe(422);
    expect((await a.admin.get("/v1/consumers/second")).status).toBe(404);
    expect((await a.admin.get("/v1/consumers/first")).body.groups).toEqual([]);
  });

  test("a retried key issuance never returns a key that was not stored: 409 naming the key shown once", async () => {
    await a.admin.post("/v1/consumers", { name: "bot", groups: [] });
    const k = key("issue");
    const issued = await a.admin.request("POST", "/v1/consumers/bot/keys", undefined, k);
    expect(issued.status).toBe(201);
    const { keyId } = issued.body;
    for (const replica of [a, b]) {
      const retry = await replica.admin.request("POST", "/v1/consumers/bot/keys", undefined, k);
      expect(retry.status).toBe(409);
      expect(retry.body.error).toMatchObject({ code: "already_exists", data: { keyId } });
      expect(retry.body.error.message).toContain("shown only once");
      expect(JSON.stringify(retry.body)).not.toContain("mk_");
    }
    expect((await a.admin.get("/v1/consumers/bot")).body.keys).toEqual([{ keyId }]);
  });

  test("a retried grant without an id reports the id generated the first time", async () => {
    await a.admin.post("/v1/virtual-servers", { name: "vs", tools: [] });
    const k = key("grant");
    const first = await a.admin.post("/v1/virtual-servers/vs/grants", { subject: { group: "ops" } }, k);
    expect(first.status).toBe(201);
    const retry = await b.admin.post("/v1/virtual-servers/vs/grants", { subject: { group: "ops" } }, k);
    expect(retry.status).toBe(201);
    expect(retry.body).toEqual(first.body);
    expect((await wholeVirtualServer(a.admin, "vs")).grants).toEqual([first.body]);
  });

  test("a retried consumer DELETE revokes nothing: the name may be another consumer's since, with grants of its own", async () => {
    await a.admin.post("/v1/virtual-servers", { name: "desk", tools: [] });
    const grantIds = async () => ((await wholeVirtualServer(a.admin, "desk")).grants as { grantId: string }[]).map((g) => g.grantId);
    expect((await a.admin.post("/v1/consumers", { name: "gina", groups: [] })).status).toBe(201);
    expect((await a.admin.post("/v1/virtual-servers/desk/grants", { grantId: "gina-1", subject: { consumer: "gina" } })).status).toBe(201);
    const k = key("delete-gina");
    expect((await a.admin.delete("/v1/consumers/gina", k)).status).toBe(204);
    expect(await grantIds()).toEqual([]);
    // Another team's consumer takes the name, and is granted.
    expect((await a.admin.post("/v1/consumers", { name: "gina", groups: [] })).status).toBe(201);
    expect((await a.admin.post("/v1/virtual-servers/desk/grants", { grantId: "gina-2", subject: { consumer: "gina" } })).status).toBe(201);
    // The first DELETE's retry (a client that lost the answer) is answered as it was; on either replica it revokes nothing.
    expect((await a.admin.delete("/v1/consumers/gina", k)).status).toBe(204);
    expect((await b.admin.delete("/v1/consumers/gina", k)).status).toBe(204);
    expect((await a.admin.get("/v1/consumers/gina")).status).toBe(200);
    expect(await grantIds()).toEqual(["gina-2"]);
  });

  test("keys are per admin token: the same key from another token is another command", async () => {
    const k = key("actor");
    const ci = new AdminClient(b.admin.baseUrl, CI_TOKEN);
    expect((await a.admin.post("/v1/consumers", { name: "by-admin", groups: [] }, k)).status).toBe(201);
    expect((await ci.post("/v1/consumers", { name: "by-ci", groups: [] }, k)).status).toBe(201);
    expect((await ci.post("/v1/consumers", { name: "by-admin", groups: [] }, k)).status).toBe(422);
  });

  test("two replicas racing with one key and different requests: one is stored, the other is 422", async () => {
    for (let round = 0; round < 5; round++) {
      const k = key(`race${round}`);
      const [x, y] = await Promise.all([
        a.admin.post("/v1/consumers", { name: `race-${round}`, groups: ["a"] }, k),
        b.admin.post("/v1/consumers", { name: `race-${round}`, groups: ["b"] }, k),
      ]);
      expect([x.status, y.status].sort()).toEqual([201, 422]);
      const stored = (await a.admin.get(`/v1/consumers/race-${round}`)).body.groups;
      expect(stored).toEqual((x.status === 201 ? x : y).body.groups);
      expect(await historyOf(`/v1/consumers/race-${round}`)).toHaveLength(1);

      const k2 = key(`twin${round}`);
      const twins = await Promise.all([a, b].map((r) => r.admin.post("/v1/consumers", { name: `twin-${round}`, groups: [] }, k2)));
      expect(twins.map((t) => t.status)).toEqual([201, 201]);
      expect(await historyOf(`/v1/consumers/twin-${round}`)).toHaveLength(1);
    }
  });

  test("a restarted replica answers a retry from the log", async () => {
    const k = key("restart");
    await a.admin.post("/v1/consumers", { name: "durable", groups: [] }, k);
    // The same key on another route is another request.
    expect((await a.admin.request("POST", "/v1/consumers/durable/keys", undefined, k)).status).toBe(422);
    const k2 = key("restart-key");
    const issued = (await a.admin.request("POST", "/v1/consumers/durable/keys", undefined, k2)).body;
    await a.close();
    a = await startRegistry(nats.url, env);
    expect((await a.admin.post("/v1/consumers", { name: "durable", groups: [] }, k)).status).toBe(201);
    expect((await a.admin.post("/v1/consumers", { name: "other", groups: [] }, k)).status).toBe(422);
    expect((await a.admin.request("POST", "/v1/consumers/durable/keys", undefined, k2)).body.error.data).toEqual({ keyId: issued.keyId });
  });
});
