import {
  BusHeader,
  InteractionCapabilities,
  LOG_PREFIX,
  ManifoldError,
  PROGRESS_PREFIX,
  invalidRequestState,
  MAX_INPUT_ROUNDS,
  mayAsk,
  ResumeRequest,
  Subjects,
  type InputRequest,
  type InputRequiredReply,
  upstreamScoped,
} from "@manifold/contracts";
import { answerable, replyWithError, type HeaderReader, type Msg, type NatsConnection } from "@manifold/bus";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { randomBytes } from "node:crypto";
import type { Beat, CallHeartbeats } from "./callHeartbeats.js";
import type { Cancellation } from "./cancellation.js";
import type { RoundsOut } from "./roundsOut.js";
import { subjectUnder, type CredentialsSent, type Relay } from "./callNotifications.js";
import { redactValue } from "./withheldValues.js";


/** Answers to one round of server-to-client requests, by the round's keys (a missing key was not answered). */
export type InputResponses = Record<string, Record<string, unknown>>;
/** Relays one round of an upstream's server-to-client requests to the agent that made the call. */
export type Ask = (requests: Record<string, InputRequest>) => Promise<InputResponses>;
/** A call whose agent may be asked: what it may be asked, and how. */
export interface Interaction {
  readonly ask: Ask;
  readonly capabilities: InteractionCapabilities;
}

