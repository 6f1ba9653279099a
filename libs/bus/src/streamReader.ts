import { BusHeader } from "@manifold/contracts";
import type { Logger } from "@manifold/telemetry";
import { headers, type NatsConnection } from "@nats-io/transport-node";
import { jsonOrNothing } from "./messageJson.js";
import { requesterOf } from "./requester.js";

/** A message as the stream stored it. */
export interface StoredMessage {
  readonly seq: number;
  readonly data: Uint8Array;
}

export interface StreamReaderOptions {
  stream: string;
  /**
   * The core subject on which the stream's writer says it appended, once JetStream stored it: the
   * message as stored and its sequence (`BusHeader.sequence`), or no body.
   */
  appended: string;
  /** The last sequence applied. */
  position(): number;
  /** Applies the message after `position()`. */
  apply(message: StoredMessage): void;
  /** Moves past a sequence the stream no longer holds (deleted by an operator). */
  skip(sequence: number): void;
  /** Called each time the reader becomes live (has applied what the stream held when it was last asked). */
  onLive?(): void;
  logger: Logger;
}

export interface StreamReader {
  /** Connected, and caught up with what the stream held when last asked. */
  isLive(): boolean;
  /**
   * Live, or live until a read began that has gone unanswered for less than `STALL_TOLERANCE_MS`:
   * what readiness (`/readyz`) reports, so one slow answer does not take a node out of service.
   */
  isReady(): boolean;
  /**
   * Resolves true once live; false once it has not been for `withinMs` since it stopped (so a burst
   * of waiters during a long outage waits once, not each in turn), or at once while cut off from the
   * bus (nothing to wait for until it is back).
   */
  untilLive(withinMs: number): Promise<boolean>;
  stop(): Promise<void>;
}

/** JetStream's answer to a get of a sequence the stream does not hold. */
const NO_MESSAGE_FOUND = 10037;
/**
 * A node looks for what it may have missed this often even when told nothing (an announcement is
 * core NATS: one sent while this node was cut off, or never sent by a writer that died between
 * storing and announcing, is not repeated). One request per interval while the stream is quiet.
 */
const PROBE_MS = 2_000;
/**
 * Bytes read at once, at most: nats-server cuts off a client it holds more than `max_pending`
 * (64 MiB) for, and a node busy applying what it read reads its socket slowly. A get's answer
 * carries the message in base64 (4/3 of its size).
 */
const WINDOW_BYTES = 8 * 1024 * 1024;
const MAX_WINDOW = 256;
/**
 * A JetStream API request unanswered this long is retried rather than awaited (one sent as the
 * connection comes back, or while a stream elects a leader, is never answered): short at first,
 * so a node follows again within ~2 s of an election's end; nats.js's default after ~20 s of
 * attempts, so a starved machine still gets through.
 */
const apiTimeoutMs = (attempt: number) => (attempt < 10 ? Math.min(500 * 2 ** attempt, 2_000) : 5_000);
const RETRY_MS = [50, 100, 250, 500, 1_000] as const;
/**
 * How long a read may go unanswered before readiness says so. A single read left unanswered for
 * 500 ms (the first attempt's timeout) on a busy nats-server or a starved two-core machine made
 * `/readyz` 503 until the retry answered (readinessStall.int: 8 of 86 probes, for a bus frozen
 * ~0.7 s). A bus frozen for good is reported within `PROBE_MS` + this (2.4 s measured, 4 s at most).
 * A lost connection is reported at once.
 */
const STALL_TOLERANCE_MS = 2_000;

/**
 * Reads a stream in order from `position()` on, and keeps reading as its writer appends, with
 * JetStream's message gets: no consumer. A consumer is state nats-server keeps for whoever asks
 * (~36 KiB each, more with a large `max_waiting`: 1e9 took 490 MiB), and nats-server permissions
 * can name which consumers an identity may create but not how large: one connector identity grew
 * nats-server from 18 to 739 MiB with 20,000 of them. A get leaves nothing behind.
 *
 * The writer announces each append on `appended` once JetStream has stored it, with the message:
 * the next one is applied from the announcement. A gap in them, every reconnect and a message the
 * probe finds every `PROBE_MS` make the reader ask the stream's last sequence and get every message
 * up to it, in windows of at most `WINDOW_BYTES`, applied in sequence order. A request unanswered
 * makes it not live until one is answered (and not ready once unanswered `STALL_TOLERANCE_MS`). A
 * message is applied once: none at or before `position()` is applied again.
 */
