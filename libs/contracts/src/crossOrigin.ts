import type { HostPolicy } from "./hostPolicy.js";

/** What a service's browser callers may do and read: its methods, and the headers their scripts read besides the simple ones. */
export interface CrossOriginRules {
  readonly methods: string;
  readonly exposed: string;
}

/** What CORS adds to an answer: a preflight answered whole (204), or headers on the answer the request gets. */
export interface CrossOriginAnswer {
  readonly preflight: boolean;
  readonly headers: Readonly<Record<string, string>>;
}

/** How long a browser may keep a preflight's answer. */
const MAX_AGE_SECONDS = "600";
/** A list of header names (RFC 9110 tokens), as a preflight's `Access-Control-Request-Headers` carries them, bounded. */
const HEADER_NAMES = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+(?: *, *[!#$%&'*+.^_`|~0-9A-Za-z-]+)*$/;
const MAX_REQUESTED_HEADERS = 1_024;

/** Whether `policy` lists browser origins to answer with CORS at all (without a list, a service registers nothing). */
export const answersCrossOrigin = (policy: HostPolicy): boolean => policy.origins === "any" || policy.origins.size > 0;

/**
 * CORS for a request whose `Origin` the service's host policy allows (its guard refuses every
 * other one, 403, before this is asked): a preflight is answered with the methods served and the
 * headers asked for (when they are a list of header names), never credentials (the services take
 * bearer tokens, not cookies); any other request's answer names the origin and exposes `rules.exposed`.
 * Nothing for a request without an `Origin` (not a browser's) or with `null` (every sandboxed frame's
 * and file page's: never one to grant).
 */
export function crossOrigin(rules: CrossOriginRules, method: string, headers: Readonly<Record<string, string | string[] | undefined>>): CrossOriginAnswer | undefined {
  const origin = headers.origin;
  if (typeof origin !== "string" || origin === "null") return undefined;
  const common = { "access-control-allow-origin": origin, vary: "Origin" };
  if (method !== "OPTIONS" || headers["access-control-request-method"] === undefined) {
    return { preflight: false, headers: { ...common, "access-control-expose-headers": rules.exposed } };
  }
  const preflight: Record<string, string> = { ...common, "access-control-allow-methods": rules.methods, "access-control-max-age": MAX_AGE_SECONDS };
  const asked = headers["access-control-request-headers"];
  if (typeof asked === "string" && asked.length <= MAX_REQUESTED_HEADERS && HEADER_NAMES.test(asked)) preflight["access-control-allow-headers"] = asked;
  return { preflight: true, headers: preflight };
}

/** The sliver of a fastify `onRequest` hook's request and reply CORS needs, so this library does not depend on fastify. */
interface HookRequest {
  readonly method: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}
interface HookReply {
  readonly raw: { setHeader(name: string, value: string): unknown };
  status(code: number): { headers(values: Record<string, string>): { send(): unknown } };
}

/** An `onRequest` hook answering CORS by `rules` (`crossOrigin`): a preflight answered 204 there, other answers given its headers. */
export const crossOriginHook =
  (rules: CrossOriginRules) =>
  (request: HookRequest, reply: HookReply, done: () => void): void => {
    const answer = crossOrigin(rules, request.method, request.headers);
    if (answer?.preflight) return void reply.status(204).headers({ ...answer.headers }).send();
    if (answer) for (const [name, value] of Object.entries(answer.headers)) reply.raw.setHeader(name, value);
    done();
  };
