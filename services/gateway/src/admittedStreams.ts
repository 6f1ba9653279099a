import { OwnedItems } from "@manifold/domain";
import type { FastifyRequest } from "fastify";
import type { Socket } from "node:net";
import type { StreamAdmission } from "./auth/gatekeeper.js";
import { endHeld, type Endable } from "./closingStreams.js";
import type { McpCall } from "./mcpCall.js";

/** A long-lived response, and the connection it holds (an HTTP response's socket). */
export type HeldStream = Endable & { readonly socket?: Socket | null };

/** Keeps a long-lived response open only while the request that opened it would be admitted. */
export type WatchStream = (call: McpCall, request: FastifyRequest, response: HeldStream) => void;

/**
 * The long-lived responses this replica holds open (2026-07-28 listen streams, 2025 GET streams),
 * each with whether its request would be admitted now. Admission is decided per request, so a
 * stream opened before its key or grant was revoked heard every change afterwards for as long as
 * its client kept it (5 of 5 changes, the last 2 s after a revocation). After every change to
 * credentials or grants, each is checked again and ended when its request would be refused.
 * Each is also counted for its caller: at the replica's connection bound, the caller holding the
 * most gives way (`yieldOne`).
 */
export class AdmittedStreams {
  /** In the order they opened: the first of a caller's found is its oldest. */
  readonly #streams = new Map<HeldStream, { caller: string; admitted: () => Promise<StreamAdmission> }>();
  /** Each caller's streams, oldest first, and who holds the most: what `yieldOne` reads. */
  readonly #byCaller = new OwnedItems<HeldStream>();

  /**
   * Keeps `admitted` with the response until it closes, and checks it once now: a change applied
   * while the request awaited something after its admission (a session held by another replica)
   * was rechecked before the stream was here to be.
   */
  watch(response: HeldStream, caller: string, admitted: () => Promise<StreamAdmission>): void {
    if (response.destroyed) return;
    this.#streams.set(response, { caller, admitted });
    this.#byCaller.add(caller, response);
    response.once("close", () => this.#forget(response, caller));
    this.#check(response, admitted);
  }

  /** Ends every stream whose request would be refused now, or admitted with other denials. */
  recheck(): void {
    for (const [response, { admitted }] of this.#streams) this.#check(response, admitted);
  }

  /**
   * Ends the oldest stream of the caller holding the most, when it holds more than `share`, and
   * gives back its connection: called at the connection bound when no connection is idle or
   * receiving (`limitConnections`). Streams are neither, and a caller may hold 100 listens and a
   * GET stream per session: about six callers held every place of a replica, and every other
   * tenant's new connection was closed unanswered. Streams within a caller's share are kept, so
   * connections opened only to push streams out reach none of them. Only that caller's streams are
   * read: before, every stream of the replica was, twice, at each new connection the bound met.
   */
  yieldOne(share = 0): Socket | undefined {
    const largest = this.#byCaller.largest();
    if (!largest || largest.count <= share) return undefined;
    for (const response of this.#byCaller.itemsOf(largest.owner)) {
      if (!response.socket) continue;
      this.#forget(response, largest.owner);
      const socket = response.socket;
      endHeld(response, { release: true });
      return socket;
    }
    return undefined;
  }

  #forget(response: HeldStream, caller: string): void {
    this.#streams.delete(response);
    this.#byCaller.delete(caller, response);
  }

  /** A stream whose lists changed with its caller's access hears so before its end (`endHeld`). */
  #check(response: HeldStream, admitted: () => Promise<StreamAdmission>): void {
    void admitted().then((now) => {
      if (now !== "kept") endHeld(response, { listsChanged: now === "changed" });
    });
  }
}

/**
 * The long-lived streams a caller keeps however full the replica is: a 64th of its connections
 * (128 of 8,192). Past it, at the bound, its oldest give way to new connections; within it, none
 * do, so filling a replica with streams no one can push out takes 64 callers, each granted.
 */
export const streamShare = (maxConnections: number): number => Math.max(1, Math.floor(maxConnections / 64));
