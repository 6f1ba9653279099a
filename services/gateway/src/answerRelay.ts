import { jsonOrNothing, type NatsConnection } from "@manifold/bus";
import { SessionAnswer, Subjects } from "@manifold/contracts";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import type { TransportSendOptions } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import type { Subscription } from "@nats-io/transport-node";

/**
 * A 2025 session's server-to-client requests (elicitation/create, sampling/createMessage,
 * roots/list) go out from the replica running the call, whose SDK server alone waits for their
 * answers; the agent POSTs each answer anew, and without stickiness it reaches any replica. So the
 * ids go out naming the replica that asked, `<replica>.<id>`, and whichever replica an answer
 * reaches hands it to that one (over the bus when it is another). Before, another replica's own SDK
 * server answered 202 and dropped it: the asking replica waited out the call's time limit and the
 * upstream heard a refusal (about half the answers with two replicas).
 */

/** An id a replica's requests carry on the wire: the replica (a `GatewayReplicaId`), then the SDK's own (numeric) id. */
const WIRE_ID = /^([A-Za-z0-9]{1,64})\.(0|[1-9][0-9]{0,14})$/;

/** Why an agent's answer went nowhere (`manifold_gateway_answers_dropped_total`). */
export type AnswerDropped = "unasked" | "unsent";

/**
 * The transport of one 2025 session on this replica: its server-to-client requests go out with
 * wire ids, and an answer is handed to the SDK server only for a request of this session still
 * waiting (another session's id, a late or repeated answer, is none of them).
 */
export class AskingTransport extends WebStandardStreamableHTTPServerTransport {
  /** The SDK's ids of this session's requests still waiting for an answer. */
  readonly #waiting = new Set<number>();
  readonly #replica: string;

  constructor(replica: string, options: ConstructorParameters<typeof WebStandardStreamableHTTPServerTransport>[0]) {
    super(options);
    this.#replica = replica;
  }

  override send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    const { id, method, params } = message as { id?: unknown; method?: unknown; params?: { requestId?: unknown } };
    if (typeof method === "string" && typeof id === "number") {
      this.#waiting.add(id);
      return super.send({ ...message, id: `${this.#replica}.${id}` } as JSONRPCMessage, options).catch((error: unknown) => {
        this.#waiting.delete(id);
        throw error;
      });
    }
    // The SDK gives up a request (its time limit, its call cancelled) by telling the agent so: named as the agent knows it.
    const given = params?.requestId;
    if (method === "notifications/cancelled" && typeof given === "number" && this.#waiting.delete(given)) {
      return super.send({ ...message, params: { ...params, requestId: `${this.#replica}.${given}` } } as JSONRPCMessage, options);
    }
    return super.send(message, options);
  }

  /** Hands the answer to request `id` of this session to its SDK server; false when no such request waits. */
  answer(id: number, message: JSONRPCMessage): boolean {
    if (!this.#waiting.delete(id)) return false;
    this.onmessage?.({ ...message, id } as JSONRPCMessage);
    return true;
  }
}

const isAnswer = (m: unknown): m is JSONRPCMessage & { id: unknown } =>
  typeof m === "object" && m !== null && (m as { method?: unknown }).method === undefined && ("result" in m || "error" in m);

/** The replica that gave an answer's id, and the SDK's id there; undefined for an id no replica gave. */
function askedBy(id: unknown): { replica: string; id: number } | undefined {
  const match = typeof id === "string" ? WIRE_ID.exec(id) : null;
  return match ? { replica: match[1]!, id: Number(match[2]) } : undefined;
}

/**
 * Sorts the answers out of a 2025 agent's POSTs: each goes to the session's request on the replica
 * its id names. The session is the one the POST was admitted for: an agent answers only for its own.
 */
export class AnswerRelay {
  readonly #nc: NatsConnection;
  readonly #replica: string;
  readonly #dropped: (reason: AnswerDropped) => void;
  readonly #subscription: Subscription;

  /** `held`: the transport of a session this replica holds. */
  constructor(nc: NatsConnection, replica: string, held: (session: string) => AskingTransport | undefined, dropped: (reason: AnswerDropped) => void) {
    this.#nc = nc;
    this.#replica = replica;
    this.#dropped = dropped;
    this.#subscription = nc.subscribe(Subjects.sessionAnswer(replica), {
      callback: (err, msg) => {
        if (err) return;
        const relayed = SessionAnswer.safeParse(jsonOrNothing(msg.string())).data;
        const asked = askedBy(relayed?.answer.id);
        // Only a request of the session the answer was admitted for, on the replica that holds it.
        const transport = asked?.replica === replica ? held(relayed!.session) : undefined;
        if (!transport?.answer(asked!.id, relayed!.answer as JSONRPCMessage)) dropped("unasked");
      },
    });
  }

  /**
   * The POST's body without its answers, each answer passed on: undefined when nothing is left for
   * the session's SDK server (the POST is answered 202, as the SDK answers one).
   */
  route(session: string, transport: AskingTransport, body: unknown): unknown {
    const messages = Array.isArray(body) ? body : [body];
    if (!messages.some(isAnswer)) return body;
    const rest: unknown[] = [];
    for (const m of messages) {
      if (isAnswer(m)) this.#pass(session, transport, m);
      else rest.push(m);
    }
    if (rest.length === 0) return undefined;
    return Array.isArray(body) ? rest : rest[0];
  }

  /** A session's transport on this replica: its requests name this replica. */
  asking(options: ConstructorParameters<typeof WebStandardStreamableHTTPServerTransport>[0]): AskingTransport {
    return new AskingTransport(this.#replica, options);
  }

  close(): void {
    this.#subscription.unsubscribe();
  }

  #pass(session: string, transport: AskingTransport, answer: JSONRPCMessage & { id: unknown }): void {
    const asked = askedBy(answer.id);
    // An id no replica gave answers nothing (and names no subject: the pattern is a replica id's).
    if (!asked) return this.#dropped("unasked");
    if (asked.replica === this.#replica) {
      if (!transport.answer(asked.id, answer)) this.#dropped("unasked");
      return;
    }
    try {
      this.#nc.publish(Subjects.sessionAnswer(asked.replica), JSON.stringify({ session, answer }));
    } catch {
      // Larger than the bus takes, or the connection is closed: the asking replica's request times out as before.
      this.#dropped("unsent");
    }
  }
}
