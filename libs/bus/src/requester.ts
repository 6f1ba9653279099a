import { BusHeader, CallLiveness, Subjects, upstreamScoped } from "@manifold/contracts";
import { createInbox, type Msg, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import { inboxPrefixOf } from "./connection.js";
import { answerable } from "./replies.js";
import type { OutgoingHeaders } from "./headers.js";
import { flushNow } from "./transport.js";

export type BusFailureReason = "no_responders" | "timeout" | "unavailable" | "too_large" | "lost" | "unresponsive";

/**
 * Why a bus request got no answer: nobody listens, nobody answered in time, no bus, a message
 * the bus cannot carry, the responder holding it stopped sending heartbeats (it died), or
 * heartbeats stopped and this node's own server did not answer a PING either (it froze).
 */
export class BusFailure extends Error {
  constructor(
    readonly reason: BusFailureReason,
    message: string,
    options?: ErrorOptions & { bytes?: number; maxBytes?: number },
  ) {
    super(message, options);
    this.name = "BusFailure";
    this.bytes = options?.bytes;
    this.maxBytes = options?.maxBytes;
  }

  readonly bytes: number | undefined;
  readonly maxBytes: number | undefined;
}

interface Pending {
  resolve(msg: Msg): void;
  reject(error: BusFailure): void;
  timer: NodeJS.Timeout;
  /** With heartbeats: when the responder was last heard from; 0 without. */
  heard: number;
  /** With heartbeats: the subject they come on (under the upstream's name: only its connectors may publish there). */
  beats: string | undefined;
}

/** How often held requests are checked for silence. */
const LIVENESS_TICK_MS = CallLiveness.beatMs / 3;
/** How long a PING to this node's own server may go unanswered while nothing else comes from it either. */
export const OWN_BUS_CHECK_MS = 750;
/** What a beat is answered with. */
const EMPTY = new Uint8Array(0);

/**
 * Request/reply over one inbox subscription per connection, as nats.js does, minus the cost
 * it pays on every *successful* request: its RequestOne settles by rejecting an already
 * resolved promise with a freshly built RequestError (a stack trace per call, 2–4 % of the
 * gateway's CPU). Replies carry a token after the inbox prefix; a 503 status without data is
 * the server saying that nobody subscribes to the subject.
 */
class Requester {
  readonly #nc: NatsConnection;
  readonly #prefix: string;
  readonly #pending = new Map<string, Pending>();
  #next = 0;
  #disconnected = false;
  /** When the connection last came back (performance.now()), for callers that read a gap in interest as transient. */
  #reconnectedAt: number | undefined;
  /** This requester's part of a heartbeat subject: `<callHeartbeats>.<upstream>.<this>.<token>` (subscribed with the first such call). */
  readonly #beats: string;
  /** Checks requests with heartbeats for silence; started with the first of them. */
  #watchdog: NodeJS.Timeout | undefined;
  #lastTick = 0;
  /** Set while a silence found by the watchdog waits for the bus's PONG (`#confirmSilence`). */
  #confirming = false;

  constructor(nc: NatsConnection) {
    this.#nc = nc;
    this.#prefix = createInbox(inboxPrefixOf(nc));
    nc.subscribe(`${this.#prefix}.*`, { callback: (_err, msg) => this.#settle(msg) });
    this.#beats = this.#prefix.slice(this.#prefix.lastIndexOf(".") + 1);
    // Without a server nothing can answer, and replies sent meanwhile are lost: fail at once
    // rather than after each request's timeout. The client keeps reconnecting.
    void (async () => {
      for await (const status of nc.status()) {
        if (status.type === "disconnect") {
          this.#disconnected = true;
          this.#failAll("the connection to the message bus was lost");
        } else if (status.type === "reconnect") {
          this.#disconnected = false;
          this.#reconnectedAt = performance.now();
        }
      }
    })();
    void nc.closed().then(() => {
      clearInterval(this.#watchdog);
      this.#failAll("the bus connection is closed");
    });
  }

  /**
   * The connection came back from a disconnect less than `ms` ago: the server it reached may not yet
   * hold every other client's subscriptions (they resubscribe as they reconnect, 0.25 s apart).
   */
  reconnectedWithin(ms: number): boolean {
    return this.#reconnectedAt !== undefined && performance.now() - this.#reconnectedAt < ms;
  }

  /** False while the client is reconnecting or once the connection is closed. */
  get connected(): boolean {
    return !this.#disconnected && !this.#nc.isClosed();
  }

  /**
   * With `heartbeats` (the upstream whose connectors answer) the responder is asked (by the
   * caller's `BusHeader.heartbeat` header) to beat while it holds the request; silence for
   * `CallLiveness.silenceMs` fails it as lost.
   */
  request(subject: string, payload: string | Uint8Array, timeoutMs: number, headers: MsgHdrs | OutgoingHeaders, heartbeats?: string): Promise<Msg> {
    if (this.#disconnected) return Promise.reject(new BusFailure("unavailable", "not connected to the message bus (reconnecting)"));
    const token = (++this.#next).toString(36);
    let beats: string | undefined;
    if (heartbeats !== undefined) {
      if (!this.#watchdog) this.#startWatchdog();
      beats = `${upstreamScoped(Subjects.callHeartbeats, heartbeats)}.${this.#beats}.${token}`;
      headers.append(BusHeader.heartbeat, beats);
    }
    return new Promise<Msg>((resolve, reject) => {
      // A timer that fires late after a stall runs before the I/O that piled up meanwhile, which
      // may hold the reply: it is read first, and a settled request ignores the failure.
      const expire = () => this.#fail(token, pending, new BusFailure("timeout", `no reply on '${subject}' within ${timeoutMs} ms`));
      const timer = setTimeout(() => setImmediate(expire), timeoutMs);
      const pending: Pending = { resolve, reject, timer, heard: beats ? Date.now() : 0, beats };
      this.#pending.set(token, pending);
      try {
        // nats.js only encodes the headers it publishes, whichever of the two they are.
        this.#nc.publish(subject, payload, { reply: `${this.#prefix}.${token}`, headers: headers as MsgHdrs });
        // The only request in flight goes out now, not after the caller's bookkeeping (`flushNow`).
        if (this.#pending.size === 1) flushNow(this.#nc);
      } catch (error) {
        this.#fail(token, pending, this.#tooLarge(payload, error) ?? new BusFailure("unavailable", `cannot publish to '${subject}'`, { cause: error }));
      }
    });
  }

  /**
   * A message over the servers' max_payload (nats.js refuses it before sending, naming the
   * limit), told apart from a bus that is down. `bytes` is the payload's size without headers.
   */
  #tooLarge(payload: string | Uint8Array, cause: unknown): BusFailure | undefined {
    if (!(cause instanceof Error && cause.message.includes("max_payload"))) return undefined;
    const bytes = typeof payload === "string" ? Buffer.byteLength(payload) : payload.length;
    const maxBytes = this.#nc.info?.max_payload;
    return new BusFailure("too_large", `the message is ${bytes} bytes, more than the bus carries (${maxBytes})`, { cause, bytes, ...(maxBytes ? { maxBytes } : {}) });
  }

  #settle(msg: Msg): void {
    const token = msg.subject.slice(this.#prefix.length + 1);
    const pending = this.#pending.get(token);
    if (!pending) return;
    this.#pending.delete(token);
    clearTimeout(pending.timer);
    if (msg.data.length === 0 && msg.headers?.code === 503) pending.reject(new BusFailure("no_responders", "no responder subscribes to the subject"));
    else pending.resolve(msg);
  }

  #startWatchdog(): void {
    this.#nc.subscribe(`${Subjects.callHeartbeats}.*.${this.#beats}.*`, {
      callback: (_err, msg) => {
        // Only on the request's own subject: another upstream's connector may beat under its own name, never this one's.
        // And only a beat naming a connector's inbox, as each a connector sends does: any reader of a stream may
        // create a push consumer on it, and nats-server delivers its messages and idle heartbeats (for as long as
        // the consumer lives) to any subject a listener names literally, past its creator's publish rights
        // (nats-io/nats-server#8274); those name nats-server's own reply subjects, or none.
        const fromConnector = answerable(msg, "connector");
        const pending = this.#pending.get(msg.subject.slice(msg.subject.lastIndexOf(".") + 1));
        if (fromConnector && pending?.heard && pending.beats === msg.subject) pending.heard = Date.now();
        // Answered, empty (the responder acts only on nats-server's 503 "nobody listens"): a requester
        // may answer what it receives, so nats-server keeps an unanswered beat's reply subject for an
        // hour, and 2.9 rescans them all at each beat past 4,096 (nats-io/nats-server#6058). Only into
        // a connector's inbox (only connectors beat): the reply subject is the beater's word, and answering
        // lends it this node's right to publish there (an empty message to `$JS.API.STREAM.DELETE.<stream>` deletes it).
        if (fromConnector) msg.respond(EMPTY);
      },
    });
    this.#lastTick = Date.now();
    this.#watchdog = setInterval(() => this.#checkSilence(), LIVENESS_TICK_MS).unref();
  }

  #checkSilence(): void {
    const now = Date.now();
    // A late tick means this process was stalled: heartbeats may be waiting unread, so judge on the next one.
    const stalled = now - this.#lastTick > 2 * LIVENESS_TICK_MS;
    this.#lastTick = now;
    if (stalled || this.#confirming || !this.#silentSince(now)) return;
    void this.#confirmSilence(now);
  }

  /** Whether a request with heartbeats was last heard from more than `CallLiveness.silenceMs` before `at`. */
  #silentSince(at: number): boolean {
    for (const pending of this.#pending.values()) if (pending.heard && at - pending.heard > CallLiveness.silenceMs) return true;
    return false;
  }

  /**
   * A silence is judged on what the bus has delivered, never on what waits in this connection's
   * socket: a beat sent in time may queue behind megabytes of other answers this process is still
   * working through (one tenant's large answers failed another's calls as lost, docs/operations.md).
   * nats-server writes a PONG after everything it sent before the PING: once the PONG is read, a
   * request still unheard since before the silence began has a silent responder. A PONG that was
   * slow in coming (a tick or more) says that this connection's data was queued: beats sent meanwhile
   * may still wait behind it (in their sender's socket, which nats-server reads no faster than this
   * node drains), so the bus is asked again, for at most another `silenceMs`. A PONG that does not
   * come while nothing else comes either is this node's own server failing (a frozen server keeps
   * its sockets open, and nats.js notices only after two missed pings, 20–30 s). Only when a
   * silence is found, never per call or per tick.
   */
  async #confirmSilence(at: number): Promise<void> {
    this.#confirming = true;
    const started = performance.now();
    let answered: boolean;
    for (;;) {
      const asked = performance.now();
      answered = await this.#ownBusAnswers();
      const now = performance.now();
      if (!answered || now - asked < LIVENESS_TICK_MS || now - started > CallLiveness.silenceMs || !this.#silentSince(at)) break;
    }
    this.#confirming = false;
    for (const [token, pending] of this.#pending) {
      if (!pending.heard || at - pending.heard <= CallLiveness.silenceMs) continue;
      const silent = `the responder holding the request sent no heartbeat for ${Date.now() - pending.heard} ms`;
      this.#fail(token, pending, answered ? new BusFailure("lost", silent) : new BusFailure("unresponsive", `${silent}, and the bus answered no PING within ${OWN_BUS_CHECK_MS} ms`));
    }
  }

  /** Whether this node's server answers a PING; waiting longer (up to `CallLiveness.silenceMs`) only while other data keeps coming from it. */
  async #ownBusAnswers(): Promise<boolean> {
    const pong = this.#nc.flush().then(
      () => true,
      () => false,
    );
    const started = performance.now();
    for (let read = this.#nc.stats().inBytes; ; ) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), OWN_BUS_CHECK_MS)));
      const answered = await Promise.race([pong, late]);
      clearTimeout(timer);
      if (answered !== undefined) return answered;
      const now = this.#nc.stats().inBytes;
      if (now === read || performance.now() - started > CallLiveness.silenceMs) return false;
      read = now;
    }
  }

  #failAll(reason: string): void {
    for (const [token, pending] of this.#pending) this.#fail(token, pending, new BusFailure("unavailable", reason));
  }

  #fail(token: string, pending: Pending, error: BusFailure): void {
    if (this.#pending.get(token) !== pending) return;
    this.#pending.delete(token);
    clearTimeout(pending.timer);
    pending.reject(error);
  }
}

const requesters = new WeakMap<NatsConnection, Requester>();

/** The connection's requester, created on first use. */
export function requesterOf(nc: NatsConnection): Requester {
  let requester = requesters.get(nc);
  if (!requester) requesters.set(nc, (requester = new Requester(nc)));
  return requester;
}

/** The connection came back from a disconnect less than `ms` ago (see `Requester.reconnectedWithin`). */
export const busReconnectedWithin = (nc: NatsConnection, ms: number): boolean => requesterOf(nc).reconnectedWithin(ms);
