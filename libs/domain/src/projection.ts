import { EventType, type RegistryEvent } from "@manifold/contracts";
import { aggregateOfEvent, type Aggregate, type AggregateKind } from "./aggregates.js";
import { evolveConsumer, evolveEnvironment, evolveIdentityProvider, evolveUpstream, evolveVirtualServer, withoutEnvironment } from "./evolve.js";
import type { CatalogView, ConsumerState, EnvironmentState, IdentityProviderState, UpstreamState, VirtualServerState } from "./state.js";
import { allItemPins } from "./environmentItems.js";

export type ProjectionListener = (event: RegistryEvent, sequence: number) => void;

/**
 * The in-memory catalog every node keeps, folded from the registry stream in order.
 * It never does I/O: the bus feeds it events with their stream sequence.
 */
export class CatalogProjection implements CatalogView {
  readonly #upstreams = new Map<string, UpstreamState>();
  readonly #virtualServers = new Map<string, VirtualServerState>();
  readonly #consumers = new Map<string, ConsumerState>();
  readonly #identityProviders = new Map<string, IdentityProviderState>();
  readonly #environments = new Map<string, EnvironmentState>();
  readonly #byKind: { readonly [K in AggregateKind]: ReadonlyMap<string, unknown> } = {
    upstream: this.#upstreams,
    "virtual-server": this.#virtualServers,
    consumer: this.#consumers,
    "identity-provider": this.#identityProviders,
    environment: this.#environments,
  };
  readonly #listeners = new Set<ProjectionListener>();
  /**
   * Every object's version (its last event's sequence), deleted ones included: a name can be
   * used again after a delete, and the append must then expect the delete event's sequence.
   */
  readonly #versions = new Map<string, number>();
  #sequence = 0;

  /** Folds an event into the map of its kind; one entry per kind, checked by the compiler. */
  readonly #evolve: { [K in AggregateKind]: (name: string, event: RegistryEvent, sequence: number) => void } = {
    upstream: (name, event, sequence) => setOrDelete(this.#upstreams, name, evolveUpstream(this.#upstreams.get(name), event, sequence)),
    "virtual-server": (name, event, sequence) =>
      setOrDelete(this.#virtualServers, name, evolveVirtualServer(this.#virtualServers.get(name), event, sequence, this)),
    consumer: (name, event, sequence) => setOrDelete(this.#consumers, name, evolveConsumer(this.#consumers.get(name), event, sequence)),
    environment: (name, event, sequence) => setOrDelete(this.#environments, name, evolveEnvironment(this.#environments.get(name), event, sequence)),
    "identity-provider": (name, event, sequence) =>
      setOrDelete(this.#identityProviders, name, evolveIdentityProvider(this.#identityProviders.get(name), event, sequence)),
  };

  /** Stream sequence of the last event applied. */
  get sequence(): number {
    return this.#sequence;
  }

  /** An event this node cannot read, passed over: the projection's position moves past it all the same. */
  skip(sequence: number): void {
    if (sequence > this.#sequence) this.#sequence = sequence;
  }

  apply(event: RegistryEvent, sequence: number): void {
    if (sequence <= this.#sequence) return;
    this.#sequence = sequence;
    const aggregate = aggregateOfEvent(event);
    // An environment created (not changed) starts with nothing scoped to it either: a grant recorded
    // for its name while none existed (refused since; a log may hold one) is not its grant.
    const created = event.type === EventType.environmentBindingsSet && !this.#environments.has(event.data.name);
    this.#versions.set(versionKey(aggregate), sequence);
    this.#evolve[aggregate.kind](aggregate.name, event, sequence);
    // What was scoped to a deleted environment ends with it. Folded here, on every node alike, not
    // appended to each virtual server: their versions (what appends expect) stay their own events'.
    if (event.type === EventType.environmentDeleted || created) {
      for (const vs of this.#virtualServers.values()) {
        const left = withoutEnvironment(vs, event.data.name);
        if (left) this.#virtualServers.set(vs.name, left);
      }
    }
    for (const listener of this.#listeners) listener(event, sequence);
  }

  /**
   * The sequence of the object's last event, also once it was deleted (0: it never existed):
   * what an append to its subject expects.
   */
  versionOf(aggregate: Aggregate): number {
    return this.#versions.get(versionKey(aggregate)) ?? 0;
  }

  /** Returns a function that removes the listener. */
  onApplied(listener: ProjectionListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  count(kind: AggregateKind): number {
    return this.#byKind[kind].size;
  }
  upstream(name: string): UpstreamState | undefined {
    return this.#upstreams.get(name);
  }
  virtualServer(name: string): VirtualServerState | undefined {
    return this.#virtualServers.get(name);
  }
  upstreams(): Iterable<UpstreamState> {
    return this.#upstreams.values();
  }
  virtualServers(): Iterable<VirtualServerState> {
    return this.#virtualServers.values();
  }
  consumer(name: string): ConsumerState | undefined {
    return this.#consumers.get(name);
  }
  consumers(): Iterable<ConsumerState> {
    return this.#consumers.values();
  }
  identityProvider(name: string): IdentityProviderState | undefined {
    return this.#identityProviders.get(name);
  }
  identityProviders(): Iterable<IdentityProviderState> {
    return this.#identityProviders.values();
  }
  environment(name: string): EnvironmentState | undefined {
    return this.#environments.get(name);
  }
  environments(): Iterable<EnvironmentState> {
    return this.#environments.values();
  }
  /**
   * Who would reach another upstream registered under this name once it is removed: virtual servers
   * with a pin of it (selected, or promoted into an environment, where an unbound name is itself)
   * and environments that bind a name to it.
   */
  usersOf(upstream: string): { virtualServers: string[]; environments: string[] } {
    const virtualServers: string[] = [];
    for (const vs of this.#virtualServers.values()) {
      const pins = [...allItemPins(vs)].flatMap((items) => [...items.prompts.values(), ...items.resources.values(), ...items.resourceTemplates.values()]);
      const tools = [vs.tools, ...vs.environments.values()].flatMap((env) => [...env.values()]);
      if ([...tools, ...pins].some((pin) => pin.upstream === upstream)) virtualServers.push(vs.name);
    }
    const environments = [...this.#environments.values()].filter((env) => [...env.bindings.values()].includes(upstream)).map((env) => env.name);
    return { virtualServers, environments };
  }
}

const versionKey = ({ kind, name }: Aggregate) => `${kind}/${name}`;

function setOrDelete<V>(map: Map<string, V>, key: string, value: V | undefined): void {
  if (value === undefined) map.delete(key);
  else map.set(key, value);
}
