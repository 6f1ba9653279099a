import { z } from "zod";
import { noCredentialNames, noLiteralSecrets, noSecretArgs, noSecretCommand, noUrlCredentials, noUrlCredentialsIn } from "./literalSecrets.js";
import { noReservedHeaders } from "./reservedHeaders.js";

/**
 * A secret is never written to the registry: an upstream's registration names where the
 * connector finds it at run time, `env:NAME` (the connector's environment) or `file:/path`.
 */
export const CredentialRef = z
  .string()
  .regex(/^(env:[A-Za-z_][A-Za-z0-9_]*|file:\/\S+)$/, { message: "must be a credential reference: env:NAME or file:/absolute/path" });
export type CredentialRef = z.infer<typeof CredentialRef>;

export const HeaderName = z.string().regex(/^[A-Za-z0-9-]+$/, { message: "must be an HTTP header name" });
const EnvName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: "must be an environment variable name" });

/**
 * The transports, checked (what an admin may register: literal secrets refused, see
 * literalSecrets.ts) or as recorded (events replay what was accepted when it was written,
 * even if the checks have grown stricter since).
 */
/**
 * Which MCP era the connector speaks to an upstream: `auto` (the default) probes with
 * `server/discover` and falls back to `initialize`; `2025` skips the probe (a 2025-era
 * `initialize`d session); `2026-07-28` requires that revision. Pinning spares a stdio upstream
 * the probe's extra process.
 */
export const UpstreamProtocol = z.enum(["auto", "2025", "2026-07-28"]);
export type UpstreamProtocol = z.infer<typeof UpstreamProtocol>;

/**
 * Each consumer brings its own authorization to this upstream (docs/identity.md): Manifold runs
 * the OAuth authorization code + PKCE flow per consumer as a client of the upstream's
 * authorization server, keeps the tokens in its vault and calls the upstream with that
 * consumer's token. The authorization server is `issuer`, or discovered from the upstream's
 * protected resource metadata (RFC 9728). The client is pre-registered there: `clientId`, and
 * `clientSecret` as a credential reference (absent: a public client, PKCE only).
 */
export const UpstreamOAuth = z.strictObject({
  type: z.literal("oauth"),
  issuer: z.url({ protocol: /^https?$/ }).optional(),
  clientId: z.string().min(1).max(512),
  clientSecret: CredentialRef.optional(),
  /** Scopes to ask for (the upstream's `scopes_supported` when empty). */
  scopes: z.array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/)).max(32).default([]),
  /** The resource indicator (RFC 8707): the upstream's URL when absent. */
  resource: z.url({ protocol: /^https?$/ }).optional(),
});
export type UpstreamOAuth = z.infer<typeof UpstreamOAuth>;

/**
 * The upstream trusts the identity provider agents sign in with (docs/identity.md): each call's
 * inbound token is exchanged (RFC 8693) at `issuer`, a registered identity provider, for a token
 * whose audience is the upstream (`resource`, else its URL); the inbound token itself never
 * goes upstream. Manifold is a client there (`clientId`, `clientSecret` as a reference).
 */
export const UpstreamTokenExchange = z.strictObject({
  type: z.literal("token-exchange"),
  issuer: z.url({ protocol: /^https?$/ }),
  clientId: z.string().min(1).max(512),
  clientSecret: CredentialRef.optional(),
  scopes: z.array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/)).max(32).default([]),
  resource: z.url({ protocol: /^https?$/ }).optional(),
});
export type UpstreamTokenExchange = z.infer<typeof UpstreamTokenExchange>;
export const UpstreamAuth = z.discriminatedUnion("type", [UpstreamOAuth, UpstreamTokenExchange]);
export type UpstreamAuth = z.infer<typeof UpstreamAuth>;

