import type { AddressInfo } from "node:net";
import { connect, type Socket } from "node:net";
import { expect, test } from "vitest";
import { TWO_ADMINS } from "../helpers/admin.js";
import { useRegistryOnly } from "../helpers/registryOnly.js";

// The registry's refusals (401, 429 rate_limited and too_many_reads, 503 at_capacity, the connection
// bound) left no figure an operator could alert on: each was seen only by the client refused.

const { bob: BOB, eve: EVE } = TWO_ADMINS;
const MAX_CONNECTIONS = 8;
const suite = useRegistryOnly({
  ...TWO_ADMINS.env,
  // Two requests at once per token (a tenth of a second's worth), one page read per admin, two in all.
  REGISTRY_MAX_REQUESTS_PER_S_PER_ADMIN: "20",
  REGISTRY_MAX_PAGE_READS_PER_ADMIN: "1",
  REGISTRY_MAX_PAGE_READS: "2",
  REGISTRY_MAX_CONNECTIONS: String(MAX_CONNECTIONS),
  REGISTRY_HEADERS_TIMEOUT_MS: "1000",
});

const base = () => `http://127.0.0.1:${(suite.registry.app.server.address() as AddressInfo).port}`;
const send = (path: string, token: string) => fetch(`${base()}${path}`, { headers: { authorization: `Bearer ${token}` } }).then(async (res) => ({ status: res.status, body: await res.text() }));

/** `manifold_registry_refusals_total`'s series, by their labels. */
async function refusals(): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${(suite.registry.metricsApp.server.address() as AddressInfo).port}/metrics`)).text();
  const series = new Map<string, number>();
  for (const line of text.split("\n")) {
    const match = /^manifold_registry_refusals_total\{(.*)\} (\d+)$/.exec(line);
    if (!match) continue;
    const labels = Object.fromEntries([...match[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    series.set(`${labels.reason} ${labels.admin}`, Number(match[2]));
  }
  return series;
}

test("each refusal is counted by reason and admin name, never by what the caller sent", async () => {
  const badToken = `not-a-token-${crypto.randomUUID()}`;
  expect((await send("/v1/whoami", badToken)).status).toBe(401);
  // Eve: five at once against two a tenth of a second: three refused (each held its second).
  const eve = await Promise.all(Array.from({ length: 5 }, () => send("/v1/whoami", EVE)));
  expect(eve.filter((a) => a.status === 429)).toHaveLength(3);
  await new Promise((resolve) => setTimeout(resolve, 300));
  // Bob: two audit reads at once (a filter matching nothing reads its full 2 s): one too many for him.
  const bob = await Promise.all([send("/v1/audit?consumer=nobody", BOB), send("/v1/audit?consumer=nobody", BOB)]);
  expect(bob.map((a) => a.status).sort()).toEqual([200, 429]);
  expect(bob.find((a) => a.status === 429)!.body).toContain("too_many_reads");

  // Headers never finished: 408 once the headers timeout (checked every second) has passed.
  const slow = connect((suite.registry.app.server.address() as AddressInfo).port, "127.0.0.1");
  slow.on("error", () => undefined);
  slow.write("GET /v1/whoami HTTP/1.1\r\n");
  let answer = "";
  slow.on("data", (chunk: Buffer) => (answer += chunk.toString()));
  await new Promise((resolve) => slow.once("close", resolve));
  expect(answer).toMatch(/^HTTP\/1.1 408 /);

  const counted = await refusals();
  expect(counted.get("unauthorized unauthenticated")).toBe(1);
  expect(counted.get("rate_limited eve")).toBe(3);
  expect(counted.get("too_many_reads bob")).toBe(1);
  expect(counted.get("request_timeout unauthenticated")).toBe(1);
  const text = [...counted.keys()].join("\n");
  expect(text).not.toContain(badToken);
  expect(text).not.toContain(EVE);
}, 30_000);

test("past REGISTRY_MAX_CONNECTIONS the connections replaced are counted", async () => {
  const before = (await refusals()).get("connection_replaced unauthenticated") ?? 0;
  const held: Socket[] = [];
  try {
    // The bound's worth of silent connections, then as many again: each new one replaces the oldest.
    for (let i = 0; i < 2 * MAX_CONNECTIONS; i++) {
      const socket = connect((suite.registry.app.server.address() as AddressInfo).port, "127.0.0.1");
      socket.on("error", () => undefined);
      await new Promise((resolve) => socket.once("connect", resolve));
      held.push(socket);
    }
    // Accepted and counted by the registry by the time a request on a new connection is answered.
    expect((await send("/v1/whoami", BOB)).status).toBe(200);
    expect((await refusals()).get("connection_replaced unauthenticated")).toBeGreaterThanOrEqual(before + MAX_CONNECTIONS);
  } finally {
    for (const socket of held) socket.destroy();
  }
}, 30_000);
