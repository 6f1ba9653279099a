import type { Server } from "@modelcontextprotocol/sdk/server/index.js";

/** What a `virtual-server.*` event may have changed for a session: its tools, or its prompts and resources. */
export type ListKind = "tools" | "items";

/** The most resource updates kept for a session without a stream: as many as it may subscribe to. */
const MAX_MISSED_URIS = 100;

/**
 * A 2025 session hears `notifications/*_list_changed` and `notifications/resources/updated` only on
 * its GET stream, on the replica that stream is open on; the SDK drops one sent while the session
 * has no stream here. An agent whose replica died opens its stream again on another one about a
 * second later (the SDK client's first retry), and every change made meanwhile was lost: measured,
 * 0 of 60 agents heard a rename made 0.1–1 s after their replica was killed
 * (`test/e2e/gatewayKilledSessions.e2e.spec.ts`). So a session's copy here keeps what it could not
 * be told, and tells it when its stream next opens here. Undeliverable notices are dropped silently,
 * as before: a session opened without prompts or resources does not hear of them (the SDK refuses).
 */
export class ListNotices {
  /** Open GET streams of the session on this replica. */
  #streams = 0;
  readonly #missed = new Set<ListKind>();
  /** Each resource update kept, with whether its caller may still hear of it (its grant as it is when it is told). */
  readonly #missedUris = new Map<string, () => boolean>();

  constructor(readonly server: Server) {}

  /** A list changed: told now on an open stream, else kept for the next one (`again`: kept for it as well). */
  tell(kinds: Iterable<ListKind>, { again = false } = {}): void {
    for (const kind of kinds) {
      if (this.#streams > 0) this.#send(kind);
      if (this.#streams === 0 || again) this.#missed.add(kind);
    }
  }

  /**
   * A resource the session subscribed to changed: told now on an open stream, else kept for the
   * next one and told then only if `stillHeard` (a grant narrowed between the update and the
   * stream, or the subscription ended, drops it: before, it was told whatever the grant was by then).
   */
  resourceUpdated(uri: string, stillHeard: () => boolean): void {
    if (this.#streams > 0) void this.server.sendResourceUpdated({ uri }).catch(() => undefined);
    else if (this.#missedUris.size < MAX_MISSED_URIS || this.#missedUris.has(uri)) this.#missedUris.set(uri, stillHeard);
  }

  /** A GET stream opened here (settles with `closed`): what it missed is told on it first. */
  opened(closed: Promise<unknown>): void {
    this.#streams++;
    void closed.finally(() => this.#streams--);
    const missed = [...this.#missed];
    const uris = [...this.#missedUris];
    this.#missed.clear();
    this.#missedUris.clear();
    this.tell(missed);
    for (const [uri, stillHeard] of uris) if (stillHeard()) this.resourceUpdated(uri, stillHeard);
  }

  #send(kind: ListKind): void {
    const { server } = this;
    const sends = kind === "tools" ? [() => server.sendToolListChanged()] : [() => server.sendPromptListChanged(), () => server.sendResourceListChanged()];
    for (const send of sends) void send().catch(() => undefined);
  }
}
