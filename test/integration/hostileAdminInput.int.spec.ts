import { Subjects } from "@manifold/contracts";
import { jetstream } from "@nats-io/jetstream";
import type { NatsServer } from "@manifold/nats-server";
import { connectAs, startNats } from "../helpers/stack.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRegistry, type RegistryOnly } from "../helpers/registryOnly.js";
import { ADMIN_TOKEN } from "../helpers/stack.js";

/** Values an admin (or a script gone wrong) may put where a name or a number belongs; several would be invalid NATS subjects. */
const HOSTILE = ["a..b", "a b", "a%20b", "*", ">", "a.b", "a.>", "..", "%00", "%E0%A4%A", "ü", "UPPER", "-x-", "x".repeat(300), "1e999", "-1", "", "%2F", "a%2Fb", "[]"];
const encode = (value: string) => (/%[0-9A-F]{2}|%E0/.test(value) ? value : encodeURIComponent(value));

type Operation = { method: string; path: string; query: string[]; hasBody: boolean };

describe("the admin API never answers 5xx to hostile path or query values", () => {
  let nats: NatsServer;
  let r: RegistryOnly;
  let operations: Operation[];
  const call = (method: string, url: string, init: { body?: string; json?: boolean } = {}) =>
    r.registry.app.inject({
      method: method as "GET",
      url,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(init.json ? { "content-type": "application/json" } : {}) },
      ...(init.body === undefined ? {} : { payload: init.body }),
    });

  beforeAll(async () => {
    nats = await startNats();
    // Thousands of requests one after another through `inject`, faster than any operator: not what
    // the per-admin budget is for (`adminRequestFlood.int`).
    r = await startRegistry(nats.url, { REGISTRY_MAX_REQUESTS_PER_S_PER_ADMIN: "1000000" });
    // The audit stream answers from its messages: an empty one would not reach the subject filter.
    const record = { at: new Date().toISOString(), consumer: "c", virtualServer: "ok-name", environment: "default", exposedTool: "t", tool: "t", upstream: "u", durationMs: 1, outcome: "ok", argumentBytes: 0, resultBytes: 0 };
    // Written as gateways write it: only they may publish audit records.
    const gateway = await connectAs(nats, "gateway");
    await jetstream(gateway).publish("manifold.audit.ok-name", JSON.stringify(record));
    await gateway.close();
    const doc = (await call("GET", "/openapi.json")).json() as {
      paths: Record<string, Record<string, { parameters?: { in: string; name: string }[]; requestBody?: unknown }>>;
    };
    operations = Object.entries(doc.paths)
      .filter(([path]) => path.startsWith("/v1/"))
      .flatMap(([path, methods]) =>
        Object.entries(methods).map(([method, op]) => ({
          method: method.toUpperCase(),
          path,
          query: (op.parameters ?? []).filter((p) => p.in === "query").map((p) => p.name),
          hasBody: op.requestBody !== undefined,
        })),
      );
  });
  afterAll(async () => {
    await r?.close();
    await nats?.stop();
  });

  test("the table covers every admin route", () => {
    expect(operations.length).toBeGreaterThan(35);
    expect(operations.filter((o) => o.query.length > 0).map((o) => `${o.method} ${o.path}`)).toEqual(
      expect.arrayContaining(["GET /v1/audit", "GET /v1/consumers/{name}/history", "GET /v1/virtual-servers/{name}/drift"]),
    );
    // The drift is paged like the other lists (`driftScale.int`): its cursor and filter are hostile input too.
    for (const path of ["/v1/virtual-servers/{name}/drift", "/v1/virtual-servers/{name}/drift/items"]) {
      expect(operations.find((o) => o.method === "GET" && o.path === path)?.query).toEqual(expect.arrayContaining(["limit", "after", "q", "environment"]));
    }
  });

  test("hostile path parameters: 4xx, never 5xx", async () => {
    const failures: string[] = [];
    for (const op of operations.filter((o) => o.path.includes("{"))) {
      for (const value of HOSTILE.filter((v) => v !== "1e999")) {
        const url = op.path.replace(/\{[^}]+\}/g, encode(value));
        const params = [...op.path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!);
        for (const body of [undefined, "", "{}"]) {
          const res = await call(op.method, url, body === undefined ? {} : { body, json: true });
          if (res.statusCode >= 500 || res.statusCode < 400) failures.push(`${op.method} ${url} body=${JSON.stringify(body)} → ${res.statusCode} ${res.body.slice(0, 200)}`);
          else if (typeof res.json().error?.code !== "string") failures.push(`${op.method} ${url} → ${res.statusCode} without the error shape: ${res.body.slice(0, 200)}`);
          else if (res.json().error.message.startsWith("invalid params") && !params.some((p) => res.json().error.message.includes(`/${p}`))) {
            failures.push(`${op.method} ${url}: 400 does not name the parameter: ${res.json().error.message}`);
          }
        }
      }
    }
    expect(failures).toEqual([]);
  });

  test("hostile query parameters: 400 naming the parameter, never 5xx", async () => {
    const failures: string[] = [];
    for (const op of operations.filter((o) => o.query.length > 0)) {
      const path = op.path.replace(/\{[^}]+\}/g, "x");
      for (const name of op.query) {
        for (const value of HOSTILE.filter((v) => v !== "")) {
          const res = await call(op.method, `${path}?${name}=${encode(value)}`);
          if (res.statusCode >= 500) failures.push(`${op.method} ${path}?${name}=${value} → ${res.statusCode} ${res.body.slice(0, 200)}`);
          // A route that also takes a body (sent empty here) refuses a valid value for the body's sake.
          else if (res.statusCode === 400 && !res.json().error.message.includes(name) && !res.json().error.message.startsWith("invalid body")) failures.push(`${op.method} ${path}?${name}=${value}: 400 does not name ${name}`);
        }
        const repeated = await call(op.method, `${path}?${name}=a&${name}=b`);
        if (repeated.statusCode >= 500) failures.push(`${op.method} ${path}?${name}=a&${name}=b → ${repeated.statusCode}`);
      }
      const unknown = await call(op.method, `${path}?nonsense=1`);
      if (unknown.statusCode >= 500) failures.push(`${op.method} ${path}?nonsense=1 → ${unknown.statusCode}`);
    }
    expect(failures).toEqual([]);
  });

  test("an audit filter that would be an invalid NATS subject is a 400 naming it", async () => {
    for (const value of ["a..b", "a%20b", "a.*", ">"]) {
      const res = await call("GET", `/v1/audit?virtualServer=${value}`);
      expect(res.statusCode).toBe(400);
      expect(res.json().error).toMatchObject({ code: "invalid_request", message: expect.stringContaining("virtualServer") });
    }
    expect((await call("GET", "/v1/audit?virtualServer=ok-name")).statusCode).toBe(200);
  });

  test("an empty body with a JSON content type is no body: accepted on DELETE and body-less POSTs, named where a body is needed", async () => {
    await r.admin.post("/v1/consumers", { name: "bot", groups: [] });
    const issued = await call("POST", "/v1/consumers/bot/keys", { body: "", json: true });
    expect(issued.statusCode).toBe(201);
    expect((await call("DELETE", `/v1/consumers/bot/keys/${issued.json().keyId}`, { body: "", json: true })).statusCode).toBe(204);
    expect((await call("DELETE", "/v1/consumers/bot", { body: "", json: true })).statusCode).toBe(204);
    const needsBody = await call("POST", "/v1/consumers", { body: "", json: true });
    expect(needsBody.statusCode).toBe(400);
    expect(needsBody.json().error.code).toBe("invalid_request");
    const poisoned = await call("POST", "/v1/consumers", { body: '{"name":"p","__proto__":{"x":1}}', json: true });
    expect(poisoned.statusCode).toBe(400);
    expect(poisoned.json().error.code).toBe("parse_error");
  });

  // attack (helper-94): refusals that docs/errors.md names otherwise: not JSON was `invalid_request`, a text body 400.
  test("a body that is not JSON is parse_error, and one that is not sent as JSON is 415", async () => {
    const broken = await call("POST", "/v1/consumers", { body: '{"name":', json: true });
    expect({ status: broken.statusCode, code: broken.json().error.code }).toEqual({ status: 400, code: "parse_error" });
    const text = await r.registry.app.inject({ method: "POST", url: "/v1/consumers", headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "text/plain" }, payload: '{"name":"t"}' });
    expect({ status: text.statusCode, code: text.json().error.code }).toEqual({ status: 415, code: "invalid_request" });
  });
});

