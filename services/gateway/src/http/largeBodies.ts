import { ManifoldError } from "@manifold/contracts";
import type { Principal } from "@manifold/domain";
import type { IncomingMessage } from "node:http";
import { HeldByCaller, callerName } from "../heldByCaller.js";

/** A body of more than this many bytes by its Content-Length, or of a length not announced (chunked), is large. */
export const LARGE_BODY_BYTES = 64 * 1024;
/** Large bodies one caller may have arriving at once on a replica. */
export const MAX_LARGE_BODIES = 16;

/**
 * The large request bodies each caller has arriving on this replica, at most `MAX_LARGE_BODIES`: an
 * admitted request's body is read whole into memory (up to `GATEWAY_BODY_LIMIT_BYTES`) before anything
 * else can refuse it, and one key on 120 connections, each sending a 1 MB body but its last byte,
 * held +123 MiB until the request timeout. A place is taken when the headers are admitted and given
 * back when the body has been read or the request is gone (the request's `close`, which Node emits
 * after its body ends or when it is aborted). A small body costs a look at two headers.
 */
export class LargeBodies {
  readonly #arriving = new HeldByCaller();

  /** Takes a place for the request's body when it is large and still to come; refuses it (`too_many_calls`) when the caller has none left. */
  take(request: IncomingMessage, principal: Principal): void {
    if (!isLarge(request) || request.complete) return;
    const arriving = this.#arriving.of(principal);
    if (arriving >= MAX_LARGE_BODIES) {
      throw new ManifoldError(
        "too_many_calls",
        `${callerName(principal)} already has ${arriving} request bodies of more than ${LARGE_BODY_BYTES / 1024} KiB arriving on this gateway replica (at most ${MAX_LARGE_BODIES}); send the next one when one has arrived`,
      );
    }
    this.#arriving.hold(principal, 1, request);
  }
}

const isLarge = ({ headers }: IncomingMessage) => {
  const length = headers["content-length"];
  return length === undefined ? headers["transfer-encoding"] !== undefined : Number(length) > LARGE_BODY_BYTES;
};
