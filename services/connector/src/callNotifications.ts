import { MAX_PROGRESS_BYTES, notificationBudget } from "@manifold/contracts";
import type { NatsConnection } from "@manifold/bus";
import type { Progress } from "@modelcontextprotocol/client";

/**
 * Relays one kind of a call's notifications (progress, log messages) to the subject its gateway
 * named, within the call's notification budget and at most `maxBytes` each: the rest are dropped
 * here, before the bus, rather than after it at the gateway.
 */
export function notificationRelay(nc: NatsConnection, subject: string, maxBytes: number): (notification: unknown) => void {
  const budget = notificationBudget();
  return (notification) => {
    const bytes = Buffer.from(JSON.stringify(notification));
    if (bytes.length > maxBytes || !budget.take(bytes.length)) return;
    try {
      nc.publish(subject, bytes);
    } catch {
      // A closed connection: the call's answer cannot get through either.
    }
  };
}

/** A call's progress relay: a progress notification is a number and a line of text, not a payload. */
export const progressRelay = (nc: NatsConnection, subject: string): ((progress: Progress) => void) => notificationRelay(nc, subject, MAX_PROGRESS_BYTES);
