import { MAX_PROGRESS_BYTES, notificationBudget } from "@manifold/contracts";
import type { NatsConnection } from "@manifold/bus";
import type { Progress } from "@modelcontextprotocol/client";
import { redactResult, type EchoForm } from "./withheldValues.js";

/** What a call's session has sent its upstream (`UpstreamSession.credentials`), read when a notification is relayed. */
export interface CredentialsSent {
  readonly credentials: readonly EchoForm[];
}

/**
 * Relays one kind of a call's notifications (progress, log messages) to the subject its gateway
 * named, within the call's notification budget and at most `maxBytes` each: the rest are dropped
 * here, before the bus, rather than after it at the gateway.
 */
export function notificationRelay(nc: NatsConnection, subject: string, maxBytes: number, sent: CredentialsSent): (notification: unknown) => void {
  const budget = notificationBudget();
  return (notification) => {
    const json = JSON.stringify(notification);
    // Too large is dropped before anything else is done with it (a character is at least a byte).
    if (json.length > maxBytes) return;
    // Cleaned of the credentials the call's session sent, as its result is.
    const bytes = Buffer.from(redactResult(json, sent.credentials));
    if (bytes.length > maxBytes || !budget.take(bytes.length)) return;
    try {
      nc.publish(subject, bytes);
    } catch {
      // A closed connection: the call's answer cannot get through either.
    }
  };
}

/** A call's progress relay: a progress notification is a number and a line of text, not a payload. */
export const progressRelay = (nc: NatsConnection, subject: string, sent: CredentialsSent): ((progress: Progress) => void) => notificationRelay(nc, subject, MAX_PROGRESS_BYTES, sent);
