import type { GatewayCatalog } from "./catalog.js";
import type { ResourceUpdates } from "./resourceUpdates.js";

/**
 * The resource subscriptions of one 2025-era session on this replica: one listener per exposed URI
 * its record names. Every replica holding the session listens, and updates reach every gateway,
 * so the one holding the session's notification stream delivers them (the SDK drops a
 * notification on a copy without a stream). Each update is checked against the virtual server as
 * it is now: a URI no longer exposed, or now routed elsewhere, is not delivered. One kept for a
 * stream not open yet is checked again when that stream opens (`stillHeard`).
 */
export class SessionSubscriptions {
  readonly #listening = new Map<string, () => void>();
  readonly #catalog: GatewayCatalog;
  readonly #updates: ResourceUpdates;
  readonly #virtualServer: string;
  readonly #environment: string;
  /** Tells the session of an update; `stillHeard` says, when it is told later, whether it may still be. */
  readonly #send: (uri: string, stillHeard: () => boolean) => void;
  /**
   * What the session's caller is denied now (undefined: no grant admits it any more), read at each
   * update: a grant narrowed since the session opened (or since its stream was admitted) stops the
   * updates of what it now denies. Before, the denials the session opened with were kept, and a
   * caller went on hearing when a resource it may no longer read changed (an attacker run).
   */
  readonly #deniedNow: () => ReadonlySet<string> | undefined;

  constructor(catalog: GatewayCatalog, updates: ResourceUpdates, virtualServer: string, environment: string, deniedNow: () => ReadonlySet<string> | undefined, send: (uri: string, stillHeard: () => boolean) => void) {
    this.#catalog = catalog;
    this.#deniedNow = deniedNow;
    this.#updates = updates;
    this.#virtualServer = virtualServer;
    this.#environment = environment;
    this.#send = send;
  }

  /** Listens for exactly these exposed URIs (the session's record), routed as the virtual server routes them now. */
  sync(uris: readonly string[]): void {
    const wanted = new Set(uris);
    for (const [uri, stop] of this.#listening) {
      if (wanted.has(uri)) continue;
      stop();
      this.#listening.delete(uri);
    }
    const items = this.#items();
    for (const uri of wanted) {
      const route = this.#listening.has(uri) ? undefined : items?.resolveUri(uri);
      if (!route) continue;
      const { upstream, original } = route;
      // Still subscribed by this listener, the URI still exposed to the caller and routed here.
      const heard = () => {
        const now = this.#listening.get(uri) === stop ? this.#items()?.resolveUri(uri) : undefined;
        return now?.upstream === upstream && now.original === original;
      };
      const stop = this.#updates.listen(upstream, original, () => {
        if (heard()) this.#send(uri, heard);
      });
      this.#listening.set(uri, stop);
    }
  }

  close(): void {
    for (const stop of this.#listening.values()) stop();
    this.#listening.clear();
  }

  #items() {
    const denied = this.#deniedNow();
    return denied && this.#catalog.view(this.#virtualServer, this.#environment)?.itemsFor(denied);
  }
}
