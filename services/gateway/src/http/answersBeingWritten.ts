import { ManifoldError } from "@manifold/contracts";
import type { Principal } from "@manifold/domain";
import type { ServerResponse } from "node:http";
import { callerName, onClose } from "../heldByCaller.js";

/** Answers one caller may have being written at once on a replica, past its calls in flight. */
export const MAX_ANSWERS_BEING_WRITTEN = 16;

/**
 * The answers to each caller's requests that go to no upstream (lists, `server/discover`,
 * `initialize`, notifications), counted while they are being written: begun but not all handed to
 * the kernel, so what is left of them sits in this process until the client takes it. Calls are bounded as calls in flight (`InFlight`), and an answer left untaken is closed
 * (`dropUnread`), but these were bounded by nothing: one consumer's 40 tool lists of 6 MB, each
 * read 4 KB every 100 ms, held ~230 MiB of the gateway's memory, and more lists would have held
 * more (edgeSlowAnswers.e2e). Past `MAX_ANSWERS_BEING_WRITTEN`, the next is refused
 * `too_many_calls` before it is served. An answer is looked at only when its caller asks again:
 * a small one is finished as it is ended and never counts. Each list of a 2025 batch takes a place of
 * its own: a batch took one, and 16 batches of 4 lists (`MAX_LISTS_PER_BATCH`) were 64 lists being
 * written to one caller (8 such batches read slowly: 8 served, now 4).
 */
export class AnswersBeingWritten {
  /** Each caller's open responses, and the places each takes. */
  readonly #open = new Map<string, Map<ServerResponse, number>>();

  /** Counts the response as `places` of its caller's answers until it closes; refuses it when they would be too many being written. */
  take(response: ServerResponse, principal: Principal, places = 1): void {
    const id = principal.id;
    let open = this.#open.get(id);
    const writing = open ? count(open) : 0;
    if (writing + places > MAX_ANSWERS_BEING_WRITTEN) {
      throw new ManifoldError(
        "too_many_calls",
        `${callerName(principal)} already has ${writing} answers being written to it on this gateway replica (at most ${MAX_ANSWERS_BEING_WRITTEN}); read them before asking for more`,
      );
    }
    if (!open) this.#open.set(id, (open = new Map()));
    open.set(response, places);
    const mine = open;
    onClose(response, () => {
      mine.delete(response);
      if (mine.size === 0 && this.#open.get(id) === mine) this.#open.delete(id);
    });
  }
}

/**
 * Begun (its headers sent) and not yet all taken by the kernel: Node's `writableFinished` reads both
 * the answer's and its socket's buffers. A 2025 answer on an event stream (a batch's) has its
 * headers sent before the SDK has written it, and is not ended until it has: counted only once
 * ended, 24 batches of 2 lists of 6 MB were all served, ~280 MiB held.
 */
function count(open: ReadonlyMap<ServerResponse, number>): number {
  let writing = 0;
  for (const [response, places] of open) if (response.headersSent && !response.writableFinished) writing += places;
  return writing;
}
