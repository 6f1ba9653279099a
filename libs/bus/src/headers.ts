import type { Msg, MsgHdrs } from "@nats-io/transport-node";

/** What reading a message's headers needs; nats.js's `MsgHdrs` is one. */
export interface HeaderReader {
  get(key: string): string;
  /** For trace-context extraction (`HeaderCarrier`). */
  keys?(): string[];
}

const NONE: HeaderReader = { get: () => "", keys: () => [] };

/**
 * The header block of a message as nats.js received it, decoded, or undefined when this nats.js
 * keeps it elsewhere, null when the message has none. Decoded from the received bytes where they
 * lie (a `subarray` of them first took as long again as decoding).
 */
function rawHeaders(msg: Msg): string | null | undefined {
  const { _rdata: data, _msg: parsed } = msg as unknown as { _rdata?: unknown; _msg?: { hdr?: unknown } };
  if (!(data instanceof Uint8Array) || typeof parsed?.hdr !== "number") return undefined;
  const length = parsed.hdr;
  if (length < 0) return null;
  return Buffer.from(data.buffer, data.byteOffset, Math.min(length, data.byteLength)).toString("utf8");
}

/**
 * A message's headers, for a hot path that reads many of them. nats.js decodes headers by
 * appending each through its validating `append` (a character array per key, a copy and filter of
 * the keys so far) and then lists and filters the keys again on every `get`: in the connector's
 * allocation profile a sixth of what a call allocated. This reads the block nats.js received, in
 * one pass, when its message keeps it where nats.js 3.x does, and falls back to `msg.headers`
 * otherwise. The first value of each header, `""` for a missing one, exact keys: as `MsgHdrs.get`
 * answers (headers.unit.spec.ts holds the two to each other).
 */
export function readHeaders(msg: Msg): HeaderReader {
  const text = rawHeaders(msg);
  if (text === null) return NONE;
  if (text === undefined) return fromMsgHdrs(msg.headers);
  // Each header line's name's signature (`signature`), where the name starts, its colon, the line's end.
  const lines: number[] = [];
  // Line 0 is the status line ("NATS/1.0", perhaps a code): not a header. The lines are read in
  // place, not split into strings first (a call's headers cost ~23,000 instructions so, callgrind).
  let start = text.indexOf("\r\n");
  /** The first colon at or after `start` (-1: none left): found once for all the lines before it, so the pass stays linear. */
  let colon = -1;
  let names = 0;
  while (start >= 0) {
    start += 2;
    const next = text.indexOf("\r\n", start);
    const end = next < 0 ? text.length : next;
    if (colon < start) colon = text.indexOf(":", start);
    if (colon < 0) break;
    if (colon < end) {
      const named = signature(colon - start, text.charCodeAt(colon - 1));
      lines.push(named, start, colon, end);
      names |= nameBit(named);
    }
    start = next;
  }
  return new BlockHeaders(text, lines, names);
}

/**
 * One bit of 32 for a name, from its `signature`: `get` of a name whose bit no line set answers at
 * once, without reading the lines. A call asks for about twice as many headers as it carries (the
 * optional ones: progress, log, task, pass-through), and each miss read every line.
 */
const nameBit = (signature: number) => 1 << ((signature + (signature >>> 16)) & 31);

/**
 * A name's length and last character in one number: Manifold's header names all begin alike and
 * differ in one or the other, so `get` compares a line's name only when this matches.
 */
const signature = (length: number, last: number) => (length === 0 ? 0 : (length << 16) | last);

/**
 * Header lines read in place: no name is cut out of the block, nor hashed into a map, and a value
 * is cut out only when asked for (a map of the names was ~5,000 instructions a call, callgrind).
 * `get` reads the lines in order, so the first of a repeated header answers; a call reads a fixed
 * few names, each in time linear in the block.
 */
class BlockHeaders implements HeaderReader {
  constructor(
    readonly text: string,
    readonly lines: readonly number[],
    /** The `nameBit`s of the names the lines hold. */
    readonly names: number,
  ) {}

