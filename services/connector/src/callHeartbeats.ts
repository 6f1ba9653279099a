import { BusHeader, CallLiveness, Subjects, upstreamScoped } from "@manifold/contracts";
import type { HeaderReader, Msg, NatsConnection } from "@manifold/bus";

const EMPTY = new Uint8Array(0);

/** One held call's heartbeats: where to beat, when last beaten for (at first: received), and its neighbours. */
export interface Beat {
  readonly subject: string;
  last: number;
  prev: Beat | undefined;
  next: Beat | undefined;
}

/**
 * Heartbeats for the calls a worker holds (queued or running), on the subject each call names,
 * so the requester can tell a dead connector from a slow upstream. One timer for all calls; a
 * call answered within `CallLiveness.beatMs` costs a list node and no message.
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

  constructor(nc: NatsConnection, upstream: string) {
    this.#nc = nc;
    this.#under = `${upstreamScoped(Subjects.callHeartbeats, upstream)}.`;
    this.#timer = setInterval(() => this.#tick(), CallLiveness.beatMs / 3).unref();
  }

  /** Beats for `msg` until `release`, when its requester asked for heartbeats (on a subject of ours only). */
  hold(msg: Msg, headers: HeaderReader | undefined = msg.headers): Beat | undefined {
    const subject = headers?.get(BusHeader.heartbeat);
    if (!subject?.startsWith(this.#under)) return undefined;
    const beat: Beat = { subject, last: Date.now(), prev: undefined, next: this.#head };
    if (this.#head) this.#head.prev = beat;
    this.#head = beat;
    return beat;
  }

  release(beat: Beat | undefined): void {
    if (!beat || (beat.prev === undefined && this.#head !== beat)) return;
    if (beat.prev) beat.prev.next = beat.next;
    else this.#head = beat.next;
    if (beat.next) beat.next.prev = beat.prev;
    beat.prev = beat.next = undefined;
  }

  close(): void {
    clearInterval(this.#timer);
    this.#head = undefined;
  }

  #tick(): void {
    const now = Date.now();
    for (let beat = this.#head; beat; beat = beat.next) {
      if (now - beat.last < CallLiveness.beatMs) continue;
      beat.last = now;
      try {
        this.#nc.publish(beat.subject, EMPTY);
      } catch {
        // A closed connection carries no answer either; the requester notices the silence.
      }
    }
  }
}
