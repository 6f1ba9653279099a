import { CommandType } from "@manifold/contracts";
import type { NatsServer } from "@manifold/nats-server";
import { startNats } from "../helpers/stack.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRegistry, type RegistryOnly } from "../helpers/registryOnly.js";

const provider = { issuer: "https://idp.example", audience: "manifold", jwksUrl: "https://idp.example/jwks" };
const kinds = [
  { kind: "upstreams", create: (name: string) => ({ method: "POST", path: "/v1/upstreams", body: { name, transport: { type: "streamable-http", url: "http://127.0.0.1:9/mcp" } } }) },
  { kind: "virtual-servers", create: (name: string) => ({ method: "POST", path: "/v1/virtual-servers", body: { name, tools: [{ upstream: "u", tool: "echo" }] } }) },
  { kind: "consumers", create: (name: string) => ({ method: "POST", path: "/v1/consumers", body: { name, groups: ["ops"] } }) },
  { kind: "identity-providers", create: (name: string) => ({ method: "POST", path: "/v1/identity-providers", body: { name, ...provider } }) },
  { kind: "environments", create: (name: string) => ({ method: "PUT", path: `/v1/environments/${name}`, body: { bindings: { u: "u" } } }) },
] as const;

describe("re-creating a deleted object on a real nats-server", () => {
  let nats: NatsServer;
  let r: RegistryOnly;

  beforeAll(async () => {
    nats = await startNats();
    r = await startRegistry(nats.url);
    // An upstream with a discovered tool for the virtual servers (no connector runs here).
    await r.admin.post("/v1/upstreams", { name: "u", transport: { type: "streamable-http", url: "http://127.0.0.1:9/mcp" } });
    await r.registry.execute({ type: CommandType.recordDiscovery, name: "u", serverInfo: { name: "s", version: "1" }, tools: [{ name: "echo", inputSchema: { type: "object" } }] });
  });
  afterAll(async () => {
    await r?.close();
    await nats?.stop();
  });

  test.each(kinds)("$kind: create 201, delete 204, create again 201; after a restart too", async ({ kind, create }) => {
    const { method, path, body } = create(`again-${kind}`);
    const name = `again-${kind}`;
    const first = await r.admin.request(method, path, body);
    expect([200, 201]).toContain(first.status);
    const deleted = await r.admin.delete(`/v1/${kind}/${name}`);
    expect(deleted.status).toBe(204);
    const deletedAt = Number(deleted.headers.get("etag")!.replaceAll('"', ""));
    expect((await r.admin.delete(`/v1/${kind}/${name}`)).status).toBe(404);

    const second = await r.admin.request(method, path, body);
    expect(second.body.error).toBeUndefined();
    expect([200, 201]).toContain(second.status);
    expect((await r.admin.get(`/v1/${kind}`)).body.items.map((i: { name: string }) => i.name)).toContain(name);
    const history = (await r.admin.get(`/v1/${kind}/${name}/history`)).body.items;
    expect(history).toHaveLength(3);
    expect(history[1].sequence).toBe(deletedAt);

    // If-Match with the deleted object's version is the current version, not a conflict.
    expect((await r.admin.delete(`/v1/${kind}/${name}`)).status).toBe(204);
    const version = (await r.admin.get(`/v1/${kind}/${name}/history`)).body.items.at(-1).sequence;
    const conditional = await r.admin.request(method, path, body, { "if-match": `"${version}"` });
    expect(conditional.body.error).toBeUndefined();
    const stale = await r.admin.delete(`/v1/${kind}/${name}`, { "if-match": `"${version}"` });
    expect(stale.status).toBe(409);
    expect(stale.body.error.message).toMatch(new RegExp(`is at version ${version + 1}, not ${version}$`));

    // A registry that replays the log knows the deleted object's version too.
    expect((await r.admin.delete(`/v1/${kind}/${name}`)).status).toBe(204);
    await r.close();
    r = await startRegistry(nats.url);
    expect((await r.admin.request(method, path, body)).body.error).toBeUndefined();
    expect((await r.admin.get(`/v1/${kind}`)).body.items.map((i: { name: string }) => i.name)).toContain(name);
  });
});
