import { busUnavailable } from "@manifold/bus";
import { KvBucket, Subjects } from "@manifold/contracts";
import type { Logger } from "@manifold/telemetry";
import { jetstream } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";

/** The session directory's JetStream requests give up after this (see `open`). */
const DIRECTORY_TIMEOUT_MS = 2_000;

/** What any replica needs to serve a session it did not create. */
export interface SessionRecord {
  virtualServer: string;
  environment: string;
  principalId: string;
  /** The client's initialize request, replayed when another replica adopts the session. */
  initialize: unknown;
}

/**
 * Live sessions of every gateway replica, in a NATS KV bucket whose TTL is the idle
 * timeout: a session nobody touches for that long expires everywhere. Touches are
 * throttled to a quarter of the timeout per replica, so a call never waits for a write.
 */
export class SessionDirectory {
  readonly #kv: KV;
  readonly #nc: NatsConnection;
  readonly #touchEveryMs: number;
  readonly #touched = new Map<string, number>();
  readonly #closed: Subscription;

  private constructor(nc: NatsConnection, kv: KV, idleMs: number, onClosed: (id: string) => void) {
    this.#nc = nc;
    this.#kv = kv;
    this.#touchEveryMs = idleMs / 4;
    this.#closed = nc.subscribe(Subjects.sessionClosed, {
      callback: (err, msg) => {
        if (!err) onClosed(msg.string());
      },
    });
  }

  static async open(nc: NatsConnection, idleMs: number, replicas: number, logger: Logger, onClosed: (id: string) => void): Promise<SessionDirectory> {
    // An initialize waits for its session's write: a write lost as the bus comes back (sent before
    // JetStream answers again) fails in 2 s as bus_unavailable, which the client retries, instead of
    // holding the agent for nats.js's default 5 s.
    const kv = await new Kvm(jetstream(nc, { timeout: DIRECTORY_TIMEOUT_MS })).create(KvBucket.sessions, { history: 1, ttl: idleMs, replicas });
    logger.debug({ bucket: KvBucket.sessions }, "session directory ready");
    return new SessionDirectory(nc, kv, idleMs, onClosed);
  }

  /** `bus_unavailable` when the bucket cannot be written (NATS down or recovering). */
  async record(id: string, record: SessionRecord): Promise<void> {
    await this.#kv.put(id, JSON.stringify(record)).catch((error: unknown) => {
      throw busUnavailable("write to the session directory", error);
    });
    this.#touched.set(id, Date.now());
  }

  /** `bus_unavailable` when the bucket cannot be read (NATS down or recovering). */
  async lookup(id: string): Promise<SessionRecord | undefined> {
    if (!/^[A-Za-z0-9-]{1,128}$/.test(id)) return undefined;
    const entry = await this.#kv.get(id).catch((error: unknown) => {
      throw busUnavailable("lookup in the session directory", error);
    });
    if (!entry || entry.operation !== "PUT") return undefined;
    return entry.json<SessionRecord>();
  }

  /** Keeps the session alive in the directory; at most one write per quarter of the idle timeout. */
  touch(id: string, record: SessionRecord): void {
    const now = Date.now();
    if (now - (this.#touched.get(id) ?? 0) < this.#touchEveryMs) return;
    this.#touched.set(id, now);
    void this.#kv.put(id, JSON.stringify(record)).catch(() => this.#touched.delete(id));
  }

  /** Ends the session everywhere. */
  async remove(id: string): Promise<void> {
    this.#touched.delete(id);
    await this.#kv.delete(id).catch(() => undefined);
    try {
      this.#nc.publish(Subjects.sessionClosed, id);
    } catch {
      // A closed or draining connection: the other replicas' copies expire with the directory entry.
    }
  }

  forget(id: string): void {
    this.#touched.delete(id);
  }

  close(): void {
    this.#closed.unsubscribe();
  }
}
