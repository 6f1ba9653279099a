import { BusHeader, ErrorCode, ManifoldError, Subjects, type DiscoveryReport, type ListReply } from "@manifold/contracts";
import { busRequest, replyWithError, type Msg, type NatsConnection } from "@manifold/bus";
import { registrationHash, type UpstreamState } from "@manifold/domain";
import type { Logger } from "@manifold/telemetry";
import { DiscoveryPacer } from "./discoveryPacer.js";
import { budgetOf, fitting } from "./requestBounds.js";
import { MAX_BUS_PAYLOAD } from "./transports.js";
import { mapUpstreamError, safeReason } from "./upstreamErrors.js";
import type { UpstreamLiveness } from "./upstreamLiveness.js";
import type { UpstreamSession } from "./upstreamSession.js";
import { redactValue } from "./withheldValues.js";

/** A report the registry did not take is sent again after this, doubling… */
export const REPORT_RETRY_FIRST_MS = 500;
/** …up to this, until it is taken or a newer one replaces it. */
export const REPORT_RETRY_MAX_MS = 5_000;

export interface DiscoveryDeps {
  nc: NatsConnection;
  upstream: UpstreamState;
  /** `upstream '<name>'`, as errors name it. */
  target: string;
  /** The upstream's shared session: its lists are the ones discovered. */
  session: UpstreamSession;
  /** The upstream's call budget, which caps a list request's. */
  timeoutMs: number;
  connectTimeoutMs: number;
  rediscoverMs: number;
  /** Told after each discovery whether it could list the upstream (`reason`: why not). */
  listed: (reason: string | undefined) => void;
  /** Told when a listing answered or timed out (`UpstreamLiveness`): an idle upstream is listed too. */
  liveness: Pick<UpstreamLiveness, "answered" | "timedOut">;
  logger: Logger;
}

/**
 * The upstream's lists, for the registry: reported on `Subjects.registryDiscovered(upstream)` when the
 * upstream says they changed, after a reconnect and periodically (paced by `DiscoveryPacer`),
 * and served on request (`Subjects.upstreamList`) while its registration is this worker's.
 */
export class UpstreamDiscovery {
  readonly #deps: DiscoveryDeps;
  readonly #registration: string;
  readonly #pacer = new DiscoveryPacer(() => this.#report());
  readonly #rediscover: NodeJS.Timeout | undefined;
  /** The next sending of a report the registry did not take. */
  #resend: NodeJS.Timeout | undefined;
  /** Counts reports: only the latest is sent again (an older one would record a stale list as a change). */
  #reports = 0;
  /** The last discovery could not list the upstream: its health says so until one can. */
  #failed = false;
  #closed = false;

  constructor(deps: DiscoveryDeps) {
    this.#deps = deps;
    this.#registration = registrationHash(deps.upstream);
    this.#deps.session.toolsChanged = () => this.#pacer.trigger();
    this.#rediscover = deps.rediscoverMs > 0 ? setInterval(() => this.#pacer.trigger(true), deps.rediscoverMs).unref() : undefined;
  }

  /** Asks for a discovery (`DiscoveryPacer.trigger`). */
  trigger(): void {
    this.#pacer.trigger();
  }

