import type { Logger } from "@manifold/telemetry";
import type { Readable } from "node:stream";
import { redact } from "./withheldValues.js";

/** The most of one stderr line kept in a log record; the rest of the line is counted, not kept. */
export const STDERR_LINE_MAX = 8 * 1024;
/** The most stderr lines of one upstream logged in a second; the rest are counted, once a second. */
export const STDERR_LINES_PER_SECOND = 100;
/** Shorter values (or lines of a value) are not blanked: they would blank ordinary words. */
const MIN_WITHHELD = 4;

/**
 * The forms in which a process prints the `secrets` it was given, longest first (a whole value is
 * blanked before its lines): each value as it is and as it reads inside a JSON string (a server
 * logging structured lines escapes its line breaks and quotes), and each line of a value of several
 * lines (a private key), which stderr delivers one line at a time. A key printed raw was logged
 * line by line, each line missing the whole value, and one in a JSON log line was logged whole.
 */
export function stderrForms(secrets: readonly string[]): string[] {
  const forms = new Set<string>();
  for (const secret of secrets) {
    for (const value of [secret, ...secret.split(/\r?\n/)]) {
      for (const form of [value, JSON.stringify(value).slice(1, -1)]) if (form.trim().length >= MIN_WITHHELD) forms.add(form);
    }
  }
  return [...forms].sort((a, b) => b.length - a.length);
}

/**
 * A stdio upstream's stderr, logged line by line and attributed to it: each line cut at
 * `STDERR_LINE_MAX`, at most `STDERR_LINES_PER_SECOND` of them, and every value Manifold gave the
 * process from a secret reference blanked out. The upstream is not trusted with the connector's
 * memory or its log: a 600 MiB line without a newline, read whole, ended the connector (a string
 * past V8's largest) and every upstream it served with it; a 200 MiB line was one log record and
 * stalled another tenant's calls; a process that prints its configuration put the secret in the log.
 * The pipe is always drained, so the upstream never blocks on it.
 */
export function logStderr(stderr: Readable, logger: Logger, secrets: readonly string[]): void {
  const withheld = stderrForms(secrets);
  // A line is kept this far past its cut, so a value the cut falls inside is still whole when it
  // is blanked (the cut then falls after it): cut first, its first characters were logged.
  const overlap = withheld.reduce((most, form) => Math.max(most, form.length - 1), 0);
  let line = "";
  let cut = 0;
  let windowStart = 0;
  let logged = 0;
  let dropped = 0;

  const emit = () => {
    const kept = line;
    const truncated = cut;
    line = "";
    cut = 0;
    const now = Date.now();
    if (now - windowStart >= 1_000) {
      if (dropped > 0) logger.warn({ stream: "stderr", dropped }, "stderr lines dropped (more than the upstream may log in a second)");
      windowStart = now;
      logged = 0;
      dropped = 0;
    }
    if (logged >= STDERR_LINES_PER_SECOND) {
      dropped++;
      return;
    }
    logged++;
    const whole = redact(kept.endsWith("\r") ? kept.slice(0, -1) : kept, withheld);
    const text = whole.length > STDERR_LINE_MAX ? whole.slice(0, STDERR_LINE_MAX) : whole;
    const over = truncated + Math.max(0, whole.length - STDERR_LINE_MAX);
    logger.info({ stream: "stderr", ...(over > 0 ? { truncatedChars: over } : {}) }, text);
  };
  const append = (piece: string) => {
    const room = STDERR_LINE_MAX + overlap - line.length;
    if (piece.length <= room) line += piece;
    else {
      line += piece.slice(0, room);
      cut += piece.length - room;
    }
  };

  stderr.setEncoding("utf8");
  stderr.on("data", (chunk: string) => {
    let from = 0;
    for (let newline = chunk.indexOf("\n"); newline !== -1; newline = chunk.indexOf("\n", from)) {
      append(chunk.slice(from, newline));
      emit();
      from = newline + 1;
    }
    append(chunk.slice(from));
  });
  stderr.on("end", () => {
    if (line.length > 0 || cut > 0) emit();
  });
}
