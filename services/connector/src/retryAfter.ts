/**
 * The longest an upstream's `Retry-After` is taken at its word: what an agent is told to wait and
 * how long a circuit it opened stays open. Past it (a typo, a hostile upstream) the wait is this.
 */
export const MAX_RETRY_AFTER_MS = 300_000;

/** delta-seconds (RFC 9110 §10.2.3): digits only; ten are over three centuries, more is garbage. */
const DELTA_SECONDS = /^\d{1,10}$/;
/** The three HTTP-date forms a recipient must accept (RFC 9110 §5.6.7): IMF-fixdate, RFC 850, asctime. */
const IMF_FIXDATE = /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/;
const RFC_850 = /^[A-Z][a-z]{5,8}, \d{2}-[A-Z][a-z]{2}-\d{2} \d{2}:\d{2}:\d{2} GMT$/;
const ASCTIME = /^[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$/;
/** Longer than any valid value: not scanned at all. */
const MAX_LENGTH = 40;

/**
 * What an upstream's `Retry-After` asks for, in milliseconds from `now`, clamped to
 * [0, `MAX_RETRY_AFTER_MS`]; undefined when there is none or it is not a valid value (a repeated
 * header, a fraction, a negative number, a date in another form). A date in the past is 0.
 */
export function retryAfterMs(header: unknown, now = Date.now()): number | undefined {
  if (typeof header !== "string" || header.length > MAX_LENGTH) return undefined;
  const value = header.trim();
  let ms: number;
  if (DELTA_SECONDS.test(value)) ms = Number(value) * 1_000;
  else if (IMF_FIXDATE.test(value) || RFC_850.test(value)) ms = Date.parse(value) - now;
  // asctime names no zone: it is GMT, which Date.parse would not assume.
  else if (ASCTIME.test(value)) ms = Date.parse(`${value} GMT`) - now;
  else return undefined;
  return Number.isNaN(ms) ? undefined : Math.min(Math.max(ms, 0), MAX_RETRY_AFTER_MS);
}
