import { BusEnv, CredentialPolicyEnv, LogLevel, Milliseconds, Port, parseEnv } from "@manifold/contracts";
import { z } from "zod";

const GatewayEnv = z.object({
  ...BusEnv.shape,
  GATEWAY_HOST: z.string().default("127.0.0.1"),
  GATEWAY_PORT: Port.default(8080),
  /** Host names (any port, comma-separated, `*` for any) this gateway serves; unset: the loopback names when bound to loopback, else any. */
  GATEWAY_ALLOWED_HOSTS: z.string().optional(),
  /** Browser origins (`https://app.example.com`, comma-separated, `*` for any) allowed besides the requested host itself. */
  GATEWAY_ALLOWED_ORIGINS: z.string().optional(),
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
  SESSION_IDLE_MS: Milliseconds.default(30 * 60_000),
  /** Sessions one replica holds at most; past it, initialize gets 503 `at_capacity` (memory stays bounded). */
  GATEWAY_MAX_SESSIONS: z.coerce.number().int().positive().default(10_000),
  /** Sessions one caller (consumer or token subject) may hold on one replica; past it, 429 `too_many_sessions`. */
  GATEWAY_MAX_SESSIONS_PER_PRINCIPAL: z.coerce.number().int().positive().default(1_000),
  /** A connector replica's health report older than this no longer counts. */
  HEALTH_STALE_MS: Milliseconds.default(30_000),
  /** On shutdown, how long calls in flight may take to finish. */
  GATEWAY_DRAIN_MS: Milliseconds.default(10_000),
  /** `required`: every request needs an API key or a JWT and a grant (deny unless granted). `off` only for trusted test setups. */
  GATEWAY_AUTH: z.enum(["required", "off"]).default("required"),
  /**
   * `true` admits requests without credentials to virtual servers holding an anonymous grant
   * (`subject: { anonymous: true }`), as one shared `anonymous` principal; off by default. Anything
   * presented as credentials is still checked, and a request without them stays 401 elsewhere.
   */
  GATEWAY_ALLOW_ANONYMOUS: z.enum(["true", "false"]).default("false").transform((v) => v === "true"),
  /** The longest a JWT may be valid, from its `iat` (and from now): longer-lived tokens are refused. */
  GATEWAY_JWT_MAX_LIFETIME_S: z.coerce.number().int().positive().max(7 * 24 * 3600).default(2 * 3600),
  /** `off` sends every MCP request through its era's SDK; `on` lets the seam answer tools/list and plain tools/call itself (measured: see docs/protocol.md). */
  GATEWAY_FAST_PATH: z.enum(["on", "off"]).default("on"),
  /** `ttlMs` of a 2026-07-28 tools/list: how long a client may reuse it without asking (list changes are also pushed to listen streams). */
  GATEWAY_LIST_TTL_MS: z.coerce.number().int().nonnegative().default(60_000),
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
});

export type GatewayConfig = Readonly<z.infer<typeof GatewayEnv>>;

export const loadGatewayConfig = (env: Record<string, string | undefined>): GatewayConfig => parseEnv(GatewayEnv, env);