// attack (helper-94): a change whose event outgrew a bus message was answered HTTP 200 with the
// error in the body: `manifold apply` (reading the status) printed "applied", nothing stored.
test("a change too large to record is a 413, not a 200", async () => {
  const nats = await startNats();
  const r = await startRegistry(nats.url);
  try {
    const connector = await connectAs(nats, "connector");
    for (const upstream of ["u1", "u2"]) {
      await r.admin.post("/v1/upstreams", { name: upstream, transport: { type: "streamable-http", url: "http://127.0.0.1:9/mcp" } });
      const tools = Array.from({ length: 1_000 }, (_, i) => ({ name: `t${i}`, inputSchema: { type: "object" } }));
      await connector.request(Subjects.registryDiscovered(upstream), JSON.stringify({ upstream, serverInfo: { name: upstream, version: "1" }, tools }), { timeout: 20_000 });
    }
    await connector.close();
    // As many as a virtual server may hold (more are refused by the body's schema): ~2 MB as an event.
    const refs = Array.from({ length: 10_000 }, (_, i) => ({ upstream: i % 2 ? "u1" : "u2", tool: `t${i % 1_000}`, alias: `a${i}` }));
    const created = await r.admin.post("/v1/virtual-servers", { name: "huge", tools: refs });
    expect({ status: created.status, code: created.body.error?.code }).toEqual({ status: 413, code: "payload_too_large" });
    expect((await r.admin.get("/v1/virtual-servers/huge")).status).toBe(404);
  } finally {
    await r.close();
    await nats.stop();
  }
}, 60_000);

