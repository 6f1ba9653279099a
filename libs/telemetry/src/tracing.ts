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

/** Reads a W3C trace context from HTTP headers (an agent's own `traceparent` is honoured). */
export function extractFromHttp(headers: Readonly<Record<string, string | string[] | undefined>>): Context {
  return propagation.extract(context.active(), headers);
}

/** The active trace context as HTTP headers, to send to an upstream; empty when tracing is off. */
export function traceHeaders(): Record<string, string> {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return carrier;
}
