import { describe, expect, test } from "vitest";
import { useRegistryOnly } from "../helpers/registryOnly.js";
import { wholeVirtualServer } from "../helpers/admin.js";

/**
 * `If-Match` makes a change conditional: a stale one changes nothing (RFC 9110 §13.1.1). Deleting a
 * consumer revokes its grants first, each on its virtual server; a stale `If-Match` on the delete
 * must refuse the whole request before any of them, not revoke them and then answer 409.
 */
describe("a conditional consumer delete with a stale If-Match", () => {
  const r = useRegistryOnly();

  test("is 409 version_conflict and leaves the consumer's grants in place", async () => {
    const created = await r.admin.post("/v1/consumers", { name: "bot", groups: [] });
    expect(created.status).toBe(201);
    const seen = Number(created.headers.get("etag")!.replaceAll('"', ""));
    for (const vs of ["alpha", "beta"]) {
      expect((await r.admin.post("/v1/virtual-servers", { name: vs, tools: [] })).status).toBe(201);
      expect((await r.admin.post(`/v1/virtual-servers/${vs}/grants`, { subject: { consumer: "bot" } })).status).toBe(201);
    }
    // Someone else changes the consumer: the version this caller saw is stale.
    expect((await r.admin.request("PUT", "/v1/consumers/bot", { groups: ["ops"] })).status).toBe(200);

    const stale = await r.admin.delete("/v1/consumers/bot", { "if-match": `"${seen}"` });
    expect(stale.status).toBe(409);
    expect(stale.body.error.code).toBe("version_conflict");
    expect((await r.admin.get("/v1/consumers/bot")).status).toBe(200);
    for (const vs of ["alpha", "beta"]) {
      const grants = (await wholeVirtualServer(r.admin, vs)).grants as { subject: { consumer?: string } }[];
      expect(grants.map((g) => g.subject.consumer)).toEqual(["bot"]);
    }

    // With the current version it goes ahead, grants and all.
    const current = (await r.admin.get("/v1/consumers/bot")).headers.get("etag")!;
    expect((await r.admin.delete("/v1/consumers/bot", { "if-match": current })).status).toBe(204);
    for (const vs of ["alpha", "beta"]) expect((await wholeVirtualServer(r.admin, vs)).grants).toEqual([]);
  });
});
