/**
 * A message body read as JSON, or `undefined` when it is none. For what another service (or a
 * stolen identity of one) publishes: nats.js runs a subscription's callback inside its read loop,
 * and an exception thrown there (nats.js's `msg.json()` on a body that is no JSON) ends that loop,
 * so the connection reads nothing more, no reply to any request, until nats.js finds it stale and
 * reconnects. In a stream's follower it ended the subscription, which began again at the same
 * message. One such message from a connector's identity made a gateway deaf to every call.
 */
export function jsonOrNothing(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