  get(key: string): string {
    const wanted = signature(key.length, key.charCodeAt(key.length - 1));
    if ((this.names & nameBit(wanted)) === 0) return "";
    const { text, lines } = this;
    for (let i = 0; i < lines.length; i += 4) {
      if (lines[i] !== wanted) continue;
      const start = lines[i + 1]!;
      const colon = lines[i + 2]!;
      if (colon - start === key.length && text.startsWith(key, start)) return headerValue(text, colon + 1, lines[i + 3]!);
    }
    return "";
  }

  keys(): string[] {
    const keys = new Set<string>();
    for (let i = 0; i < this.lines.length; i += 4) keys.add(this.text.slice(this.lines[i + 1], this.lines[i + 2]));
    return [...keys];
  }
}

/** `text.slice(from, end).trim()`, without the second string when only the usual space is to trim. */
function headerValue(text: string, from: number, end: number): string {
  while (from < end && text.charCodeAt(from) === 32) from++;
  const value = text.slice(from, end);
  if (value.length === 0) return value;
  // Whatever else `trim` removes is at most U+0020 or from U+0080 on: only then is it called.
  const first = value.charCodeAt(0);
  const last = value.charCodeAt(value.length - 1);
  return first <= 32 || first >= 128 || last <= 32 || last >= 128 ? value.trim() : value;
}

function fromMsgHdrs(headers: MsgHdrs | undefined): HeaderReader {
  if (!headers) return NONE;
  const values = new Map<string, string>();
  for (const [key, list] of headers) if (list.length > 0) values.set(key, list[0]!);
  return readerOf(values);
}

const readerOf = (values: Map<string, string>): HeaderReader => ({ get: (key) => values.get(key) ?? "", keys: () => [...values.keys()] });

/** A header name as NATS carries it: printable ASCII, no colon. */
const HEADER_NAME = /^[\x21-\x39\x3b-\x7e]+$/;
/**
 * Names already found valid: a process sends the same few (`BusHeader`) on every call, and testing
 * each against `HEADER_NAME` again cost a regular expression per header per call. Bounded all the same.
 */
const VALID_NAMES = new Set<string>();
const MAX_VALID_NAMES = 256;

/**
 * Headers for a request this process sends, encoded straight into the wire format nats.js writes
 * ("NATS/1.0", then "Name: value" lines). nats.js's own `MsgHdrs` re-validates and re-searches
 * every key on each `append` and encodes with a new `TextEncoder` buffer, a tenth of the
 * gateway's allocations per call; nats.js only calls `encode()` on the headers it publishes.
 * Names and values are checked as nats.js checks them: a line break in a value (which would
 * forge headers) throws, naming the header.
 */
export class OutgoingHeaders {
  /** Names and values, alternating (no pair array per header). */
  readonly #parts: string[] = [];

  append(key: string, value: string): void {
    if (!VALID_NAMES.has(key)) {
      if (!HEADER_NAME.test(key)) throw new Error(`invalid bus header name '${key.replace(/[^\x20-\x7e]/g, "?")}'`);
      if (VALID_NAMES.size < MAX_VALID_NAMES) VALID_NAMES.add(key);
    }
    // Two searches, not a regular expression: ~100 instructions, not ~500, on every header of every call.
    if (value.indexOf("\n") !== -1 || value.indexOf("\r") !== -1) throw new Error(`the value of bus header '${key}' holds a line break`);
    this.#parts.push(key, value.trim());
  }

  /** Replaces every value of `key` (trace propagation sets, it does not append). */
  set(key: string, value: string): void {
    for (let i = this.#parts.length - 2; i >= 0; i -= 2) if (this.#parts[i] === key) this.#parts.splice(i, 2);
    this.append(key, value);
  }

  get(key: string): string {
    for (let i = 0; i < this.#parts.length; i += 2) if (this.#parts[i] === key) return this.#parts[i + 1]!;
    return "";
  }

  keys(): string[] {
    const keys = new Set<string>();
    for (let i = 0; i < this.#parts.length; i += 2) keys.add(this.#parts[i]!);
    return [...keys];
  }

  encode(): Uint8Array {
    let text = "NATS/1.0";
    for (let i = 0; i < this.#parts.length; i += 2) text += `\r\n${this.#parts[i]}: ${this.#parts[i + 1]}`;
    return Buffer.from(`${text}\r\n\r\n`);
  }
}
