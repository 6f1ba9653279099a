import { MAX_URI_LENGTH, Subjects } from "@manifold/contracts";
import type { NatsConnection } from "@manifold/bus";
import type { Subscription } from "@nats-io/transport-node";

type Listener = () => void;
const PREFIX = Subjects.resourceUpdated("");
/** Reconnects within this long of a retelling are told once, when it ends: a flapping bus does not make every subscriber re-read at each flap. */
const RETELL_WINDOW_MS = 1_000;

/**
 * `notifications/resources/updated` from every upstream, as connectors relay them, handed to the
 * sessions of this replica that subscribed to the resource (2025 era) and to whoever watches
 * all of them (the 2026-07-28 listen streams). Keyed by concrete upstream and its own URI.
 *
 * An update is a core message, stored nowhere: one a connector published while this replica's bus
 * connection was away (nats-server restarted, or this connection alone dropped) reached no one
 * here, and its subscribers stayed stale for ever (an update made while nats-server was down:
 * never told within 20 s, `test/e2e/resourceUpdatesAcrossBusRestart.e2e.spec.ts`). Which updates
 * were missed is unknowable here, so once the connection is back every subscription of this replica
 * is told its resource changed: a spurious update only makes its agent read again, a lost one left
 * it stale. Replaying the missed ones instead would take a durable write per update (a stream each
 * gateway reads on from where it was) for a notice whose only content is "read it again"; a
 * connector re-sending its updates would not know what a gateway that dropped alone had missed.
 * List changes need none of this: they travel the registry's stream, which a gateway reads on from
 * where it was.
 */
export class ResourceUpdates {
  readonly #listeners = new Map<string, Set<Listener>>();
  readonly #watchers = new Set<(upstream: string, uri: string) => void>();
  readonly #retellers = new Set<() => void>();
  readonly #subscription: Subscription;
  /** The window of the last retelling, and whether a reconnect came within it. */
  #window: NodeJS.Timeout | undefined;
  #again = false;

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
    void (async () => {
      for await (const status of nc.status()) if (status.type === "reconnect") this.#reconnected();
    })();
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

  /** `watcher` hears every update; `retell` is asked, after a reconnect, to tell each of its subscriptions (see the class). */
  watch(watcher: (upstream: string, uri: string) => void, retell: () => void): void {
    this.#watchers.add(watcher);
    this.#retellers.add(retell);
  }

  close(): void {
    this.#subscription.unsubscribe();
    clearTimeout(this.#window);
  }

  #reconnected(): void {
    if (this.#window !== undefined) return void (this.#again = true);
    // Once per subscription: each listener is one URI of one session (bounded by its subscription cap).
    for (const listeners of [...this.#listeners.values()]) for (const listener of [...listeners]) listener();
    for (const retell of this.#retellers) retell();
    this.#window = setTimeout(() => {
      this.#window = undefined;
      if (this.#again) {
        this.#again = false;
        this.#reconnected();
      }
    }, RETELL_WINDOW_MS).unref();
  }
}
