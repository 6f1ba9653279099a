// What a node answers, and where: a reply subject is the sender's word, and nats-server lets a role
// answer (`allow_responses`) wherever it points.
import { BUS_ROLES, inboxPrefix, type BusRole } from "@manifold/contracts";
import type { JsMsg } from "@nats-io/jetstream";
import type { Msg } from "@nats-io/transport-node";

/** Each role's inbox with its dot, made once: every call's reply subject is checked against one. */
const INBOXES = Object.fromEntries(BUS_ROLES.map((role) => [role, `${inboxPrefix(role)}.`])) as Readonly<Record<BusRole, string>>;

/**
 * Whether a request may be answered: its reply subject is a requester's inbox (`from`: the inbox of
 * that role, the only one that sends it). The reply subject is the requester's word, and answering
 * lends it the answerer's right to publish there: a connector once aimed a discovery report's at a
 * registry event subject, and the registry, which may write there, stored its answer in the event
 * log, where it froze that consumer or virtual server for good (every later command failed its
 * expected sequence); aimed at a gateway's inbox (whose reply subjects a connector sees in every
 * call, numbered in order), the registry's answer could settle a call pending for another upstream;
 * and a connector answered a call into any inbox, a registry's or another connector's included.
 */
export const answerable = (msg: Msg, from: BusRole): boolean => msg.reply?.startsWith(INBOXES[from]) === true;

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
