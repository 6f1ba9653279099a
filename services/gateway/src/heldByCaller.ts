import type { Principal } from "@manifold/domain";
import { endHeld, type Closable } from "./closingStreams.js";

/** A response held for a caller: counted until it closes, and ended (`endHeld`) when the caller is gone. */
export type { Closable } from "./closingStreams.js";

/**
 * Runs `closed` once the response closes, or now when it already has: a listener added after
 * the close never runs (a client gone while its request awaited something held its place for good).
 */
export function onClose(response: Closable, closed: () => void): void {
  if (response.destroyed) closed();
  else response.once("close", closed);
}

/** How a refusal names the caller that holds too much. */
export const callerName = (principal: Principal) => (principal.consumer ? `consumer '${principal.consumer}'` : "this caller");

/**
 * What each caller holds on this replica (calls in flight, listen streams), each counted until
 * the response it belongs to closes: what one caller holds costs memory every other caller of the
 * replica needs, so each is bounded per caller. A consumer deleted meanwhile has its responses ended.
 */
export class HeldByCaller {
  /** `writing`: the responses that may hold bytes not yet written, the only ones `unwritten` reads. */
  readonly #held = new Map<string, { consumer: string | undefined; count: number; responses: Set<Closable>; writing: Set<Closable> }>();

  of(principal: Principal): number {
    return this.#held.get(principal.id)?.count ?? 0;
  }

  /** The bytes the caller's responses have yet to hand to the kernel (a response's `writableLength` counts its socket's too). */
  unwritten(principal: Principal): number {
    let bytes = 0;
    for (const response of this.#held.get(principal.id)?.writing ?? []) bytes += response.writableLength ?? 0;
    return bytes;
  }

  /**
   * The response is written in one piece, at its end (`wrote`): until then it holds nothing to
   * count. Reading every held response on every call made the check grow with the caller's calls
   * awaiting answers (256 reads a call at the default bound).
   */
  writesAtEnd(principal: Principal, response: Closable): void {
    this.#held.get(principal.id)?.writing.delete(response);
  }

  /** After that one write: counted again only while the kernel has not taken all of it. */
  wrote(principal: Principal, response: Closable): void {
    const held = this.#held.get(principal.id);
    if (held?.responses.has(response) && (response.writableLength ?? 0) > 0) held.writing.add(response);
  }

  /** Counts `count` for the caller until `response` closes, then calls `released`. */
  hold(principal: Principal, count: number, response: Closable, released?: () => void): void {
    const id = principal.id;
    let held = this.#held.get(id);
    if (!held) this.#held.set(id, (held = { consumer: principal.consumer, count: 0, responses: new Set(), writing: new Set() }));
    held.count += count;
    held.responses.add(response);
    held.writing.add(response);
    const entry = held;
    onClose(response, () => {
      entry.count -= count;
      entry.responses.delete(response);
      entry.writing.delete(response);
      if (entry.count <= 0 && this.#held.get(id) === entry) this.#held.delete(id);
      released?.();
    });
  }

  /** Ends every response a consumer's callers hold here (it was deleted); each is released as it closes. */
  endConsumer(consumer: string): void {
    for (const held of this.#held.values()) if (held.consumer === consumer) for (const response of [...held.responses]) endHeld(response);
  }
}
