import type { SSEClientTransport } from "@modelcontextprotocol/client";

/**
 * The one place the connector reaches past the SDK's public surface: the EventSource under a
 * legacy SSE transport (`SSEClientTransport._eventSource`, private, set by `start()`). The SDK
 * offers no way to learn that the event stream failed, and the session lives on that stream.
 * `sseEventSource.unit.spec.ts` drives the real SDK class and fails, naming the installed version,
 * when the field or its shape changes: upgrade the SDK, run it, and mend this file only.
 */
export const EVENT_SOURCE_VERIFIED_WITH = "@modelcontextprotocol/client 2.4.0";

/** What the connector uses of the SDK's EventSource. */
export interface SdkEventSource {
  onerror: ((event: unknown) => void) | null;
  close(): void;
}

const isEventSource = (value: unknown): value is SdkEventSource =>
  typeof value === "object" && value !== null && typeof (value as SdkEventSource).close === "function" && "onerror" in value;

/** The event stream of a started legacy SSE transport, or undefined when the SDK holds none (or no longer where it did). */
export function eventSourceOf(transport: SSEClientTransport): SdkEventSource | undefined {
  const source = (transport as unknown as { _eventSource?: unknown })._eventSource;
  return isEventSource(source) ? source : undefined;
}

/**
 * A legacy SSE transport that closes when its event stream fails once its endpoint is named. The
 * session lives on that stream (answers come on it; the upstream forgets the session when it
 * ends), but the SDK's EventSource just opens the stream again and the transport stays "connected":
 * an upstream killed mid-call left the call waiting out its whole budget (`upstream_timeout` after
 * `CALL_TIMEOUT_MS`), and the first call after it came back too, on a session it never knew
 * (`test/e2e/upstreamKilledMidCall.e2e.spec.ts`). Closed, the calls in flight fail at once and the
 * session reconnects with its backoff, as it does when a stdio upstream's process exits.
 */
export function endsWithStream(transport: SSEClientTransport): SSEClientTransport {
  const start = transport.start.bind(transport);
  transport.start = async () => {
    await start();
    // The SDK's own handler still runs first (it reports the error); the stream ends the session.
    const source = eventSourceOf(transport);
    if (!source) return;
    const reported = source.onerror;
    source.onerror = (event) => {
      reported?.call(source, event);
      void transport.close().catch(() => undefined);
    };
  };
  return transport;
}