// attack (registry review, helper-103): one grant of ~1 MiB repeating an identity 33,818 times, over a virtual
// server of 999 tools promoted into 4 environments, held the registry's event loop 7.3 s (every reference
// scanned every pin). Denied tools are bounded in a request as denied prompts and resources are, and
// references are looked up, not scanned.
test("a grant denies at most 1,000 tools; repeated references record one identity", async () => {
  const nats = await startNats();
  const r = await startRegistry(nats.url);
  try {
    const connector = await connectAs(nats, "connector");
    await r.admin.post("/v1/upstreams", { name: "u", transport: { type: "streamable-http", url: "http://127.0.0.1:9/mcp" } });
    const tools = Array.from({ length: 1_000 }, (_, i) => ({ name: `t${i}`, inputSchema: { type: "object" } }));
    await connector.request(Subjects.registryDiscovered("u"), JSON.stringify({ upstream: "u", serverInfo: { name: "u", version: "1" }, tools }), { timeout: 20_000 });
    await connector.close();
    const created = await r.admin.post("/v1/virtual-servers", { name: "app", tools: tools.slice(0, 999).map((t) => ({ upstream: "u", tool: t.name })) });
    expect(created.status, JSON.stringify(created.body).slice(0, 300)).toBe(201);
    for (const env of ["e1", "e2", "e3", "e4"]) {
      expect((await r.admin.request("PUT", `/v1/environments/${env}`, { bindings: {} })).status).toBeLessThan(300);
      expect((await r.admin.post("/v1/virtual-servers/app/promote", { from: "default", to: env })).status).toBe(200);
    }
    const unselected = { upstream: "u", tool: "t999" };
    const tooMany = await r.admin.post("/v1/virtual-servers/app/grants", { grantId: "g", subject: { group: "ops" }, deniedTools: Array.from({ length: 1_001 }, () => unselected) });
    expect(tooMany.status).toBe(400);
    expect(JSON.stringify(tooMany.body.error)).toContain("deniedTools");
    const granted = await r.admin.post("/v1/virtual-servers/app/grants", { grantId: "g", subject: { group: "ops" }, deniedTools: Array.from({ length: 1_000 }, () => unselected) });
    expect(granted.status, JSON.stringify(granted.body).slice(0, 300)).toBe(201);
    expect(granted.body.deniedTools).toEqual([unselected]);
  } finally {
    await r.close();
    await nats.stop();
  }
}, 60_000);
