import { DeliverPolicy, jetstream, jetstreamManager, type Consumer, type JsMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { consumerNamePrefix, pullBytes, settleDelivery } from "@manifold/bus";

/** How long one page may take to read. */
const PAGE_READ_MS = 2_000;
/**
 * The most a page holds, as the messages' bytes (the one that crosses it included, so every page
 * has at least one): a page was bounded by count alone, and an upstream's history is an event per
 * change of its lists, each up to a bus message (1 MiB by default): 100 of them (the console's page)
 * were ~80 MB read, held and serialized at once, 1,000 (`manifold history`) as many as 2 s allowed.
 */
const PAGE_BYTES = 4 * 1024 * 1024;

export interface Page<T> {
  items: T[];
  /** Pass as `after` for the next page; absent when the stream has nothing further. */
  next?: number;
}

export interface PageQuery<T> {
  stream: string;
  /** Filtered by nats-server: only these subjects are read. */
  subjects: string | string[];
  /** Continue after this stream sequence (a previous page's `next`). */
  after?: number | undefined;
  /** Without `after`: start at this time instead of the beginning. */
  since?: string | undefined;
  limit: number;
  /** The item a message stands for, or undefined to skip it; `stop` ends the page after this message. */
  pick: (message: JsMsg, stop: () => void) => T | undefined;
}

/**
 * One page of a stream, read through a short-lived consumer from a start point. Paging is
 * by stream sequence, so a page is stable while messages keep arriving.
 */
export async function readPage<T>(nc: NatsConnection, query: PageQuery<T>): Promise<Page<T>> {
  const state = (await (await jetstreamManager(nc)).streams.info(query.stream)).state;
  const start = Math.max(query.after === undefined ? state.first_seq : query.after + 1, state.first_seq);
  if (state.messages === 0 || start > state.last_seq) return { items: [] };
  // Named unguessably: any reader of the stream may delete a consumer whose name it can work out.
  const consumer = await jetstream(nc).consumers.get(query.stream, {
    name_prefix: consumerNamePrefix(),
    filter_subjects: query.subjects,
    ...(query.after === undefined && query.since
      ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: query.since }
      : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: start }),
  });
  try {
    // Nothing at or after the start point: answer now rather than wait for a message.
    if ((await consumer.info()).num_pending === 0) return { items: [] };
    return await readFrom(nc, consumer, query);
  } finally {
    // nats.js leaves an ordered consumer on the server for 5 minutes after it is closed: a page a
    // read, one admin's reads in a loop kept thousands of them on the stream (735 in 1.5 s).
    await consumer.delete().catch(() => undefined);
  }
}

async function readFrom<T>(nc: NatsConnection, consumer: Consumer, query: PageQuery<T>): Promise<Page<T>> {
  const items: T[] = [];
  let lastSeen = 0;
  let bytes = 0;
  let more = false;
  let stopped = false;
  const stop = () => (stopped = true);
  // By bytes, not messages: a page of large records (up to a bus message each) must not overrun the connection.
  // `expires`: a pull the server cannot fill (the next record larger than what is left of it) ends within a second, not at the heartbeat.
  const messages = await consumer.consume({ max_bytes: pullBytes(nc, 0), expires: 1_000 });
  // A page takes at most this long to read; what it has not reached by then is the next page's.
  let timedOut = false;
  let pending = Infinity;
  const timer = setTimeout(() => {
    timedOut = true;
    void messages.close();
  }, PAGE_READ_MS);
  try {
    for await (const message of messages) {
      settleDelivery(message);
      lastSeen = message.seq;
      pending = message.info.pending;
      const item = query.pick(message, stop);
      if (item !== undefined) {
        items.push(item);
        bytes += message.data.length;
      }
      if (stopped) break;
      if (items.length >= query.limit || bytes >= PAGE_BYTES) {
        more = message.info.pending > 0;
        break;
      }
      if (message.info.pending === 0) break;
    }
  } finally {
    clearTimeout(timer);
    await messages.close();
  }
  // Cut short by time (a filter matching little of a long stream, or large records): the caller
  // goes on from where the read stopped, instead of taking a partial page for the whole answer.
  if (!more && timedOut && !stopped && pending > 0 && lastSeen > 0) more = true;
  return more ? { items, next: lastSeen } : { items };
}
