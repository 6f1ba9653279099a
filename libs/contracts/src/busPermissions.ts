import { z } from "zod";
import { AuditStream } from "./audit.js";
import { HealthStream, RegistryStream, Subjects } from "./subjects.js";

/**
 * Who may do what on the bus, defined once: nats-server's `authorization` block is rendered
 * from these lists (libs/nats-server `renderAuthorization`, deploy/nats/auth.conf), so the
 * permissions the tests run under are the ones deployed. Allow lists only: anything not
 * named here is refused by the server.
 */
export const BusRole = z.enum(["registry", "connector", "gateway"]);
export type BusRole = z.infer<typeof BusRole>;
export const BUS_ROLES = BusRole.options;

/** The NATS KV buckets of the gateways (sessions any replica can serve, shared rate limits, the token vault and pending upstream authorizations). */
export const KvBucket = { sessions: "manifold-sessions", rate: "manifold-rate", vault: "manifold-vault", oauthFlows: "manifold-oauth-flows" } as const;
export type KvBucket = (typeof KvBucket)[keyof typeof KvBucket];

/** The rate limiter's fixed window (calls per minute). */
export const RATE_WINDOW_MS = 60_000;
/** The longest `SESSION_IDLE_MS` a gateway accepts: the sessions bucket keeps no entry longer. */
export const MAX_SESSION_IDLE_MS = 24 * 3_600_000;
/** The longest `GATEWAY_OAUTH_FLOW_TTL_S` a gateway accepts: the flows bucket keeps no entry longer. */
export const MAX_OAUTH_FLOW_TTL_S = 3_600;

/**
 * Each bucket as the registry makes it, the only identity that may: whoever creates a bucket's
 * stream picks where what it captures goes (a gateway's identity made KV_manifold-rate republish
 * its writes into MANIFOLD_REGISTRY). `maxAgeMs` is an upper bound where a gateway's own setting
 * decides (session idle timeout, flow TTL): the gateway judges an entry stale by its write time.
 */
export const KV_BUCKETS: Record<KvBucket, { history: number; maxAgeMs?: number }> = {
  [KvBucket.sessions]: { history: 1, maxAgeMs: MAX_SESSION_IDLE_MS },
  [KvBucket.rate]: { history: 1, maxAgeMs: 2 * RATE_WINDOW_MS },
  [KvBucket.vault]: { history: 1 },
  [KvBucket.oauthFlows]: { history: 1, maxAgeMs: MAX_OAUTH_FLOW_TTL_S * 1000 },
};

/**
 * Replies to a role's requests (its own and JetStream's) arrive under this prefix, and only
 * that role may subscribe to it: one service cannot read another's replies.
 */
export const inboxPrefix = (role: BusRole) => `_INBOX.${role}`;

/**
 * Where a connector sends a call's progress notifications: the gateway that asked listens on
 * one subject under it. Not an inbox, so connectors never get to publish into replies.
 */
export const PROGRESS_PREFIX = "manifold.rpc.progress";
/** Where a connector sends a call's log messages (`notifications/message`), like progress: one subject per call. */
export const LOG_PREFIX = "manifold.rpc.log";
/** Where a connector sends an upstream task's status notifications, like progress: one subject per task. */
export const TASK_STATUS_PREFIX = "manifold.rpc.task-status";

/**
 * Where the connectors of `upstream` publish what a call of theirs sends back besides its answer:
 * under one of the prefixes above (or `Subjects.callHeartbeats`), then the upstream's name, and
 * nowhere else. Shared by every upstream, a connector deployed for one could publish into another
 * upstream's calls (another tenant's agent read its log messages as that upstream's).
 */
export const upstreamScoped = (prefix: string, upstream: string): string => `${prefix}.${upstream}`;

export interface BusPermissions {
  publish: string[];
  subscribe: string[];
  /**
   * May answer requests it received (nats-server `allow_responses`): one reply per request,
   * within the longest call a registration may allow (`callTimeoutMs` ≤ 1 h). Heartbeats of long
   * calls go to `Subjects.callHeartbeats`, not the reply subject.
   */
  responses?: { max: number; expires: string };
}

const RESPONSES = { max: 1, expires: "1h" } as const;

/** JetStream API: whether the server runs JetStream (asked once per JetStreamManager). */
const JS_INFO = "$JS.API.INFO";
/** Read a stream through ordered consumers (ephemeral, pull): the registry's own, trusted identity only. */
const readStream = (stream: string) => [
  `$JS.API.STREAM.INFO.${stream}`,
  `$JS.API.CONSUMER.CREATE.${stream}.>`,
  `$JS.API.CONSUMER.MSG.NEXT.${stream}.*`,
  `$JS.API.CONSUMER.INFO.${stream}.*`,
  `$JS.API.CONSUMER.DELETE.${stream}.*`,
];
/**
 * Follow a stream by message gets (`readStream`), as gateways and connectors do: no consumer.
 * Consumers are state nats-server keeps for whoever asks, and a permission can name which one an
 * identity may create but not how large it is (busPermissions.unit, registryConsumerAbuse.e2e).
 */
const getStream = (stream: string) => [`$JS.API.STREAM.INFO.${stream}`, `$JS.API.STREAM.MSG.GET.${stream}`];
/** Create a stream when it is missing (its config is fixed in code). */
const createStream = (stream: string) => [`$JS.API.STREAM.INFO.${stream}`, `$JS.API.STREAM.CREATE.${stream}`];
/**
 * A KV bucket the registry made: read its keys (direct get; message get on a bucket made without
 * it) and write them. Never create it: its maker picks where what it captures goes (`KV_BUCKETS`).
 */
