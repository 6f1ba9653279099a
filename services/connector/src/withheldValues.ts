import { CREDENTIAL_NAME, shownTransport, urlCredentialValues, type UpstreamTransport } from "@manifold/contracts";

/**
 * The credential values this connector sends upstreams: resolved `secretHeaders` and `secretEnv`
 * (each reference's latest value), and the credential headers a caller's own session carries. An upstream may echo any of them in
 * text it answers (a JSON-RPC error's message or data, a refused handshake), and that text reaches
 * agents, health reports, the admin API, logs and spans; `redact` takes them out of upstream error
 * text. Held process-wide, as the text meets them in functions that know no session (`safeReason`,
 * `mapUpstreamError`). A tool's result (`isError` ones included) is cleaned of the values its own
 * session sent (`redactResult`, with the session's `credentials`), which costs a call nothing when
 * its session sends none.
 */
/** Each value, how many hold it, and how it reads in encoded JSON (escaped when it holds a `"`, `\` or control character). */
const held = new Map<string, { count: number; inJson: string }>();

/** Shorter values would blank ordinary words; none of them is a credential worth the name. */
const MIN_LENGTH = 6;

/**
 * A `Basic` credential as its upstream reads it, decoded: `user:password` and the password alone
 * (a server refusing it quoted the pair it decoded, and the agent heard the password).
 */
