import { isReservedHeader, type UpstreamTransport } from "@manifold/contracts";

type HttpTransport = Extract<UpstreamTransport, { type: "streamable-http" | "sse" }>;

/**
 * Whether a session's registration credential (`secretHeaders`) stays off it: a caller's own
 * session (`callerHeaders` given) of an upstream that acts as each caller (`auth`). Those sessions
 * carry the caller's token; the registration's credential is the connector's own, for discovery and
 * the shared session. Sent along, it let every caller act as the service account (a lower-case
 * `authorization` went out as `Bearer <service>, Bearer <caller>`, which an upstream reading the
 * first credential takes for the service) and handed it to a session bound to one user.
 */
export const withoutServiceCredential = (spec: HttpTransport, callerHeaders: Readonly<Record<string, string>> | undefined): boolean =>
  callerHeaders !== undefined && spec.auth !== undefined;

/**
 * The headers one session sends: the registration's plain `headers` (non-secret by the registry's
 * checks: a tenant or region goes on every session, a caller's own too), its resolved
 * `secretHeaders` (none on a caller's session of a per-user upstream, `withoutServiceCredential`),
 * then the caller's. A caller's header replaces the registration's of the same name in any case:
 * two spellings of one name both went out, joined into one value. A name the transport owns
 * (`isReservedHeader`) is dropped: the registry refuses them now, but a registration recorded
 * before that replays as it was, and `Mcp-Session-Id` beside the transport's own named another session.
 */
export function sessionHeaders(
  spec: HttpTransport,
  secretHeaders: Readonly<Record<string, string>>,
  callerHeaders: Readonly<Record<string, string>> | undefined,
): Record<string, string> {
  const own = new Set(Object.keys(callerHeaders ?? {}).map((name) => name.toLowerCase()));
  const headers: Record<string, string> = {};
  const registration = withoutServiceCredential(spec, callerHeaders) ? spec.headers : { ...spec.headers, ...secretHeaders };
  for (const [name, value] of Object.entries(registration)) if (!own.has(name.toLowerCase()) && !isReservedHeader(name)) headers[name] = value;
  for (const [name, value] of Object.entries(callerHeaders ?? {})) if (!isReservedHeader(name)) headers[name] = value;
  return headers;
}
