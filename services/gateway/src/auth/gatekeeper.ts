import { DEFAULT_ENVIRONMENT, EventType, ManifoldError, type ErrorCode } from "@manifold/contracts";
import { accessOf, consumerId, type Access, type Principal } from "@manifold/domain";
import type { GatewayCatalog } from "../catalog.js";
import { anonymousCaller } from "./anonymousCallers.js";
import type { Authenticator } from "./authenticator.js";
import type { RateLimiter } from "./rateLimiter.js";
import { isIncurable, missingCredentials } from "./tokenRules.js";

export interface Admission {
  principal: Principal;
  access: Access;
}

/** What becomes of a stream a caller opened earlier, checked again (`admitsNow`). */
export type StreamAdmission = "kept" | "changed" | "refused";

/** With authentication off (trusted test setups only) everyone has full access, each client network as its own caller (`anonymousCaller`). */
const FULL_ACCESS: Access = { denied: new Set(), deniedItems: new Set(), rateLimitPerMinute: undefined };

/** What every anonymous caller's calls count under in an anonymous grant's rate limit (the principal id all of them had). */
const ANONYMOUS_RATE_KEY = "anonymous";

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
  /**
   * Admission per principal (the authenticator hands out one object per credential, groups
   * included) and virtual server, for the environment and version it was decided for: a request
   * looks it up without building a key. Dropped whole when a consumer changes.
   */
  #admissions = new WeakMap<Principal, Map<string, { environment: string; version: number; admission: Admission | undefined }>>();
  /** With authentication off: each client network's admission, made once per principal object. */
  readonly #open = new WeakMap<Principal, Admission>();

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
      if (event.type.startsWith("consumer.")) this.#admissions = new WeakMap();
    });
  }

  /**
   * `resource`: the URL of the endpoint called (the audience OAuth tokens must name), built only
   * when a token needs it. A credential already verified is admitted without a promise.
   */
  admit(virtualServer: string, environment: string, authorization: string | undefined, resource: () => string | undefined, address?: string): Admission | Promise<Admission> {
    try {
      const admitted = this.#admit(virtualServer, environment, authorization, resource, address);
      return admitted instanceof Promise ? admitted.catch((error: unknown) => this.#again(error, virtualServer, environment, authorization, resource, address)) : admitted;
    } catch (error) {
      return this.#again(error, virtualServer, environment, authorization, resource, address);
    }
  }

  /**
   * A refusal, answered once the projection has caught up (see the constructor), or the error as it
   * is. Credentials that fail spend the budget they share (`FailedCredentials`): past it, and for a
   * JWT not verified while it was spent, 429 after its `Retry-After`, so a caller waiting for its
   * answers (any HTTP/1.1 connection) sends at most one a second; a failure no registry change can
   * lift (`isIncurable`) is answered at once.
   */
  async #again(error: unknown, virtualServer: string, environment: string, authorization: string | undefined, resource: () => string | undefined, address: string | undefined): Promise<Admission> {
    await this.authenticator?.failures?.refusePastBudget(error, authorization, address);
    if (!(error instanceof ManifoldError && MISSES.has(error.code)) || (this.authenticator && !authorization) || isIncurable(error)) throw error;
    await this.catchUp();
    return this.#admit(virtualServer, environment, authorization, resource, address);
  }

  /**
   * Whether a request with these credentials would be admitted now, the projection being current,
   * and with the denials `opened` had: what a caller opened earlier (a listen stream, which hears
   * only of what its caller could see when it opened) is kept, ended as its lists changed
   * (`changed`: admitted with other denials, its groups or grants changed), or ended as refused.
   * Only a refusal counts: the bus away says nothing about the caller.
   */
  async admitsNow(virtualServer: string, environment: string, authorization: string | undefined, resource: () => string | undefined, opened?: Access): Promise<StreamAdmission> {
    try {
      const { access } = await this.#admit(virtualServer, environment, authorization, resource);
      return opened === undefined || (sameSet(access.denied, opened.denied) && sameSet(access.deniedItems, opened.deniedItems)) ? "kept" : "changed";
    } catch (error) {
      // Nor do failed credentials past their budget: the stream's own were not checked.
      return !(error instanceof ManifoldError) || error.code === "bus_unavailable" || error.code === "too_many_failed_credentials" ? "kept" : "refused";
    }
  }

  #admit(virtualServer: string, environment: string, authorization: string | undefined, resource: () => string | undefined, address?: string): Admission | Promise<Admission> {
    if (!this.authenticator) {
      this.#mustServe(virtualServer, environment);
      const principal = anonymousCaller(address);
      let admission = this.#open.get(principal);
      if (!admission) this.#open.set(principal, (admission = { principal, access: FULL_ACCESS }));
      return admission;
    }
    const principal = this.authenticator.authenticate(authorization, resource, address);
    return principal instanceof Promise ? principal.then((verified) => this.#admitted(virtualServer, environment, verified)) : this.#admitted(virtualServer, environment, principal);
  }

  #admitted(virtualServer: string, environment: string, principal: Principal): Admission {
    if (principal.anonymous) {
      // Admitted only where an anonymous grant exists; everywhere else the answer a request without credentials always had.
      const admission = this.catalog.has(virtualServer, environment) ? this.#admission(virtualServer, environment, principal) : undefined;
      if (!admission) throw missingCredentials();
      return admission;
    }
    this.#mustServe(virtualServer, environment);
    // Without a grant the virtual server is as absent as one that does not exist: no caller can map the registry.
    const admission = this.#admission(virtualServer, environment, principal);
    if (!admission) throw notServed(virtualServer, environment);
    return admission;
  }

  /**
   * The access a principal has now: grants and a consumer's groups may change during a session,
   * and a consumer deleted since (or created again under its name) has none.
   */
  accessNow(virtualServer: string, environment: string, principal: Principal): Access | undefined {
    return this.authenticator ? this.#admission(virtualServer, environment, principal)?.access : FULL_ACCESS;
  }

  #admission(virtualServer: string, environment: string, principal: Principal): Admission | undefined {
    const vs = this.catalog.projection.virtualServer(virtualServer);
    if (!vs) return undefined;
    let byServer = this.#admissions.get(principal);
    const cached = byServer?.get(virtualServer);
    // Dropped on every consumer event: what is cached was decided for the consumer as it is.
    if (cached?.version === vs.version && cached.environment === environment) return cached.admission;
    const consumer = principal.consumer === undefined ? undefined : this.catalog.projection.consumer(principal.consumer);
    const gone = principal.consumer !== undefined && (!consumer || consumerId(consumer) !== principal.id);
    const access = gone ? undefined : accessOf(vs, principal, environment, consumer?.groups ?? []);
    const admission = access && { principal, access };
    // One entry per virtual server (bounded by the registry): a principal calling one in several environments decides again on each switch.
    if (!byServer) this.#admissions.set(principal, (byServer = new Map()));
    byServer.set(virtualServer, { environment, version: vs.version, admission });
    return admission;
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
    if (calls > limit) throw new ManifoldError("invalid_request", `a request of ${calls} upstream requests (calls, reads, resource subscriptions) can never fit the rate limit of ${limit} calls per minute; send fewer at once`);
    // An anonymous grant's limit is one count for every client network: the operator's bound on what
    // callers without credentials may send upstream all together, whatever addresses they hold.
    return this.limiter.take(admission.principal.anonymous ? ANONYMOUS_RATE_KEY : admission.principal.id, virtualServer, limit, calls);
  }
}

/**
 * One answer for a virtual server that does not exist, is not served in the environment, or is
 * not granted to the caller: which of them it is stays with the operator (refusal metrics, audit).
 */
export const notServed = (virtualServer: string, environment: string) =>
  new ManifoldError(
    "unknown_virtual_server",
    // The three causes are named together, so a caller with a mistyped name knows to check it
    // without learning which one holds.
    `virtual server '${virtualServer}' is not available to this caller${environment === DEFAULT_ENVIRONMENT ? "" : ` in environment '${environment}'`}: it does not exist, is not served in that environment, or no grant admits the caller`,
  );

const sameSet = (a: ReadonlySet<string>, b: ReadonlySet<string>): boolean => a.size === b.size && [...a].every((x) => b.has(x));
