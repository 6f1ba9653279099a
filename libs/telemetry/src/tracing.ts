import { context, propagation, type Context, type TextMapGetter, type TextMapSetter } from "@opentelemetry/api";

/** The part of NATS `MsgHdrs` the propagator needs; structural so this lib stays transport-free. */
export interface HeaderCarrier {
  get(key: string): string;
  set(key: string, value: string): void;
  keys?(): string[];
}

const setter: TextMapSetter<HeaderCarrier> = {
  set: (carrier, key, value) => carrier.set(key, value),
};

/** What extraction reads: headers as received need no `set`. */
export type HeaderSource = Pick<HeaderCarrier, "get" | "keys">;

const getter: TextMapGetter<HeaderSource> = {
  get: (carrier, key) => carrier.get(key) || undefined,
  keys: (carrier) => carrier.keys?.() ?? [],
};

/** Writes the active W3C trace context (traceparent, tracestate, baggage) into bus headers. */
export function injectTraceContext(headers: HeaderCarrier, ctx: Context = context.active()): void {
  propagation.inject(ctx, headers, setter);
}

/** Reads a W3C trace context from bus headers, to parent the consumer's span. */
export function extractTraceContext(headers: HeaderSource | undefined): Context {
  return headers ? propagation.extract(context.active(), headers, getter) : context.active();
}

/** The most of a `tracestate` OpenTelemetry keeps and passes on (W3C trace context: 512 characters). */
export const MAX_TRACE_STATE = 512;

/** Longest `traceparent` read: version 00 is 55 characters; a later version may add fields, which are not read. */
export const MAX_TRACE_PARENT = 512;

type HttpHeaders = Readonly<Record<string, string | string[] | undefined>>;

const TRACE_HEADER_LIMITS: Readonly<Record<string, number>> = { traceparent: MAX_TRACE_PARENT, tracestate: MAX_TRACE_STATE };

/**
 * HTTP headers (or a message's `_meta`) as the propagator reads them, with a trace header longer
 * than is ever used left out: a `TraceState` holds its raw text, and a later-version `traceparent`'s
 * ids are slices of its (a tail of any length is allowed); every span under them holds that text for
 * as long as it waits for export (1,000 calls with a 900 KB `_meta.tracestate`, or a `01-…`
 * `traceparent` with a 900 KB tail, held 1 GB in a traced gateway). Read only when a propagator is
 * registered: with tracing off, nothing is.
 */
const httpGetter: TextMapGetter<HttpHeaders> = {
  get: (carrier, key) => {
    const value = carrier[key];
    const limit = TRACE_HEADER_LIMITS[key];
    if (limit === undefined || value === undefined) return value;
    return (Array.isArray(value) ? value.join(",") : value).length > limit ? undefined : value;
  },
  keys: (carrier) => Object.keys(carrier),
};

/** Reads a W3C trace context from HTTP headers (an agent's own `traceparent` is honoured). */
export function extractFromHttp(headers: HttpHeaders): Context {
  return propagation.extract(context.active(), headers, httpGetter);
}

/** The active trace context as HTTP headers, to send to an upstream; empty when tracing is off. */
export function traceHeaders(): Record<string, string> {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return carrier;
}
