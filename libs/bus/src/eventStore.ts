import { BusHeader, ManifoldError, RegistryEvent, RegistryStream, Subjects, type NewEvent } from "@manifold/contracts";
import {
  DiscardPolicy,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { headers, type NatsConnection } from "@nats-io/transport-node";
import { tooLargeMessage } from "./rpc.js";
import { flushNow } from "./transport.js";
import { ensureStream } from "./streams.js";

/** JetStream's "wrong last sequence" API error: another writer got there first. */
const WRONG_LAST_SEQUENCE = 10071;
const NO_MESSAGE_FOUND = 10037;
/** Room for an announcement's header block (`NATS/1.0`, `Manifold-Sequence: <n>`). */
const ANNOUNCEMENT_HEADER_BYTES = 128;

export interface AppendOptions {
  /** The aggregate's version the event was decided on: its subject's last sequence (0: none yet). */
  expectedVersion: number;
  /** Recorded in the event's meta; also the msgID unless `msgId` is given. */
  commandId: string;
  actor?: string | undefined;
  /** Digest of the request an Idempotency-Key came with, recorded in the event's meta. */
  fingerprint?: string | undefined;
  /** JetStream de-duplicates appends with the same msgID within the stream's duplicate window. */
  msgId?: string | undefined;
  /**
   * The stream's last sequence the event was decided on (the whole registry as the decision saw
   * it): any append since, to any aggregate, refuses it with `StreamMoved`. For decisions that read
   * other aggregates than their own (a grant names a consumer, a selection an upstream's tool).
   */
  streamSequence?: number | undefined;
}

/**
 * The registry changed elsewhere since the decision was made (another aggregate; the event's own
 * is as it was): the command is to be decided again on the registry as it is now.
 */
export class StreamMoved extends Error {
  constructor() {
    super("the registry changed since the command was decided");
    this.name = "StreamMoved";
  }
}

/**
 * The registry's event log: one JetStream stream, one subject per aggregate. Appends
 * carry the aggregate's expected version (its last subject sequence) and a msgID, so
 * concurrent writers conflict and retried commands are stored once.
 */
export class EventStore {
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #nc: NatsConnection;

  private constructor(nc: NatsConnection, js: JetStreamClient, jsm: JetStreamManager) {
    this.#nc = nc;
    this.#js = js;
    this.#jsm = jsm;
  }

  static async open(nc: NatsConnection, options: { replicas?: number } = {}): Promise<EventStore> {
    const jsm = await jetstreamManager(nc);
    await ensureRegistryStream(jsm, options.replicas ?? 1);
    return new EventStore(nc, jetstream(nc), jsm);
  }

  /** Appends one event; returns its stream sequence (the aggregate's new version). */
  async append(subject: string, event: NewEvent, options: AppendOptions): Promise<number> {
    return (await this.appendWithAck(subject, event, options)).sequence;
  }

  /**
   * Appends one event and says whether JetStream stored it or dropped it as a duplicate of an
   * earlier append with the same msgID (then `sequence` is that earlier event's).
   */
  async appendWithAck(
    subject: string,
    event: NewEvent,
    { expectedVersion, commandId, actor, fingerprint, msgId = commandId, streamSequence }: AppendOptions,
  ): Promise<{ sequence: number; duplicate: boolean }> {
    const meta = { commandId, at: new Date().toISOString(), ...(actor ? { actor } : {}), ...(fingerprint ? { fingerprint } : {}) };
    const text = JSON.stringify({ ...event, meta });
    // Every node skips an event it cannot read, and the object's version then stays one behind its
    // stream: every later command on it conflicts, for good. A decision that produced one is refused
    // here, read from the text the nodes will read.
    const readable = RegistryEvent.safeParse(JSON.parse(text));
    if (!readable.success) {
      const where = readable.error.issues[0]?.path.join(".") ?? "";
      throw new ManifoldError("internal_error", `the '${event.type}' event decided for ${subject} would not be readable (at '${where}'); nothing was stored`);
    }
    const bytes = Buffer.from(text);
    // Too large is not the bus being away: retrying cannot help, and the operator must hear what and how much.
    const maxBytes = this.#nc.info?.max_payload;
    if (maxBytes !== undefined && bytes.length > maxBytes) {
      throw new ManifoldError("payload_too_large", tooLargeMessage(`the '${event.type}' event for ${subject} is ${bytes.length} bytes`, maxBytes), { bytes: bytes.length, maxBytes });
    }
    try {
      const ack = await this.#js.publish(subject, bytes, {
        msgID: msgId,
        expect: streamSequence === undefined ? { lastSubjectSequence: expectedVersion } : { lastSubjectSequence: expectedVersion, lastSequence: streamSequence },
      });
      if (!ack.duplicate) this.#announce(ack.seq, bytes, maxBytes);
      return { sequence: ack.seq, duplicate: ack.duplicate };
    } catch (error) {
      if (error instanceof JetStreamApiError && error.code === WRONG_LAST_SEQUENCE) {
        const currentVersion = await this.version(subject);
        // The aggregate is as the decision saw it: what moved is the rest of the registry.
        if (streamSequence !== undefined && currentVersion === expectedVersion) throw new StreamMoved();
        throw new ManifoldError(
          "version_conflict",
          `expected version ${expectedVersion} but the current version is ${currentVersion}`,
          { expectedVersion, currentVersion },
          { cause: error },
        );
      }
      throw storeUnavailable(error);
    }
  }

  /**
   * Tells followers what was stored at `sequence` (`Subjects.registryAppended`), so they need not
   * ask; without the event when it would not fit a message beside its header. One lost is made up
   * by their probe (`readStream`).
   */
  #announce(sequence: number, bytes: Uint8Array, maxBytes: number | undefined): void {
    const announced = headers();
    announced.set(BusHeader.sequence, String(sequence));
    const fits = maxBytes === undefined || bytes.length + ANNOUNCEMENT_HEADER_BYTES <= maxBytes;
    this.#nc.publish(Subjects.registryAppended, fits ? bytes : undefined, { headers: announced });
    // Now, not at the end of the turn: a registry closing its connection next would lose it.
    flushNow(this.#nc);
  }

  /** The aggregate's current version: the sequence of the last event on its subject, 0 if none. */
  async version(subject: string): Promise<number> {
    try {
      const message = await this.#jsm.streams.getMessage(RegistryStream.name, { last_by_subj: subject });
      return message?.seq ?? 0;
    } catch (error) {
      if (error instanceof JetStreamApiError && error.code === NO_MESSAGE_FOUND) return 0;
      throw storeUnavailable(error);
    }
  }
}

/**
 * The stream could not take or tell: NATS is down or JetStream is still recovering after a
 * restart. Retrying is safe: the command id makes a repeated append a no-op.
 */
const storeUnavailable = (error: unknown) =>
  new ManifoldError(
    "bus_unavailable",
    `the registry event stream is unavailable (${error instanceof Error ? error.message : String(error)}); the command may be retried`,
    undefined,
    { cause: error },
  );

export async function ensureRegistryStream(jsm: JetStreamManager, replicas: number): Promise<void> {
  await ensureStream(jsm, {
    name: RegistryStream.name,
    subjects: [RegistryStream.subjects],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.New,
    // The log is the source of truth: nothing ages out.
    max_age: 0,
    max_msgs: -1,
    duplicate_window: 2 * 60 * 1_000_000_000,
    num_replicas: replicas,
  });
}
