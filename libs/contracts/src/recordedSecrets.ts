import type { z } from "zod";
import { noLiteralSecrets, noSecretArgs, noSecretCommand, noUrlCredentials, noUrlCredentialsIn, urlWithoutCredentials } from "./literalSecrets.js";
import type { IdentityProvider } from "./access.js";
import type { UpstreamTransport } from "./upstream.js";

/** What a literal secret is shown as. */
export const WITHHELD_SECRET = "[redacted]";

/** A transport as it may be shown, and the fields (`transport.headers.X-Trace`) whose literal secrets it withholds. */
export interface ShownTransport {
  readonly transport: UpstreamTransport;
  readonly literalSecrets: string[];
}

type Check<T> = (value: T, ctx: z.RefinementCtx) => void;

/** The paths (within `value`) at which a registration check refuses it; `[]` for the value itself. */
function refused<T>(check: Check<T>, value: T): PropertyKey[][] {
  const paths: PropertyKey[][] = [];
  check(value, { addIssue: (issue: { path?: PropertyKey[] }) => void paths.push(issue.path ?? []) } as unknown as z.RefinementCtx);
  return paths;
}

/** `map` with the entries named by `paths` withheld, and those names. */
function withheldEntries<T extends Record<string, string> | string[]>(map: T, paths: PropertyKey[][]): { value: T; names: string[] } {
  const names = [...new Set(paths.map((path) => String(path[0])))];
  if (names.length === 0) return { value: map, names };
  const copy = (Array.isArray(map) ? [...map] : { ...map }) as Record<string, string>;
  for (const name of names) copy[name] = WITHHELD_SECRET;
  return { value: copy as T, names };
}

/**
 * A recorded transport as the admin API (and so the console) shows it: what the registration checks
 * refuse as a literal secret today (`literalSecrets.ts`: a URL's user info, credential query,
 * fragment or path parameters; a credential-like header or variable; a flag or a command line
 * carrying one) withheld, each field named. Events recorded before a check existed replay as
 * written (the connector still sends what they hold, so the upstream keeps working), and before,
 * GET /v1/upstreams, the upstream's own read and its history showed 5 of 5 such secrets whole
 * (`recordedLiteralSecrets.e2e.spec.ts`). The operator moves them to `secretHeaders`/`secretEnv`.
 */
export function shownTransport(transport: UpstreamTransport): ShownTransport {
  const literalSecrets: string[] = [];
  if (transport.type === "stdio") {
    let command = transport.command;
    if (refused(noSecretCommand, command).length > 0) {
      literalSecrets.push("transport.command");
      command = `${command.trim().split(/\s+/)[0]} ${WITHHELD_SECRET}`;
    }
    const args = withheldEntries(transport.args, refused(noSecretArgs, transport.args));
    const env = withheldEntries(transport.env, refused(noLiteralSecrets("variable"), transport.env));
    literalSecrets.push(...args.names.map((i) => `transport.args.${i}`), ...env.names.map((name) => `transport.env.${name}`));
    return literalSecrets.length === 0 ? { transport, literalSecrets } : { transport: { ...transport, command, args: args.value, env: env.value }, literalSecrets };
  }
  let url = transport.url;
  if (refused(noUrlCredentials("url"), url).length > 0) {
    literalSecrets.push("transport.url");
    url = urlWithoutCredentials(url);
  }
  const headers = withheldEntries(transport.headers, refused(noLiteralSecrets("header"), transport.headers));
  literalSecrets.push(...headers.names.map((name) => `transport.headers.${name}`));
  const auth = transport.auth && withoutUrlCredentials(transport.auth, ["issuer", "resource"]);
  literalSecrets.push(...(auth?.fields ?? []).map((field) => `transport.auth.${field}`));
  return literalSecrets.length === 0 ? { transport, literalSecrets } : { transport: { ...transport, url, headers: headers.value, auth: auth?.value }, literalSecrets };
}

/** `value` with the credentials of its URL `fields` that the registration checks refuse taken out, and those fields. */
function withoutUrlCredentials<T extends object>(value: T, fields: readonly string[]): { value: T; fields: string[] } {
  const named = refused(noUrlCredentialsIn(fields), value as Record<string, unknown>).map((path) => String(path[0]));
  if (named.length === 0) return { value, fields: named };
  const urls = value as Record<string, string>;
  return { value: { ...value, ...Object.fromEntries(named.map((field) => [field, urlWithoutCredentials(urls[field]!)])) }, fields: named };
}

/**
 * A recorded identity provider as the admin API shows it: its `issuer` and `jwksUrl` without the
 * credentials the registration checks refuse now (a provider registered before them replays as
 * written), each field named in `literalSecrets`.
 */
export function shownIdentityProvider(provider: IdentityProvider): IdentityProvider & { literalSecrets?: string[] } {
  const { value, fields } = withoutUrlCredentials(provider, ["issuer", "jwksUrl"]);
  return fields.length === 0 ? provider : { ...value, literalSecrets: fields };
}
