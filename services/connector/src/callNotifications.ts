import { BusHeader, MAX_PROGRESS_BYTES, notificationBudget, PROGRESS_PREFIX, upstreamScoped } from "@manifold/contracts";
import type { HeaderReader, NatsConnection } from "@manifold/bus";
import { redactResult, type EchoForm } from "./withheldValues.js";

/** What a call's session has sent its upstream (`UpstreamSession.credentials`), read when a notification is relayed. */
export interface CredentialsSent {
  readonly credentials: readonly EchoForm[];
}

/**
 * A subject a call's header names, when it is under `prefix` (and of a sane length), else none: the
 * connector publishes there with its own rights, where the gateway that named it may not.
 */
export function subjectUnder(prefix: string, subject: string | undefined): string | undefined {
  return subject && subject.startsWith(`${prefix}.`) && subject.length <= 256 ? subject : undefined;
}

/**
 * Relays one kind of a call's notifications (progress, log messages) to `subject`, within the call's
 * notification budget and at most `maxBytes` each: the rest are dropped here, before the bus, rather
 * than after it at the gateway. `subject` moves when a 2026-07-28 retry names its own (`HeldCall`):
 * the first request's is no longer read once its round has gone out.
 */
export interface Relay {
  (notification: unknown): void;
  subject: string;
}

export function notificationRelay(nc: NatsConnection, subject: string, maxBytes: number, sent: CredentialsSent): Relay {
  const budget = notificationBudget();
  const relay = (notification: unknown) => {
    let json: string;
    try {
      json = JSON.stringify(notification);
    } catch {
      // Nested past what the stack holds (the upstream's to send): thrown into the call, it failed
      // as an unreachable upstream and dropped the shared session. Dropped like any too large.
      return;
    }
    // Too large is dropped before anything else is done with it (a character is at least a byte).
    if (json.length > maxBytes) return;
    // Cleaned of the credentials the call's session sent, as its result is.
    const bytes = Buffer.from(redactResult(json, sent.credentials));
    if (bytes.length > maxBytes || !budget.take(bytes.length)) return;
    try {
      nc.publish(relay.subject, bytes);
    } catch {
      // A closed connection: the call's answer cannot get through either.
    }
  };
  relay.subject = subject;
  return relay;
}

/**
 * The progress relay a call's headers ask for, or none: only a subject under `PROGRESS_PREFIX`, as
 * for log messages and task status. Any other would publish the upstream's notifications with the
 * connector's rights, where the gateway that named it may not (tool lists, health reports).
 */
export function progressRelayOf(headers: HeaderReader, nc: NatsConnection, sent: CredentialsSent, upstream: string): Relay | undefined {
  const subject = subjectUnder(upstreamScoped(PROGRESS_PREFIX, upstream), headers.get(BusHeader.progressSubject));
  if (!subject) return undefined;
  // A progress notification is a number and a line of text, not a payload.
  return notificationRelay(nc, subject, MAX_PROGRESS_BYTES, sent);
}
