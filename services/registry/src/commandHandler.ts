import { CommandType, ManifoldError, type NewEvent, type RegistryCommand } from "@manifold/contracts";
import { StreamMoved, type EventStore, type StreamFollower } from "@manifold/bus";
import { aggregateOf, decide, subjectOf, type CatalogProjection } from "@manifold/domain";
import { randomUUID } from "node:crypto";
import type { IdempotencyIndex, IdempotentOutcome } from "./idempotency.js";

/**
 * How often a command is decided (the first time, and again because the registry changed under it)
 * before it gives up, retryably. Each decision after the first waits a random time under 2^n ms
 * first, so the last ones wait out up to ~0.5 s of another replica's appends: with 5 (at most
 * ~30 ms in all), 12 deletions on one replica racing 12 grants on another were answered 503 in CI
 * (`registryReplicas.int`; 40 of each: 2 runs of 4 had one).
 */
const MAX_DECISIONS = 9;
/** Commands waiting on one replica, and how long one may wait, before the registry answers `bus_unavailable`. */
const MAX_QUEUED = 1_000;
const MAX_QUEUE_WAIT_MS = 10_000;
/**
 * How long after the registry stopped following its stream a command still waits for it to follow
 * again before it is refused: counted from the stop, so commands queued during a long outage are
 * refused together, not 3 s each in turn; not at all while cut off from the bus.
 */
const FOLLOWING_WAIT_MS = 3_000;
const registryBusy = (why: string) => new ManifoldError("bus_unavailable", `the registry cannot take this command now (${why}); the command may be retried`);

export interface CommandOptions {
  /** From `If-Match`: the version the caller last saw. */
  expectedVersion?: number;
  /** From `Idempotency-Key`, with a digest of the request it came with (see `IdempotencyIndex`). */
  idempotency?: { key: string; fingerprint: string };
  /** Recorded in each event's meta; absent: the registry's own command (`registry`). */
  actor?: string;
}

export interface CommandResult {
  /** The aggregate's version after the command; unchanged when the command was a no-op. */
  version: number;
  changed: boolean;
  /** A retry with the same Idempotency-Key and request: nothing was decided again. */
  replayed?: boolean;
  /** On a replay: the id the first request generated (an API key's, a grant's). */
  createdId?: string;
}

/**
 * The registry's write path: decide against the projection, append with the version the
 * decision was based on, then wait until the projection holds the result, so the caller
 * reads its own write.
 *
 * With an Idempotency-Key, a key already bound (in `keys`, folded from the stream) answers
 * with the first request's outcome, or `idempotency_key_reused` for another request; two
 * replicas racing with one key meet in JetStream's msgID de-duplication, and the loser is
 * answered the same way once it has read the winner's event.
 */
