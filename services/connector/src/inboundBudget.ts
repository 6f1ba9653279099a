import type { JSONRPCMessage, Transport } from "@modelcontextprotocol/client";
import type { Readable } from "node:stream";

/**
 * What one upstream session may send of its own in a second: notifications, requests, answers to
 * nothing asked, messages it cannot read, and SSE events that carry no data (comments, empty
 * events). Answers to requests in flight are not counted: the callers' own bounds limit those.
 * A busy server says much of its own (server-everything logs each of 10,400 subscriptions made in a
 * few seconds: 2,000-3,500 a second); a flood sends 100,000 and more. `perSecond` is the default
 * (`CONNECTOR_INBOUND_PER_SECOND`, or an upstream's `inboundPerSecond`). Resource updates have a
 * budget of their own, twice the resources a session may follow (10,000): an upstream may tell of
 * every one at once, and they are coalesced per URI before the bus.
 */
export const SESSION_INBOUND = { perSecond: 10_000, updatesPerSecond: 20_000 } as const;

/**
 * Counts what an upstream session sends of its own, one second at a time; past
 * `perSecond` the session is cut (`onFlood`, once) and what follows is dropped.
 * Each message the SDK reads costs the connector's one event loop, which every upstream and
 * tenant on the replica shares: a stdio upstream writing log notifications without end, or a 2025
 * GET stream of empty events, made another upstream's calls 77 to 293 times slower, then fail as
 * the replica stopped answering the bus (`upstreamFloods.e2e`). Cut, the session reconnects
 * after the connection's backoff, which grows while its sessions do not last.
 */
export class InboundBudget {
  #windowStart = 0;
  #taken = 0;
  #updates = 0;
  #flooded = false;
  #onFlood: (() => void) | undefined;
  /** Messages the SDK delivered, asked or not, since `countSkippedLines` last looked. */
  delivered = 0;

  /**
   * `silence`: stops the flood where it enters, at once (a stdio process is killed and its output
   * no longer read): closing the session takes a while (the SDK gives a stdio process 2 s to exit),
   * and a flood read meanwhile kept every tenant waiting.
   */
  constructor(
    readonly perSecond: number = SESSION_INBOUND.perSecond,
    private readonly silence: () => void = () => undefined,
  ) {}

  /** Set once the session it guards is open: cut then. A flood before that drops what follows and cuts at once. */
  onFlood(cut: () => void): void {
    this.#onFlood = cut;
    if (this.#flooded) cut();
  }

  /** `count` things sent unasked (`update`: resource updates): true while within the budget, false (drop them) once past it. */
  take(count = 1, update = false): boolean {
    if (this.#flooded) return false;
    const now = Date.now();
    if (now - this.#windowStart >= 1_000) {
      this.#windowStart = now;
      this.#taken = this.#updates = 0;
    }
    if (update ? (this.#updates += count) <= SESSION_INBOUND.updatesPerSecond : (this.#taken += count) <= this.perSecond) return true;
    this.#flooded = true;
    this.silence();
    this.#onFlood?.();
    return false;
  }
}

/** Requests in flight remembered per session, past any bound a session's callers can reach. */
const MAX_ASKED = 16_384;

const hasId = (message: JSONRPCMessage): message is JSONRPCMessage & { id: string | number } => "id" in message && message.id !== undefined;

/**
 * Counts, on the session's transport, every message but an answer to a request in flight, and
 * every error it reports (a line or event it could not read). Call last, after `client.connect`
 * and every other wrapper: what is past the budget is dropped before any of them works on it.
 */
export function guardInbound(transport: Transport, budget: InboundBudget): void {
  const deliver = transport.onmessage;
  const report = transport.onerror;
  const send = transport.send.bind(transport);
  const asked = new Set<string | number>();
  transport.send = (message, options) => {
    if ("method" in message && hasId(message)) {
      asked.add(message.id);
      // Requests never answered (timed out, cancelled) are forgotten oldest first: a late answer is then counted.
      if (asked.size > MAX_ASKED) asked.delete(asked.values().next().value!);
    }
    return send(message, options);
  };
  transport.onmessage = (message, extra) => {
    budget.delivered++;
    const answer = !("method" in message) && hasId(message) && asked.delete(message.id);
    if (answer || budget.take(1, "method" in message && message.method === "notifications/resources/updated")) deliver?.(message, extra);
  };
  transport.onerror = (error) => {
    if (budget.take()) report?.(error);
  };
}

const LF = 10;

/**
 * A stdio upstream's lines that are not JSON reach nobody: the SDK skips them without a word
 * (`ReadBuffer.readMessage`), so `guardInbound` never hears of them. They are counted here, on the
 * process's stdout, around the SDK's own reader: the lines in a chunk less the messages it
 * delivered. A stream of `x` lines from one upstream made another's calls fail.
 */
export function countSkippedLines(stdout: Readable, budget: InboundBudget): void {
  let lines = 0;
  stdout.prependListener("data", (chunk: Buffer) => {
    budget.delivered = 0;
    for (let at = chunk.indexOf(LF); at !== -1; at = chunk.indexOf(LF, at + 1)) lines++;
  });
  stdout.on("data", () => {
    const skipped = lines - budget.delivered;
    lines = 0;
    if (skipped > 0) budget.take(skipped);
  });
}
