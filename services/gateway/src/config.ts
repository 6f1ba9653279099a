import { BusEnv, CredentialPolicyEnv, LogLevel, MAX_OAUTH_FLOW_TTL_S, MAX_SESSION_IDLE_MS, METRICS_MAX_CONNECTIONS, Milliseconds, Port, parseEnv } from "@manifold/contracts";
import { isIP } from "node:net";
import { z } from "zod";

/** An address or CIDR range (`10.0.0.0/8`, `fd00::/8`), or one of proxy-addr's named ranges. */
const isProxyAddress = (entry: string): boolean => {
  if (["loopback", "linklocal", "uniquelocal"].includes(entry)) return true;
  const [address = "", bits, ...rest] = entry.split("/");
  const family = isIP(address);
  return family !== 0 && rest.length === 0 && (bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128)));
};

/**
 * `GATEWAY_TRUST_PROXY`: `off`, a hop count (`1`: the nearest proxy, whatever its address), or the
 * proxies' addresses and CIDR ranges, comma-separated. Never "trust all": with a hop count, only
 * that many X-Forwarded-For entries are believed.
 */
const TrustProxy = z
  .string()
  .default("off")
  .transform((value, ctx): false | number | string[] => {
    const trimmed = value.trim();
    if (trimmed === "off" || trimmed === "") return false;
    if (/^\d{1,2}$/.test(trimmed)) return Number(trimmed) === 0 ? false : Number(trimmed);
    const entries = trimmed.split(",").map((e) => e.trim());
    if (entries.every(isProxyAddress)) return entries;
    ctx.addIssue({ code: "custom", message: "must be off, a hop count, or comma-separated proxy addresses / CIDR ranges (loopback, linklocal, uniquelocal allowed)" });
    return z.NEVER;
  });

