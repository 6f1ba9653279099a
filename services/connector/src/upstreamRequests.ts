import { redactResult } from "./withheldValues.js";
import { BusHeader, ManifoldError, Subjects, SubscriptionReleased, UpstreamRequest, connectorQueue } from "@manifold/contracts";
import { answerable, jsonOrNothing, replyWithError, type Msg, type NatsConnection } from "@manifold/bus";
import { Attr, extractTraceContext, SpanKind, traced, type Logger } from "@manifold/telemetry";
import type { Subscription } from "@nats-io/transport-node";
import type { UpstreamSession } from "./upstreamSession.js";
import type { UpstreamLiveness } from "./upstreamLiveness.js";
import { ProtocolError } from "@modelcontextprotocol/client";
import { mapUpstreamError, withheldIn } from "./upstreamErrors.js";
import { SubscriptionShares } from "./subscriptionShares.js";
import { UpdateWindow } from "./updateWindow.js";

export interface RequestDeps {
  nc: NatsConnection;
  upstream: string;
  /** The upstream's shared session: prompts, resources and completions of callers that bring no credentials of their own, and every subscription. */
  session: () => UpstreamSession;
  /** A caller's own session, for the credentials its request carries (`BusHeader.upstreamHeaders`), held until released. */
  sessionFor: (upstreamHeaders: string, caller: string | undefined, obtainedFor: string | undefined) => { session: UpstreamSession; release: () => void };
  /** The time a request may take: the caller's budget, capped by the upstream's. */
  budget: (msg: Msg) => number;
  /** The answer as bus bytes, or `payload_too_large`. */
  fitting: (answer: string, what: string) => Uint8Array;
  /** One of the upstream's slots, as a call takes (`maxConcurrency`, shared between callers). */
  slot: (msg: Msg, timeoutMs: number) => Promise<() => void> | (() => void);
  /** Refuses what goes on the shared session while the connector's ping cannot reach the upstream (as its calls are). */
  liveness: Pick<UpstreamLiveness, "refuseIfUnreachable">;
  logger: Logger;
}

/**
 * Serves an upstream's MCP requests other than tools/call (`UpstreamRequestMethod`: resources/read,
 * prompts/get, completion/complete, resources/subscribe) in its queue group, on the shared
 * session (a request with credentials of its caller's own: on that caller's session). The gateway has already checked that the virtual server selected what is asked for
 * and mapped names and URIs back to the upstream's own. Resource updates the upstream sends for
 * subscriptions go to every gateway on `Subjects.resourceUpdated`, at most once per URI and window.
 * A listen stream's subscriptions are let go of when it closes (`Subjects.subscriptionReleased`).
 */