export function readStream(nc: NatsConnection, options: StreamReaderOptions): StreamReader {
  const { stream, logger } = options;
  const requester = requesterOf(nc);
  let live = false;
  /** When it last stopped being live (or began). */
  let lostAt = performance.now();
  /** When the read that went unanswered while live began (until it is live again or the connection goes). */
  let stalledSince: number | undefined;
  let stopped = false;
  let connected = !nc.isClosed();
  let running: Promise<void> | undefined;
  let again = false;
  /** The read under way was begun by the probe. */
  let probing = false;
  /** Messages per window: grown while they are small, shrunk to fit the largest seen. */
  let window = 16;
  /** What waits for the reader to be live again: each told true once it is, false if the bus goes away. */
  const waiting = new Set<(live: boolean) => void>();
  const tell = (isLive: boolean) => {
    for (const told of waiting) told(isLive);
    waiting.clear();
  };

  const ask = async (subject: string, body: string, timeout: number): Promise<Record<string, unknown>> => {
    const answer = jsonOrNothing((await requester.request(subject, body, timeout, headers())).string());
    if (typeof answer !== "object" || answer === null) throw new Error(`${subject} answered with no JSON object`);
    return answer as Record<string, unknown>;
  };
  const head = async (timeout: number): Promise<number> => {
    const sequence = ((await ask(`$JS.API.STREAM.INFO.${stream}`, "", timeout)).state as { last_seq?: unknown } | undefined)?.last_seq;
    if (typeof sequence !== "number") throw new Error(`the stream info of ${stream} carries no last sequence`);
    return sequence;
  };
  const get = async (seq: number, timeout: number): Promise<StoredMessage | undefined> => {
    const answer = await ask(`$JS.API.STREAM.MSG.GET.${stream}`, JSON.stringify({ seq }), timeout);
    const message = answer.message as { seq?: unknown; data?: unknown } | undefined;
    if (message && message.seq === seq) return { seq, data: Buffer.from(typeof message.data === "string" ? message.data : "", "base64") };
    const error = answer.error as { err_code?: unknown; description?: unknown } | undefined;
    if (error?.err_code === NO_MESSAGE_FOUND) return undefined;
    throw new Error(`getting ${stream} #${seq}: ${typeof error?.description === "string" ? error.description : "an answer without the message"}`);
  };

  /** Everything up to the stream's last sequence, as it is when asked. */
  const catchUp = async (timeout: number): Promise<number> => {
    const last = await head(timeout);
    while (!stopped && options.position() < last) {
      const from = options.position() + 1;
      const count = Math.min(window, last - from + 1);
      const got = await Promise.all(Array.from({ length: count }, (_, i) => get(from + i, timeout)));
      let largest = 0;
      for (const [i, message] of got.entries()) {
        if (from + i <= options.position()) continue;
        if (message) {
          largest = Math.max(largest, message.data.length);
          options.apply(message);
        } else {
          options.skip(from + i);
        }
      }
      window = Math.max(1, Math.min(MAX_WINDOW, Math.floor(WINDOW_BYTES / (Math.max(largest, 1) * 1.4)), window * 2));
    }
    return last;
  };

  /**
   * A probe while live asks only for the message after `position()` (no stream info: the common
   * answer is "none yet"); anything found, or a reader not live, reads up to the stream's head.
   */
  const probeOrCatchUp = async (timeout: number): Promise<number> => {
    if (live && probing) {
      const next = await get(options.position() + 1, timeout);
      if (!next) return options.position();
      options.apply(next);
    }
    return catchUp(timeout);
  };

  const run = async () => {
    for (let attempt = 0; !stopped && connected; ) {
      again = false;
      const began = performance.now();
      try {
        const last = await probeOrCatchUp(apiTimeoutMs(attempt));
        if (!live && options.position() >= last) {
          live = true;
          stalledSince = undefined;
          options.onLive?.();
          tell(true);
        }
        if (!again) return;
        probing = false;
        attempt = 0;
      } catch (error) {
        if (stopped || !connected) return;
        // The bus stopped answering (a frozen or overloaded server holds the connection open): not
        // live until it answers again, so what reads `isLive` (readiness, the registry's commands)
        // does not act on a projection it cannot bring up to date.
        if (live) {
          lostAt = performance.now();
          stalledSince = began;
        }
        live = false;
        logger.warn({ stream, err: error, attempt }, "cannot read the stream yet; retrying");
        await new Promise((r) => setTimeout(r, RETRY_MS[Math.min(attempt, RETRY_MS.length - 1)]));
        attempt++;
      }
    }
  };
  /** One read at a time; a reason that arrives during one makes it read again (in full). */
  const wake = (probe = false) => {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    probing = probe;
    running = run().finally(() => (running = undefined));
  };

  // The next message, announced with its body, is applied as it comes (no round trip); any other
  // announcement (a gap: one missed, or two writers' out of turn) makes the reader read on.
  const announcements = nc.subscribe(options.appended, {
    callback: (_error, msg) => {
      if (!stopped && msg.data.length > 0 && Number(msg.headers?.get(BusHeader.sequence)) === options.position() + 1) {
        options.apply({ seq: options.position() + 1, data: msg.data });
      } else {
        wake();
      }
    },
  });
  const probe = setInterval(() => wake(true), PROBE_MS).unref();
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === "disconnect") {
        connected = live = false;
        stalledSince = undefined;
        tell(false);
      } else if (status.type === "reconnect") {
        // Catching up after a reconnect is a new wait for `untilLive`.
        lostAt = performance.now();
        connected = true;
        wake();
      }
    }
  })();
  wake();

  return {
    isLive: () => live && connected,
    isReady: () => connected && (live || (stalledSince !== undefined && performance.now() - stalledSince < STALL_TOLERANCE_MS)),
    untilLive(withinMs) {
      if (live && connected) return Promise.resolve(true);
      const left = lostAt + withinMs - performance.now();
      if (!connected || stopped || left <= 0) return Promise.resolve(false);
      return new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => told(false), left);
        const told = (isLive: boolean) => {
          clearTimeout(timer);
          waiting.delete(told);
          resolve(isLive);
        };
        waiting.add(told);
      });
    },
    async stop() {
      stopped = true;
      live = false;
      stalledSince = undefined;
      tell(false);
      clearInterval(probe);
      announcements.unsubscribe();
      await running;
    },
  };
}
