import { CommandType, DiscoveryReport, ManifoldError, REGISTRY_QUEUE, Subjects, type ListReply } from "@manifold/contracts";
import { answerable, replyWithError, type Msg, type NatsConnection } from "@manifold/bus";
import { listChangesOf, registrationHash, type CatalogProjection } from "@manifold/domain";
import type { Logger } from "@manifold/telemetry";
import type { CommandHandler, CommandResult } from "./commandHandler.js";
import { ReportLanes } from "./reportLanes.js";

/**
 * Adopts drift that the virtual servers' policies allow: with `auto-compatible`, compatible
 * changes are re-pinned at once, in every environment the virtual server is served in, by one
 * command a virtual server (`adopt-compatible`), which finds them as it is decided: a change
 * reported since, or the policy unset meanwhile, is not adopted by it. Everything else waits for
 * an admin's accept or reject.
 */
export function createAdopter(projection: CatalogProjection, execute: CommandHandler, logger: Logger, maxEventBytes: () => number | undefined) {
  return async function adoptCompatible(upstream?: string): Promise<void> {
    for (const vs of [...projection.virtualServers()]) {
      if (vs.driftPolicy !== "auto-compatible") continue;
      // A turn of the event loop per virtual server: admin requests and reports are served between them.
      await new Promise((resolve) => setImmediate(resolve));
      const what = { virtualServer: vs.name, upstream };
      await execute({ type: CommandType.adoptCompatible, name: vs.name, upstream, maxEventBytes: maxEventBytes() }).then(
        (result) => result.changed && logger.info(what, "adopted compatible changes"),
        (err: unknown) => logger.warn({ err, ...what }, "could not adopt compatible changes"),
      );
    }
  };
}

export type Adopter = ReturnType<typeof createAdopter>;

/**
 * Records an upstream's current tool list (an event only if something changed) and adopts
 * what the virtual servers' policies allow. Two records of one upstream may race (a
 * registration's discovery and a connector's report, or two replicas): the command handler has
 * the loser decide again on the winner's event, where it is usually a no-op.
 */
export function createToolListRecorder(execute: CommandHandler, adopt: Adopter, maxEventBytes: () => number | undefined) {
  return async function recordToolList(upstream: string, listed: ListReply, registration: string): Promise<CommandResult> {
    const result = await execute({ type: CommandType.recordDiscovery, name: upstream, registration, ...listed, maxEventBytes: maxEventBytes() });
    if (result.changed) await adopt(upstream);
    return result;
  };
}

/** The most bytes an event's data may take on a bus that carries `maxMessageBytes` a message. */
export function eventBytesWithin(maxMessageBytes: number | undefined): number | undefined {
  // Room for the event's metadata (command id, time, actor, fingerprint) and the append's headers, which the bus counts too.
  return maxMessageBytes === undefined ? undefined : maxMessageBytes - 4 * 1024;
}

export type ToolListRecorder = ReturnType<typeof createToolListRecorder>;

/**
 * Connectors report an upstream's tools after a `list_changed`, a reconnect, or on schedule.
 * One registry replica (queue group) records what changed (nothing when nothing did) and
 * adopts what policies allow. An upstream past its hour's budget of list changes
 * (`LIST_CHANGE_BUDGET`) is held: its reports record nothing until the hour has room again.
 */
export function serveDiscoveryReports(nc: NatsConnection, projection: CatalogProjection, recordToolList: ToolListRecorder, logger: Logger) {
  /** Each held upstream's hold, once logged. */
  const held = new Map<string, number>();
  const prefix = Subjects.registryDiscovered("");
  const handle = async (msg: Msg): Promise<void> => {
    try {
      // The era (protocolVersion) is shown from health reports; the recorded tool list is era-free.
      const { upstream, registration, protocolVersion: _era, ...listed } = DiscoveryReport.parse(msg.json());
      // The subject is what the bus let its sender publish on (a connector's identity names its upstreams); the body is not.
      if (msg.subject !== Subjects.registryDiscovered(upstream)) throw new ManifoldError("forbidden", `a report for upstream '${upstream}' came on the subject of another`);
      const current = projection.upstream(upstream);
      // From a connector still on a previous registration: not this upstream's tools any more.
      if (!current || (registration && registration !== registrationHash(current))) return void msg.respond(JSON.stringify({ changed: false }));
      const { lastHour, heldUntil } = listChangesOf(current, Date.now());
      if (heldUntil !== undefined) {
        if (held.get(upstream) !== heldUntil) logger.warn({ upstream, lastHour, heldUntil: new Date(heldUntil).toISOString() }, "upstream lists change too often: further changes held");
        held.set(upstream, heldUntil);
        return void msg.respond(JSON.stringify({ changed: false }));
      }
      held.delete(upstream);
      const result = await recordToolList(upstream, listed, registration ?? registrationHash(current));
      if (result.changed) logger.info({ upstream, version: listed.serverInfo.version }, "upstream tools changed");
      msg.respond(JSON.stringify({ changed: result.changed }));
    } catch (error) {
      replyWithError(msg, error instanceof ManifoldError ? error : new ManifoldError("invalid_request", "unreadable discovery report"));
    }
  };
  const lanes = new ReportLanes<Msg>(handle, (msg) => msg.respond(JSON.stringify({ changed: false, superseded: true })));
  return nc.subscribe(Subjects.registryDiscovered("*"), {
    queue: REGISTRY_QUEUE,
    callback: (err, msg) => {
      if (err) return logger.error({ err }, "discovery report subscription failed");
      if (!answerable(msg, "connector")) return;
      // A registered upstream's reports take turns (`ReportLanes`); any other's is refused or answered at once.
      const named = msg.subject.slice(prefix.length);
      if (projection.upstream(named)) lanes.push(named, msg);
      else void handle(msg);
    },
  });
}
