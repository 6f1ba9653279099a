import { BusEnv, CredentialPolicyEnv, LogLevel, METRICS_MAX_CONNECTIONS, Milliseconds, Port, StdioPolicyEnv, parseEnv } from "@manifold/contracts";
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { z } from "zod";
import { SESSION_INBOUND } from "./inboundBudget.js";

const Count = z.coerce.number().int().positive();

const ConnectorEnv = z.object({
  ...BusEnv.shape,
  /** `*` serves every registered upstream; otherwise a comma-separated list of names. */
  CONNECTOR_UPSTREAMS: z
    .string()
    .default("*")
    .transform((v) => (v.trim() === "*" ? ("*" as const) : v.split(",").map((s) => s.trim()).filter(Boolean))),
  /**
   * Names this replica in health reports and in the subjects its held calls are resumed on; unique
   * per process by default. At most 96 characters: a resume subject names it, and the gateway
   * refuses a round whose subject is over 256 (a longer id made every round on the replica fail).
   */
  CONNECTOR_REPLICA_ID: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/)
    .max(96)
    .default(() => `${hostname().replace(/[^A-Za-z0-9_-]/g, "-").slice(0, 64)}-${process.pid}-${randomBytes(3).toString("hex")}`),
  CONNECTOR_HOST: z.string().default("127.0.0.1"),
  /** Serves only probes and `/metrics`. */
  CONNECTOR_PORT: Port.default(8082),
  /** Serve `CONNECTOR_PORT` over HTTPS with this certificate chain and key (PEM files, both or neither; renewed files are picked up). */
  CONNECTOR_TLS_CERT_FILE: z.string().min(1).optional(),
  CONNECTOR_TLS_KEY_FILE: z.string().min(1).optional(),
  /** Connections `CONNECTOR_PORT` holds at most (`limitConnections`, as the gateway's and registry's ports). */
  CONNECTOR_MAX_CONNECTIONS: Count.default(METRICS_MAX_CONNECTIONS),
  /** Default time budget of a call; an upstream's registration may set its own. */
  CALL_TIMEOUT_MS: Milliseconds.default(60_000),
  /** How long a connection's handshake may take; also how long an HTTP upstream may take to accept a message it answers 202 (`AbandonedRequests`). */
  CONNECT_TIMEOUT_MS: Milliseconds.default(10_000),
  /** Calls in flight per upstream per replica (an upstream's registration may set its own). */
  CONNECTOR_MAX_CONCURRENCY: Count.default(64),
  /** Calls waiting for a slot per upstream; beyond that they fail fast. */
  CONNECTOR_MAX_QUEUE: Count.default(1_000),
  CONNECTOR_BREAKER_THRESHOLD: Count.default(5),
  CONNECTOR_BREAKER_COOLDOWN_MS: Milliseconds.default(5_000),
  /** Upstream sessions opened for agents' pass-through credentials, per upstream. */
  CONNECTOR_USER_SESSIONS_MAX: Count.default(256),
  CONNECTOR_USER_SESSION_IDLE_MS: Milliseconds.default(5 * 60_000),
  /**
   * Rounds of questions one caller may have waiting for its answers on a replica (a 2026-07-28
   * agent's `input_required` rounds are no longer its calls in flight at the gateway); past it the
   * upstream's question is refused with `too_many_calls`. As many as the gateway's calls per caller.
   */
  CONNECTOR_MAX_ROUNDS_PER_CALLER: Count.default(256),
  /**
   * The bytes one caller's rounds may hold on a replica: a held round keeps its call (the arguments)
   * and its latest answers. Past it a round of another large call is refused with `too_many_calls`.
   */
  CONNECTOR_MAX_ROUND_BYTES_PER_CALLER: Count.default(16 * 2 ** 20),
  HEALTH_HEARTBEAT_MS: Milliseconds.default(10_000),
  /**
   * How long an upstream whose call timed out has to answer a ping before its health is `down`
   * ("answers nothing"); while it is, it is pinged again 1 s, 2 s, 4 s … apart, at most the breaker's
   * cooldown for an HTTP upstream and 30 s for a stdio one (`upstreamLiveness.ts`).
   */
  HEALTH_PING_TIMEOUT_MS: Milliseconds.default(5_000),
  /** Drift detection: list every upstream's tools this often (0: only on list_changed and reconnect). */
  CONNECTOR_REDISCOVER_MS: z.coerce.number().int().nonnegative().default(300_000),
  /**
   * The share of an upstream's slots (maxConcurrency) one tool may hold, waiting ones included:
   * a hanging tool cannot starve the upstream's other tools.
   */
  CONNECTOR_TOOL_SHARE: z.coerce.number().gt(0).max(1).default(0.5),
  /**
   * Messages an upstream session may send of its own per second before it is cut as a flood
   * (`inboundBudget.ts`); an upstream's registration may set its own (`inboundPerSecond`).
   */
  CONNECTOR_INBOUND_PER_SECOND: z.coerce.number().int().min(100).max(1_000_000).default(SESSION_INBOUND.perSecond),
  LOG_LEVEL: LogLevel,
  /** Which credential references the connector resolves (the registry reads the same variables). */
  ...CredentialPolicyEnv,
  /** Which commands the connector spawns for stdio upstreams (the registry reads the same variable). */
  ...StdioPolicyEnv,
});

export type ConnectorConfig = Readonly<z.infer<typeof ConnectorEnv>>;

export const loadConnectorConfig = (env: Record<string, string | undefined>): ConnectorConfig => parseEnv(ConnectorEnv, env);
