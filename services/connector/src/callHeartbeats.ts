import { BusHeader, CallLiveness, Subjects, upstreamScoped } from "@manifold/contracts";
import { inboxPrefixOf, type HeaderReader, type Msg, type NatsConnection } from "@manifold/bus";
import { createInbox } from "@nats-io/transport-node";

const EMPTY = new Uint8Array(0);

/** One held call's heartbeats: where to beat, when last beaten for (at first: received), and its neighbours. */
export interface Beat {
  readonly subject: string;
  /** Cancelled once nobody listens on `subject` any more (the requester is gone). */
  readonly work: { cancel(): void } | undefined;
  /** Names the beat in the bus's answer to it (set when it first beats). */
  token: string | undefined;
  last: number;
  prev: Beat | undefined;
  next: Beat | undefined;
}

/**
 * Heartbeats for the calls a worker holds (queued or running), on the subject each call names,
 * so the requester can tell a dead connector from a slow upstream. One timer for all calls; a
 * call answered within `CallLiveness.beatMs` costs a list node and no message.
 * A beat also asks whether anyone still listens: it names a reply subject, and nats-server answers
 * "no responders" only when the requester's subscription is gone (its gateway died, or lost the bus
 * and failed its calls already). That call is cancelled: before, a gateway killed holding a call left
 * it running upstream, holding its slots, to its end (`sessionsAcrossReplicas.e2e`). A requester that
 * is there answers the beat, empty (nats-server keeps an unanswered reply subject for an hour), and
 * such an answer is passed over here.
 * A list rather than a map keyed by message: no hashing and no table rebuilt as calls come and go,
 * and a released node points at nothing (an outgrown map table stays pointing at its successor, so
 * it can keep later messages reachable from old garbage; measured, no clear change: docs/performance.md).
 */
export class CallHeartbeats {
  readonly #nc: NatsConnection;
  /** Where this upstream's connectors may beat (nats-server refuses the rest): a call naming another subject gets none. */
  readonly #under: string;
  #head: Beat | undefined;
  readonly #timer: NodeJS.Timeout;
  /** Where the bus says a beat found no listener (`<inbox>.<token>`), subscribed with the first beat sent. */
  #answers: string | undefined;
  /** The beats sent at least once, by token: what an answer names. */
  readonly #sent = new Map<string, Beat>();
  #next = 0;
  /** When the beat timer last ran (`performance.now()`: a clock no NTP step moves). */
  #tickedAt = performance.now();
  /** Set from a stall's end until the bus has answered a PING sent then (`readsStale`). */
  #draining = false;

  constructor(nc: NatsConnection, upstream: string) {
    this.#nc = nc;
    this.#under = `${upstreamScoped(Subjects.callHeartbeats, upstream)}.`;
    this.#timer = setInterval(() => this.#tick(), CallLiveness.beatMs / 3).unref();
  }

  /** Beats for `msg` until `release`, when its requester asked for heartbeats (on a subject of ours only); `work` is cancelled if the requester is found gone. */
  hold(msg: Msg, headers: HeaderReader | undefined = msg.headers, work?: { cancel(): void }): Beat | undefined {
    const subject = headers?.get(BusHeader.heartbeat);
    if (!subject?.startsWith(this.#under)) return undefined;
    const beat: Beat = { subject, work, token: undefined, last: Date.now(), prev: undefined, next: this.#head };
    if (this.#head) this.#head.prev = beat;
    this.#head = beat;
    return beat;
  }

  release(beat: Beat | undefined): void {
    if (!beat || (beat.prev === undefined && this.#head !== beat)) return;
    if (beat.token !== undefined) this.#sent.delete(beat.token);
    if (beat.prev) beat.prev.next = beat.next;
    else this.#head = beat.next;
    if (beat.next) beat.next.prev = beat.prev;
    beat.prev = beat.next = undefined;
  }

  /**
   * Whether a call read now may have waited out a stall of this process in its socket: a stall
   * longer than requesters wait for a beat (SIGSTOP, a paused VM), after which every requester that
   * waited on it has given up, and may have retried elsewhere. From the stall's end, what nats-server
   * wrote before the PONG to a PING sent then is all such; after it, what comes is new.
   */
  readsStale(): boolean {
    return this.#draining || performance.now() - this.#tickedAt > CallLiveness.silenceMs;
  }

  close(): void {
    clearInterval(this.#timer);
    this.#head = undefined;
    this.#sent.clear();
  }

  #tick(): void {
    const ticked = performance.now();
    if (ticked - this.#tickedAt > CallLiveness.silenceMs && !this.#draining) this.#drain();
    this.#tickedAt = ticked;
    const now = Date.now();
    for (let beat = this.#head; beat; beat = beat.next) {
      if (now - beat.last < CallLiveness.beatMs) continue;
      beat.last = now;
      if (beat.token === undefined) this.#sent.set((beat.token = (++this.#next).toString(36)), beat);
      try {
        this.#nc.publish(beat.subject, EMPTY, { reply: `${this.#answersSubject()}.${beat.token}` });
      } catch {
        // A closed connection carries no answer either; the requester notices the silence.
      }
    }
  }

  /** Marks reads stale until the bus answers a PING (bounded: a bus that does not answer carries no calls either). */
  #drain(): void {
    this.#draining = true;
    const done = () => {
      clearTimeout(bound);
      this.#draining = false;
    };
    const bound = setTimeout(done, CallLiveness.silenceMs);
    // (A closed connection may refuse at once: a timer must not throw.)
    Promise.resolve()
      .then(() => this.#nc.flush())
      .then(done, done);
  }

  /** The reply subject of beats, subscribed once: a 503 without data is nats-server saying nobody listens. */
  #answersSubject(): string {
    if (this.#answers) return this.#answers;
    const answers = (this.#answers = createInbox(inboxPrefixOf(this.#nc)));
    this.#nc.subscribe(`${answers}.*`, {
      callback: (_err, msg) => {
        if (msg.data.length !== 0 || msg.headers?.code !== 503) return;
        const beat = this.#sent.get(msg.subject.slice(answers.length + 1));
        if (!beat) return;
        this.release(beat);
        beat.work?.cancel();
      },
    });
    return answers;
  }
}
