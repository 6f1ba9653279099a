import { freePort, type NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { AdminClient } from "../helpers/admin.js";
import { spawnRegistry, type RegistryProcess } from "../helpers/registryProcess.js";
import { startNats } from "../helpers/stack.js";

const COMMANDS = 40;
const ISSUANCES = 10;

type Outcome = { status: number | "reset"; etag?: string | null; keyId?: string };

/**
 * The registry killed (SIGKILL) while admin commands are in flight: an append either reached the
 * stream or not, and an answer may be lost either way. What the admin can rely on is the
 * Idempotency-Key: retried after the restart, every command is answered as it was decided (once),
 * a key issuance whose answer was lost says so instead of issuing another, and the stream holds
 * each command's event exactly once.
 */
describe("a registry killed mid-command", () => {
  let nats: NatsServer;
  let registry: RegistryProcess | undefined;
  let ports: { port: number; metricsPort: number };
  let admin: AdminClient;

  /** On the same ports each time: the admin client goes on where the killed registry was. */
  const start = async () => void (registry = await spawnRegistry(nats, "registry", ports));

  beforeAll(async () => {
    nats = await startNats();
    ports = { port: await freePort(), metricsPort: await freePort() };
    await start();
    admin = registry!.admin;
    expect((await admin.post("/v1/consumers", { name: "keyed" })).status).toBe(201);
  });
  afterAll(async () => {
    await registry?.process.stop();
    await nats?.stop();
  });

  const send = (path: string, body: unknown, key: string): Promise<Outcome> =>
    admin.post(path, body, { "idempotency-key": key }).then(
      (res) => ({ status: res.status, etag: res.headers.get("etag"), keyId: res.body?.keyId ?? res.body?.error?.data?.keyId }),
      () => ({ status: "reset" as const }),
    );

  test("retried with their Idempotency-Keys after the restart, every command is answered once and stored once", { timeout: 90_000 }, async () => {
    const creates = Array.from({ length: COMMANDS }, (_, i) => ({ path: "/v1/consumers", body: { name: `c-${i}`, groups: ["ops"] }, key: `create-${i}` }));
    const issues = Array.from({ length: ISSUANCES }, (_, i) => ({ path: "/v1/consumers/keyed/keys", body: {}, key: `issue-${i}` }));
    const all = [...creates, ...issues];
    const first = all.map((c) => send(c.path, c.body, c.key));
    // Some have been decided and appended by now, some not yet.
    await new Promise((r) => setTimeout(r, 40));
    registry!.process.child.kill("SIGKILL");
    const before = await Promise.all(first);
    expect(before.every((o) => o.status === "reset" || o.status === 201), JSON.stringify(before)).toBe(true);

    const restartedAt = Date.now();
    await start();
    const readyMs = Date.now() - restartedAt;
    expect(readyMs).toBeLessThan(10_000);

    const after = await Promise.all(all.map((c) => send(c.path, c.body, c.key)));
    for (const [i, outcome] of after.entries()) {
      const earlier = before[i]!;
      if (i < COMMANDS) {
        // A create is answered as it was decided, the first answer's version included.
        expect(outcome.status).toBe(201);
        if (earlier.status === 201) expect(outcome.etag).toBe(earlier.etag);
      } else if (earlier.status === 201) {
        // A key shown once is never shown again: the retry names it.
        expect([outcome.status, outcome.keyId]).toEqual([409, earlier.keyId]);
      } else {
        // Lost with the kill: either it was never appended (issued now) or it was (named, not shown).
        expect([201, 409]).toContain(outcome.status);
        expect(outcome.keyId).toMatch(/^[a-z2-7]{12}$/);
      }
    }

    // Exactly once in the stream: one event per consumer, one key per issuance.
    for (let i = 0; i < COMMANDS; i++) {
      const history = await admin.get(`/v1/consumers/c-${i}/history`);
      expect(history.body.items.map((e: { type: string }) => e.type)).toEqual(["consumer.created"]);
    }
    const keyed = await admin.get("/v1/consumers/keyed");
    const keyIds = new Set([...before, ...after].map((o) => o.keyId).filter(Boolean));
    expect(keyed.body.keys.map((k: { keyId: string }) => k.keyId).sort()).toEqual([...keyIds].sort());
    expect(keyed.body.keys).toHaveLength(ISSUANCES);
  });
});
