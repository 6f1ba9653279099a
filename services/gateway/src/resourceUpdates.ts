import { MAX_URI_LENGTH, Subjects } from "@manifold/contracts";
import type { NatsConnection } from "@manifold/bus";
import type { Subscription } from "@nats-io/transport-node";

type Listener = () => void;
const PREFIX = Subjects.resourceUpdated("");

/**
 * `notifications/resources/updated` from every upstream, as connectors relay them, handed to the
 * sessions of this replica that subscribed to the resource (2025 era) and to whoever watches
 * all of them (the 2026-07-28 listen streams). Keyed by concrete upstream and its own URI.
 */
export class ResourceUpdates {
  readonly #listeners = new Map<string, Set<Listener>>();
  readonly #watchers = new Set<(upstream: string, uri: string) => void>();
  readonly #subscription: Subscription;

  constructor(nc: NatsConnection) {
    this.#subscription = nc.subscribe(Subjects.resourceUpdated("*"), {
      callback: (err, msg) => {
        if (err) return;
        const uri = msg.string();
        if (uri.length === 0 || uri.length > MAX_URI_LENGTH) return;
        const upstream = msg.subject.slice(PREFIX.length);
        for (const listener of this.#listeners.get(`${upstream}\n${uri}`) ?? []) listener();
        for (const watcher of this.#watchers) watcher(upstream, uri);
      },
    });
  }

  /** Calls `listener` on each update of the upstream's URI until the returned function is called. */
  listen(upstream: string, uri: string, listener: Listener): () => void {
    const key = `${upstream}\n${uri}`;
    let set = this.#listeners.get(key);
    if (!set) this.#listeners.set(key, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.#listeners.delete(key);
    };
  }

  watch(watcher: (upstream: string, uri: string) => void): void {
    this.#watchers.add(watcher);
  }

  close(): void {
    this.#subscription.unsubscribe();
  }
}
