import type { ConnectionShed, ErrorCode } from "@manifold/contracts";
import { Counter, type Registry } from "@manifold/telemetry";

/**
 * The answers that are the admin port's bounds and guards acting, rather than a request being
 * wrong: a token missing or not known, a host or origin not allowed, a budget or capacity reached,
 * a request too slow or too large to read. Any other error code is not counted here.
 */
export const REFUSAL_CODES = [
  "unauthorized",
  "host_not_allowed",
  "origin_not_allowed",
  "rate_limited",
  "too_many_reads",
  "at_capacity",
  "request_timeout",
  "headers_too_large",
] as const satisfies readonly ErrorCode[];

/** The connection bound's reasons (`REGISTRY_MAX_CONNECTIONS`): a new connection refused, or an older one closed to make room. */
const CONNECTION_REASON = { refused: "connection_refused", replaced: "connection_replaced" } as const satisfies Record<ConnectionShed, string>;

/** The `admin` label of a refusal made before a token was accepted (a 401, a timeout, a connection). */
export const UNAUTHENTICATED = "unauthenticated";

const refusalCodes: ReadonlySet<string> = new Set(REFUSAL_CODES);

/**
 * `manifold_registry_refusals_total{reason, admin}`. Both labels are bounded: `reason` by the
 * lists above, `admin` by the configured token names (`MANIFOLD_ADMIN_TOKENS`, fixed for the
 * process's life) and `unauthenticated`, never by anything a caller sends (a presented token,
 * a path, an address). The names are not secrets: every event records its actor by name.
 */
export class Refusals {
  readonly #counter: Counter<"reason" | "admin">;

  constructor(registry: Registry) {
    this.#counter = new Counter({
      name: "manifold_registry_refusals_total",
      help: "Requests and connections the registry's admin port refused (auth, host guard, budgets, capacity, timeouts, the connection bound), by reason and admin token name.",
      labelNames: ["reason", "admin"],
      registers: [registry],
    });
  }

  /** An error answer, counted when its code is a refusal; `admin` is the accepted token's name, when one was. */
  answered(code: string, admin: string | undefined): void {
    if (refusalCodes.has(code)) this.#counter.inc({ reason: code, admin: admin || UNAUTHENTICATED });
  }

  /** The connection bound acted. */
  connection(what: ConnectionShed): void {
    this.#counter.inc({ reason: CONNECTION_REASON[what], admin: UNAUTHENTICATED });
  }
}
