import type { FastifyRequest } from "fastify";
import type { Closable } from "./heldByCaller.js";
import type { McpCall } from "./mcpCall.js";

/** Keeps a long-lived response open only while the request that opened it would be admitted. */
export type WatchStream = (call: McpCall, request: FastifyRequest, response: Closable) => void;

/**
 * The long-lived responses this replica holds open (2026-07-28 listen streams, 2025 GET streams),
 * each with whether its request would be admitted now. Admission is decided per request, so a
 * stream opened before its key or grant was revoked heard every change afterwards for as long as
 * its client kept it (5 of 5 changes, the last 2 s after a revocation). After every change to
 * credentials or grants, each is checked again and ended when its request would be refused.
 */
export class AdmittedStreams {
  readonly #streams = new Map<Closable, () => Promise<boolean>>();

  /**
   * Keeps `admitted` with the response until it closes, and checks it once now: a change applied
   * while the request awaited something after its admission (a session held by another replica)
   * was rechecked before the stream was here to be.
   */
  watch(response: Closable, admitted: () => Promise<boolean>): void {
    if (response.destroyed) return;
    this.#streams.set(response, admitted);
    response.once("close", () => this.#streams.delete(response));
    this.#check(response, admitted);
  }

  /** Ends every stream whose request would be refused now. */
  recheck(): void {
    for (const [response, admitted] of this.#streams) this.#check(response, admitted);
  }

  #check(response: Closable, admitted: () => Promise<boolean>): void {
    void admitted().then((still) => {
      if (!still) response.destroy?.();
    });
  }
}