function basicForms(value: string): string[] {
  const encoded = /^basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(value)?.[1];
  if (!encoded) return [];
  const decoded = Buffer.from(encoded, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  return colon < 0 ? [decoded] : [decoded, decoded.slice(colon + 1)];
}

/** `name=value` pairs of a `Cookie` (or any `a=b; c=d` credential): a server that parsed it quotes one value alone. */
const PAIR = /(?:^|;)\s*[^=;\s]+=([^;]*)/g;

/**
 * The forms in which `values` may be echoed, each long enough to be one: `Bearer <token>` is quoted
 * as the token alone too, `session=<id>; theme=dark` as the id alone (before, a server refusing
 * the session cookie it parsed handed the agent its value), and a value of several lines line by line.
 */
export function credentialForms(values: Iterable<string>): string[] {
  const parts = [...values].flatMap((value) => [
    value,
    value.slice(value.indexOf(" ") + 1).trim(),
    ...Array.from(value.matchAll(PAIR), (pair) => pair[1]!.trim()),
    // Each line of a value of several lines (a private key a stdio upstream is given): a parser's
    // error quotes the line it refused, and all 3 of a key's body lines reached the agent.
    ...(value.includes("\n") ? value.split(/\r?\n/).map((line) => line.trim()) : []),

    ...basicForms(value),
  ]);
  return [...new Set(parts)].filter((value) => value.length >= MIN_LENGTH);
}

/** A credential value, and how it reads in encoded JSON (escaped when it holds a `"`, `\` or control character). */
export interface EchoForm {
  readonly value: string;
  readonly inJson: string;
}

/** What a session's results are cleaned of (`redactResult`): every form of `values` (`credentialForms`). */
export const echoForms = (values: Iterable<string>): EchoForm[] => credentialForms(values).map((value) => ({ value, inJson: inJsonOf(value) }));

/** How a value reads inside a JSON string. */
const inJsonOf = (value: string) => JSON.stringify(value).slice(1, -1);

/** Withholds `values` until the returned release is called (operator secrets are never released). */
export function withhold(values: Iterable<string>): () => void {
  const taken = credentialForms(values);
  for (const value of taken) {
    const entry = held.get(value);
    if (entry) entry.count++;
    else held.set(value, { count: 1, inJson: inJsonOf(value) });
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    for (const value of taken) {
      const entry = held.get(value);
      if (entry && --entry.count === 0) held.delete(value);
    }
  };
}

/**
 * The values each credential reference resolved to, newest first. A rotated secret's old value stays
 * withheld: a session opened before the rotation keeps sending it until it reconnects, and another
 * session resolving the reference again (a caller's own, a reconnect elsewhere) let it go, so the
 * upstream's error quoting it reached agents, health reasons, logs and spans. Bounded: rotation is rare.
 */
const resolved = new Map<string, { value: string; release: () => void }[]>();
/** How many values of one reference stay withheld (a session remembers 32 retired forms, `upstreamConnection.ts`). */
export const MAX_VALUES_PER_REFERENCE = 8;

/** Withholds what `refs` (name → `env:`/`file:` reference) resolved to (`values`, name → value). */
export function withholdResolved(refs: Readonly<Record<string, string>>, values: Readonly<Record<string, string>>): void {
  for (const [name, ref] of Object.entries(refs)) {
    const value = values[name];
    if (value === undefined) continue;
    const earlier = resolved.get(ref) ?? [];
    if (earlier[0]?.value === value) continue;
    const known = earlier.findIndex((entry) => entry.value === value);
    const entry = known >= 0 ? earlier.splice(known, 1)[0]! : { value, release: withhold([value]) };
    earlier.unshift(entry);
    for (const old of earlier.splice(MAX_VALUES_PER_REFERENCE)) old.release();
    resolved.set(ref, earlier);
  }
}

/** Header names that carry credentials; a caller's result is cleaned of these alone (other long values are withheld from error text, `withholdHeaders`). */
const CREDENTIAL_HEADER = /^(authorization|proxy-authorization|cookie)$|token|key|secret|passw|session|auth|credential|jwt|assertion/i;
/** A value in a credential's shape whatever its header's name: an HTTP auth scheme's, or a JWT (`X-Jwt-Assertion`, `X-Amzn-Oidc-Data`). */
const CREDENTIAL_VALUE = /^(bearer|basic)\s+\S|^eyJ[\w-]*\.[\w-]+\.[\w-]*$/i;

/**
 * The credential-carrying values among a caller's pass-through headers: by a name either list calls
 * credential-like (the registry's `CREDENTIAL_NAME` adds `signature`, `passphrase`, `bearer`, …) or
 * by the value's shape. Before, `X-Jwt-Assertion`, `X-Hub-Signature` or `X-Passphrase` went
 * unwithheld, and an upstream's error quoting them put them in every span of the call.
 */
export const credentialValues = (headers: Readonly<Record<string, string>>): string[] =>
  Object.entries(headers).flatMap(([name, value]) => (CREDENTIAL_HEADER.test(name) || CREDENTIAL_NAME.test(name) || CREDENTIAL_VALUE.test(value) ? [value] : []));

/**
 * The shortest value of a pass-through header neither list names nor in a credential's shape that is
 * withheld all the same: a generated credential is longer (an API key is 20 to 64 characters), while
 * a region, a locale or a format (`eu-west-1`, `en-US`, `markdown`) is shorter and, being held
 * process-wide, would otherwise be blanked in every caller's error text.
 */
export const OPAQUE_MIN_LENGTH = 12;

/**
 * What is withheld of a caller's pass-through headers from error text, health reasons, logs and
 * spans, until released: every value that carries a credential by its name or shape
 * (`credentialValues`), and every other value of `OPAQUE_MIN_LENGTH` or more but those of the
 * headers the operator calls plain (`plain`, lower-case names: `plainPassthroughHeaders`). A value a caller
 * passes through is its credential whatever the header is called: before, 40 hex digits in
 * `X-Tenant-Pass` (or `X-Acme-Sig`, a UUID in `X-Upstream-Ident`), quoted by an upstream's error,
 * reached the agent's error, the call's spans and the connector's log whole
 * (`opaquePassthroughSecrets.e2e.spec.ts`). The caller's own results are cleaned of the
 * credential-like ones alone, as before: what it sent and gets back in a result is its own.
 */
export function withholdHeaders(headers: Readonly<Record<string, string>>, plain: ReadonlySet<string> = new Set()): () => void {
  const credentials = new Set(credentialValues(headers));
  const opaque = Object.entries(headers).flatMap(([name, value]) => (!credentials.has(value) && !plain.has(name.toLowerCase()) && value.trim().length >= OPAQUE_MIN_LENGTH ? [value] : []));
  return withhold([...credentials, ...opaque]);
}

/** `text` with every withheld value in it (of `values`: all by default) replaced by `[redacted]`. */
export function redact(text: string, values: Iterable<string> = held.keys()): string {
  for (const value of values) if (text.includes(value)) text = text.replaceAll(value, "[redacted]");
  return text;
}

/**
 * A JSON value from an upstream with withheld values redacted in its strings (keys too); undefined
 * when it cannot be encoded. String by string, not in the encoded text: there a value holding a
 * `"` or `\` is escaped and would not match. Walked with a stack, as the value is the upstream's.
 */
export function redactJson(value: unknown): unknown {
  let present: string[];
  let copy: unknown;
  try {
    const json = JSON.stringify(value);
    if (json === undefined) return undefined;
    // One scan of the text per withheld value (as it reads there) finds the few it holds; only
    // data holding one is walked, for those alone (the data is the upstream's: a walk for every
    // value would cost its strings × all the values withheld).
    present = withheldIn(json);
    if (present.length === 0) return value;
    copy = JSON.parse(json);
  } catch {
    return undefined;
  }
  return redactStrings(copy, present) ?? value;
}

/**
 * A result's JSON text with the credential `values` its session sent redacted in its strings (keys
 * too), or as it is when it holds none: one scan of the text per value (as it reads there, escaped
 * or not); only a result holding one is parsed and walked.
 */
export function redactResult(json: string, values: readonly EchoForm[]): string {
  let present: string[] | undefined;
  for (const { value, inJson } of values) if (json.includes(value) || json.includes(inJson)) (present ??= []).push(value);
  if (present === undefined) return json;
  const copy = redactStrings(JSON.parse(json), present);
  return copy === undefined ? json : JSON.stringify(copy);
}

/** A JSON value with the credential `values` redacted as `redactResult` does: the value itself when it holds none. */
export function redactValue<T>(value: T, values: readonly EchoForm[]): T {
  if (values.length === 0) return value;
  const json = JSON.stringify(value);
  const clean = redactResult(json, values);
  return clean === json ? value : (JSON.parse(clean) as T);
}

/** `copy` (parsed JSON, changed in place) with `present` redacted in its strings and keys, or undefined when none was there. */
function redactStrings(copy: unknown, present: string[]): unknown {
  const root: Record<string, unknown> = { value: copy };
  let changed = false;
  const stack = [root];
  while (stack.length > 0) {
    const node = stack.pop()!;
    for (const key of Object.keys(node)) {
      const item = node[key];
      if (typeof item === "string") {
        const clean = redact(item, present);
        if (clean !== item) [node[key], changed] = [clean, true];
      } else if (item !== null && typeof item === "object") stack.push(item as Record<string, unknown>);
      const cleanKey = Array.isArray(node) ? key : redact(key, present);
      if (cleanKey !== key) {
        node[cleanKey] = node[key];
        delete node[key];
        changed = true;
      }
    }
  }
  return changed ? root.value : undefined;
}

/** The withheld values that JSON text holds, as they read there (escaped or not). */
function withheldIn(json: string): string[] {
  const present: string[] = [];
  for (const [value, { inJson }] of held) if (json.includes(value) || json.includes(inJson)) present.push(value);
  return present;
}

/** Literal secrets of recorded registrations already withheld: each is withheld once, for the process's life. */
const recordedLiterals = new Set<string>();

/** The string leaves of `shown` that differ from `recorded`'s, as `recorded` holds them. */
function replacedStrings(recorded: unknown, shown: unknown): string[] {
  if (typeof recorded === "string") return recorded !== shown ? [recorded] : [];
  if (recorded === null || typeof recorded !== "object" || shown === null || typeof shown !== "object") return [];
  return Object.entries(recorded).flatMap(([key, value]) => replacedStrings(value, (shown as Record<string, unknown>)[key]));
}

/**
 * The literal secrets a registration recorded before the registry refused them (a credential-named
 * header or variable, a URL's credentials, a flag carrying one), in each form an upstream may print
 * or quote them (`credentialForms`): the admin API shows them withheld (`shownTransport`), but the
 * connector still sends them.
 */
const recordedLiteralValues = (transport: UpstreamTransport): string[] =>
  credentialForms(replacedStrings(transport, shownTransport(transport).transport).flatMap((value) => [value, ...urlCredentialValues(value)]));

/**
 * Withholds `recordedLiteralValues`: an upstream refusing one quoted it back into the health reason
 * and discovery failure every admin and reader token reads, and the log
 * (`recordedLiteralSecrets.e2e`). Never released: the registration stays. Returns them, for what
 * else must not carry them (a stdio upstream's stderr).
 */
export function withholdRecordedLiterals(transport: UpstreamTransport): string[] {
  const values = recordedLiteralValues(transport);
  const fresh = values.filter((value) => !recordedLiterals.has(value));
  for (const value of fresh) recordedLiterals.add(value);
  if (fresh.length > 0) withhold(fresh);
  return values;
}