const kvBucket = (bucket: string) => [
  `$JS.API.STREAM.INFO.KV_${bucket}`,
  `$JS.API.DIRECT.GET.KV_${bucket}`,
  `$JS.API.DIRECT.GET.KV_${bucket}.>`,
  `$JS.API.STREAM.MSG.GET.KV_${bucket}`,
  `$KV.${bucket}.>`,
];

const inbox = (role: BusRole) => `${inboxPrefix(role)}.>`;
const each = (upstreams: "*" | readonly string[], subject: (upstream: string) => string) =>
  upstreams === "*" ? [subject("*")] : upstreams.map(subject);
const unique = (subjects: string[]) => [...new Set(subjects)];

export interface PermissionOptions {
  /** A connector's upstreams (`CONNECTOR_UPSTREAMS`): `*` for all. */
  upstreams?: "*" | readonly string[];
}

/** The permissions of one role's identity. */
export function busPermissions(role: BusRole, options: PermissionOptions = {}): BusPermissions {
  switch (role) {
    case "registry":
      return {
        publish: unique([
          RegistryStream.subjects,
          Subjects.registryAppended,
          Subjects.upstreamList("*"),
          JS_INFO,
          ...createStream(RegistryStream.name),
          `$JS.API.STREAM.MSG.GET.${RegistryStream.name}`,
          ...readStream(RegistryStream.name),
          ...createStream(HealthStream.name),
          ...readStream(HealthStream.name),
          // Made here with its retention, never updated: an update may widen what it captures (auditStream.ts).
          ...createStream(AuditStream.name),
          ...readStream(AuditStream.name),
          // The gateways' buckets, made here and never read or written here (`KV_BUCKETS`).
          ...Object.values(KvBucket).flatMap((bucket) => createStream(`KV_${bucket}`)),
        ]),
        subscribe: [inbox("registry"), Subjects.registryAppended, Subjects.registryDiscovered("*")],
        responses: RESPONSES,
      };
    case "connector": {
      const upstreams = options.upstreams ?? "*";
      return {
        publish: unique([
          JS_INFO,
          ...getStream(RegistryStream.name),
          // Read to check it (`checkHealthStream`), never created: its maker picks where what it captures goes.
          `$JS.API.STREAM.INFO.${HealthStream.name}`,
          ...each(upstreams, (u) => Subjects.upstreamHealth(u, "*")),
          ...each(upstreams, Subjects.registryDiscovered),
          ...each(upstreams, Subjects.resourceUpdated),
          ...[PROGRESS_PREFIX, LOG_PREFIX, TASK_STATUS_PREFIX, Subjects.callHeartbeats].flatMap((prefix) => each(upstreams, (u) => `${upstreamScoped(prefix, u)}.>`)),
        ]),
        subscribe: [
          inbox("connector"),
          Subjects.registryAppended,
          ...each(upstreams, Subjects.upstreamCall),
          ...each(upstreams, Subjects.upstreamList),
          ...each(upstreams, Subjects.upstreamRequest),
          ...each(upstreams, (u) => Subjects.upstreamResume(u, "*", "*")),
          ...each(upstreams, (u) => Subjects.upstreamTasks(u, "*")),
          ...each(upstreams, Subjects.credentialDropped),
          ...each(upstreams, Subjects.subscriptionReleased),
          Subjects.callCancel,
        ],
        responses: RESPONSES,
      };
    }
    case "gateway":
      return {
        publish: unique([
          Subjects.upstreamCall("*"),
          Subjects.upstreamRequest("*"),
          Subjects.upstreamResume("*", "*", "*"),
          Subjects.upstreamTasks("*", "*"),
          Subjects.callCancel,
          Subjects.credentialDropped("*"),
          Subjects.subscriptionReleased("*"),
          Subjects.sessionClosed,
          Subjects.sessionChanged("*"),
          Subjects.sessionAnswer("*"),
          AuditStream.subjects,
          JS_INFO,
          ...getStream(RegistryStream.name),
          `$JS.API.STREAM.INFO.${AuditStream.name}`,
          // No consumers on a bucket whose bytes a gateway writes: a push consumer delivers them to any
          // subject, past its publish rights (nats-io/nats-server#8274). The vault's keys are listed by
          // stream info, its changes heard on its subjects.
          ...kvBucket(KvBucket.sessions),
          ...kvBucket(KvBucket.rate),
          ...kvBucket(KvBucket.vault),
          ...kvBucket(KvBucket.oauthFlows),
        ]),
        subscribe: [
          inbox("gateway"),
          Subjects.registryAppended,
          // Connectors' health reports as they publish them (`listenHealth`), not read back from their stream.
          HealthStream.subjects,
          `$KV.${KvBucket.vault}.>`,
          Subjects.sessionClosed,
          Subjects.sessionChanged("*"),
          Subjects.sessionAnswer("*"),
          Subjects.resourceUpdated("*"),
          `${PROGRESS_PREFIX}.>`,
          `${LOG_PREFIX}.>`,
          `${TASK_STATUS_PREFIX}.>`,
          `${Subjects.callHeartbeats}.>`,
        ],
        // A replica acknowledges another's session change (Subjects.sessionChanged) once it applied it.
        responses: RESPONSES,
      };
  }
}
