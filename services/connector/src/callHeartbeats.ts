import { BusHeader, CallLiveness, Subjects } from "@manifold/contracts";
import type { HeaderReader, Msg, NatsConnection } from "@manifold/bus";

const EMPTY = new Uint8Array(0);
const BEATS = `${Subjects.callHeartbeats}.`;

/**
 * Heartbeats for the calls a worker holds (queued or running), on the subject each call names,
 * so the requester can tell a dead connector from a slow upstream. One timer for all calls; a
 * call answered within `CallLiveness.beatMs` costs a map entry and no message.
 */
export class CallHeartbeats {
  readonly #nc: NatsConnection;
  /** Each held call, where to beat for it, and when it was last beaten for (at first: received). */
  readonly #held = new Map<Msg, { subject: string; last: number }>();
  readonly #timer: NodeJS.Timeout;

  constructor(nc: NatsConnection) {
    this.#nc = nc;
    this.#timer = setInterval(() => this.#tick(), CallLiveness.beatMs / 3).unref();
  }

  /** Beats for `msg` until `release`, when its requester asked for heartbeats (on a subject of ours only). */
  hold(msg: Msg, headers: HeaderReader | undefined = msg.headers): void {
    const subject = headers?.get(BusHeader.heartbeat);
    if (subject?.startsWith(BEATS)) this.#held.set(msg, { subject, last: Date.now() });
  }

  release(msg: Msg): void {
    this.#held.delete(msg);
  }

  close(): void {
    clearInterval(this.#timer);
    this.#held.clear();
  }

  #tick(): void {
    if (this.#held.size === 0) return;
    const now = Date.now();
    for (const held of this.#held.values()) {
      if (now - held.last < CallLiveness.beatMs) continue;
      held.last = now;
      try {
        this.#nc.publish(held.subject, EMPTY);
      } catch {
        // A closed connection carries no answer either; the requester notices the silence.
      }
    }
  }
}
