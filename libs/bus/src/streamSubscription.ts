import { FOLLOWER_SLOTS, followerName } from "@manifold/contracts";
import type { Logger } from "@manifold/telemetry";
import {
  AckPolicy,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  type ConsumerConfig,
  type ConsumerMessages,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import { nanos, type NatsConnection } from "@nats-io/transport-node";
import { randomBytes, randomInt } from "node:crypto";
import { identityOf } from "./connection.js";
import { settleDelivery } from "./replies.js";

export interface StreamSubscriptionOptions {
  stream: string;
  /** Where a (re)subscription starts: asked at every subscription, e.g. after the last sequence applied. */
  from(): Pick<ConsumerConfig, "deliver_policy"> & Partial<Pick<ConsumerConfig, "opt_start_seq" | "filter_subject">>;
  /** The last stream sequence applied; omitted, a subscription is live as soon as it is open. */
  position?(): number;
  apply(message: JsMsg): void;
  /** Called each time the subscription becomes live (has applied what the stream held when it opened). */
  onLive?(): void;
  logger: Logger;
}

export interface StreamSubscription {
  /** Open, and caught up with what the stream held when it was (re)opened. */
  isLive(): boolean;
  stop(): Promise<void>;
}

/**
 * A JetStream API request unanswered this long after a reconnect is retried rather than awaited
 * (a request sent as the connection comes back, or while a stream elects a leader, is never
 * answered). The first wait is short: one lost request must not use up the 2 s a node has to
 * follow the stream again. Waits stay at most 2 s for about 20 s of attempts, so a node follows
 * again within ~2 s of an election's end instead of sitting out a 5 s wait begun during it
 * (measured: commands refused 7.8 s past the election); only then do they grow to nats.js's
 * default, so a starved machine still gets through.
 */
const apiTimeoutMs = (attempt: number) => (attempt < 10 ? Math.min(500 * 2 ** attempt, 2_000) : 5_000);
/** At start the stream was just found: a request that is slow is awaited as nats.js would. */
const START_TIMEOUT_MS = 5_000;
const RETRY_MS = [50, 100, 250, 500, 1_000] as const;
/**
 * Pulls are renewed this often and the server heartbeats every half of it, so a consumer whose
 * cluster node died (the connection, held to another node, never drops) is noticed after two
 * missed heartbeats, about this long, instead of nats.js's default 30 s. Costs one pull per
 * interval while the stream is quiet.
 */
const PULL_EXPIRES_MS = 2_000;
/**
 * A pull asks for this many bytes at most, never a number of messages: nats-server cuts off a
 * client it holds more than `max_pending` (64 MiB) for, and a node that is busy applying what it
 * pulled reads its socket slowly. Pulls of 100 events of ~800 KB (a hostile upstream's list-change
 * storm) cut every booting node off, again at each re-subscription: none could start. Always at
 * least two of the largest messages the server takes, or a pull could not carry one.
 */
export const pullBytes = (nc: NatsConnection, least = 8 * 1024 * 1024) => Math.max(least, 2 * (nc.info?.max_payload ?? 512 * 1024));

/**
 * The registry reads pages of its streams through ordered consumers, which nats.js names from its
 * process-wide nuid (a fixed prefix, a sequence grown by a fixed step): guessable, and the
 * registry's identity, unlike the others, may hold consumers of any name. 128 random bits per
 * consumer instead (`readPage`). (Followers are named by slot: `createFollower`.)
 */
export const consumerNamePrefix = () => randomBytes(16).toString("hex");

/**
 * A follower's consumer is deleted by nats-server this long after its last pull: a replica that
 * died gives its slot back within it. Pulls are renewed every `PULL_EXPIRES_MS`.
 */
const FOLLOWER_INACTIVE_MS = 10_000;
/** nats-server's answers to a create whose name is taken (10148 already exists, 10013 name in use, 10105 still active). */
const NAME_TAKEN = new Set([10148, 10013, 10105]);
/** A subscription that stopped hearing from its consumer, or whose consumer is gone: nothing more would arrive. */
const STALLED = new Set(["heartbeats_missed", "consumer_deleted", "consumer_not_found"]);

/**
 * Creates a consumer of this identity in a free slot (`followerName`): nats-server lets an
 * identity hold consumers of its own names only (busPermissions.ts), so no identity can hoard
 * them or touch another's. The create fails if the name is taken (a description of 128 random
 * bits makes every config differ: an identical one would be handed the existing consumer, shared
 * with the replica that made it); the next slot is tried.
 */
async function createFollower(api: JetStreamManager, stream: string, identity: string, from: Partial<ConsumerConfig>): Promise<string> {
  const first = randomInt(FOLLOWER_SLOTS);
  const description = `follower ${randomBytes(16).toString("hex")}`;
  for (let i = 0; i < FOLLOWER_SLOTS; i++) {
    const name = followerName(identity, (first + i) % FOLLOWER_SLOTS);
    try {
      await api.consumers.add(stream, {
        ...from,
        name,
        description,
        ack_policy: AckPolicy.None,
        mem_storage: true,
        num_replicas: 1,
        inactive_threshold: nanos(FOLLOWER_INACTIVE_MS),
      });
      return name;
    } catch (error) {
      if (!(error instanceof JetStreamApiError && NAME_TAKEN.has(error.code))) throw error;
    }
  }
  throw new Error(`every one of identity '${identity}''s ${FOLLOWER_SLOTS} consumer names on ${stream} is taken (replicas that died free theirs within ${FOLLOWER_INACTIVE_MS / 1000} s)`);
}

interface Open {
  name: string;
  messages: ConsumerMessages;
  loop: Promise<void>;
}

/**
 * Follows a stream with a consumer of this identity's (`createFollower`) that this module, not
 * nats.js, re-creates, and reads in order as an ordered consumer would.
 *
 * nats.js (jetstream 3.4) recovers an ordered pull consumer itself after a reconnect: it asks for
 * the consumer's info, and when the consumer is gone (a restarted server forgets the
 * memory-stored ordered consumer) it creates the next one and pulls `max_messages - pending`
 * messages — but keeps the `pending` count of the pull that died with the old server. A node that
 * had received 6 of a pull's 100 messages re-pulls just 6, then believes 94 are still owed and
 * never pulls again until two idle heartbeats are missed (2 × 15 s) — and when the info request
 * fails instead (JetStream still starting), it retries after `expires` (30 s ± 50 %). That was
 * the ~40 s stall of every projection after a nats-server restart. Its ordered consumers are also
 * named `<prefix>_<serial>`, names nats-server permissions could not bound.
 *
 * So: the subscription is closed as soon as the connection drops, and on reconnect a fresh
 * consumer is created from the caller's position, retried every 50 ms–1 s while JetStream is not
 * answering yet. A delivery out of turn, a consumer gone or stopped heartbeats do the same.
 */
export async function followStream(nc: NatsConnection, options: StreamSubscriptionOptions): Promise<StreamSubscription> {
  const { stream, logger } = options;
  const jsm = await jetstreamManager(nc, { checkAPI: false });

  let current: Open | undefined;
  let live = false;
  let head = 0;
  let connected = !nc.isClosed();
  let stopped = false;
  /** Bumped by every reason to re-subscribe; a subscription opened under an older value is redone. */
  let wanted = 0;
  let restarting: Promise<void> | undefined;
  /** Consumers left behind on a server that may still hold them, deleted once reconnected. */
  let stale: string[] = [];

  const becomeLive = () => {
    if (live || !current || (options.position && options.position() < head)) return;
    live = true;
    options.onLive?.();
  };

  const open = async (timeout: number): Promise<void> => {
    const api = await jetstreamManager(nc, { timeout, checkAPI: false });
    head = options.position ? (await api.streams.info(stream)).state.last_seq : 0;
    const name = await createFollower(api, stream, identityOf(nc), options.from());
    let messages: ConsumerMessages;
    try {
      const consumer = await jetstream(nc, { timeout, checkAPI: false }).consumers.get(stream, name);
      messages = await consumer.consume({ expires: PULL_EXPIRES_MS, max_bytes: pullBytes(nc) });
    } catch (error) {
      stale.push(name);
      throw error;
    }
    // Ordered as nats.js's ordered consumers are: a delivery out of turn (a pull's messages lost)
    // means what follows cannot be applied in order, so the stream is followed again from here.
    let delivered = 0;
    const loop = (async () => {
      for await (const message of messages) {
        if (message.info.deliverySequence !== ++delivered) {
          if (current?.messages === messages) resubscribe("a delivery was lost");
          return;
        }
        options.apply(message);
        settleDelivery(message);
        if (!live) becomeLive();
      }
    })().finally(() => {
      // Ended by nats.js (an error it gave up on), not by us: nothing would follow any more.
      if (current?.messages === messages) resubscribe("the subscription ended");
    });
    void watch(messages);
    current = { name, messages, loop };
    becomeLive();
  };

  const watch = async (messages: ConsumerMessages) => {
    for await (const status of messages.status()) {
      if (STALLED.has(status.type) && current?.messages === messages) resubscribe(status.type);
    }
  };

  const close = async (open: Open) => {
    stale.push(open.name);
    await open.messages.close().catch(() => undefined);
    await open.loop.catch(() => undefined);
  };

  /** The last `wanted` value a run has dealt with (subscribed under it, or found the bus gone). */
  let satisfied = 0;
  const run = async () => {
    for (let attempt = 0; !stopped; ) {
      const generation = wanted;
      if (current) {
        const previous = current;
        current = undefined;
        await close(previous);
      }
      if (!connected) {
        satisfied = generation; // the reconnect asks again
        return;
      }
      try {
        await open(apiTimeoutMs(attempt));
        const names = stale;
        stale = [];
        for (const name of names) void jsm.consumers.delete(stream, name).catch(() => undefined);
        satisfied = generation;
        if (generation === wanted) {
          logger.info({ stream, attempts: attempt + 1 }, "following the stream again");
          return;
        }
      } catch (error) {
        if (generation === wanted) {
          logger.warn({ stream, err: error, attempt }, "cannot subscribe to the stream yet; retrying");
          await new Promise((r) => setTimeout(r, RETRY_MS[Math.min(attempt, RETRY_MS.length - 1)]));
        }
        attempt++;
      }
    }
  };

  const resubscribe = (reason: string) => {
    if (stopped) return;
    live = false;
    wanted++;
    logger.warn({ stream, reason }, "re-subscribing to the stream");
    // One run at a time; a reason that arrives as it ends is not lost (checked in the same turn).
    restarting ??= (async () => {
      try {
        do await run();
        while (!stopped && satisfied !== wanted);
      } finally {
        restarting = undefined;
      }
    })();
  };

  // At start the stream was just found; a request lost under load is retried a few times.
  for (let attempt = 0; ; attempt++) {
    try {
      await open(START_TIMEOUT_MS);
      break;
    } catch (error) {
      if (attempt === RETRY_MS.length - 1) throw error;
      await new Promise((r) => setTimeout(r, RETRY_MS[attempt]));
    }
  }

  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === "disconnect") {
        connected = false;
        resubscribe("disconnected");
      } else if (status.type === "reconnect") {
        connected = true;
        resubscribe("reconnected");
      }
    }
  })();

  return {
    isLive: () => live && connected,
    async stop() {
      stopped = true;
      live = false;
      await restarting;
      if (current) await close(current);
      current = undefined;
      // Its slots back at once, not after the consumers' inactivity.
      const names = stale;
      stale = [];
      if (!nc.isClosed()) await Promise.all(names.map((name) => jsm.consumers.delete(stream, name).catch(() => undefined)));
    },
  };
}
