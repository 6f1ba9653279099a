import type { JsMsg } from "@nats-io/jetstream";

/**
 * Ends nats-server's record of a JetStream delivery's reply subject. Every Manifold role may answer
 * the requests it receives (`allow_responses`), so nats-server keeps the reply subject of each
 * message it delivers to one, a delivery's ack subject included, until it is answered or expires
 * (1 h), and nats-server 2.9 rescans that record at each delivery past 4,096 (nats-io/nats-server#6058):
 * a node replaying 30,000 registry events took 8–10 s, 50,000 took 21–27 s. The ordered consumers
 * Manifold reads with take no acks, so answering with one costs the server a message it drops, and
 * ends the record: the 30,000 take about a second (`test/integration/followerReplay.int.spec.ts`).
 * That reply subject is the server's own ack subject, whoever published the message: unlike a
 * heartbeat's (`requester.ts`), answering it lends nobody this node's right to publish.
 */
export function settleDelivery(message: JsMsg): void {
  message.ack();
}