const GatewayEnv = z.object({
  ...BusEnv.shape,
  GATEWAY_HOST: z.string().default("127.0.0.1"),
  GATEWAY_PORT: Port.default(8080),
  /**
   * `/metrics` is served on its own listener, never on the public port: the series name every
   * consumer, virtual server, tool and upstream. Scrape it from inside the deployment.
   */
  GATEWAY_METRICS_PORT: Port.default(9464),
  /** Where the metrics listener binds; unset: `GATEWAY_HOST`. */
  GATEWAY_METRICS_HOST: z.string().optional(),
  /** Connections the metrics listener holds at most (`limitConnections`, as on the public port). */
  GATEWAY_METRICS_MAX_CONNECTIONS: z.coerce.number().int().positive().default(METRICS_MAX_CONNECTIONS),
  /** Host names (any port, comma-separated, `*` for any) this gateway serves; unset: the loopback names when bound to loopback, else any. */
  GATEWAY_ALLOWED_HOSTS: z.string().optional(),
  /** Browser origins (`https://app.example.com`, comma-separated, `*` for any) allowed besides the requested host itself. */
  GATEWAY_ALLOWED_ORIGINS: z.string().optional(),
  /** HTTPS on the public port: the certificate chain and its private key (PEM files, both or neither; renewed files are picked up within seconds). */
  GATEWAY_TLS_CERT_FILE: z.string().min(1).optional(),
  GATEWAY_TLS_KEY_FILE: z.string().min(1).optional(),
  /**
   * The URL clients reach this gateway at (`https://mcp.example.com`), when a proxy stands in
   * front of it: each virtual server's OAuth resource URL (RFC 8707 audience) and metadata URL
   * start with it. Unset: the scheme and Host of each request (the host guard checks the Host).
   */
  GATEWAY_PUBLIC_URL: z.url({ protocol: /^https?$/ }).optional(),
  /**
   * Which peers are proxies whose X-Forwarded-For is believed (fastify's `trustProxy`): the client
   * address each request is judged by (the failed-credentials share per address) is then the
   * forwarded client's. Behind a load balancer or ingress, set it to the proxy's addresses (or a hop
   * count): otherwise every caller is the proxy's one address and shares one address's share.
   * `off` (default): the TCP peer is the client, and X-Forwarded-For is ignored.
   */
  GATEWAY_TRUST_PROXY: TrustProxy,
  /** Scopes an MCP client should ask an authorization server for (space-separated): `scopes_supported` of the protected resource metadata and `scope` of 401 challenges. */
  GATEWAY_OAUTH_SCOPES: z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e ]*$/).default(""),
  /**
   * Connections the public port holds at most (keep it below the process's descriptors, `ulimit -n`):
   * at the bound a new one replaces the longest-open idle one, or is refused when none is idle.
   */
  GATEWAY_MAX_CONNECTIONS: z.coerce.number().int().positive().default(8_192),
  /** Largest accepted request body; larger ones get 413. */
  GATEWAY_BODY_LIMIT_BYTES: z.coerce.number().int().positive().default(1024 * 1024),
  /** Request headers larger than this get 431 `headers_too_large` (Node's parser, before any route). */
  GATEWAY_MAX_HEADER_BYTES: z.coerce.number().int().positive().default(16 * 1024),
  /** A request whose headers have not all arrived by then gets 408 `request_timeout` and its connection is closed (at most the request timeout). */
  GATEWAY_HEADERS_TIMEOUT_MS: Milliseconds.default(10_000),
  /** A request (headers and body) not received in full by then gets 408; answers (SSE streams, slow calls) are not timed. */
  GATEWAY_REQUEST_TIMEOUT_MS: Milliseconds.default(30_000),
  /** Time budget of one tools/call end to end; the connector is told the same budget. */
  CALL_TIMEOUT_MS: Milliseconds.default(60_000),
  /** A session with no request for this long is closed. */
  // At most what the sessions bucket keeps (`KV_BUCKETS`, made by the registry).
  SESSION_IDLE_MS: Milliseconds.max(MAX_SESSION_IDLE_MS).default(30 * 60_000),
  /** Sessions one replica holds at most; past it, initialize gets 503 `at_capacity` (memory stays bounded). */
  GATEWAY_MAX_SESSIONS: z.coerce.number().int().positive().default(10_000),
  /** Sessions one caller (consumer or token subject) may hold on one replica; past it, 429 `too_many_sessions`. */
  GATEWAY_MAX_SESSIONS_PER_PRINCIPAL: z.coerce.number().int().positive().default(1_000),
  /** 2026-07-28 `subscriptions/listen` streams one replica holds open at most; past it, 503 `at_capacity`. */
  GATEWAY_MAX_LISTENS: z.coerce.number().int().positive().default(10_000),
  /** Tool calls one caller may have in flight on one replica, until its client has read each answer; past it 429 `too_many_calls`. */
  GATEWAY_MAX_CALLS_PER_PRINCIPAL: z.coerce.number().int().positive().default(256),
  /**
   * Request units one caller may spend a second on one replica, whatever it asks (what the fast path
   * answers costs 1, each message an SDK serves 10: `requestBudget.ts`); past it 429 `rate_limited`.
   * At least 100, so that a session's initialize and a GET stream fit.
   */
  GATEWAY_MAX_REQUESTS_PER_S_PER_PRINCIPAL: z.coerce.number().int().min(100).default(1_000),
  /**
   * Requests presenting credentials that fail (unknown key, bad signature, unregistered issuer…)
   * one replica checks a second, every such caller together (a second's worth at once); past it
   * 429 `too_many_failed_credentials`, answered after its `Retry-After` (1 s).
   */
  GATEWAY_MAX_FAILED_CREDENTIALS_PER_S: z.coerce.number().int().positive().default(100),
  /** Listen streams one caller may hold open on one replica; past it, 429 `too_many_streams` (no caller fills the replica). */
  GATEWAY_MAX_LISTENS_PER_PRINCIPAL: z.coerce.number().int().positive().default(100),
  /**
   * How often every open stream is checked as a new request with its credentials would be, besides
   * after each change to keys or grants: a stream opened with a JWT ends at most this long after
   * the token expires.
   */
  GATEWAY_STREAM_RECHECK_S: z.coerce.number().int().positive().default(30),
  /** A connector replica's health report older than this no longer counts. */
  HEALTH_STALE_MS: Milliseconds.default(30_000),
  /** On shutdown, how long calls in flight may take to finish. */
  GATEWAY_DRAIN_MS: Milliseconds.default(10_000),
  /** `required`: every request needs an API key or a JWT and a grant (deny unless granted). `off` only for trusted test setups. */
  GATEWAY_AUTH: z.enum(["required", "off"]).default("required"),
  /**
   * `true` admits requests without credentials to virtual servers holding an anonymous grant
   * (`subject: { anonymous: true }`), each client network as its own caller (`anonymousCaller`; the
   * grant's rate limit one count for all of them); off by default. Anything
   * presented as credentials is still checked, and a request without them stays 401 elsewhere.
   */
  GATEWAY_ALLOW_ANONYMOUS: z.enum(["true", "false"]).default("false").transform((v) => v === "true"),
  /** The longest a JWT may be valid, from its `iat` (and from now): longer-lived tokens are refused. */
  GATEWAY_JWT_MAX_LIFETIME_S: z.coerce.number().int().positive().max(7 * 24 * 3600).default(2 * 3600),
  /** `off` sends every MCP request through its era's SDK; `on` lets the seam answer tools/list and plain tools/call itself (measured: see docs/protocol.md). */
  GATEWAY_FAST_PATH: z.enum(["on", "off"]).default("on"),
  /**
   * What an agent's W3C trace context (`traceparent` header or `_meta`) is: `continue`, the parent of
   * its call's spans (an SRE follows one trace from the agent on); `link`, a link of the first span
   * of a trace started here, for agents that are not trusted to pick the trace their calls join or
   * whether they are sampled (docs/operations.md).
   */
  GATEWAY_AGENT_TRACE: z.enum(["continue", "link"]).default("continue"),
  /** `ttlMs` of a 2026-07-28 tools/list: how long a client may reuse it without asking (list changes are also pushed to listen streams). */
  GATEWAY_LIST_TTL_MS: z.coerce.number().int().nonnegative().default(60_000),
  /** Where a virtual server records values: the most its arguments and result may add to an audit record; past it the record keeps none (`valuesOmitted: too_large`). */
  GATEWAY_AUDIT_VALUE_BYTES: z.coerce.number().int().positive().default(16 * 1024),
  /**
   * The token vault's AES-256-GCM keys (docs/identity.md): `id=reference` pairs, newest first,
   * each reference (`env:`/`file:`) holding 32 random bytes in base64. Unset: upstreams with
   * `auth: { type: "oauth" }` cannot be called (no vault). Needs `GATEWAY_PUBLIC_URL`.
   */
  GATEWAY_VAULT_KEYS: z.string().optional(),
  /** A vault token this close to its expiry is refreshed before a call uses it. */
  GATEWAY_VAULT_REFRESH_MARGIN_S: z.coerce.number().int().nonnegative().max(3600).default(60),
  /**
   * How many tokens exchanged for upstreams (RFC 8693) a replica keeps for reuse, each caller at
   * most a sixteenth of them (past it, that caller's own oldest goes): bounds the memory one
   * caller's fresh tokens take, never another caller's cached tokens.
   */
  GATEWAY_EXCHANGED_TOKENS_KEPT: z.coerce.number().int().min(16).max(1_000_000).default(10_000),
  /** How long a connect link (a pending upstream authorization) stays usable. */
  GATEWAY_OAUTH_FLOW_TTL_S: z.coerce.number().int().positive().max(MAX_OAUTH_FLOW_TTL_S).default(600),
  /** `true` lets the gateway talk OAuth to authorization servers over plain http (development and tests only). */
  GATEWAY_OAUTH_ALLOW_HTTP: z.enum(["true", "false"]).default("false").transform((v) => v === "true"),
  /**
   * The HMAC key of 2026-07-28 `requestState` (MRTR rounds), as a secret reference (`env:NAME` or
   * `file:/path`, under MANIFOLD_SECRET_ENV_PREFIX/_NAMES and MANIFOLD_SECRETS_DIR, as upstream
   * credentials): every replica must hold the same key so a retry may land on any of them. At
   * least 32 bytes. Unset: a random key per process (a retry must reach the same replica).
   */
  GATEWAY_REQUEST_STATE_KEY: z.string().regex(/^(env|file):./, { message: "must be a secret reference (env:NAME or file:/path)" }).optional(),
  /** How long a 2026-07-28 agent may take to answer a round (its requestState expires then; the call's budget also bounds it). */
  GATEWAY_REQUEST_STATE_TTL_S: z.coerce.number().int().positive().max(3600).default(600),
  ...CredentialPolicyEnv,
  LOG_LEVEL: LogLevel,
}).refine((env) => env.GATEWAY_VAULT_KEYS === undefined || env.GATEWAY_PUBLIC_URL !== undefined, {
  message: "GATEWAY_VAULT_KEYS needs GATEWAY_PUBLIC_URL (the OAuth redirect URI and connect links start with it)",
  path: ["GATEWAY_PUBLIC_URL"],
}).refine((env) => (env.GATEWAY_TLS_CERT_FILE === undefined) === (env.GATEWAY_TLS_KEY_FILE === undefined), {
  message: "set both GATEWAY_TLS_CERT_FILE and GATEWAY_TLS_KEY_FILE, or neither",
  path: ["GATEWAY_TLS_KEY_FILE"],
});

export type GatewayConfig = Readonly<z.infer<typeof GatewayEnv>>;

export const loadGatewayConfig = (env: Record<string, string | undefined>): GatewayConfig => parseEnv(GatewayEnv, env);
