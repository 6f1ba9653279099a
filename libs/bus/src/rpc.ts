import { BusHeader, ErrorReply, ManifoldError, isErrorCode } from "@manifold/contracts";
import { Attr, injectTraceContext, SpanKind, traced } from "@manifold/telemetry";
import { headers as createHeaders, type Msg, type NatsConnection, type MsgHdrs } from "@nats-io/transport-node";
import { OutgoingHeaders } from "./headers.js";
import { jsonOrNothing } from "./messageJson.js";
import { BusFailure, OWN_BUS_CHECK_MS, requesterOf } from "./requester.js";

export interface RequestOptions {
  /** The responder's time budget, sent to it in a header. */
  timeoutMs: number;
  /** How long to wait for the reply; defaults to `timeoutMs`. */
  busTimeoutMs?: number;
  /** Names the responder in errors, e.g. `upstream 'github'`. */
  target: string;
  /** Sent with the request; headers given as `OutgoingHeaders` are used up by it (the timeout, trace context and heartbeat subject are appended to them): one instance per request. */
  headers?: Record<string, string> | OutgoingHeaders;
  /**
   * Ask the responder for heartbeats while it holds the request, and give up when they stop
   * (`CallLiveness`): the upstream whose connectors answer it, the only ones whose beats count.
   */
  heartbeats?: string | undefined;
}

/**
 * One request/reply round trip. Replies flagged with the `Manifold-Error` header become
 * ManifoldErrors; bus failures are mapped to codes that say which side was missing.
 */
export function busRequest(nc: NatsConnection, subject: string, payload: string | Uint8Array, options: RequestOptions): Promise<Msg> {
  const attributes = () => ({ [Attr.messagingSystem]: "nats", [Attr.messagingDestination]: subject, [Attr.messagingOperation]: "send" });
  return traced(`send ${subject}`, SpanKind.PRODUCER, attributes, async () => {
    const given = options.headers;
    const hdrs = given instanceof OutgoingHeaders ? given : new OutgoingHeaders();
    hdrs.append(BusHeader.timeoutMs, String(options.timeoutMs));
    if (given && !(given instanceof OutgoingHeaders)) for (const k in given) hdrs.append(k, given[k]!);
    // The consumer's span becomes a child of this producer span.
    injectTraceContext(hdrs);
    let reply: Msg;
    try {
      reply = await requesterOf(nc).request(subject, payload, options.busTimeoutMs ?? options.timeoutMs, hdrs, options.heartbeats);
    } catch (error) {
      throw mapRequestError(error, options);
    }
    const code = reply.headers?.get(BusHeader.errorCode);
    if (code) throw decodeErrorReply(code, reply);
    return reply;
  });
}

function mapRequestError(error: unknown, { target, timeoutMs }: RequestOptions): ManifoldError {
  const reason = error instanceof BusFailure ? error.reason : "unavailable";
  if (reason === "no_responders") {
    return new ManifoldError("upstream_unavailable", `no connector is serving ${target}`, { reason: "no_connector" }, { cause: error });
  }
  if (reason === "lost") {
    const message = `the connector holding the call to ${target} stopped answering (it stopped, or lost the bus); the call's outcome is unknown`;
    return new ManifoldError("upstream_unavailable", message, { reason: "connector_lost" }, { cause: error });
  }
  if (reason === "unresponsive") {
    const message = `the message bus stopped answering this node while the call to ${target} was held (no PONG within ${OWN_BUS_CHECK_MS} ms); the call's outcome is unknown`;
    return new ManifoldError("bus_unavailable", message, { reason: "bus_unresponsive" }, { cause: error });
  }
  if (reason === "timeout") {
    return new ManifoldError("upstream_timeout", `${target} did not answer within ${timeoutMs} ms`, { timeoutMs }, { cause: error });
  }
  if (reason === "too_large" && error instanceof BusFailure) {
    const { bytes, maxBytes } = error;
    return new ManifoldError("payload_too_large", tooLargeMessage(`the request for ${target} is ${bytes} bytes`, maxBytes), { bytes, maxBytes }, { cause: error });
  }
  return busUnavailable(`request to ${target}`, error);
}

/**
 * The one mapping of a bus operation that failed because NATS is unreachable, too slow or
 * recovering (a timeout, a closed or reconnecting connection, JetStream or a KV bucket not
 * answering): the retryable `bus_unavailable`, never a parse or internal error. The cause's
 * text stays out of the message (it may name keys); it is kept as `cause` for the logs.
 */
export function busUnavailable(what: string, error: unknown): ManifoldError {
  if (error instanceof ManifoldError) return error;
  return new ManifoldError("bus_unavailable", `message bus ${what} failed`, undefined, { cause: error });
}

/** The one wording of a message the bus cannot carry, for requests and results alike. */
export const tooLargeMessage = (what: string, maxBytes: number | undefined) =>
  `${what}, more than the message bus carries (${maxBytes} bytes, the NATS servers' max_payload); raise max_payload or send less`;

function decodeErrorReply(code: string, reply: Msg): ManifoldError {
  const body = ErrorReply.safeParse(jsonOrNothing(reply.string()));
  const message = body.success ? body.data.message : "error reply without a readable body";
  const data = body.success && body.data.data && typeof body.data.data === "object" ? (body.data.data as Record<string, unknown>) : undefined;
  return new ManifoldError(isErrorCode(code) ? code : "internal_error", message, data);
}

/** Answers a request with an error the requester's `busRequest` turns back into a ManifoldError. */
export function replyWithError(msg: Msg, error: ManifoldError): void {
  const hdrs: MsgHdrs = createHeaders();
  hdrs.set(BusHeader.errorCode, error.code);
  const body: ErrorReply = { message: error.message, ...(error.data ? { data: error.data } : {}) };
  msg.respond(JSON.stringify(body), { headers: hdrs });
}
