import type { JSONRPCMessage, Transport } from "@modelcontextprotocol/client";

/**
 * What an upstream may ask of this client outside a call's own stream (stdio, SSE, a 2025
 * session's GET stream), in a session's life: every request it sends is answered, a refusal
 * too, and each answer to a 2025 HTTP upstream is a POST of its own. 5,000 tiny requests on a GET
 * stream opened 5,005 sockets at once from the connector (the file descriptors NATS and every
 * other upstream need). Past these bounds a request is dropped unanswered: the upstream's own
 * timeout tells it so.
 */
export const SESSION_REQUESTS = {
  /** Answers being sent (or asked for) at once. */
  inFlight: 16,
  /** Requests taken in one second. */
  perSecond: 64,
} as const;

/**
 * How many requests an upstream may send on one call's own stream (direct calls): a call asks its
 * agent at most `MAX_INPUT_ROUNDS` rounds, and anything past four times that is an upstream
 * burning the connector's time (100,000 requests in one call were each answered with a POST, and
 * another tenant's calls slowed 50-fold).
 */
export const CALL_REQUESTS = 32;

const isRequest = (message: JSONRPCMessage): message is JSONRPCMessage & { id: string | number; method: string } => "method" in message && "id" in message;
const isResponse = (message: JSONRPCMessage): message is JSONRPCMessage & { id: string | number } => !("method" in message) && "id" in message;

/**
 * Bounds the upstream's requests on a connected transport (`SESSION_REQUESTS`): each is counted
 * until its answer has been sent. `dropped` hears of the first drop in each second.
 * Call after `client.connect`, which installs the handler wrapped here.
 */
export function boundServerRequests(transport: Transport, dropped: () => void): void {
  const deliver = transport.onmessage;
  if (!deliver) return;
  const send = transport.send.bind(transport);
  const answering = new Set<string | number>();
  let windowStart = 0;
  let taken = 0;
  let warned = false;
  transport.onmessage = (message, extra) => {
    if (isRequest(message)) {
      const now = Date.now();
      if (now - windowStart >= 1_000) {
        windowStart = now;
        taken = 0;
        warned = false;
      }
      if (answering.size >= SESSION_REQUESTS.inFlight || taken >= SESSION_REQUESTS.perSecond || answering.has(message.id)) {
        if (!warned) dropped();
        warned = true;
        return;
      }
      taken++;
      answering.add(message.id);
    }
    deliver(message, extra);
  };
  transport.send = async (message, options) => {
    if (!isResponse(message) || !answering.has(message.id)) return send(message, options);
    try {
      return await send(message, options);
    } finally {
      answering.delete(message.id);
    }
  };
}
