import { answerable, busUnavailable, jsonOrNothing } from "@manifold/bus";
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";
import { KvBucket, MAX_SESSION_HOLDERS, ManifoldError, SessionChanged, SessionId, SessionRecord, Subjects } from "@manifold/contracts";
import type { Logger } from "@manifold/telemetry";
import type { KV } from "@nats-io/kv";
import { openBucket } from "./openBucket.js";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { randomUUID } from "node:crypto";

export type { SessionRecord };

/** The session directory's JetStream requests give up after this (see `open`). */
const DIRECTORY_TIMEOUT_MS = 2_000;
/** A change that loses the race this often in a row gives up (`bus_unavailable`): writers that busy are a fault. */
const CHANGE_ATTEMPTS = 5;
/** A change notice is at most this long (100 URIs of 4 KiB each, and the rest); a longer one is not read. */
const MAX_CHANGED_BYTES = 512 * 1024;
/**
 * How long a change waits for each replica holding a copy to acknowledge it. A replica that is
 * gone answers at once (NATS: no responders); one that hangs delays the change this long, and
 * learns of it when its next touch finds its revision stale.
 */
const NOTICE_TIMEOUT_MS = 1_000;

/** A session's record as this replica last read or wrote it, and its revision (the KV sequence). */
export interface DirectoryEntry {
  record: SessionRecord;
  revision: number;
  /** When the directory stored this revision, by the bus's clock (as read by `lookup`). */
  writtenAt?: number;
}

/** What the other replicas tell this one about sessions it may hold. */
export interface DirectoryListener {
  /** The session ended (DELETE on some replica). */
  closed(id: string): void;
  /** The session's record changed; `revision` is the new one, `notice` what it holds (absent: read it). Settles once applied. */
  changed(id: string, revision: number, notice?: Pick<SessionChanged, "state" | "holders">): Promise<void>;
}

type Decide = (record: SessionRecord) => SessionRecord | undefined;

const isConflict = (error: unknown) =>
  error instanceof JetStreamApiError && (error.code === JetStreamApiCodes.StreamWrongLastSequence || error.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown);

/**
 * Live sessions of every gateway replica, in a NATS KV bucket whose TTL is the idle
 * timeout: a session nobody touches for that long expires everywhere. Touches are
 * throttled to a quarter of the timeout per replica, so a call never waits for a write.
 * Every write after the first names the revision it was decided on, so a replica with a stale
 * copy (a touch, a change) never overwrites a newer state. Each record names the replicas
 * holding a copy (`holders`): a change is acknowledged by each of them before it is answered.
 */
export class SessionDirectory {
  /** This replica's id in session records. */
  readonly replica = randomUUID().replaceAll("-", "");
  readonly #kv: KV;
  readonly #nc: NatsConnection;
  readonly #logger: Logger;
  readonly #idleMs: number;
  readonly #touchEveryMs: number;
  readonly #touched = new Map<string, number>();
  readonly #subscriptions: Subscription[];
  readonly #listener: DirectoryListener;

