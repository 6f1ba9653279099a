/**
 * The credential values this connector sends upstreams: resolved `secretHeaders` and `secretEnv`
 * (each reference's latest value), and the credential headers a caller's own session carries. An upstream may echo any of them in
 * text it answers (a JSON-RPC error's message or data, a refused handshake), and that text reaches
 * agents, health reports, the admin API, logs and spans; `redact` takes them out of upstream error
 * text (not out of results: a tool's result, `isError` ones included, and a task's answers pass as
 * the upstream wrote them). Held process-wide, as the text meets them in functions that know no
 * session (`safeReason`, `mapUpstreamError`).
 */
const held = new Map<string, number>();

/** Shorter values would blank ordinary words; none of them is a credential worth the name. */
const MIN_LENGTH = 6;

/** Withholds `values` until the returned release is called (operator secrets are never released). */
export function withhold(values: Iterable<string>): () => void {
  // `Bearer <token>`: an echo may quote the token alone.
  const parts = [...values].flatMap((value) => [value, value.slice(value.indexOf(" ") + 1).trim()]);
  const taken = [...new Set(parts)].filter((value) => value.length >= MIN_LENGTH);
  for (const value of taken) held.set(value, (held.get(value) ?? 0) + 1);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    for (const value of taken) {
      const left = (held.get(value) ?? 1) - 1;
      if (left > 0) held.set(value, left);
      else held.delete(value);
    }
  };
}

/** The latest value each credential reference resolved to: a rotated secret's old value is let go. */
const latest = new Map<string, { value: string; release: () => void }>();

/** Withholds what `refs` (name → `env:`/`file:` reference) resolved to (`values`, name → value). */
export function withholdResolved(refs: Readonly<Record<string, string>>, values: Readonly<Record<string, string>>): void {
  for (const [name, ref] of Object.entries(refs)) {
    const value = values[name];
    if (value === undefined || latest.get(ref)?.value === value) continue;
    latest.get(ref)?.release();
    latest.set(ref, { value, release: withhold([value]) });
  }
}

/** Header names that carry credentials; other pass-through values (a tenant id, a region) are not withheld. */
const CREDENTIAL_HEADER = /^(authorization|proxy-authorization|cookie)$|token|key|secret|passw|session|auth|credential/i;

/** Withholds the credential-carrying values among a caller's pass-through headers, until released. */
export const withholdHeaders = (headers: Readonly<Record<string, string>>): (() => void) =>
  withhold(Object.entries(headers).flatMap(([name, value]) => (CREDENTIAL_HEADER.test(name) ? [value] : [])));

/** `text` with every withheld value in it replaced by `[redacted]`. */
export function redact(text: string): string {
  for (const value of held.keys()) if (text.includes(value)) text = text.replaceAll(value, "[redacted]");
  return text;
}

/** A JSON value from an upstream with withheld values redacted in its strings; undefined when it cannot be encoded. */
export function redactJson(value: unknown): unknown {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch {
    return undefined;
  }
  if (json === undefined) return undefined;
  const redacted = redact(json);
  if (redacted === json) return value;
  try {
    return JSON.parse(redacted) as unknown;
  } catch {
    return undefined;
  }
}