export function serveUpstreamRequests(deps: RequestDeps): Subscription[] {
  const { nc, upstream } = deps;
  const target = `upstream '${upstream}'`;
  const updates = new UpdateWindow((uri) => {
    if (!nc.isClosed()) nc.publish(Subjects.resourceUpdated(upstream), uri);
  });
  // Only what a gateway subscribed to through this replica is passed on: an upstream announcing
  // updates of URIs nobody asked for put 10,000 messages a second on the bus.
  const subscribed = new SubscriptionShares(() => deps.session().resourceLimit);
  deps.session().resourceUpdated = (uri) => {
    if (subscribed.has(uri)) updates.add(uri);
  };
  const letGo = async (uri: string, budget: number) => {
    await deps.session().release(uri, budget);
    // Another caller subscribed to it meanwhile, perhaps before the upstream let go: asked again.
    if (subscribed.has(uri)) await deps.session().request("resources/subscribe", { uri }, budget).catch(() => undefined);
  };
  /**
   * The subscriptions being asked of the upstream, by URI: one of a URI already under way is joined,
   * not asked again (its answer is the same). Before, callers subscribing one URI at once each asked:
   * 4 at once reached the upstream 4 times (edgeSlowSubscriptions.e2e). One answered is asked again.
   * A caller that joins waits under its own time limit, not the first's: one asked first under 300 ms
   * failed a caller of 60 s that joined it at 300 ms, and one of 200 ms that joined a caller of 60 s
   * waited the upstream's 600 ms. When the first runs out of time, the one that joined asks again.
   */
  const asking = new Map<string, Promise<string>>();
  const askOnce = async (uri: string, ask: (timeoutMs: number) => Promise<string>, budget: number): Promise<string> => {
    const deadline = Date.now() + budget;
    for (;;) {
      const under = asking.get(uri);
      if (!under) {
        const mine = ask(Math.max(1, deadline - Date.now()));
        asking.set(uri, mine);
        void mine.catch(() => undefined).finally(() => asking.get(uri) === mine && asking.delete(uri));
        return mine;
      }
      let answer: string | typeof OUT_OF_TIME;
      try {
        answer = await within(under, deadline - Date.now());
      } catch (error) {
        if (!(error instanceof ManifoldError && error.code === "upstream_timeout") || Date.now() >= deadline) throw error;
        // The first caller's time ran out, not this one's: nobody joins its request any more.
        if (asking.get(uri) === under) asking.delete(uri);
        continue;
      }
      if (answer === OUT_OF_TIME) throw new ManifoldError("upstream_timeout", `${target} did not answer within ${budget} ms`, { timeoutMs: budget });
      return answer;
    }
  };
  /** Held in the caller's share before the upstream is asked: making room may let go of other URIs first. */
  const subscribe = async (caller: string, holder: string, uri: string, ask: (timeoutMs: number) => Promise<string>, budget: number) => {
    const released = subscribed.hold(caller, uri, holder);
    if (released.includes(uri)) throw new ManifoldError("upstream_error", `${target} follows as many resources as it may here (${deps.session().resourceLimit}), one for each caller`);
    await Promise.all(released.map((gone) => letGo(gone, budget)));
    try {
      const answer = await askOnce(uri, ask, budget);
      // Let go of while it was being asked for (other subscriptions made room): nobody holds it now.
      if (!subscribed.has(uri)) await letGo(uri, budget);
      return answer;
    } catch (error) {
      subscribed.release(caller, uri, holder);
      throw error;
    }
  };
  const serve = async (msg: Msg) => {
    const budget = deps.budget(msg);
    let release: (() => void) | undefined;
    let releaseSession: (() => void) | undefined;
    try {
      const parsed = UpstreamRequest.safeParse(msg.json());
      if (!parsed.success) throw new ManifoldError("invalid_request", `unreadable request for ${target}`);
      const { method, params } = parsed.data;
      // A caller's own credentials (a per-user upstream's token) are used as a call uses them: on the
      // caller's own session. A subscription stays on the shared one: an update names a URI, and the
      // read that follows is the caller's own. Before, every read, prompt and completion of a per-user
      // upstream went on the shared session, with the registration's discovery credential.
      const own = msg.headers?.get(BusHeader.upstreamHeaders) || undefined;
      const shared = own === undefined || method === "resources/subscribe";
      // Before a slot is waited for: each went to an unreachable upstream and failed there, one by one.
      if (shared) deps.liveness.refuseIfUnreachable(target);
      // A read, prompt or subscription held open upstream counts against the upstream's bound as a
      // call does (reads went around it: 16 slow reads ran at once on an upstream allowed 2). A
      // subscription's shares bound the URIs held, not the requests under way: a URI already held is
      // asked for again, and 12 sessions subscribing one URI ran 12 at once on an upstream allowed 2.
      release = await deps.slot(msg, budget);
      const caller = msg.headers?.get(BusHeader.caller) || undefined;
      const mine = !shared ? deps.sessionFor(own, caller, msg.headers?.get(BusHeader.upstreamResource) || undefined) : undefined;
      releaseSession = mine?.release;
      const session = mine?.session ?? deps.session();
      if (mine) await session.ready(budget);
      const attributes = { [Attr.mcpMethod]: method, [Attr.upstream]: upstream };
      // The span records an upstream's JSON-RPC error without the credentials it may echo, and
      // anything else (library text: the SDK quotes an HTTP error page, which echoes the request's
      // headers) mapped as the caller hears it, as a call's span does: its status message held the
      // page, the registration's `X-Api-Key` in it.
      const ask = (timeoutMs: number) =>
        traced(`${method} ${upstream}`, SpanKind.CLIENT, attributes, () =>
          session.request(method, params, timeoutMs, caller).catch((error: unknown) => {
            throw error instanceof ProtocolError ? withheldIn(error) : mapUpstreamError(error, target, timeoutMs);
          }),
        );
      const uri = method === "resources/subscribe" && typeof params?.uri === "string" ? params.uri : undefined;
      const answer = uri === undefined ? await ask(budget) : await subscribe(msg.headers?.get(BusHeader.caller) ?? "", msg.headers?.get(BusHeader.subscriber) ?? "", uri, ask, budget);
      // A resource's contents or a prompt are cleaned of the session's credentials, as a call's result is.
      msg.respond(deps.fitting(redactResult(answer, session.credentials), method));
    } catch (error) {
      replyWithError(msg, mapUpstreamError(error, target, budget));
    } finally {
      releaseSession?.();
      release?.();
    }
  };
  // A closed listen stream's URIs: before, each stayed followed upstream (a listen stream each on a
  // 2026-07-28 upstream) for the connection's life, whoever still held it.
  const releaseStream = (msg: Msg) => {
    const parsed = msg.data.length <= 512 * 1024 ? SubscriptionReleased.safeParse(jsonOrNothing(msg.string())) : undefined;
    if (!parsed?.success) return;
    const { caller, holder, uris } = parsed.data;
    for (const uri of uris) if (subscribed.release(caller, uri, holder)) void letGo(uri, deps.budget(msg)).catch(() => undefined);
  };
  return [
    nc.subscribe(Subjects.upstreamRequest(upstream), {
      queue: connectorQueue(upstream),
      callback: (err, msg) => {
        if (err) return deps.logger.error({ err }, "request subscription failed");
        if (!answerable(msg, "gateway")) return;
        const attributes = { [Attr.messagingSystem]: "nats", [Attr.messagingDestination]: msg.subject, [Attr.messagingOperation]: "process", [Attr.upstream]: upstream };
        void traced(`process ${msg.subject}`, SpanKind.CONSUMER, attributes, () => serve(msg), extractTraceContext(msg.headers)).catch(() => undefined);
      },
    }),
    // Not a queue: whichever replica holds the stream's subscriptions lets go of them.
    nc.subscribe(Subjects.subscriptionReleased(upstream), { callback: (err, msg) => (err ? deps.logger.error({ err }, "release subscription failed") : releaseStream(msg)) }),
  ];
}

const OUT_OF_TIME = Symbol("out of time");
/** What `promise` settles to, or `OUT_OF_TIME` once `ms` have passed (its timer cleared either way). */
function within<T>(promise: Promise<T>, ms: number): Promise<T | typeof OUT_OF_TIME> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<typeof OUT_OF_TIME>((resolve) => (timer = setTimeout(resolve, Math.max(0, ms), OUT_OF_TIME)));
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}
