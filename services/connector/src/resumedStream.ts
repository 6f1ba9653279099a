import { NOTIFICATION_BYTES_PER_CALL } from "@manifold/contracts";

/** Log messages a resumed stream may hold back, besides their bytes (`NOTIFICATION_BYTES_PER_CALL`). */
const MAX_HELD = 64;

/** Why a question on a resumed stream is refused: the upstream is told, as the refusal's message. */
export const RESUMED_QUESTION = "a question on a resumed stream cannot be shown to be this call's";

/** What of a message on the stream tells which call it is of. */
interface Named {
  id?: unknown;
  method?: string;
  params?: { progressToken?: unknown };
}

/**
 * A 2025 call's stream as resumed by a GET with `Last-Event-ID` (SEP-1699), on a session other
 * calls share. The revision asks the upstream to replay that stream alone, but an upstream whose
 * event store replays the whole session after the id sends other calls' messages too: their
 * answers and progress name them and are not taken, but a log message names no call, and each was
 * relayed to this call's agent as its own. So a resumed stream's log messages are held until the
 * call's answer, and relayed then only if nothing on the stream named another call (an answer of
 * another id, progress of another token); otherwise they are dropped, as no call's. A question the
 * upstream asks on it cannot wait for the answer to tell (the upstream waits for it), and 2025-11-25
 * puts nothing on the wire that names the request a question serves (the SDK's related request id
 * only picks the stream). So it is put to this call's agent only when it is provably harmless:
 * nothing on the stream was another call's, every call that ran on the session since this one
 * began is this call's caller's, and its id was seen on no other call's stream
 * (`SessionQuestions.harmless`): then it can be no other tenant's (the SDK's own server asking
 * after `closeSSEStream` is answered). Otherwise it is refused (`RESUMED_QUESTION`, logged).
 */
export class ResumedStream {
  #foreign = false;
  #held: unknown[] = [];
  #heldBytes = 0;

  constructor(readonly callId: string) {}

  /** Whether the stream has carried another call's answer or progress. */
  get foreign(): boolean {
    return this.#foreign;
  }

  /** Notes a message the stream carried: one naming another call shows the stream is not this call's alone. */
  sees(message: Named): void {
    const other =
      (message.method === undefined && message.id !== undefined && message.id !== this.callId) ||
      (message.method === "notifications/progress" && message.params?.progressToken !== undefined && message.params.progressToken !== this.callId);
    if (!other) return;
    this.#foreign = true;
    this.#held = [];
    this.#heldBytes = 0;
  }

  /** Holds a log message (`bytes`: its event's size) until the answer; past the bounds, or on a stream of other calls, dropped. */
  hold(params: unknown, bytes: number): void {
    if (this.#foreign || this.#held.length >= MAX_HELD || this.#heldBytes + bytes > NOTIFICATION_BYTES_PER_CALL) return;
    this.#held.push(params);
    this.#heldBytes += bytes;
  }

  /** The log messages to relay once the answer is in: none when the stream carried another call's. */
  release(): unknown[] {
    const held = this.#foreign ? [] : this.#held;
    this.#held = [];
    this.#heldBytes = 0;
    return held;
  }
}
