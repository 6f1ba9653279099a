import { ManifoldError, RegistryEvent, RegistryStream, Subjects } from "@manifold/contracts";
import type { Logger } from "@manifold/telemetry";
import { jetstreamManager } from "@nats-io/jetstream";
import { headers, type NatsConnection } from "@nats-io/transport-node";
import { jsonOrNothing } from "./messageJson.js";
import { requesterOf } from "./requester.js";
import { readStream } from "./streamReader.js";
import { waitForStream } from "./streams.js";

/** What the follower feeds: the domain's `CatalogProjection` satisfies it. */
export interface EventSink {
  readonly sequence: number;
  apply(event: RegistryEvent, sequence: number): void;
  /** Moves past an event this node cannot read: its position is the stream's, which appends expect (`EventStore`). */
  skip(sequence: number): void;
}

export interface StreamFollower {
  /** Resolves once every event that existed when following began has been applied. */
  readonly caughtUp: Promise<void>;
  /**
   * True while the node follows the stream live: replay has ended, and since the last
   * (re)subscription the projection has applied what the stream held then. False while the
   * bus is unreachable or the subscription is being re-established (the registry's commands wait).
   */
  isCaughtUp(): boolean;
  /** Caught up, or its reads of the stream unanswered only briefly (`StreamReader.isReady`): what `/readyz` reports. */
  isReady(): boolean;
  /** Resolves true once the node follows the stream live again; false once it has not for `withinMs` since it stopped, or at once while cut off from the bus. */
  untilCaughtUp(withinMs: number): Promise<boolean>;
  /** Resolves once the event at `sequence` has been applied (read-your-writes); `bus_unavailable` after `timeoutMs`. */
  waitFor(sequence: number, timeoutMs?: number): Promise<void>;
  /**
   * Resolves once every event appended before the call has been applied, or within
   * `CATCH_UP_MS` with the projection as it is if the stream cannot tell or the node lags.
   */
  catchUp(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * How long a lookup that missed may wait for the projection to catch up with the stream. Only a
 * node that really lags waits it out: one that is level answers after one round trip, one cut
 * off from the bus at once. A second was too short on a starved two-core machine.
 */
const CATCH_UP_MS = 5_000;

/**
 * Replays the registry stream into `sink` and keeps following it live (`readStream`: message
 * gets from the projection's own sequence, no consumer): an event is never skipped, and one seen
 * twice is ignored by sequence.
 */
export async function followRegistry(nc: NatsConnection, sink: EventSink, logger: Logger): Promise<StreamFollower> {
  // Only the registry creates its log (nats-server permissions): other nodes wait for it.
  await waitForStream(await jetstreamManager(nc, { checkAPI: false }), RegistryStream.name, logger);

  let markCaughtUp!: () => void;
  const caughtUp = new Promise<void>((resolve) => (markCaughtUp = resolve));

  let waiters: { sequence: number; resolve: () => void }[] = [];
  const release = () => {
    if (waiters.length === 0) return;
    const remaining = waiters.filter((w) => w.sequence > sink.sequence);
    for (const w of waiters) if (w.sequence <= sink.sequence) w.resolve();
    waiters = remaining;
  };

  const subscription = readStream(nc, {
    stream: RegistryStream.name,
    appended: Subjects.registryAppended,
    position: () => sink.sequence,
    apply(message) {
      const { seq: sequence } = message;
      const parsed = RegistryEvent.safeParse(jsonOrNothing(Buffer.from(message.data).toString("utf8")));
      if (parsed.success) {
        sink.apply(parsed.data, sequence);
      } else {
        // An event this node cannot read (newer schema or corruption) must not stop the
        // projection; it is skipped loudly so an operator sees the node needs upgrading.
        logger.error({ sequence, issues: parsed.error.issues }, "skipping unreadable registry event");
        sink.skip(sequence);
      }
      release();
    },
    skip(sequence) {
      logger.warn({ sequence }, "the registry stream no longer holds this event; moving past it");
      sink.skip(sequence);
      release();
    },
    onLive: markCaughtUp,
    logger,
  });

  const waitFor = (sequence: number, timeoutMs = 5_000) => {
    if (sink.sequence >= sequence) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        // A timer that fires late after a stall runs before the I/O that piled up meanwhile: let
        // that I/O be read first (a waiter it releases has resolved, and ignores the rejection).
        setImmediate(expire);
      }, timeoutMs);
      const expire = () => {
        waiters = waiters.filter((w) => w.resolve !== done);
        // The stream holds the event; this node cannot read it back in time (the bus is down or
        // recovering): retryable, since the command id makes a repeated append a no-op.
        reject(
          new ManifoldError(
            "bus_unavailable",
            `the projection did not reach sequence ${sequence} within ${timeoutMs} ms (${subscription.isLive() ? "lagging" : "not following the registry stream"}); the command may be retried`,
          ),
        );
      };
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      waiters.push({ sequence, resolve: done });
    });
  };

  // Callers that arrive while the stream is being asked share the next question, never an
  // earlier one (it could predate their write), so a burst of misses costs two requests.
  let asking: Promise<number> | undefined;
  let queued: Promise<number> | undefined;
  // Asked through the requester, not the JetStream manager, so a lost connection fails the
  // question at once instead of after its timeout.
  const ask = (): Promise<number> => {
    asking = requesterOf(nc)
      .request(`$JS.API.STREAM.INFO.${RegistryStream.name}`, "", CATCH_UP_MS, headers())
      .then((msg) => lastSequence(msg.json()));
    const done = () => (asking = undefined);
    asking.then(done, done);
    return asking;
  };
  const head = (): Promise<number> => {
    if (!asking) return ask();
    queued ??= asking.then(
      () => ((queued = undefined), ask()),
      () => ((queued = undefined), ask()),
    );
    return queued;
  };

  return {
    caughtUp,
    isCaughtUp: () => subscription.isLive(),
    isReady: () => subscription.isReady(),
    untilCaughtUp: (withinMs) => subscription.untilLive(withinMs),
    waitFor,
    async catchUp() {
      // Cut off from the bus, nothing newer can be learned: answer at once, not after a timeout.
      if (!requesterOf(nc).connected) return;
      const deadline = performance.now() + CATCH_UP_MS;
      try {
        const sequence = await head();
        await waitFor(sequence, Math.max(0, deadline - performance.now()));
      } catch {
        // Behind or cut off from the stream: the caller answers from the projection it has.
      }
    },
    stop: () => subscription.stop(),
  };
}

/** The stream's last sequence from a JetStream API answer, which may be an error. */
function lastSequence(answer: unknown): number {
  const sequence = (answer as { state?: { last_seq?: unknown } } | null)?.state?.last_seq;
  if (typeof sequence !== "number") throw new Error("the stream info answer carries no last sequence");
  return sequence;
}
