import type { Logger } from "@manifold/telemetry";
import type { Readable } from "node:stream";
import { redact } from "./withheldValues.js";

/** The most of one stderr line kept in a log record; the rest of the line is counted, not kept. */
export const STDERR_LINE_MAX = 8 * 1024;
/** The most stderr lines of one upstream logged in a second; the rest are counted, once a second. */
export const STDERR_LINES_PER_SECOND = 100;

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
  const withheld = secrets.filter((secret) => secret.length >= 4);
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
    const text = redact(kept.endsWith("\r") ? kept.slice(0, -1) : kept, withheld);
    logger.info({ stream: "stderr", ...(truncated > 0 ? { truncatedChars: truncated } : {}) }, text);
  };
  const append = (piece: string) => {
    const room = STDERR_LINE_MAX - line.length;
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
