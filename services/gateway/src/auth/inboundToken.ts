import { inspect } from "node:util";

/**
 * The bearer token an agent presented, kept with its call only for token exchange (RFC 8693),
 * where it goes to the identity provider that issued it, never to an upstream. It cannot be
 * printed by accident: JSON, string conversion and inspection (pino, util.inspect) show
 * `[redacted]`; only `reveal()` gives the value.
 */
export class InboundToken {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  reveal(): string {
    return this.#value;
  }

  toJSON(): string {
    return "[redacted]";
  }

  toString(): string {
    return "[redacted]";
  }

  [inspect.custom](): string {
    return "InboundToken [redacted]";
  }
}

/** The token of an `Authorization: Bearer …` header, if that is what it holds. */
export const inboundTokenOf = (authorization: string | undefined): InboundToken | undefined =>
  authorization?.startsWith("Bearer ") ? new InboundToken(authorization.slice(7).trim()) : undefined;