  /**
   * The upstream answers again after it answered nothing (`UpstreamLiveness`): a discovery that
   * failed meanwhile is tried again now. Before, an idle upstream whose periodic listing timed
   * out while it was stopped stayed `degraded` ("its lists cannot be read") after it ran again,
   * until the next rediscovery (`CONNECTOR_REDISCOVER_MS`, 5 min): 27.0 s in `upstreamProbe.e2e`, now 0.5 s.
   */
  answersAgain(): void {
    if (this.#failed) this.#pacer.trigger();
  }

  /** Answers a list request (`Subjects.upstreamList`). */
  async serveList(msg: Msg): Promise<void> {
    const wanted = msg.headers?.get(BusHeader.registration);
    if (wanted && wanted !== this.#registration) {
      // Another registration than this worker's: the worker is about to be replaced, and the registry asks again.
      return replyWithError(msg, new ManifoldError("upstream_unavailable", `${this.#deps.target} is being reconfigured on this connector`, { reason: "reconfiguring" }));
    }
    const budget = budgetOf(msg.headers, this.#deps.timeoutMs);
    try {
      const listed = await this.#heard(this.#listAll(budget), budget);
      msg.respond(fitting(JSON.stringify(listed), "tools/list", this.#deps.target, this.#deps.nc.info?.max_payload));
    } catch (error) {
      replyWithError(msg, mapUpstreamError(error, this.#deps.target, budget));
    }
  }

  close(): void {
    clearInterval(this.#rediscover);
    this.#closed = true;
    clearTimeout(this.#resend);
    this.#pacer.close();
  }

  async #report(): Promise<void> {
    try {
      let listed: ListReply;
      try {
        listed = await this.#heard(this.#listAll(this.#deps.connectTimeoutMs), this.#deps.connectTimeoutMs);
      } catch (error) {
        this.#failed = true;
        this.#deps.listed(safeReason(error));
        throw error;
      }
      this.#failed = false;
      this.#deps.listed(undefined);
      const era = this.#deps.session.protocolVersion;
      const report: DiscoveryReport = { upstream: this.#deps.upstream.name, registration: this.#registration, ...listed, ...(era ? { protocolVersion: era } : {}) };
      clearTimeout(this.#resend);
      await this.#send(++this.#reports, report.upstream, fitting(JSON.stringify(report), "tools/list", this.#deps.target, this.#deps.nc.info?.max_payload), REPORT_RETRY_FIRST_MS);
    } catch (err) {
      // Drift goes unseen while the list cannot be reported: that an operator must hear about.
      if (err instanceof ManifoldError && err.code === "payload_too_large") this.#deps.logger.warn({ reason: err.message }, "tool list not reported");
      else this.#deps.logger.debug({ reason: safeReason(err) }, "tool list not reported");
    }
  }

  /**
   * Sends a report; one the registry could not take (the bus down or recovering, no registry
   * replica, its stream not appending) is sent again, paced, until taken or replaced by a newer
   * one. The upstream announces a change once: before, one announced while the bus was down was
   * lost until the periodic rediscovery (`CONNECTOR_REDISCOVER_MS`, 5 min), and agents' listen
   * streams never heard of it meanwhile (`listenAcrossBusRestart.e2e`).
   */
  async #send(report: number, upstream: string, payload: string | Uint8Array, retryMs: number): Promise<void> {
    try {
      await busRequest(this.#deps.nc, Subjects.registryDiscovered(upstream), payload, { timeoutMs: 10_000, target: "the registry" });
    } catch (error) {
      if (!(error instanceof ManifoldError) || !ErrorCode[error.code].retryable) throw error;
      if (this.#closed || report !== this.#reports) return;
      this.#deps.logger.debug({ reason: safeReason(error), retryInMs: retryMs }, "tool list not taken by the registry: sending it again");
      const again = () => this.#send(report, upstream, payload, Math.min(retryMs * 2, REPORT_RETRY_MAX_MS)).catch((err: unknown) => this.#deps.logger.debug({ reason: safeReason(err) }, "tool list not reported"));
      this.#resend = setTimeout(() => void (report === this.#reports && again()), retryMs).unref();
    }
  }

  /** A listing, its outcome told to `liveness`: an answer, or a timeout (the upstream is then pinged). */
  async #heard<T>(listing: Promise<T>, timeoutMs: number): Promise<T> {
    try {
      const listed = await listing;
      this.#deps.liveness.answered();
      return listed;
    } catch (error) {
      const mapped = mapUpstreamError(error, this.#deps.target, timeoutMs);
      if (mapped.code === "upstream_timeout") this.#deps.liveness.timedOut(mapped.message);
      throw error;
    }
  }

  /** Tools, and the prompts, resources and templates the upstream offers: what discovery records. */
  async #listAll(timeoutMs: number): Promise<ListReply> {
    const maxBytes = this.#deps.nc.info?.max_payload ?? MAX_BUS_PAYLOAD;
    const listed = await this.#deps.session.listTools(timeoutMs, maxBytes);
    // Tools come first: prompts and resources that would not fit in one bus message beside them are left out (and said so).
    const room = maxBytes / 2;
    const items = await this.#deps.session.listItems(timeoutMs, room).catch((error: unknown) => {
      if (error instanceof ManifoldError && error.code === "payload_too_large") return undefined;
      throw error;
    });
    if (!items || JSON.stringify(items).length > room) {
      this.#deps.logger.warn({ maxBytes: room }, "prompts and resources not reported: their lists are too large for one bus message");
      return this.#withheld(listed);
    }
    return this.#withheld({ ...listed, ...items });
  }

  /**
   * The lists without the credentials the session sent: a description quoting one (a debug build
   * listing its configuration) would be pinned in the registry's log for good, and shown to agents.
   * Identifiers stay as the upstream gave them: calls, reads and updates are routed by them, and
   * one that happened to hold a short value (a `secretEnv` user name) would name nothing upstream.
   */
  #withheld(listed: ListReply): ListReply {
    const sent = this.#deps.session.credentials;
    if (sent.length === 0) return listed;
    const clean = <T extends object>(item: T): T => redactValue(item, sent);
    const keeping = <T extends object, K extends keyof T>(items: T[] | undefined, id: K): T[] | undefined => items?.map((item) => ({ ...clean(item), [id]: item[id] }));
    const { prompts, resources, resourceTemplates } = listed;
    return {
      serverInfo: clean(listed.serverInfo),
      tools: keeping(listed.tools, "name")!,
      ...(prompts ? { prompts: keeping(prompts, "name") } : {}),
      ...(resources ? { resources: keeping(resources, "uri") } : {}),
      ...(resourceTemplates ? { resourceTemplates: keeping(resourceTemplates, "uriTemplate") } : {}),
    };
  }
}