/** The interactions a call's header allows, or none when it names none or is malformed (hostile bytes). */
function capabilitiesOf(headers: HeaderReader | undefined): InteractionCapabilities | undefined {
  const raw = headers?.get(BusHeader.interactions);
  if (!raw || raw.length > 1024) return undefined;
  try {
    const parsed = InteractionCapabilities.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export interface HeldCallContext {
  nc: NatsConnection;
  upstream: string;
  replica: string;
  beats: CallHeartbeats;
  /** When the call's budget runs out (epoch ms): a round not answered by then fails. */
  deadline: number;
  cancellation: Cancellation | undefined;
  /** Each caller's rounds out on this replica, bounded. */
  rounds: RoundsOut;
}

/**
 * One call this connector replica holds, and where its next answer goes. At first that is the
 * call's own bus request; when the upstream asks the agent something (a 2025 server-to-client
 * request on the call, or a 2026-07-28 `input_required` round), the question is that request's
 * answer (`Manifold-Input-Required`) and the call stays held here until the answers arrive on
 * the round's resume subject, from whichever gateway replica the agent reached, and only from
 * the same caller. That resume request is then what the next answer (the result, or another
 * round) goes to. A call whose agent may not be asked anything never leaves the first state.
 */
export class HeldCall {
  readonly capabilities: InteractionCapabilities | undefined;
  /**
   * Set when the agent may be asked for its roots: the call then runs on an upstream session of
   * its caller's own. Roots are session state in 2025 revisions, which an upstream may keep for
   * the session (server-everything keeps the first answer), so on a shared session one agent's
   * roots would answer another agent's calls.
   */
  readonly sessionPartition: string | undefined;
  readonly #caller: string | undefined;
  /** The bytes of the call's bus request, which the call keeps while a round is out (`RoundsOut`). */
  readonly #bytes: number;
  /** The bytes of the latest answers, which the call keeps too (its next request carries them). */
  #answerBytes = 0;
  readonly #context: HeldCallContext;
  #reply: Msg;
  /** The heartbeats for the reply, while the call is held for it. */
  #beat: Beat | undefined;
  /** The reply is spent on a round nobody resumed: the call's result has nowhere to go. */
  #orphaned = false;
  /** A round's questions went out on the reply and its answers have not come back. */
  #roundOut = false;
  /** The call's outcome, when it came while a round was out. */
  #outcome: (() => void) | undefined;
  /** The outcome has been sent: the call is over, and a question asked since has no one to reach. */
  #ended = false;
  /** The round under way: a question asked meanwhile waits for its answers (one reply carries one round). */
  #rounds: Promise<unknown> | undefined;
  /** Rounds asked so far, queued ones included: an upstream that floods questions is refused past the bound. */
  #asked = 0;
  /**
   * The session the call runs on, once it is known: its questions are cleaned of the credentials that
   * session sent, as its result is (an upstream's debug question quoting its request's headers).
   */
  sentBy: CredentialsSent | undefined;
  /**
   * Where the call's progress and log messages go, when its caller asked for them. A 2026-07-28
   * retry names its own subjects, and they move there: the first request's were read no longer, and
   * the work after an answered round reported to nobody.
   */
  relays: { readonly progress: Relay | undefined; readonly log: Relay | undefined } | undefined;

  /**
   * `headers`: the request's, when the caller has read them already (`readHeaders`); `caller`: their
   * `Manifold-Caller`, when it has read that too (a header read is ~500 instructions).
   */
  constructor(msg: Msg, context: HeldCallContext, headers: HeaderReader | undefined = msg.headers, caller: string | undefined = headers?.get(BusHeader.caller) || undefined) {
    this.#reply = msg;
    this.#bytes = msg.data.length;
    this.#context = context;
    // Nobody waiting for the answer any more (its gateway died, or lost the bus and failed the call) stops the work.
    this.#beat = context.beats.hold(msg, headers, context.cancellation);
    this.#caller = caller;
    this.capabilities = this.#caller ? capabilitiesOf(headers) : undefined;
    this.sessionPartition = this.capabilities?.roots ? this.#caller : undefined;
  }

  /** The bus request the call's next answer goes to. */
  get reply(): Msg {
    return this.#reply;
  }

  /** The call is answered (or given up): its requester hears no more heartbeats. */
  release(): void {
    this.#context.beats.release(this.#beat);
    this.#beat = undefined;
  }

  /**
   * Sends the call's outcome. While a round is out (the reply spent on its questions) the outcome
   * waits for the round's answers and goes to them: an upstream may ask something its call does not
   * wait for (server-everything's roots/list when a session starts) and end the call first. Sent to
   * the spent reply, the outcome was lost and the agent's answers waited out the call's budget.
   */
  respond(bytes: Uint8Array, headers?: ReturnType<typeof natsHeaders>): void {
    this.#end(() => this.#reply.respond(bytes, headers ? { headers } : undefined));
  }

  fail(error: ManifoldError): void {
    this.#end(() => replyWithError(this.#reply, error));
  }

  #end(send: () => void): void {
    if (this.#orphaned) return;
    this.#ended = true;
    if (this.#roundOut) this.#outcome = send;
    else send();
  }

  /**
   * Relays a round to the agent; rejects (and the upstream hears a refusal) when the agent may not
   * be asked or does not answer. A question asked while another round is out waits for that
   * round's answers and goes out on the request that brought them: sent at once, it went to the
   * spent reply, and an upstream waiting for both answers waited out the call's budget.
   */
  readonly ask: Ask = (requests) => {
    if (++this.#asked > MAX_INPUT_ROUNDS) return Promise.reject(new ManifoldError("forbidden", `request refused: the upstream asked for input more than ${MAX_INPUT_ROUNDS} times in one call`));
    // Most calls never ask: the chain of rounds starts with the first question.
    const round = (this.#rounds ?? Promise.resolve()).then(() => this.#askNow(requests));
    this.#rounds = round.catch(() => undefined);
    return round;
  };

  /** A retry's own notification subjects, where it names them (under the same prefixes as the call's). */
  #follow(headers: HeaderReader | undefined): void {
    if (!this.relays || !headers) return;
    const { progress, log } = this.relays;
    const { upstream } = this.#context;
    const progressTo = progress && subjectUnder(upstreamScoped(PROGRESS_PREFIX, upstream), headers.get(BusHeader.progressSubject));
    if (progressTo) progress.subject = progressTo;
    const logTo = log && subjectUnder(upstreamScoped(LOG_PREFIX, upstream), headers.get(BusHeader.logSubject));
    if (logTo) log.subject = logTo;
  }

  #askNow(requests: Record<string, InputRequest>): Promise<InputResponses> {
    const refused = Object.values(requests).find((request) => !mayAsk(this.capabilities, request));
    if (refused || this.#orphaned || this.#ended) {
      const why = refused ? `the caller did not declare '${refused.method}' or its virtual server does not allow it` : this.#ended ? "the call has ended" : "the caller is gone";
      return Promise.reject(new ManifoldError("forbidden", `request refused: ${why}`));
    }
    const { nc, upstream, replica, beats, deadline, cancellation, rounds } = this.#context;
    // Only a caller may be asked (`capabilities` needs one); its rounds out here are bounded.
    let counted: () => void;
    try {
      counted = rounds.take(this.#caller!, this.#bytes + this.#answerBytes);
    } catch (error) {
      return Promise.reject(error);
    }
    const subject = Subjects.upstreamResume(upstream, replica, randomBytes(16).toString("base64url"));
    return new Promise<InputResponses>((resolve, reject) => {
      /** The round is over (answered, timed out, cancelled): an agent's retry with its state still in flight is told so. */
      let over = false;
      const finish = (error?: ManifoldError) => {
        over = true;
        counted();
        clearTimeout(timer);
        cancellation?.offCancel(cancelled);
        // Drained, not dropped: a second retry already on its way here (two at once with one state) is
        // answered below. Dropped, it got no reply and waited for heartbeats, then read "connector lost".
        void sub.drain().catch(() => undefined);
        if (error) {
          this.#orphaned = true;
          reject(error);
        }
      };
      let sub: ReturnType<NatsConnection["subscribe"]>;
      try {
        sub = nc.subscribe(subject, {
          callback: (err, msg) => {
            if (err) return finish(new ManifoldError("upstream_error", "the answer to the upstream's request could not be received"));
            if (!answerable(msg, "gateway")) return;
            // Only the caller that was asked may answer (the gateway vouches for it, and the subject is unguessable).
            if (msg.headers?.get(BusHeader.caller) !== this.#caller) {
              return replyWithError(msg, new ManifoldError("forbidden", "this round belongs to another caller"));
            }
            if (over) return replyWithError(msg, invalidRequestState("this round of questions is over (answered already, or its call ended)"));
            let answers: ResumeRequest;
            try {
              answers = ResumeRequest.parse(msg.json());
            } catch {
              return replyWithError(msg, new ManifoldError("invalid_request", "the answers are not an object of input responses"));
            }
            finish();
            this.#follow(msg.headers);
            this.#reply = msg;
            this.#answerBytes = msg.data.length;
            this.#roundOut = false;
            resolve(answers.inputResponses);
            const outcome = this.#outcome;
            this.#outcome = undefined;
            if (outcome) outcome();
            else this.#beat = beats.hold(msg, undefined, cancellation);
          },
        });
      } catch {
        // A closed or draining connection: the round never goes out, and its place is given back.
        over = true;
        counted();
        reject(new ManifoldError("upstream_error", "the upstream's request could not be relayed"));
        return;
      }
      const timer = setTimeout(() => finish(new ManifoldError("upstream_timeout", "the caller did not answer the upstream's request in time")), Math.max(deadline - Date.now(), 1));
      const cancelled = () => finish(new ManifoldError("upstream_error", "the call was cancelled"));
      cancellation?.onCancel(cancelled);
      // Cancelled already: `finish` has run and refused the round; nothing goes to the agent.
      if (over) return;
      const hdrs = natsHeaders();
      hdrs.set(BusHeader.inputRequired, "1");
      try {
        // Only the questions are cleaned, not the round's keys (the upstream's, which the answers must
        // name) or its resume subject (ours): changed, they would leave the round unanswerable.
        const sent = this.sentBy?.credentials;
        const questions = sent?.length ? Object.fromEntries(Object.entries(requests).map(([key, request]) => [key, redactValue(request, sent)])) : requests;
        const reply: InputRequiredReply = { inputRequests: questions, resume: subject };
        this.#reply.respond(Buffer.from(JSON.stringify(reply)), { headers: hdrs });
        this.#roundOut = true;
      } catch {
        finish(new ManifoldError("upstream_error", "the upstream's request could not be relayed"));
      }
      this.release();
    });
  }
}
