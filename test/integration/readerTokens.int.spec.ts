import { RegistryStream } from "@manifold/contracts";
import { loadRegistryConfig } from "@manifold/registry";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { AdminClient } from "../helpers/admin.js";
import { startRegistry, type RegistryOnly } from "../helpers/registryOnly.js";
import { ADMIN_TOKEN, startNats } from "../helpers/stack.js";
import type { NatsServer } from "@manifold/nats-server";

const READER = "sre-reader-token-0123456789";
/** Routes that change nothing though they are POSTs: a reader may preview what saving would expose. */
const PREVIEWS = new Set(["POST /v1/virtual-servers/preview", "POST /v1/virtual-servers/{name}/tools/preview"]);

/**
 * Read-only admin tokens (`MANIFOLD_READER_TOKENS`). Before, every admin token could do everything:
 * the people who only trace calls and review changes (SREs, auditors, a dashboard) held the power to
 * mint any consumer's keys, widen grants and delete upstreams. A reader reads what the admin API
 * shows and is refused every command, whatever its route, before its body is read.
 */
describe("reader tokens", () => {
  let nats: NatsServer;
  let registry: RegistryOnly;
  let reader: AdminClient;

  beforeAll(async () => {
    nats = await startNats();
    registry = await startRegistry(nats.url, { MANIFOLD_READER_TOKENS: `sre=${READER}` });
    reader = new AdminClient(registry.admin.baseUrl, READER);
    expect((await registry.admin.post("/v1/consumers", { name: "alice" })).status).toBe(201);
  });

  afterAll(async () => {
    await registry?.close();
    await nats?.stop();
  });

  const lastSequence = async () => (await (await jetstreamManager(registry.nc)).streams.info(RegistryStream.name)).state.last_seq;

  test("a reader reads what the admin API shows, and previews", async () => {
    expect((await reader.get("/v1/whoami")).body).toEqual({ name: "sre", role: "reader" });
    expect((await registry.admin.get("/v1/whoami")).body).toEqual({ name: "admin", role: "admin" });
    expect((await reader.get("/v1/consumers")).body.items.map((c: { name: string }) => c.name)).toEqual(["alice"]);
    for (const path of ["/v1/upstreams", "/v1/virtual-servers", "/v1/audit", "/v1/environments", "/v1/identity-providers", "/v1/upstream-tools?q=x"]) {
      expect((await reader.get(path)).status, path).toBe(200);
    }
    const preview = await reader.post("/v1/virtual-servers/preview", { name: "planned", tools: [] });
    expect(preview.status).not.toBe(403);
  });

  test("attack: every command route the API describes refuses a reader with 403 forbidden, and nothing is recorded", async () => {
    const spec = (await reader.get("/openapi.json")).body as { paths: Record<string, Record<string, unknown>> };
    const commands = Object.entries(spec.paths).flatMap(([path, methods]) =>
      Object.keys(methods)
        .map((m) => m.toUpperCase())
        .filter((m) => ["POST", "PUT", "PATCH", "DELETE"].includes(m) && !PREVIEWS.has(`${m} ${path}`))
        .map((method) => ({ method, path: path.replace(/\{[^}]+\}/g, "alice") })),
    );
    // Every kind of change: keys, grants, upstreams, virtual servers, environments, identity providers, drift.
    expect(commands.length).toBeGreaterThan(25);
    const before = await lastSequence();
    for (const { method, path } of commands) {
      const res = await reader.request(method, path, method === "DELETE" ? undefined : { name: "alice" });
      expect(res.status, `${method} ${path}`).toBe(403);
      expect(res.body.error, `${method} ${path}`).toMatchObject({ code: "forbidden" });
      expect(res.body.error.message).toContain("'sre' is a reader");
    }
    expect(await lastSequence()).toBe(before);
    // The same route, with an admin token: the command is decided and recorded.
    expect((await registry.admin.post("/v1/consumers/alice/keys", {})).status).toBe(201);
    expect(await lastSequence()).toBeGreaterThan(before);
  });

  test("a token is one name, one secret, one role", () => {
    const config = (env: Record<string, string>) => () => loadRegistryConfig({ NATS_URL: nats.url, MANIFOLD_ADMIN_TOKEN: ADMIN_TOKEN, ...env });
    expect(config({ MANIFOLD_READER_TOKENS: `sre=${ADMIN_TOKEN}` })).toThrow(/a name and a secret of its own/);
    expect(config({ MANIFOLD_READER_TOKENS: `admin=${READER}` })).toThrow(/a name and a secret of its own/);
    expect(config({ MANIFOLD_READER_TOKENS: `sre=${READER},audit=other-reader-token-0123` })).not.toThrow();
  });
});