function transportSchemas(checked: boolean) {
  // Optional rather than defaulted: transports recorded before it existed keep their registration hash.
  const protocol = UpstreamProtocol.optional();
  const urlField = z.url({ protocol: /^https?$/ });
  const headerMap = z.record(HeaderName, z.string()).default({});
  const secretHeaderMap = z.record(HeaderName, CredentialRef).default({});
  const HttpFields = {
    url: checked ? urlField.superRefine(noUrlCredentials("url")) : urlField,
    /** Plain, non-secret headers sent on every request, callers' own sessions included (a tenant id, a region). */
    headers: checked ? headerMap.superRefine(noLiteralSecrets("header")).superRefine(noReservedHeaders("headers")) : headerMap,
    /**
     * Headers whose values the connector resolves from references: the connector's own credential.
     * With `auth` (each caller acts as itself) they go on the shared session only (discovery,
     * subscriptions), never on a caller's session, which carries the caller's token.
     */
    secretHeaders: checked ? secretHeaderMap.superRefine(noReservedHeaders("secretHeaders")) : secretHeaderMap,
    protocol,
    auth: (checked ? UpstreamAuth.superRefine(noUrlCredentialsIn(["issuer", "resource"])) : UpstreamAuth).optional(),
  };
  const args = z.array(z.string()).default([]);
  const env = z.record(EnvName, z.string()).default({});
  const stdio = z.strictObject({
    type: z.literal("stdio"),
    command: checked ? z.string().min(1).superRefine(noSecretCommand) : z.string().min(1),
    args: checked ? args.superRefine(noSecretArgs) : args,
    env: checked ? env.superRefine(noLiteralSecrets("variable")) : env,
    secretEnv: z.record(EnvName, CredentialRef).default({}),
    cwd: z.string().optional(),
    protocol,
  });
  const streamableHttp = z.strictObject({ type: z.literal("streamable-http"), ...HttpFields });
  const sse = z.strictObject({ type: z.literal("sse"), ...HttpFields });
  return { stdio, streamableHttp, sse, transport: z.discriminatedUnion("type", [stdio, streamableHttp, sse]) };
}

const checkedTransports = transportSchemas(true);
export const StdioTransport = checkedTransports.stdio;
export const StreamableHttpTransport = checkedTransports.streamableHttp;
export const SseTransport = checkedTransports.sse;
export const UpstreamTransport = checkedTransports.transport;
/** A transport as recorded in an event: the same shape, without the registration-time checks. */
export const RecordedUpstreamTransport = transportSchemas(false).transport;
export type UpstreamTransport = z.infer<typeof UpstreamTransport>;

/**
 * How the connectors treat an upstream; every field has a service-wide default. Checked (what an
 * admin may set) or as recorded, like the transports.
 */
const upstreamOptions = (checked: boolean) => z.strictObject({
  /** Header names an agent may pass through to this upstream per request (HTTP transports only). */
  passthroughHeaders: (checked ? z.array(HeaderName).superRefine(noReservedHeaders("passthroughHeaders")) : z.array(HeaderName)).optional(),
  /**
   * Of `passthroughHeaders`, those whose values are not credentials (a region, a tenant id): every
   * other pass-through value of 12 characters or more is withheld from error text, health reasons,
   * logs and spans as the caller's credential (a value in a credential's shape still is, whatever
   * this says). A credential-like name is refused.
   */
  plainPassthroughHeaders: (checked ? z.array(HeaderName).superRefine(noCredentialNames("plainPassthroughHeaders")) : z.array(HeaderName)).optional(),
  /** Time budget of one call to this upstream. */
  callTimeoutMs: z.number().int().positive().max(3_600_000).optional(),
  /** Calls in flight to this upstream per connector replica; more wait in a queue. */
  maxConcurrency: z.number().int().positive().max(10_000).optional(),
  /**
   * Messages one session of this upstream may send of its own in a second (notifications, requests,
   * unreadable or empty ones) before the connector cuts it as a flood; answers to requests in flight
   * are not counted. For a server that is chattier than the connector's default allows.
   */
  inboundPerSecond: z.number().int().min(100).max(1_000_000).optional(),
});
export const UpstreamOptions = upstreamOptions(true);
/** Options as recorded in an event: replayed as accepted when written, even if the checks have grown stricter since. */
export const RecordedUpstreamOptions = upstreamOptions(false);
export type UpstreamOptions = z.infer<typeof UpstreamOptions>;

export const DEFAULT_PASSTHROUGH_HEADERS = ["authorization"] as const;
/** A transport as an admin writes it, before defaults are applied. */
export type UpstreamTransportInput = z.input<typeof UpstreamTransport>;
