import { BusHeader, LOG_PREFIX, LogMessage, McpLogLevel, logLevelReaches, upstreamScoped } from "@manifold/contracts";
import type { HeaderReader, NatsConnection } from "@manifold/bus";
import { notificationRelay, subjectUnder, type CredentialsSent, type Relay } from "./callNotifications.js";

/** A log message bigger than this is dropped, not relayed: it would crowd the bus for a diagnostic. */
const MAX_LOG_BYTES = 64 * 1024;

/** Where one call's log messages go, and the least severe level its caller asked for. */
export interface CallLog {
  readonly level: McpLogLevel;
  /** Relays one upstream `notifications/message` params (hostile bytes: checked, filtered by level, bounded). */
  readonly send: (params: unknown) => void;
  /** Where they go (moved by a 2026-07-28 retry). */
  readonly relay: Relay;
}

/**
 * The log relay a call's headers ask for, or none (the call's log messages are dropped): the
 * gateway names a subject under `LOG_PREFIX` and the caller's level. Filtering happens here, at
 * the connector, so a message the caller does not want (or past the call's budget) never crosses the bus.
 */
export function callLogOf(headers: HeaderReader | undefined, nc: NatsConnection, sent: CredentialsSent, upstream: string): CallLog | undefined {
  // Most calls ask for no log: no subject, and nothing parsed.
  const subject = subjectUnder(upstreamScoped(LOG_PREFIX, upstream), headers?.get(BusHeader.logSubject));
  if (!subject) return undefined;
  const level = McpLogLevel.safeParse(headers?.get(BusHeader.logLevel));
  if (!level.success) return undefined;
  const relay = notificationRelay(nc, subject, MAX_LOG_BYTES, sent);
  return {
    level: level.data,
    relay,
    send: (params) => {
      const message = LogMessage.safeParse(params);
      if (message.success && logLevelReaches(message.data.level, level.data)) relay(message.data);
    },
  };
}
