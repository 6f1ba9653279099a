import { DEFAULT_ENVIRONMENT, EventType, ManifoldError, type ErrorCode } from "@manifold/contracts";
import { accessOf, consumerId, type Access, type Principal } from "@manifold/domain";
import type { GatewayCatalog } from "../catalog.js";
import type { Authenticator } from "./authenticator.js";
import type { RateLimiter } from "./rateLimiter.js";
import { missingCredentials } from "./tokenRules.js";

export interface Admission {
  principal: Principal;
  access: Access;
}

/** With authentication off (trusted test setups only) everyone is one principal with full access. */
const ANONYMOUS: Admission = { principal: { id: "anonymous", groups: [] }, access: { denied: new Set(), deniedItems: new Set(), rateLimitPerMinute: undefined } };

/** Refusals that a registry change made a moment ago may already have lifted. */
const MISSES: ReadonlySet<ErrorCode> = new Set(["unauthorized", "unknown_virtual_server", "forbidden"]);

/** The registry changes after which a request admitted before may be refused: who holds which key, grant or identity provider, and what is served. */
export const ADMISSION_EVENTS: ReadonlySet<string> = new Set([
  EventType.consumerUpdated,
  EventType.consumerKeyRevoked,
  EventType.consumerDeleted,
  EventType.virtualServerAccessGranted,
  EventType.virtualServerAccessRevoked,
  EventType.virtualServerDeleted,
  EventType.environmentDeleted,
  EventType.identityProviderRegistered,
  EventType.identityProviderRemoved,
]);

/**
 * Deny unless granted, decided for every request: who is calling (401), is the virtual
 * server served and does a grant cover the caller (404 either way), and for tools/call, is
 * the caller within its rate limit (429).
 */
export class Gatekeeper {
  /** Access per (virtual server, principal): valid while the virtual server's version is unchanged, cleared when a consumer changes. */
  readonly #access = new Map<string, { version: number; access: Access | undefined }>();

  /**
   * `catchUp` brings the projection level with the registry stream. A refusal is only
   * answered after it, so an agent that uses a virtual server, key or grant as soon as the
   * admin API confirmed it is not turned away by a replica a few events behind.
   */
  constructor(
    readonly catalog: GatewayCatalog,
    readonly authenticator: Authenticator | undefined,
    readonly limiter: RateLimiter | undefined,
    readonly catchUp: () => Promise<void>,
  ) {
    catalog.projection.onApplied((event) => {
      if (event.type.startsWith("consumer.")) this.#access.clear();
    });
  }

  /** `resource`: the URL of the endpoint called (the audience OAuth tokens must name), built only when a token needs it. */
  async admit(virtualServer: string, environment: string, authorization: string | undefined, resource: () => string | undefined): Promise<Admission> {
    try {
      return await this.#admit(virtualServer, environment, authorization, resource);
    } catch (error) {
      if (!(error instanceof ManifoldError && MISSES.has(error.code)) || (this.authenticator && !authorization)) throw error;
      await this.catchUp();
      return this.#admit(virtualServer, environment, authorization, resource);
    }
  }

  /**
   * Whether a request with these credentials would be admitted now, the projection being current,
   * with the denials `opened` had: what a caller opened earlier (a listen stream, which hears only
   * of what its caller could see when it opened) ends when not. Only a refusal counts: the bus
   * away says nothing about the caller.
   */
  async admitsNow(virtualServer: string, environment: string, authorization: string | undefined, resource: () => string | undefined, opened?: Access): Promise<boolean> {
    try {
      const { access } = await this.#admit(virtualServer, environment, authorization, resource);
      return opened === undefined || (sameSet(access.denied, opened.denied) && sameSet(access.deniedItems, opened.deniedItems));
    } catch (error) {
      return !(error instanceof ManifoldError) || error.code === "bus_unavailable";
    }
  }

  async #admit(virtualServer: string, environment: string, authorization: string | undefined, resource: () => string | undefined): Promise<Admission> {
    if (!this.authenticator) {
      this.#mustServe(virtualServer, environment);
      return ANONYMOUS;
    }
    const principal = await this.authenticator.authenticate(authorization, resource);
    if (principal.anonymous) {
      // Admitted only where an anonymous grant exists; everywhere else the answer a request without credentials always had.
      const access = this.catalog.has(virtualServer, environment) ? this.accessNow(virtualServer, environment, principal) : undefined;
      if (!access) throw missingCredentials();
      return { principal, access };
    }
    this.#mustServe(virtualServer, environment);
    // Without a grant the virtual server is as absent as one that does not exist: no caller can map the registry.
    const access = this.accessNow(virtualServer, environment, principal);
    if (!access) throw notServed(virtualServer, environment);
    return { principal, access };
  }

  /**
   * The access a principal has now: grants and a consumer's groups may change during a session,
   * and a consumer deleted since (or created again under its name) has none.
   */
  accessNow(virtualServer: string, environment: string, principal: Principal): Access | undefined {
    if (!this.authenticator) return ANONYMOUS.access;
    const vs = this.catalog.projection.virtualServer(virtualServer);
    if (!vs) return undefined;
    const key = `${virtualServer}\n${environment}\n${principal.id}\n${principal.groups.join(",")}`;
    const cached = this.#access.get(key);
    // Cleared on every consumer event: what is cached was decided for the consumer as it is.
    if (cached?.version === vs.version) return cached.access;
    if (this.#access.size > 10_000) this.#access.clear();
    const consumer = principal.consumer === undefined ? undefined : this.catalog.projection.consumer(principal.consumer);
    const gone = principal.consumer !== undefined && (!consumer || consumerId(consumer) !== principal.id);
    const access = gone ? undefined : accessOf(vs, principal, environment, consumer?.groups ?? []);
    this.#access.set(key, { version: vs.version, access });
    return access;
  }

  #mustServe(virtualServer: string, environment: string): void {
    if (!this.catalog.has(virtualServer, environment)) throw notServed(virtualServer, environment);
  }

  /**
   * Takes `calls` calls (a batch's) from the caller's rate limit, all or none; without one (or
   * without a limiter) nothing to wait for. A batch that can never fit is the caller's to split, not to retry.
   */
  countCall(virtualServer: string, admission: Admission, calls = 1): Promise<void> | undefined {
    const limit = admission.access.rateLimitPerMinute;
    if (limit === undefined || !this.limiter) return undefined;
    if (calls > limit) throw new ManifoldError("invalid_request", `a batch of ${calls} tool calls can never fit the rate limit of ${limit} calls per minute; send fewer at once`);
    return this.limiter.take(admission.principal.id, virtualServer, limit, calls);
  }
}

/**
 * One answer for a virtual server that does not exist, is not served in the environment, or is
 * not granted to the caller: which of them it is stays with the operator (refusal metrics, audit).
 */
export const notServed = (virtualServer: string, environment: string) =>
  new ManifoldError(
    "unknown_virtual_server",
    `virtual server '${virtualServer}' is not available to this caller${environment === DEFAULT_ENVIRONMENT ? "" : ` in environment '${environment}'`}`,
  );

const sameSet = (a: ReadonlySet<string>, b: ReadonlySet<string>): boolean => a.size === b.size && [...a].every((x) => b.has(x));
