import { MAX_PROGRESS_BYTES, notificationBudget } from "@manifold/contracts";
import type { NatsConnection } from "@manifold/bus";
import type { Progress } from "@modelcontextprotocol/client";

/**
 * Relays one call's progress notifications to the subject its gateway named, within the call's
 * notification budget and at most `MAX_PROGRESS_BYTES` each: the rest are dropped here, before the
 * bus, rather than after it at the gateway.
 */
export function progressRelay(nc: NatsConnection, subject: string): (progress: Progress) => void {
  const budget = notificationBudget();
  return (progress) => {
    const bytes = Buffer.from(JSON.stringify(progress));
    if (bytes.length > MAX_PROGRESS_BYTES || !budget.take(bytes.length)) return;
    try {
      nc.publish(subject, bytes);
    } catch {
      // A closed connection: the call's answer cannot get through either.
    }
  };
}
