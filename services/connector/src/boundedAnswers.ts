import { ResultTooLarge } from "./upstreamErrors.js";

const LF = 10;
const CR = 13;
const COLON = 58;

/**
 * A JSON answer, bounded: past `maxBytes` the body errors with `ResultTooLarge` (a
 * `payload_too_large` the caller hears), instead of growing in memory.
 */
export function boundedBody(maxBytes: number): TransformStream<Uint8Array, Uint8Array> {
  let size = 0;
  return new TransformStream({
    transform(chunk, controller) {
      size += chunk.length;
      if (size > maxBytes) controller.error(new ResultTooLarge(maxBytes, size));
      else controller.enqueue(chunk);
    },
  });
}

/**
 * An SSE stream, bounded per event: each event is held until its blank line (CR, LF or CRLF line
 * endings, split across chunks or not) and passed on whole; one that outgrows `maxBytes` is
 * dropped whole and the stream goes on. A stream may carry one session's every answer (the SSE
 * transport) for as long as it runs, so it is never cut: an answer too large to pass on is lost,
 * and its request ends at its timeout, while every other request on the stream is answered.
 * Each comment line, and each event with no field (nothing but comments, or nothing), is counted
 * as sent unasked (`unasked`, the session's `InboundBudget`) and dropped here: they carry nothing,
 * and a stream of them cost every tenant on the connector (another upstream's calls 7 times
 * slower). Past the session's budget the stream ends: nothing more of it is read.
 */
export function boundedEvents(maxBytes: number, unasked: () => boolean = () => true): TransformStream<Uint8Array, Uint8Array> {
  let held: Uint8Array[] = [];
  let size = 0;
  let dropping = false;
  /** Whether the current event has a line that is not a comment; whether the current line is one. */
  let fields = false;
  let comment = false;
  const flood = (controller: TransformStreamDefaultController<Uint8Array>) => controller.error(new Error("the upstream sent more than a session may unasked"));
  /** Bytes in the current line, and whether the last byte was a CR (a CRLF is one line ending). */
  let line = 0;
  let afterCr = false;
  /** A left-out event ended at a CR: the LF after it (a CRLF) is left out with it. */
  let leftOutCr = false;
  return new TransformStream({
    transform(chunk, controller) {
      let from = 0;
      for (let i = 0; i < chunk.length; i++) {
        const byte = chunk[i];
        if (byte === LF && afterCr) {
          if (leftOutCr && from === i) from = i + 1;
          afterCr = leftOutCr = false;
          continue;
        }
        leftOutCr = false;
        if (byte !== LF && byte !== CR) {
          if (line++ === 0) {
            comment = byte === COLON;
            if (!comment) fields = true;
          }
          afterCr = false;
          continue;
        }
        afterCr = byte === CR;
        if (line > 0 && comment && !unasked()) return flood(controller);
        if (line === 0) {
          // A blank line: the event ends here.
          if (!fields) {
            if (!unasked()) return flood(controller);
            leftOutCr = byte === CR;
          } else if (!dropping) {
            held.push(chunk.subarray(from, i + 1));
            for (const piece of held) controller.enqueue(piece);
          }
          held = [];
          size = 0;
          dropping = false;
          fields = false;
          from = i + 1;
        }
        line = 0;
      }
      if (dropping || from === chunk.length) return;
      held.push(chunk.subarray(from));
      size += chunk.length - from;
      if (size > maxBytes) {
        held = [];
        dropping = true;
      }
    },
    flush(controller) {
      if (!dropping) for (const piece of held) controller.enqueue(piece);
    },
  });
}
