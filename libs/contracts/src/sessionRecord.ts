import { z } from "zod";
import { McpLogLevel } from "./bus.js";
import { ResourceUri } from "./mcpItems.js";

/**
 * Resource subscriptions one 2025-era session may hold (docs/protocol.md "Resource subscriptions"):
 * every one is kept in the session's record and listened for on each replica that holds the session.
 */
export const MAX_SESSION_SUBSCRIPTIONS = 100;
/**
 * The characters of the URIs one 2025-era session may hold subscribed, all together: a session keeps
 * them for its life (in the gateway's memory on each replica holding it, and in its record, written
 * whole at each change), as it keeps its initialize (at most 16 KiB). By count alone, 100 URIs of
 * 4,096 characters each were ~400 KB a session, ~1.4 MiB of a replica's heap (20 sessions: +28.7 MiB).
 */
export const MAX_SESSION_SUBSCRIPTION_CHARS = 32 * 1024;

/**
 * Gateway replicas a session's record names as holding a copy (they are told of its changes);
 * beyond this many, the one that adopted it longest ago is dropped from the list.
 */
export const MAX_SESSION_HOLDERS = 16;
/** A gateway replica's id, as it names itself in session records and on `Subjects.sessionChanged`. */
export const GatewayReplicaId = z.string().regex(/^[A-Za-z0-9]{1,64}$/);

/** What a 2025-era session sets after initialize, that every replica serving it honours. */
export const SessionState = z.strictObject({
  /** `logging/setLevel`: the least severe level of the log messages its calls get; absent, none. */
  logLevel: McpLogLevel.optional(),
  /** `resources/subscribe`: the exposed URIs whose updates the session gets, oldest first. */
  subscriptions: z.array(ResourceUri).max(MAX_SESSION_SUBSCRIPTIONS).optional(),
});
export type SessionState = z.infer<typeof SessionState>;

/**
 * A 2025-era session as the gateways' session directory (NATS KV) holds it: what any replica needs
 * to adopt it, and its state. Read back from the bus, it is parsed like any other hostile input.
 */
export const SessionRecord = z.strictObject({
  virtualServer: z.string().min(1).max(1_024),
  /**
   * The sequence of the event that created the virtual server: one deleted and created again under
   * its name is another, and serves none of the old one's sessions. Absent in records of releases
   * before it: such a session is adopted by no replica (its virtual server cannot be told apart).
   */
  virtualServerCreated: z.number().int().nonnegative().optional(),
  environment: z.string().min(1).max(1_024),
  /** The sequence of the environment's creation (0: the default environment), for the same reason. */
  environmentCreated: z.number().int().nonnegative().optional(),
  principalId: z.string().min(1).max(4_096),
  /** The client's initialize request, replayed when another replica adopts the session. */
  initialize: z.unknown(),
  /** The replicas holding a copy, oldest first: a change is acknowledged by each before it is answered. */
  holders: z.array(GatewayReplicaId).max(MAX_SESSION_HOLDERS).optional(),
  ...SessionState.shape,
});
export type SessionRecord = z.infer<typeof SessionRecord>;

/** A session id as the gateways mint them (a UUID) and accept them back. */
export const SessionId = z.string().regex(/^[A-Za-z0-9-]{1,128}$/);

/**
 * `Subjects.sessionChanged`: a session's record as written at `revision` (its state and holders;
 * the rest never changes), for each replica holding a copy to apply before it acknowledges (sent
 * only by gateways; parsed as hostile).
 */
export const SessionChanged = z.strictObject({
  id: SessionId,
  revision: z.number().int().positive(),
  state: SessionState,
  holders: z.array(GatewayReplicaId).max(MAX_SESSION_HOLDERS),
});
export type SessionChanged = z.infer<typeof SessionChanged>;

/**
 * `Subjects.sessionAnswer`: an agent's JSON-RPC response, received for `session` by one gateway
 * replica and relayed to the replica whose request it answers (sent only by gateways, bounded by
 * the agent's body limit; parsed as hostile). The asking replica hands it only to that session's
 * own outstanding request; the SDK server there checks the rest of its shape.
 */
export const SessionAnswer = z.strictObject({
  session: SessionId,
  answer: z.looseObject({ jsonrpc: z.literal("2.0"), id: z.string().max(128) }),
});
export type SessionAnswer = z.infer<typeof SessionAnswer>;