export function createCommandHandler(projection: CatalogProjection, store: EventStore, follower: StreamFollower, keys: IdempotencyIndex, limits = { maxQueued: MAX_QUEUED, maxWaitMs: MAX_QUEUE_WAIT_MS }) {
  const replay = ({ key, fingerprint }: { key: string; fingerprint: string }, outcome: IdempotentOutcome): CommandResult => {
    if (outcome.fingerprint !== fingerprint) {
      throw new ManifoldError(
        "idempotency_key_reused",
        `Idempotency-Key '${key}' was already used for a different request; use a new key for a new request`,
        { header: "Idempotency-Key" },
      );
    }
    return { version: outcome.version, changed: true, replayed: true, ...(outcome.createdId ? { createdId: outcome.createdId } : {}) };
  };

  /**
   * One command at a time on this replica, each decided on what the one before it stored: commands
   * of concurrent requests would otherwise all decide on one stream position, and all but one
   * decide again, round after round (20 at once needed up to 20 decisions). Replicas still race, and
   * decide again when they do.
   */
  let queue: Promise<unknown> = Promise.resolve();
  let queued = 0;
  function execute(command: RegistryCommand, options: CommandOptions = {}): Promise<CommandResult> {
    // A lagging bus makes each command slow: what waits behind it is bounded, in number and in
    // time, and refused retryably rather than run after its client has given up.
    if (queued >= limits.maxQueued) return Promise.reject(registryBusy(`${queued} commands are waiting`));
    const deadline = Date.now() + limits.maxWaitMs;
    queued++;
    const run = queue.then(() => {
      queued--;
      if (Date.now() > deadline) throw registryBusy(`this command waited ${limits.maxWaitMs} ms for the ones before it`);
      return executeNow(command, options);
    });
    queue = run.catch(() => undefined);
    return run;
  }

  /** `version_conflict` when `If-Match` names another version than `seen`, the object's as the projection holds it. */
  async function refuseStale(aggregate: ReturnType<typeof aggregateOf>, seen: number, options: CommandOptions): Promise<void> {
    if (options.expectedVersion === undefined || options.expectedVersion === seen) return;
    const current = await store.version(subjectOf(aggregate));
    throw new ManifoldError(
      "version_conflict",
      `${aggregate.kind} '${aggregate.name}' is at version ${current}, not ${options.expectedVersion}`,
      { expectedVersion: options.expectedVersion, currentVersion: current },
    );
  }

  async function executeNow(command: RegistryCommand, options: CommandOptions): Promise<CommandResult> {
    // Deciding against a projection that cannot follow the stream would conflict or act on stale
    // state, and the append could not be read back: refuse, retryably. A read that went unanswered
    // for a moment (a bus busy moving megabytes, a starved machine) is waited out first: refused at
    // once, discovering an upstream of 600 tools of 10 KB was answered `bus_unavailable` in CI.
    if (!follower.isCaughtUp() && !(await follower.untilCaughtUp(FOLLOWING_WAIT_MS))) {
      throw new ManifoldError("bus_unavailable", "the registry is not following its event stream (NATS unreachable or recovering); the command may be retried");
    }
    const { idempotency } = options;
    const actor = options.actor ?? "registry";
    const aggregate = aggregateOf(command);
    // A decision reads the whole registry (a grant names a consumer, a selection an upstream's
    // tool, a provider's removal who trusts it), so its events expect the stream as it was decided
    // on: a command another replica (or request) appended meanwhile makes it decide again. Before,
    // only the command's own aggregate was checked, and a grant racing its consumer's deletion was
    // stored naming the deleted consumer. A discovery report reads only its own upstream.
    const wholeRegistry = command.type !== CommandType.recordDiscovery;
    for (let decision = 1; ; decision++) {
      const earlier = idempotency && keys.find(actor, idempotency.key);
      if (idempotency && earlier) return replay(idempotency, earlier);
      const seen = projection.versionOf(aggregate);
      await refuseStale(aggregate, seen, options);
      const basis = projection.sequence;
      const events = decide(command, projection);
      // A no-op binds no key: nothing was stored that a retry could be answered from.
      if (events.length === 0) return { version: seen, changed: false };
      try {
        return await append(events, subjectOf(aggregate), seen, wholeRegistry ? basis : undefined, idempotency, actor, decision);
      } catch (error) {
        // A change without If-Match is unconditional (README): a concurrent change to its own object
        // is decided on again, like one elsewhere in the registry. Two replicas granting on one
        // virtual server answered 409 version_conflict to a caller who had named no version. With
        // If-Match the conflict is what the caller asked to hear of: answered as it is.
        const conflict = error instanceof ManifoldError && error.code === "version_conflict";
        if (!(error instanceof StreamMoved || (conflict && options.expectedVersion === undefined))) throw error;
        if (decision >= MAX_DECISIONS) {
          throw new ManifoldError("bus_unavailable", `the registry changed under this command ${MAX_DECISIONS} times while it was decided; the command may be retried`);
        }
        // A few ms, at random: two replicas deciding again on each other's appends at once would
        // otherwise keep meeting, and the one that catches up second keeps losing.
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 2 ** decision));
        await follower.catchUp();
      }
    }
  }

  /** Appends a decision's events, each expecting the one before (and the first, `basis`, when given). */
  async function append(events: NewEvent[], subject: string, seen: number, basis: number | undefined, idempotency: CommandOptions["idempotency"], actor: string, decision: number): Promise<CommandResult> {
    const commandId = idempotency?.key ?? randomUUID();
    // Keys are the caller's: scoped by actor, so two admins' keys never meet. A decision made again
    // is a new message, never sent before (a refused append's msgID may be remembered, see below, and
    // a client's retry with its key would meet its own earlier ones); replicas racing with one key
    // still meet, in the expectation of the stream and the key found after catching up.
    const msgId = idempotency ? `${actor}:${idempotency.key}${decision > 1 ? `:d${decision}:${randomUUID()}` : ""}` : commandId;
    let version = seen;
    let stream = basis;
    let duplicate = false;
    try {
      for (const [index, event] of events.entries()) {
        const appended = await store.appendWithAck(subject, event, {
          expectedVersion: version,
          commandId,
          actor,
          fingerprint: idempotency?.fingerprint,
          msgId: events.length === 1 ? msgId : `${msgId}:${index}`,
          streamSequence: stream,
        });
        // nats-server 2.10/2.11 in a cluster remember a msgID before checking an expectation that then
        // fails, and answer its next use as a duplicate of sequence 0: nothing of it was stored. Decided
        // again, it goes out under the next msgID (a client's retry with its key would meet the same).
        if (appended.duplicate && appended.sequence === 0) throw new StreamMoved();
        version = appended.sequence;
        if (stream !== undefined) stream = appended.sequence;
        duplicate ||= appended.duplicate;
      }
    } catch (error) {
      // Another replica stored this key's command first, and it changed the object under us.
      if (!(idempotency && error instanceof ManifoldError && error.code === "version_conflict")) throw error;
      await follower.catchUp();
      const winner = keys.find(actor, idempotency.key);
      if (!winner) throw error;
      return replay(idempotency, winner);
    }
    await follower.waitFor(version);
    // JetStream dropped ours: the key's first command is stored; answer as for any retry.
    if (idempotency && duplicate) return replay(idempotency, keys.find(actor, idempotency.key) ?? { fingerprint: "", version });
    return { version, changed: true };
  }

  /** Whether `options` carry an Idempotency-Key already answered: the command would be a replay. */
  const replays = (options: CommandOptions): boolean => Boolean(options.idempotency && keys.find(options.actor ?? "registry", options.idempotency.key));

  /**
   * For a route that changes other objects before its command (a consumer's deletion revokes its
   * grants first): a stale `If-Match` is refused before any of that, as the command itself would be.
   * A retry already answered is not checked: it is answered as the first time.
   */
  const checkVersion = async (command: RegistryCommand, options: CommandOptions): Promise<void> => {
    if (replays(options)) return;
    const aggregate = aggregateOf(command);
    await refuseStale(aggregate, projection.versionOf(aggregate), options);
  };

  return Object.assign(execute, { replays, checkVersion });
}

export type CommandHandler = ReturnType<typeof createCommandHandler>;
