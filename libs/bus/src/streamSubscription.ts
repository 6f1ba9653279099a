import type { Logger } from "@manifold/telemetry";
import {
  jetstream,
  jetstreamManager,
  type Consumer,
  type ConsumerMessages,
  type JsMsg,
  type OrderedConsumerOptions,
} from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { randomBytes } from "node:crypto";
import { settleDelivery } from "./replies.js";

export interface StreamSubscriptionOptions {
  stream: string;
  /** Where a (re)subscription starts: asked at every subscription, e.g. after the last sequence applied. */
  from(): Partial<OrderedConsumerOptions>;
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
 * Every reader of a stream may delete a consumer on it by name (its own follower needs to, and
 * nats-server permissions cannot tell one consumer name from another), and may not list them: so
 * the name must not be guessable. nats.js names ordered consumers from its process-wide nuid,
 * the same one that names the call subjects a gateway sends to connectors (a fixed prefix, a
 * sequence grown by a fixed step): a connector group's identity worked out the gateway's
 * follower's name from two calls to its own upstream and deleted it, again at each
 * re-subscription (registryConsumerAbuse.e2e). 128 random bits per consumer instead (also the
 * registry's page reads, `readPage`).
 */
export const consumerNamePrefix = () => randomBytes(16).toString("hex");

interface Open {
  consumer: Consumer;
  messages: ConsumerMessages;
  loop: Promise<void>;
}

/**
 * Follows a stream with an ordered consumer that this module, not nats.js, re-creates.
 *
 * nats.js (jetstream 3.4) recovers an ordered pull consumer itself after a reconnect: it asks for
 * the consumer's info, and when the consumer is gone (a restarted server forgets the
 * memory-stored ordered consumer) it creates the next one and pulls `max_messages - pending`
 * messages — but keeps the `pending` count of the pull that died with the old server. A node that
 * had received 6 of a pull's 100 messages re-pulls just 6, then believes 94 are still owed and
 * never pulls again until two idle heartbeats are missed (2 × 15 s) — and when the info request
 * fails instead (JetStream still starting), it retries after `expires` (30 s ± 50 %). That was
 * the ~40 s stall of every projection after a nats-server restart.
 *
 * So: the subscription is closed as soon as the connection drops (which also stops nats.js's own
 * recovery), and on reconnect a fresh ordered consumer is created from the caller's position,
 * retried every 50 ms–1 s while JetStream is not answering yet. If nats.js re-creates the consumer
 * by itself anyway (a delivery gap, the consumer deleted) or heartbeats stop, the same happens.
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
    const consumer = await jetstream(nc, { timeout, checkAPI: false }).consumers.get(stream, { ...options.from(), name_prefix: consumerNamePrefix() });
    const messages = await consumer.consume({ expires: PULL_EXPIRES_MS, max_bytes: pullBytes(nc) });
    const loop = (async () => {
      for await (const message of messages) {
        options.apply(message);
        settleDelivery(message);
        if (!live) becomeLive();
      }
    })().finally(() => {
      // Ended by nats.js (an error it gave up on), not by us: nothing would follow any more.
      if (current?.messages === messages) resubscribe("the subscription ended");
    });
    void watch(messages);
    current = { consumer, messages, loop };
    becomeLive();
  };

  // The notifications after which nats.js's own recovery leaves the subscription stalled.
  const watch = async (messages: ConsumerMessages) => {
    for await (const status of messages.status()) {
      if (status.type === "ordered_consumer_recreated" || status.type === "heartbeats_missed") {
        if (current?.messages === messages) resubscribe(status.type);
      }
    }
  };

  const close = async (open: Open) => {
    const name = (await open.consumer.info(true).catch(() => undefined))?.name;
    if (name) stale.push(name);
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
    },
  };
}
