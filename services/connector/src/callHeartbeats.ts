import { BusHeader, CallLiveness } from "@manifold/contracts";
import type { Msg, NatsConnection } from "@manifold/bus";
import { headers as createHeaders } from "@nats-io/transport-node";

const EMPTY = new Uint8Array(0);

/**
 * Heartbeats for the calls a worker holds (queued or running), on each call's reply subject,
 * so the requester can tell a dead connector from a slow upstream. One timer for all calls; a
 * call answered within `CallLiveness.beatMs` costs a map entry and no message.
 */
export class CallHeartbeats {
  readonly #nc: NatsConnection;
  /** Each held call and when it was last beaten for (at first: received). */
  readonly #held = new Map<Msg, number>();
  readonly #timer: NodeJS.Timeout;
  readonly #beat = createHeaders();

  constructor(nc: NatsConnection) {
    this.#nc = nc;
    this.#beat.set(BusHeader.heartbeat, "1");
    this.#timer = setInterval(() => this.#tick(), CallLiveness.beatMs / 3).unref();
  }

  /** Beats for `msg` until `release`, when its requester asked for heartbeats. */
  hold(msg: Msg): void {
    if (msg.reply && msg.headers?.has(BusHeader.heartbeat)) this.#held.set(msg, Date.now());
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
    for (const [msg, last] of this.#held) {
      if (now - last < CallLiveness.beatMs) continue;
      this.#held.set(msg, now);
      try {
        this.#nc.publish(msg.reply!, EMPTY, { headers: this.#beat });
      } catch {
        // A closed connection carries no answer either; the requester notices the silence.
      }
    }
  }
}
