import { BusEnv, CredentialPolicyEnv, LogLevel, METRICS_MAX_CONNECTIONS, Milliseconds, Port, ResourceName, StdioPolicyEnv, parseEnv } from "@manifold/contracts";
import { fileURLToPath } from "node:url";
import { z } from "zod";

const AdminSecret = z.string().min(16, { message: "must be a secret of at least 16 characters" });

/**
 * `ci=<secret>,alice=<secret>`: one admin token per operator or pipeline, so each event says
 * who made the change and tokens can be rotated one at a time.
 */
const NamedAdminTokens = z
  .string()
  .transform((list) =>
    list
      .split(",")
      .filter((entry) => entry.trim())
      .map((entry) => {
        const at = entry.indexOf("=");
        return { name: at < 0 ? "" : entry.slice(0, at).trim(), token: entry.slice(at + 1).trim() };
      }),
  )
  .pipe(z.array(z.object({ name: ResourceName, token: AdminSecret })).min(1));

const RegistryEnv = z.object({
  ...BusEnv.shape,
  REGISTRY_HOST: z.string().default("127.0.0.1"),
  REGISTRY_PORT: Port.default(8081),
  /**
   * Host names the admin port answers (any port; `*`: any). Unset: the loopback names when bound to
   * loopback, any host otherwise (behind a load balancer, list the public names).
   */
  REGISTRY_ALLOWED_HOSTS: z.string().optional(),
  /** Browser origins (`scheme://host[:port]`, `*`: any) besides the admin port's own that may call it. */
  REGISTRY_ALLOWED_ORIGINS: z.string().optional(),
  /** HTTPS on the admin port (the admin API and the console): the certificate chain and its private key (PEM files, both or neither; renewed files are picked up within seconds). */
  REGISTRY_TLS_CERT_FILE: z.string().min(1).optional(),
  REGISTRY_TLS_KEY_FILE: z.string().min(1).optional(),
  /**
   * `/metrics` has a listener of its own: the admin port serves the console to operators' browsers,
   * and the series (the event log's sequence among them) tell when and how often the catalog changes.
   */
  REGISTRY_METRICS_PORT: Port.default(9465),
  /** Where the metrics listener binds; `REGISTRY_HOST` when unset. */
  REGISTRY_METRICS_HOST: z.string().optional(),
  /** Connections the metrics listener holds at most (`limitConnections`, as on the admin port). */
  REGISTRY_METRICS_MAX_CONNECTIONS: z.coerce.number().int().positive().default(METRICS_MAX_CONNECTIONS),
  /** The admin token, recorded as actor `admin:admin`. */
  MANIFOLD_ADMIN_TOKEN: AdminSecret.optional(),
  MANIFOLD_ADMIN_TOKENS: NamedAdminTokens.optional(),
  /**
   * `sre=<secret>,auditor=<secret>`: tokens that may read everything the admin API and the console
   * show (lists, audit, history, drift, previews) and change nothing: 403 `forbidden` for every
   * command. For the people and dashboards that trace calls and review changes.
   */
  MANIFOLD_READER_TOKENS: NamedAdminTokens.optional(),
  DISCOVERY_TIMEOUT_MS: Milliseconds.default(15_000),
  /**
   * Connections the admin port holds at most (below the process's descriptors, `ulimit -n`): at the
   * bound a new one takes the place of the longest-open silent, idle or still-arriving one, or is
   * refused when every one is answering. Admins, the console and pipelines need a few each.
   */
  REGISTRY_MAX_CONNECTIONS: z.coerce.number().int().positive().default(512),
  /** An idle keep-alive connection is closed after this long without a request. */
  REGISTRY_KEEP_ALIVE_TIMEOUT_MS: Milliseconds.default(5_000),
  /** A request whose headers have not all arrived by then gets 408 and its connection is closed. */
  REGISTRY_HEADERS_TIMEOUT_MS: Milliseconds.default(10_000),
  /** A request (headers and body) not received in full by then gets 408; answers (the audit tail) are not timed. */
  REGISTRY_REQUEST_TIMEOUT_MS: Milliseconds.default(30_000),
  /** Audit and history page reads (each a JetStream consumer) running at once on this replica, for all admins; past it 503 `at_capacity` (tool searches have a pool of their own, `toolSearch.ts`). */
  REGISTRY_MAX_PAGE_READS: z.coerce.number().int().positive().default(16),
  /** The same for one admin token; past it 429 `too_many_reads`. */
  REGISTRY_MAX_PAGE_READS_PER_ADMIN: z.coerce.number().int().positive().default(4),
  /**
   * Requests per second one admin token may send this replica, whatever they ask, and requests
   * without a valid token all together; past it 429 `rate_limited` (`adminBudget.ts`).
   */
  REGISTRY_MAX_REQUESTS_PER_S_PER_ADMIN: z.coerce.number().int().positive().default(500),
  /** A connector replica's health report older than this no longer counts. */
  HEALTH_STALE_MS: Milliseconds.default(30_000),
  /** Audit records older than this are dropped. */
  AUDIT_MAX_AGE_HOURS: z.coerce.number().positive().default(30 * 24),
  /** Past this size the oldest audit records are dropped first. */
  AUDIT_MAX_BYTES: z.coerce.number().int().positive().default(1024 ** 3),
  LOG_LEVEL: LogLevel,
  /** The operator console's built files, served at /console (the workspace's console/dist by default). */
  CONSOLE_DIR: z.string().min(1).default(fileURLToPath(new URL("../../../console/dist/", import.meta.url))),
  /** A trace viewer URL containing `{traceId}`: the console's audit view links each record's trace there. */
  CONSOLE_TRACE_URL: z.url({ protocol: /^https?$/ }).refine((u) => u.includes("{traceId}"), { message: "must contain {traceId}" }).optional(),
  /** Which credential references registrations may use (the connectors read the same variables). */
  ...CredentialPolicyEnv,
  /** Which commands stdio registrations may run (the connectors read the same variable). */
  ...StdioPolicyEnv,
}).refine((env) => env.MANIFOLD_ADMIN_TOKEN || env.MANIFOLD_ADMIN_TOKENS, {
  message: "set MANIFOLD_ADMIN_TOKEN (a secret of at least 16 characters) or MANIFOLD_ADMIN_TOKENS (name=secret,…)",
  path: ["MANIFOLD_ADMIN_TOKEN"],
}).refine((env) => {
  // One name, one token, one role: each event names its actor, and a secret cannot be two people.
  const all = [...(env.MANIFOLD_ADMIN_TOKEN ? [{ name: "admin", token: env.MANIFOLD_ADMIN_TOKEN }] : []), ...(env.MANIFOLD_ADMIN_TOKENS ?? []), ...(env.MANIFOLD_READER_TOKENS ?? [])];
  return new Set(all.map((t) => t.name)).size === all.length && new Set(all.map((t) => t.token)).size === all.length;
}, {
  message: "every admin and reader token needs a name and a secret of its own (MANIFOLD_ADMIN_TOKEN is named 'admin')",
  path: ["MANIFOLD_READER_TOKENS"],
}).refine((env) => (env.REGISTRY_TLS_CERT_FILE === undefined) === (env.REGISTRY_TLS_KEY_FILE === undefined), {
  message: "set both REGISTRY_TLS_CERT_FILE and REGISTRY_TLS_KEY_FILE, or neither",
  path: ["REGISTRY_TLS_KEY_FILE"],
});

export type RegistryConfig = Readonly<z.infer<typeof RegistryEnv>>;

export const loadRegistryConfig = (env: Record<string, string | undefined>): RegistryConfig => parseEnv(RegistryEnv, env);

/** What a token may do: change the registry, or only read it. */
export type AdminRole = "admin" | "reader";

/** Every admin and reader token the registry accepts, with the name it is recorded under. */
export const adminTokens = (config: RegistryConfig): { name: string; token: string; role: AdminRole }[] => [
  ...(config.MANIFOLD_ADMIN_TOKEN ? [{ name: "admin", token: config.MANIFOLD_ADMIN_TOKEN, role: "admin" as const }] : []),
  ...(config.MANIFOLD_ADMIN_TOKENS ?? []).map((t) => ({ ...t, role: "admin" as const })),
  ...(config.MANIFOLD_READER_TOKENS ?? []).map((t) => ({ ...t, role: "reader" as const })),
];