  private constructor(nc: NatsConnection, kv: KV, idleMs: number, logger: Logger, listener: DirectoryListener) {
    this.#nc = nc;
    this.#kv = kv;
    this.#logger = logger;
    this.#listener = listener;
    this.#idleMs = idleMs;
    this.#touchEveryMs = idleMs / 4;
    this.#subscriptions = [
      nc.subscribe(Subjects.sessionClosed, {
        callback: (err, msg) => {
          if (!err) listener.closed(msg.string());
        },
      }),
      nc.subscribe(Subjects.sessionChanged(this.replica), {
        callback: (err, msg) => {
          if (err) return;
          const notice = msg.data.length > MAX_CHANGED_BYTES ? undefined : SessionChanged.safeParse(jsonOrNothing(msg.string())).data;
          // Answered once applied (a malformed notice at once): the replica that made the change waits for it.
          void (notice ? listener.changed(notice.id, notice.revision, notice) : Promise.resolve()).finally(() => {
            if (answerable(msg, "gateway")) msg.respond();
          });
        },
      }),
    ];
  }

  static async open(nc: NatsConnection, idleMs: number, logger: Logger, listener: DirectoryListener): Promise<SessionDirectory> {
    // An initialize waits for its session's write: a write lost as the bus comes back (sent before
    // JetStream answers again) fails in 2 s as bus_unavailable, which the client retries, instead of
    // holding the agent for nats.js's default 5 s.
    const kv = await openBucket(nc, KvBucket.sessions, logger, DIRECTORY_TIMEOUT_MS);
    logger.debug({ bucket: KvBucket.sessions }, "session directory ready");
    return new SessionDirectory(nc, kv, idleMs, logger, listener);
  }

  /** Records a new session, held here. `bus_unavailable` when the bucket cannot be written (NATS down or recovering). */
  async record(id: string, initial: SessionRecord): Promise<DirectoryEntry> {
    const record: SessionRecord = { ...initial, holders: [this.replica] };
    const revision = await this.#kv.put(id, JSON.stringify(record)).catch((error: unknown) => {
      throw busUnavailable("write to the session directory", error);
    });
    this.#touched.set(id, Date.now());
    return { record, revision };
  }

  /**
   * The session's entry; undefined when it does not exist, expired, or holds what no gateway
   * writes (the bus is not trusted: a malformed record is no session). `bus_unavailable` when the
   * bucket cannot be read (NATS down or recovering).
   */
  async lookup(id: string): Promise<DirectoryEntry | undefined> {
    if (!SessionId.safeParse(id).success) return undefined;
    const entry = await this.#kv.get(id).catch((error: unknown) => {
      throw busUnavailable("lookup in the session directory", error);
    });
    // Idle past this gateway's timeout by the entry's own write time: the bucket, made by the
    // registry, keeps entries up to MAX_SESSION_IDLE_MS, not this gateway's SESSION_IDLE_MS.
    if (!entry || entry.operation !== "PUT" || Date.now() - entry.created.getTime() > this.#idleMs) return undefined;
    const record = SessionRecord.safeParse(jsonOrNothing(entry.string()));
    if (!record.success) {
      this.#logger.warn({ session: id.slice(0, 8), issues: record.error.issues.length }, "a malformed session record is ignored");
      return undefined;
    }
    return { record: record.data, revision: entry.revision, writtenAt: entry.created.getTime() };
  }

  /**
   * Names this replica among the session's holders (it adopts the session), so it hears of later
   * changes; resolves with the newest entry, which the adopter applies. Undefined: the session is gone.
   */
  async hold(id: string): Promise<DirectoryEntry | undefined> {
    const held = await this.#write(id, (record) => {
      const holders = record.holders ?? [];
      return holders.includes(this.replica) ? undefined : { ...record, holders: [...holders, this.replica].slice(-MAX_SESSION_HOLDERS) };
    });
    return held?.entry;
  }

  /**
   * Changes the session's record as `decide` says, then has every other replica holding a copy
   * apply it, and resolves once each has acknowledged (or is gone): a request the agent sends
   * after this answer sees the change on any replica. Undefined: the session is gone.
   */
  async change(id: string, decide: Decide): Promise<DirectoryEntry | undefined> {
    const result = await this.#write(id, decide);
    if (!result?.written) return result?.entry;
    const { record, revision } = result.entry;
    const holders = record.holders ?? [];
    const notice: SessionChanged = { id, revision, state: { logLevel: record.logLevel, subscriptions: record.subscriptions }, holders };
    const body = JSON.stringify(notice);
    await Promise.all(
      holders
        .filter((replica) => replica !== this.replica)
        .map((replica) => this.#nc.request(Subjects.sessionChanged(replica), body, { timeout: NOTICE_TIMEOUT_MS }).catch(() => undefined)),
    );
    return result.entry;
  }

  /**
   * Keeps the session alive in the directory; at most one write per quarter of the idle timeout.
   * The write names the entry's revision: when another replica wrote since, nothing is written
   * (that write kept the session alive) and the listener hears of a change, so this copy reads the
   * newer one.
   */
  touch(id: string, entry: DirectoryEntry): void {
    const now = Date.now();
    if (now - (this.#touched.get(id) ?? 0) < this.#touchEveryMs) return;
    this.#touched.set(id, now);
    const { record, revision } = entry;
    this.#kv.update(id, JSON.stringify(record), revision).then(
      (next) => {
        if (entry.revision === revision) entry.revision = next;
      },
      (error: unknown) => {
        if (isConflict(error)) void this.#listener.changed(id, revision + 1);
        else this.#touched.delete(id);
      },
    );
  }

  /** Ends the session everywhere; true when its record was deleted (false: the bus failed, and another replica may serve it on). */
  async remove(id: string): Promise<boolean> {
    this.#touched.delete(id);
    const deleted = await this.#kv.delete(id).then(
      () => true,
      () => false,
    );
    try {
      this.#nc.publish(Subjects.sessionClosed, id);
    } catch {
      // A closed or draining connection: the other replicas' copies expire with the directory entry.
    }
    return deleted;
  }

  forget(id: string): void {
    this.#touched.delete(id);
  }

  /**
   * Deletes the session's record when no replica has written it within the idle timeout. The
   * bucket (the registry's) keeps a record up to MAX_SESSION_IDLE_MS, 48 times the default
   * timeout: left there, idle sessions would pile up for a day. The delete names the revision
   * read, so a replica that touched the session meanwhile keeps it alive. Best effort: a record
   * left behind is not served (`lookup`) and expires with the bucket's max age. True when deleted here.
   */
  async expire(id: string): Promise<boolean> {
    this.#touched.delete(id);
    const entry = await this.#kv.get(id).catch(() => undefined);
    if (!entry || entry.operation !== "PUT" || Date.now() - entry.created.getTime() <= this.#idleMs) return false;
    return this.#kv.delete(id, { previousSeq: entry.revision }).then(
      () => true,
      () => false,
    );
  }

  close(): void {
    for (const subscription of this.#subscriptions) subscription.unsubscribe();
  }

  /**
   * Writes the record as `decide` says on its newest revision (read again and decided again when
   * another replica wrote first). A decision to change nothing writes nothing (`written: false`).
   */
  async #write(id: string, decide: Decide): Promise<{ entry: DirectoryEntry; written: boolean } | undefined> {
    for (let attempt = 0; attempt < CHANGE_ATTEMPTS; attempt++) {
      const current = await this.lookup(id);
      if (!current) return undefined;
      const record = decide(current.record);
      if (!record) return { entry: current, written: false };
      try {
        const revision = await this.#kv.update(id, JSON.stringify(record), current.revision);
        this.#touched.set(id, Date.now());
        return { entry: { record, revision }, written: true };
      } catch (error) {
        if (!isConflict(error)) throw busUnavailable("write to the session directory", error);
      }
    }
    throw new ManifoldError("bus_unavailable", `the session's record kept changing under ${CHANGE_ATTEMPTS} attempts to write it; retry`);
  }
}
