import { ManifoldError, Subjects, type RegistryCommand } from "@manifold/contracts";
import type { EventStore, StreamFollower } from "@manifold/bus";
import { aggregateOf, decide, type Aggregate, type CatalogProjection } from "@manifold/domain";
import { randomUUID } from "node:crypto";

export interface CommandOptions {
  /** From `If-Match`: the version the caller last saw. */
  expectedVersion?: number;
  /** From `Idempotency-Key`: a retried command with the same key is stored once. */
  commandId?: string;
  /** Recorded in each event's meta; absent: the registry's own command (`registry`). */
  actor?: string;
}

export interface CommandResult {
  /** The aggregate's version after the command; unchanged when the command was a no-op. */
  version: number;
  changed: boolean;
}

/** The stream subject holding one object's events. */
export const subjectOf = ({ kind, name }: Aggregate) => {
  switch (kind) {
    case "upstream":
      return Subjects.upstreamEvents(name);
    case "virtual-server":
      return Subjects.virtualServerEvents(name);
    case "consumer":
      return Subjects.consumerEvents(name);
    case "identity-provider":
      return Subjects.identityProviderEvents(name);
    case "environment":
      return Subjects.environmentEvents(name);
  }
};

/**
 * The registry's write path: decide against the projection, append with the version the
 * decision was based on, then wait until the projection holds the result, so the caller
 * reads its own write.
 */
export function createCommandHandler(projection: CatalogProjection, store: EventStore, follower: StreamFollower) {
  const currentVersion = ({ kind, name }: Aggregate) => {
    const state =
      kind === "upstream"
        ? projection.upstream(name)
        : kind === "virtual-server"
          ? projection.virtualServer(name)
          : kind === "consumer"
            ? projection.consumer(name)
            : kind === "environment"
              ? projection.environment(name)
              : projection.identityProvider(name);
    return state?.version ?? 0;
  };

  return async function execute(command: RegistryCommand, options: CommandOptions = {}): Promise<CommandResult> {
    // Deciding against a projection that cannot follow the stream would conflict or act on stale
    // state, and the append could not be read back: refuse now, retryably.
    if (!follower.isCaughtUp()) {
      throw new ManifoldError("bus_unavailable", "the registry is not following its event stream (NATS unreachable or recovering); the command may be retried");
    }
    const aggregate = aggregateOf(command);
    const seen = currentVersion(aggregate);
    if (options.expectedVersion !== undefined && options.expectedVersion !== seen) {
      const current = await store.version(subjectOf(aggregate));
      throw new ManifoldError(
        "version_conflict",
        `${aggregate.kind} '${aggregate.name}' is at version ${current}, not ${options.expectedVersion}`,
        { expectedVersion: options.expectedVersion, currentVersion: current },
      );
    }
    const events = decide(command, projection);
    if (events.length === 0) return { version: seen, changed: false };
    const commandId = options.commandId ?? randomUUID();
    let version = seen;
    for (const [index, event] of events.entries()) {
      version = await store.append(subjectOf(aggregate), event, {
        expectedVersion: version,
        commandId: events.length === 1 ? commandId : `${commandId}:${index}`,
        actor: options.actor ?? "registry",
      });
    }
    await follower.waitFor(version);
    return { version, changed: true };
  };
}

export type CommandHandler = ReturnType<typeof createCommandHandler>;
